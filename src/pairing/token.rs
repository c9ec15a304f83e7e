//! Pairing-link tokens: what a link carries, how it is signed and how it is
//! checked. Pure code (the clock is a parameter), so every rule here is
//! unit-tested without a server.
//!
//! # Format
//!
//! `base64url(payload) "." base64url(mac)`, unpadded, where
//!
//! - `payload` = version (1 byte, [`VERSION`]) ‖ expiry (unix ms, i64 BE) ‖
//!   the company's creation time (unix ms, i64 BE) ‖ the company's
//!   pairing-link generation (u64 BE) ‖ nonce (8 random bytes) ‖ the company
//!   id (UTF-8, the rest). Version 1 (before generations) had no generation
//!   field and is read as generation 0, so links issued before an upgrade
//!   keep working until they expire or are revoked;
//! - `mac` = HMAC-SHA256 over a domain-separation label ‖ `payload`, with the
//!   gateway's [`SigningKey`].
//!
//! # Invariants
//!
//! - A token is bound to one company *incarnation*: the creation time of the
//!   company's registry record is signed in, so deleting a company revokes its
//!   links even if a company of the same id is created again. The company's
//!   pairing-link generation is signed in too: bumping it revokes every link
//!   issued before (`DELETE /v1/sessions/{company}/pairing-links`).
//! - The MAC is checked, in constant time ([`hmac::Mac::verify_slice`]),
//!   before anything in the payload is believed: a tampered token is
//!   [`TokenError::BadSignature`] even if it also claims another expiry.
//! - Parsing is bounded ([`MAX_TOKEN_LEN`]) and never panics on input.
//! - Tokens and keys are secrets: `Debug` of [`SigningKey`] is redacted and
//!   nothing here logs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::domain::CompanyId;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Version byte of the payload layout above.
pub const VERSION: u8 = 2;

/// The layout before generations (no generation field; read as generation 0).
const VERSION_1: u8 = 1;

/// Prefixed to the payload before MACing, so a MAC made with the same key for
/// another purpose can never pass as a pairing link.
const MAC_LABEL: &[u8] = b"wagate pairing link v1\0";

/// Longest token accepted (the longest valid one is about 150 characters).
pub const MAX_TOKEN_LEN: usize = 256;

/// Bytes of the payload before the company id.
const FIXED_LEN: usize = 1 + 8 + 8 + 8 + 8;

/// Bytes of a version 1 payload before the company id.
const FIXED_LEN_V1: usize = 1 + 8 + 8 + 8;

/// Length of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;

/// The secret that signs pairing links: 32 random bytes, stored in the
/// database so links survive a restart (see [`super::PairingLinks::load`]).
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

/// Redacted: the key signs every link.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// A key from its stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(MAC_LABEL);
        mac
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The one company the link is for.
    pub company: CompanyId,
    /// `created_at_ms` of the company's registry record when the link was made.
    pub company_created_ms: i64,
    /// The company's `pairing_generation` when the link was made.
    pub generation: u64,
    /// When the link stops working (unix ms).
    pub expires_at_ms: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all: wrong shape, bad base64, too long or too short.
    #[error("the link is not a pairing link")]
    Malformed,
    /// The MAC does not match: the token was altered or signed with another key.
    #[error("the link's signature is not valid")]
    BadSignature,
    /// A payload layout this gateway does not know (signed, so it is ours, from
    /// a newer or older version).
    #[error("the link was made by an incompatible version of the gateway")]
    UnknownVersion,
    /// Valid, but past its expiry.
    #[error("the link has expired")]
    Expired {
        /// When it expired (unix ms).
        expired_at_ms: i64,
    },
}

impl TokenError {
    /// Stable snake_case code (for tests and metrics; never shown with the token).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::UnknownVersion => "unknown_version",
            Self::Expired { .. } => "expired",
        }
    }
}

