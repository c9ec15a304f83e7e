//! Webhook signatures, Standard Webhooks style
//! (<https://www.standardwebhooks.com/>): each request carries
//! `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature: v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))>`.
//!
//! Secrets are shown to users as `whsec_<base64 of the key bytes>`, the form
//! Standard Webhooks libraries take; the key bytes are what is stored.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit as _, Mac as _};
use sha2::Sha256;

/// Header carrying the event id (the receiver's deduplication key).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the signing time, unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the signature(s).
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The prefix of a secret in its display form.
pub const SECRET_PREFIX: &str = "whsec_";

type HmacSha256 = hmac::Hmac<Sha256>;

/// The `webhook-signature` value for one request.
pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `header` (space-separated `v1,<sig>` entries) holds a valid
/// signature of the request (constant-time comparison). Receivers and tests
/// use it; the gateway only signs.
pub fn verify(secret: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = signature(secret, id, timestamp, body);
    header.split(' ').any(|candidate| {
        subtle::ConstantTimeEq::ct_eq(candidate.as_bytes(), expected.as_bytes()).into()
    })
}

/// Checks a received request's three headers against `secret`: `Ok(event
/// id)` when the signature is valid, `Err(event id or "")` otherwise.
/// For receivers written in Rust and for tests; the gateway only signs.
pub fn verify_headers(
    secret: &[u8],
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<String, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let id = header(HEADER_ID).to_owned();
    let timestamp: i64 = header(HEADER_TIMESTAMP).parse().unwrap_or(0);
    if !id.is_empty() && verify(secret, &id, timestamp, body, header(HEADER_SIGNATURE)) {
        Ok(id)
    } else {
        Err(id)
    }
}

/// The key bytes of a secret given as `whsec_<base64>`; any other string is
/// taken as raw key bytes. `None` for an empty secret or invalid base64 after
/// the prefix.
pub fn parse_secret(secret: &str) -> Option<Vec<u8>> {
    let key = match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => STANDARD.decode(encoded).ok()?,
        None => secret.as_bytes().to_vec(),
    };
    (!key.is_empty()).then_some(key)
}

/// The display form `whsec_<base64>` of key bytes.
pub fn display_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// A new random 32-byte signing key.
pub fn generate_secret() -> Result<Vec<u8>, getrandom::Error> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
            &format!("v1,bogus {sig}")
        ));
        assert!(!verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_331,
            br#"{"test": 2432232314}"#,
            &sig
        ));
    }

    #[test]
    fn secrets_parse_and_display() {
        assert_eq!(parse_secret("plain"), Some(b"plain".to_vec()));
        assert_eq!(parse_secret(""), None);
        assert_eq!(parse_secret("whsec_!!"), None);
        let key = generate_secret().unwrap();
        assert_eq!(parse_secret(&display_secret(&key)), Some(key));
    }
}
