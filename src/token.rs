//! Company API tokens: generation and hashing.
//!
//! A token is issued once, when a company's session is created
//! ([`crate::pool::SessionPool::ensure`]); only its SHA-256 is stored (in the
//! company's registry record, `token_hash`), so a leaked database does not leak
//! usable credentials. Verification hashes the presented token and compares the
//! hashes in constant time (the HTTP layer does that).
//!
//! Invariant: the plaintext token never reaches a log line or the store.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// Prefix of every company token, so that a token found in a log or a paste
/// is recognisable (and secret scanners can match it).
pub const TOKEN_PREFIX: &str = "wgc_";

/// Bytes of randomness in a token (256 bits).
const TOKEN_RANDOM_BYTES: usize = 32;

/// The operating system's random source failed; no token can be issued.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed: {0}")]
pub struct TokenError(String);

/// A freshly generated token: the plaintext (shown to the caller once) and the
/// hash that is stored.
pub struct IssuedToken {
    /// `wgc_` followed by 43 base64url characters. Never log it.
    pub plaintext: String,
    /// SHA-256 of `plaintext`.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedToken(<redacted>)")
    }
}

/// Generate a new random company token from the operating system's CSPRNG.
pub fn generate_token() -> Result<IssuedToken, TokenError> {
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    getrandom::fill(&mut random).map_err(|e| TokenError(e.to_string()))?;
    let plaintext = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let hash = hash_token(&plaintext);
    Ok(IssuedToken { plaintext, hash })
}

/// SHA-256 of a presented token, to compare with a stored `token_hash`.
///
/// A plain (unsalted, fast) hash is right here: the token has 256 bits of
/// entropy, so it cannot be brute-forced from its hash, and verification runs
/// on every request.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_to_their_stored_hash() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with(TOKEN_PREFIX));
        assert_eq!(a.plaintext.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(hash_token(&a.plaintext), a.hash);
        assert_ne!(hash_token(&b.plaintext), a.hash);
        assert_eq!(format!("{a:?}"), "IssuedToken(<redacted>)");
    }

    #[test]
    fn hash_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(hash_token("abc")[..4], [0xba, 0x78, 0x16, 0xbf],);
    }
}
