//! Unit tests of the pairing routes' pure parts: base URLs, optional bodies,
//! expiry format, inline SVG, refusal statuses.

use axum::http::header::HOST;
use axum::http::{HeaderMap, HeaderName, StatusCode};

use super::access::PageRefusal;
use super::links::{CreatePairingLinkRequest, parse_optional_json, public_base, rfc3339};
use crate::http::qr::inline_svg;
use crate::pairing::LinkRefusal;
use crate::pairing::token::TokenError;

fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(name.clone(), value.parse().unwrap());
    }
    map
}

#[test]
fn the_base_url_is_configured_or_the_requests_host() {
    let host = headers(&[(HOST, "gw.example.com:8080")]);
    assert_eq!(
        public_base(Some("https://wa.example.com"), &host).unwrap(),
        "https://wa.example.com"
    );
    assert_eq!(
        public_base(None, &host).unwrap(),
        "http://gw.example.com:8080"
    );
    assert_eq!(
        public_base(None, &headers(&[(HOST, "[::1]:80")])).unwrap(),
        "http://[::1]:80"
    );
    for bad in ["evil.com/phish?", "a@b", "<x>", ""] {
        let err = public_base(None, &headers(&[(HOST, bad)])).unwrap_err();
        assert_eq!(err.code(), "missing_host", "{bad:?}");
    }
    assert_eq!(
        public_base(None, &HeaderMap::new()).unwrap_err().code(),
        "missing_host"
    );
}

#[test]
fn optional_bodies_parse_or_are_refused_with_a_code() {
    let empty: CreatePairingLinkRequest = parse_optional_json(b"").unwrap();
    assert_eq!(empty.ttl_seconds, None);
    let blank: CreatePairingLinkRequest = parse_optional_json(b" \n").unwrap();
    assert_eq!(blank.ttl_seconds, None);
    let some: CreatePairingLinkRequest = parse_optional_json(br#"{"ttl_seconds":120}"#).unwrap();
    assert_eq!(some.ttl_seconds, Some(120));
    let err = parse_optional_json::<CreatePairingLinkRequest>(b"{").unwrap_err();
    assert_eq!(err.code(), "invalid_json");
    let err = parse_optional_json::<CreatePairingLinkRequest>(br#"{"ttl":1}"#).unwrap_err();
    assert_eq!(err.code(), "invalid_body");
    let err =
        parse_optional_json::<CreatePairingLinkRequest>(br#"{"ttl_seconds":-1}"#).unwrap_err();
    assert_eq!(err.code(), "invalid_body");
}

#[test]
fn expiry_is_rfc3339_utc() {
    assert_eq!(rfc3339(1_767_269_700_000), "2026-01-01T12:15:00Z");
}

#[test]
fn svg_is_inlined_without_its_declaration() {
    let svg = inline_svg("2@abc").expect("a short text fits a QR code");
    assert!(
        svg.starts_with("<svg") && svg.ends_with("</svg>"),
        "{svg:.60}"
    );
    assert!(
        !svg.contains("<script") && !svg.contains("style="),
        "CSP-safe markup"
    );
}

#[test]
fn refusals_have_distinct_statuses() {
    assert_eq!(PageRefusal::Expired.status(), StatusCode::GONE);
    assert_eq!(
        PageRefusal::Invalid("bad_signature").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(PageRefusal::UnknownCompany.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        PageRefusal::from(LinkRefusal::Token(TokenError::Expired { expired_at_ms: 1 })).code(),
        "link_expired"
    );
    assert_eq!(
        PageRefusal::from(LinkRefusal::Token(TokenError::BadSignature)).code(),
        "link_invalid"
    );
}

#[test]
fn answers_holding_a_link_or_a_pair_code_have_redacted_debug() {
    let view = super::links::PairingLinkView {
        url: "https://wa.example.com/pair/SECRET-TOKEN".to_owned(),
        token: "SECRET-TOKEN".to_owned(),
        expires_at: "2026-01-01T12:15:00Z".to_owned(),
        expires_at_ms: 1_767_269_700_000,
    };
    let shown = format!("{view:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        shown.contains("1767269700000") && shown.ends_with(".. }"),
        "{shown}"
    );
    let answer = super::html::PairCodeAnswer {
        code: "ABCD1234".to_owned(),
        display: "ABCD-1234".to_owned(),
    };
    assert_eq!(format!("{answer:?}"), "PairCodeAnswer { .. }");
}
