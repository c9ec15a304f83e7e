//! The one guard on addresses the gateway connects to on a tenant's behalf:
//! webhook URLs (`crate::webhook`) and media URLs (`crate::http::messages`).
//!
//! A multi-tenant gateway must not let a tenant reach its own network, so
//! unless private addresses are allowed (`--allow-private-urls` for media,
//! tests and single-tenant deployments) a URL is refused when its literal
//! host is loopback, private, link-local or otherwise non-public
//! ([`check_url`]), and every address its host *resolves* to is filtered at
//! connect time ([`PublicOnlyResolver`]), so DNS cannot smuggle one in
//! later. Redirects are checked again with [`check_url`] by the caller's
//! redirect policy.

use std::net::IpAddr;

/// Why a URL was refused (human text; callers attach their own code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub &'static str);

/// Parses and checks an outbound URL: `http`/`https`, a host, no
/// credentials, and (with `refuse_private`) no non-public literal host.
pub fn check_url(raw: &str, refuse_private: bool) -> Result<url::Url, Refused> {
    let url = url::Url::parse(raw).map_err(|_| Refused("not a valid absolute URL"))?;
    check_parsed(&url, refuse_private)?;
    Ok(url)
}

/// [`check_url`] on an already parsed URL (e.g. a redirect target).
pub fn check_parsed(url: &url::Url, refuse_private: bool) -> Result<(), Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused("the scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused("credentials in the URL are not allowed"));
    }
    let host = url.host().ok_or(Refused("the URL has no host"))?;
    if refuse_private {
        let refused = match host {
            url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local")
            }
        };
        if refused {
            return Err(Refused("private and loopback addresses are not allowed"));
        }
    }
    Ok(())
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// The error text of [`PublicOnlyResolver`] when nothing public is left;
/// callers look for it in a failed request's error chain.
pub const NO_PUBLIC_ADDRESS: &str = "the host resolves to no public address";

/// A DNS resolver that drops every non-public address.
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
                return Err(NO_PUBLIC_ADDRESS.into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_hosts_are_refused_only_when_asked() {
        for raw in [
            "http://127.0.0.1/x",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://localhost:8080/",
            "http://printer.local/",
        ] {
            assert!(check_url(raw, true).is_err(), "{raw}");
            assert!(check_url(raw, false).is_ok(), "{raw}");
        }
        assert!(check_url("https://example.com/a.pdf", true).is_ok());
        assert!(check_url("ftp://example.com/a", false).is_err());
        assert!(check_url("http://user:pw@example.com/", false).is_err());
    }
}
