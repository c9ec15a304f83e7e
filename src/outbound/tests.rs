//! Unit tests of the outbound guard: every refused range, in literal URLs and
//! as resolved addresses. No test here opens a socket.

use super::*;

/// Addresses that must never be reached by default, one or more per range.
const NOT_PUBLIC_ADDRS: &[&str] = &[
    // IPv4
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.1.2.3",
    "169.254.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    // IPv6
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::127.0.0.1",
    "::10.0.0.1",
    "::8.8.8.8", // IPv4-compatible: deprecated, never reached
    "64:ff9b::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::10.1.2.3",
    "64:ff9b:1::8.8.8.8", // NAT64 local use
    "100::1",
    "2001::1", // Teredo
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:2::1", // benchmarking
    "2001:db8::1",
    "2002:7f00:1::",     // 6to4 of 127.0.0.1
    "2002:a00:1::1",     // 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "feff::1",
    "ff02::1",
    "ff05::2",
];

/// Public addresses, some inside the IPv6 prefixes that embed an IPv4 one.
const PUBLIC_ADDRS: &[&str] = &[
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.1",
    "172.32.0.1",
    "192.0.1.1",
    "198.20.0.1",
    "223.255.255.254",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1", // 6to4 of 8.8.8.8
    "2001:4860:4860::8888",
    "2606:4700::1111",
    "2a00:1450::1",
];

#[test]
fn every_non_public_range_is_refused_and_public_addresses_are_not() {
    for raw in NOT_PUBLIC_ADDRS {
        let ip: IpAddr = raw.parse().expect(raw);
        assert!(!is_public(ip), "{raw} must not count as public");
    }
    for raw in PUBLIC_ADDRS {
        let ip: IpAddr = raw.parse().expect(raw);
        assert!(is_public(ip), "{raw} is public");
    }
}

fn url_of(raw: &str) -> String {
    if raw.contains(':') {
        format!("http://[{raw}]:8080/hook")
    } else {
        format!("http://{raw}:8080/hook")
    }
}

#[test]
fn literal_hosts_are_refused_by_default_and_allowed_when_asked() {
    let strict = Guard::default();
    let open = Guard::new(true);
    assert!(!strict.allows_private() && open.allows_private());
    for raw in NOT_PUBLIC_ADDRS {
        let url = url_of(raw);
        assert_eq!(strict.check_url(&url), Err(Refused(NOT_PUBLIC)), "{url}");
        assert!(open.check_url(&url).is_ok(), "{url}");
    }
    for raw in PUBLIC_ADDRS {
        assert!(strict.check_url(&url_of(raw)).is_ok(), "{raw}");
    }
}

#[test]
fn names_and_spellings_of_loopback_are_refused() {
    let strict = Guard::default();
    for raw in [
        "http://localhost/",
        "http://LOCALHOST.:8080/",
        "http://api.localhost/",
        "http://printer.local/",
        // WHATWG URL parsing turns these into 127.0.0.1.
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "https://[0:0:0:0:0:ffff:7f00:1]/",
    ] {
        assert!(strict.check_url(raw).is_err(), "{raw}");
        assert!(Guard::new(true).check_url(raw).is_ok(), "{raw}");
    }
    assert!(strict.check_url("https://hooks.example.com/wa").is_ok());
}

#[test]
fn scheme_credentials_and_shape_are_checked_whatever_the_policy() {
    for guard in [Guard::default(), Guard::new(true)] {
        assert!(guard.check_url("ftp://example.com/a").is_err());
        assert!(guard.check_url("file:///etc/passwd").is_err());
        assert!(guard.check_url("http://user:pw@example.com/").is_err());
        assert!(guard.check_url("/relative").is_err());
        assert!(guard.check_url("https://example.com/a.pdf").is_ok());
    }
}

#[test]
fn a_refusal_is_found_in_an_error_chain() {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Refused);
    assert_eq!(
        refusal_in(&Outer(Refused(NO_PUBLIC_ADDRESS))),
        Some(Refused(NO_PUBLIC_ADDRESS))
    );
    let text_only = std::io::Error::other(format!("dns error: {NO_PUBLIC_ADDRESS}"));
    assert!(refusal_in(&text_only).is_some());
    assert!(refusal_in(&std::io::Error::other("connection refused")).is_none());
}

/// `localhost` resolves (from the hosts file, no query leaves the machine) to
/// loopback only, so the resolver refuses it.
#[tokio::test]
async fn the_resolver_drops_non_public_addresses() {
    use reqwest::dns::Resolve as _;
    let name: reqwest::dns::Name = "localhost".parse().expect("a name");
    let error = match PublicOnlyResolver.resolve(name).await {
        Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
        Err(error) => error,
    };
    assert_eq!(refusal_in(&*error), Some(Refused(NO_PUBLIC_ADDRESS)));
}
