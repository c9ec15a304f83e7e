//! The one guard on addresses the gateway connects to on a tenant's behalf:
//! webhook URLs (`crate::webhook`) and media URLs (`crate::http::messages`).
//!
//! A multi-tenant gateway must not let a tenant reach its own network (the
//! gateway's admin routes, a database, a cloud metadata service), so by
//! default ([`Guard::default`]) every non-public address is refused:
//! private, loopback, link-local, carrier-grade NAT, multicast, broadcast,
//! unspecified, documentation, benchmarking and reserved ranges, the
//! metadata address 169.254.169.254, and their IPv6 forms (IPv4-mapped and
//! -compatible, NAT64 and 6to4 with a non-public IPv4 inside, Teredo,
//! site-local, unique-local). `--allow-private-urls` ([`Guard::new`] with
//! `true`) turns that off for tests and single-tenant deployments.
//!
//! The check runs on every connection, not once:
//! - [`Guard::check_url`] / [`Guard::check_parsed`] refuse a literal
//!   non-public host (reqwest never asks the resolver about an IP literal);
//!   callers run them before each request and on each redirect.
//! - [`Guard::client_builder`] gives a reqwest client whose resolver drops
//!   every non-public address after DNS resolution ([`PublicOnlyResolver`]),
//!   so a name that resolves (or later re-resolves) to a private address is
//!   refused at connect time, and that ignores proxies from the environment
//!   (`HTTP_PROXY` would otherwise make the proxy, not the guard, pick the
//!   address).
//!
//! Imports nothing of the crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Why a URL was refused (human text; callers attach their own code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub &'static str);

/// The refusal of a non-public address (a literal host or every address a
/// name resolves to).
pub const NOT_PUBLIC: &str = "private, loopback and other non-public addresses are not allowed";

/// The error text of [`PublicOnlyResolver`] when nothing public is left;
/// also found in a failed request's error chain by [`refusal_in`].
pub const NO_PUBLIC_ADDRESS: &str = "the host resolves to no public address";

/// The outbound address policy: refuse non-public addresses (the default) or
/// allow them (`--allow-private-urls`). Cheap to copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    allow_private: bool,
}

impl Guard {
    /// A guard that allows private addresses when `allow_private`.
    pub const fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// Whether non-public addresses are allowed.
    pub const fn allows_private(self) -> bool {
        self.allow_private
    }

    /// Parses and checks an outbound URL: `http`/`https`, a host, no
    /// credentials, and (unless private addresses are allowed) no non-public
    /// literal host.
    pub fn check_url(self, raw: &str) -> Result<url::Url, Refused> {
        let url = url::Url::parse(raw).map_err(|_| Refused("not a valid absolute URL"))?;
        self.check_parsed(&url)?;
        Ok(url)
    }

    /// [`Guard::check_url`] on an already parsed URL (a stored webhook URL at
    /// delivery, a redirect target).
    pub fn check_parsed(self, url: &url::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused("the scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused("credentials in the URL are not allowed"));
        }
        let host = url.host().ok_or(Refused("the URL has no host"))?;
        if self.allow_private {
            return Ok(());
        }
        let refused = match host {
            url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
            // Names that never resolve to a public address; anything else is
            // checked after resolution by the client's resolver.
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local")
            }
        };
        if refused {
            return Err(Refused(NOT_PUBLIC));
        }
        Ok(())
    }

    /// A reqwest client builder with the guard's connect-time checks: no
    /// proxy from the environment, and (unless private addresses are
    /// allowed) the [`PublicOnlyResolver`]. Callers add timeouts and their
    /// redirect policy.
    pub fn client_builder(self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")));
        if self.allow_private {
            builder
        } else {
            builder.dns_resolver(Arc::new(PublicOnlyResolver))
        }
    }
}

/// The guard's refusal in a failed request's error chain (a redirect refused
/// by [`Guard::check_parsed`], or a name [`PublicOnlyResolver`] refused), if
/// that is why it failed.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<Refused>() {
            return Some(refusal.clone());
        }
        // The resolver's error may reach us re-wrapped as text only.
        if e.to_string().contains(NO_PUBLIC_ADDRESS) {
            return Some(Refused(NO_PUBLIC_ADDRESS));
        }
        source = e.source();
    }
    None
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(a == 0 // "this network", incl. 0.0.0.0
        || v4.is_private() // 10/8, 172.16/12, 192.168/16
        || v4.is_loopback() // 127/8
        || v4.is_link_local() // 169.254/16, incl. the metadata address
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || v4.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || v4.is_multicast() // 224/4
        || a >= 240) // reserved 240/4, incl. broadcast
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    // The embedded IPv4 address of the last 32 bits, or of bits 16..48.
    let low_v4 = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_public_v4(v4); // ::ffff:0:0/96
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(low_v4()); // NAT64 well-known prefix 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        // 6to4 2002::/16 carries its IPv4 address in bits 16..48.
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return is_public_v4(v4);
    }
    // Global unicast is 2000::/3; everything else (unspecified, loopback,
    // IPv4-compatible ::/96, NAT64 local-use 64:ff9b:1::/48, discard 100::/64,
    // ULA fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast
    // ff00::/8, …) is not public.
    let ietf_assignments = s[0] == 0x2001 && s[1] < 0x0200; // 2001::/23, incl. Teredo 2001::/32
    let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32
        || (s[0] & 0xfff0) == 0x3ff0; // 3fff::/20
    (s[0] & 0xe000) == 0x2000 && !ietf_assignments && !documentation
}

/// A DNS resolver that drops every non-public address; when none is left
/// the connection fails with [`NO_PUBLIC_ADDRESS`].
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused(NO_PUBLIC_ADDRESS)) as _);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests;