/// Signs `claims` into a token, with `nonce` making two links of the same
/// company and second distinct.
pub fn sign(key: &SigningKey, claims: &Claims, nonce: [u8; 8]) -> String {
    let company = claims.company.as_str().as_bytes();
    let mut payload = Vec::with_capacity(FIXED_LEN + company.len());
    payload.push(VERSION);
    payload.extend_from_slice(&claims.expires_at_ms.to_be_bytes());
    payload.extend_from_slice(&claims.company_created_ms.to_be_bytes());
    payload.extend_from_slice(&claims.generation.to_be_bytes());
    payload.extend_from_slice(&nonce);
    payload.extend_from_slice(company);
    let mut mac = key.mac();
    mac.update(&payload);
    let tag = mac.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Checks `token` with `key` at time `now_ms`: its signature first, then its
/// layout, then its expiry.
pub fn verify(key: &SigningKey, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    if tag.len() != MAC_LEN || payload.is_empty() {
        return Err(TokenError::Malformed);
    }
    let mut mac = key.mac();
    mac.update(&payload);
    mac.verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;

    // Authentic from here on: the layout was written by `sign`.
    let fixed_len = match payload[0] {
        VERSION => FIXED_LEN,
        VERSION_1 => FIXED_LEN_V1,
        _ => return Err(TokenError::UnknownVersion),
    };
    if payload.len() <= fixed_len {
        return Err(TokenError::Malformed);
    }
    let int_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&payload[at..at + 8]);
        bytes
    };
    let expires_at_ms = i64::from_be_bytes(int_at(1));
    let company_created_ms = i64::from_be_bytes(int_at(9));
    let generation = if payload[0] == VERSION {
        u64::from_be_bytes(int_at(17))
    } else {
        0
    };
    let company = std::str::from_utf8(&payload[fixed_len..])
        .ok()
        .and_then(|raw| CompanyId::parse(raw).ok())
        .ok_or(TokenError::Malformed)?;
    if now_ms >= expires_at_ms {
        return Err(TokenError::Expired {
            expired_at_ms: expires_at_ms,
        });
    }
    Ok(Claims {
        company,
        company_created_ms,
        generation,
        expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes([byte; 32])
    }

    fn claims(company: &str) -> Claims {
        Claims {
            company: CompanyId::parse(company).unwrap(),
            company_created_ms: 1_700_000_000_123,
            generation: 3,
            expires_at_ms: NOW + 15 * 60_000,
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let token = sign(&key(7), &claims("acme"), [1; 8]);
        assert!(token.len() < MAX_TOKEN_LEN);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "URL-safe without escaping: {token}"
        );
        assert_eq!(verify(&key(7), &token, NOW), Ok(claims("acme")));
        let longest = claims(&"a".repeat(CompanyId::MAX_LEN));
        let long_token = sign(&key(7), &longest, [1; 8]);
        assert!(long_token.len() <= MAX_TOKEN_LEN, "{}", long_token.len());
        assert_eq!(verify(&key(7), &long_token, NOW), Ok(longest));
    }

    #[test]
    fn nonces_make_links_distinct() {
        let a = sign(&key(7), &claims("acme"), [1; 8]);
        let b = sign(&key(7), &claims("acme"), [2; 8]);
        assert_ne!(a, b);
        assert_eq!(verify(&key(7), &a, NOW), verify(&key(7), &b, NOW));
    }

    #[test]
    fn expiry_is_exclusive() {
        let c = claims("acme");
        let token = sign(&key(7), &c, [1; 8]);
        assert!(verify(&key(7), &token, c.expires_at_ms - 1).is_ok());
        assert_eq!(
            verify(&key(7), &token, c.expires_at_ms),
            Err(TokenError::Expired {
                expired_at_ms: c.expires_at_ms
            })
        );
        assert_eq!(
            verify(&key(7), &token, c.expires_at_ms + 3_600_000)
                .unwrap_err()
                .code(),
            "expired"
        );
    }

    #[test]
    fn another_key_or_any_altered_byte_is_refused() {
        let token = sign(&key(7), &claims("acme"), [1; 8]);
        assert_eq!(verify(&key(8), &token, NOW), Err(TokenError::BadSignature));

        // Re-sign nothing, change one payload byte: the claims cannot be moved
        // to another company or a later expiry.
        let (payload, tag) = token.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        for index in 0..bytes.len() {
            let original = bytes[index];
            bytes[index] ^= 0x01;
            let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(
                verify(&key(7), &forged, NOW),
                Err(TokenError::BadSignature),
                "byte {index}"
            );
            bytes[index] = original;
        }
        // Another company's id in an otherwise untouched token.
        let mut other = bytes.clone();
        let at = other.len() - 4;
        other[at..].copy_from_slice(b"evil");
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&other));
        assert_eq!(verify(&key(7), &forged, NOW), Err(TokenError::BadSignature));
        // An altered tag.
        let mut tag_bytes = URL_SAFE_NO_PAD.decode(tag).unwrap();
        tag_bytes[31] ^= 0x80;
        let forged = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag_bytes));
        assert_eq!(verify(&key(7), &forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        let token = sign(&key(7), &claims("acme"), [1; 8]);
        let (payload, _) = token.split_once('.').unwrap();
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        for bad in [
            "",
            ".",
            "abc",
            "abc.def",
            "!!!.???",
            payload,
            &format!("{payload}."),
            &format!(".{payload}"),
            &format!("{payload}.{payload}"),
            long.as_str(),
            "é.é",
        ] {
            assert_eq!(
                verify(&key(7), bad, NOW),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_signed_but_foreign_layout_is_refused() {
        let k = key(7);
        let mac_of = |payload: &[u8]| {
            let mut mac = k.mac();
            mac.update(payload);
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        };
        let mut payload = vec![3u8];
        payload.extend_from_slice(&[0; 32]);
        payload.extend_from_slice(b"acme");
        let token = format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), mac_of(&payload));
        assert_eq!(verify(&k, &token, NOW), Err(TokenError::UnknownVersion));

        // Version 1 without a company, or with an invalid id.
        for company in [&b""[..], b"Not Valid", b"\xff\xfe"] {
            let mut payload = vec![VERSION];
            payload.extend_from_slice(&(NOW + 1000).to_be_bytes());
            payload.extend_from_slice(&[0; 24]);
            payload.extend_from_slice(company);
            let token = format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), mac_of(&payload));
            assert_eq!(verify(&k, &token, NOW), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn a_version_1_link_reads_as_generation_0() {
        // The layout before generations: no generation field.
        let k = key(7);
        let mut payload = vec![VERSION_1];
        payload.extend_from_slice(&(NOW + 1000).to_be_bytes());
        payload.extend_from_slice(&5i64.to_be_bytes());
        payload.extend_from_slice(&[9; 8]);
        payload.extend_from_slice(b"acme");
        let mut mac = k.mac();
        mac.update(&payload);
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let token = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&payload));
        let claims = verify(&k, &token, NOW).unwrap();
        assert_eq!((claims.company_created_ms, claims.generation), (5, 0));
        assert_eq!(claims.company.as_str(), "acme");
    }

    #[test]
    fn the_key_is_not_printed() {
        assert_eq!(format!("{:?}", key(7)), "SigningKey(<redacted>)");
    }
}
