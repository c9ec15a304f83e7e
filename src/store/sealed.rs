//! Sealing secret-bearing values with the operator's store key
//! (`WAGATE_STORE_KEY`): XChaCha20-Poly1305 (RustCrypto), a random 24-byte
//! nonce per write.
//!
//! What is sealed is decided by the writers (the store's trees, and
//! `crate::wa`'s Backend for its secret categories, see
//! [`super::keys::Category::SECRET`]); this module only seals and opens.
//!
//! # Format
//!
//! A sealed value is `[0x00][version 0x01][nonce: 24 bytes][ciphertext][tag:
//! 16 bytes]`, 42 bytes longer than the clear value. No clear value that is
//! ever sealed starts with `0x00`: they are JSON, protobuf (field number 0 is
//! invalid, so no encoding starts with a zero byte) or empty; the settings,
//! whose raw bytes could, are sealed all at once (see [`super::store_key`]).
//! So a reader tells sealed rows from the clear rows of a store that was
//! written before it had a key.
//!
//! # Binding
//!
//! The associated data is `[tree name length: u8][tree name][row key]`: a
//! sealed value only opens at the place it was written, so rows cannot be
//! swapped between companies, categories or trees without failing
//! authentication.
//!
//! # Without a key
//!
//! [`Sealer::seal`] and [`Sealer::open`] hand the value back borrowed: no
//! copy, no allocation, no cryptography.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{AeadInOut as _, KeyInit as _};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// First byte of every sealed value (never the first byte of a clear one).
const MARKER: u8 = 0x00;
/// The format version, second byte of every sealed value.
const VERSION: u8 = 0x01;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;
/// How many bytes sealing adds to a value.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// The 32-byte key values are sealed with. Parsed from 64 hexadecimal
/// characters (`openssl rand -hex 32`); its bytes are wiped when dropped and
/// never printed.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    /// Parses 64 hexadecimal characters (surrounding whitespace, e.g. the
    /// newline of a key file, is ignored).
    pub fn parse(text: &str) -> Result<StoreKey, String> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut bytes[..]).map_err(|_| {
            "the store key must be 32 bytes written as 64 hexadecimal characters \
             (generate one with `openssl rand -hex 32`)"
                .to_owned()
        })?;
        Ok(StoreKey(bytes))
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// Why a stored value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The value is sealed but the store runs without a key.
    #[error("the value is sealed and no store key is configured")]
    NoKey,
    /// The value is sealed in a format this version does not know.
    #[error("the value is sealed in an unknown format (version {0})")]
    UnknownVersion(u8),
    /// Authentication failed: the value was changed, moved from another
    /// place, or sealed with another key.
    #[error(
        "the sealed value failed authentication (changed, moved from another row, or sealed with another key)"
    )]
    Unauthentic,
}

/// Seals and opens values with the store key, if there is one. Cheap to
/// clone (one `Arc`).
#[derive(Clone, Default)]
pub(crate) struct Sealer {
    cipher: Option<Arc<XChaCha20Poly1305>>,
}

impl Sealer {
    /// A sealer with `key`, or one that leaves values in clear.
    pub(crate) fn new(key: Option<&StoreKey>) -> Sealer {
        Sealer {
            cipher: key.map(|key| Arc::new(XChaCha20Poly1305::new(&(*key.0).into()))),
        }
    }

    /// Whether values are sealed.
    pub(crate) fn is_keyed(&self) -> bool {
        self.cipher.is_some()
    }

    /// `value` sealed for the row `key` of `tree`; `value` itself without a
    /// key. Fails only when the system has no random bytes for the nonce.
    pub(crate) fn seal<'v>(
        &self,
        tree: &str,
        key: &[u8],
        value: &'v [u8],
    ) -> Result<Cow<'v, [u8]>, getrandom::Error> {
        let Some(cipher) = &self.cipher else {
            return Ok(Cow::Borrowed(value));
        };
        let mut sealed = Vec::with_capacity(value.len() + OVERHEAD);
        sealed.extend_from_slice(&[MARKER, VERSION]);
        sealed.resize(HEADER_LEN, 0);
        getrandom::fill(&mut sealed[2..HEADER_LEN])?;
        sealed.extend_from_slice(value);
        let (header, body) = sealed.split_at_mut(HEADER_LEN);
        let nonce = XNonce::try_from(&header[2..]).expect("the header holds a 24-byte nonce");
        let tag = cipher
            .encrypt_inout_detached(&nonce, &associated_data(tree, key), body.into())
            // Only a plaintext beyond 256 GiB fails; sled values are far smaller.
            .expect("a store value is within XChaCha20-Poly1305's length limit");
        sealed.extend_from_slice(&tag);
        Ok(Cow::Owned(sealed))
    }

    /// [`Sealer::seal`] of an owned value: `value` itself without a key.
    pub(crate) fn seal_vec(
        &self,
        tree: &str,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<Vec<u8>, getrandom::Error> {
        if self.is_keyed() {
            Ok(self.seal(tree, key, &value)?.into_owned())
        } else {
            Ok(value)
        }
    }

    /// The clear value of the row `key` of `tree`: opened if it is sealed,
    /// as it is if it was written in clear (a store from before its key).
    pub(crate) fn open<'v>(
        &self,
        tree: &str,
        key: &[u8],
        value: &'v [u8],
    ) -> Result<Cow<'v, [u8]>, OpenError> {
        if !is_sealed(value) {
            return Ok(Cow::Borrowed(value));
        }
        let cipher = self.cipher.as_ref().ok_or(OpenError::NoKey)?;
        if value[1] != VERSION {
            return Err(OpenError::UnknownVersion(value[1]));
        }
        if value.len() < OVERHEAD {
            return Err(OpenError::Unauthentic);
        }
        let (header, rest) = value.split_at(HEADER_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = XNonce::try_from(&header[2..]).expect("the header holds a 24-byte nonce");
        let tag = Tag::try_from(tag).expect("the tail holds a 16-byte tag");
        let mut clear = ciphertext.to_vec();
        cipher
            .decrypt_inout_detached(
                &nonce,
                &associated_data(tree, key),
                clear.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| OpenError::Unauthentic)?;
        Ok(Cow::Owned(clear))
    }
}

/// Whether `value` is in the sealed format (of any version).
pub(crate) fn is_sealed(value: &[u8]) -> bool {
    value.len() >= 2 && value[0] == MARKER
}

/// `[tree name length][tree name][row key]`: the place a value is bound to.
fn associated_data(tree: &str, key: &[u8]) -> Vec<u8> {
    // Tree names are short constants of this crate.
    debug_assert!(tree.len() <= usize::from(u8::MAX));
    let mut aad = Vec::with_capacity(1 + tree.len() + key.len());
    aad.push(tree.len() as u8);
    aad.extend_from_slice(tree.as_bytes());
    aad.extend_from_slice(key);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn keyed() -> Sealer {
        Sealer::new(Some(&StoreKey::parse(KEY_HEX).unwrap()))
    }

    const SECRET: &[u8] = b"{\"noise_key\":[1,2,3,4,5,6,7,8]}";

    #[test]
    fn a_sealed_value_opens_at_its_place_and_hides_the_clear_bytes() {
        let sealer = keyed();
        let sealed = sealer.seal("device", b"acme", SECRET).unwrap();
        assert_eq!(sealed.len(), SECRET.len() + OVERHEAD);
        assert!(is_sealed(&sealed));
        assert!(
            !sealed.windows(8).any(|w| SECRET.windows(8).any(|s| s == w)),
            "no run of the clear value survives sealing"
        );
        let again = sealer.seal("device", b"acme", SECRET).unwrap();
        assert_ne!(sealed, again, "a fresh nonce per write");
        assert_eq!(sealer.open("device", b"acme", &sealed).unwrap(), SECRET);
        assert_eq!(sealer.open("device", b"acme", &again).unwrap(), SECRET);
    }

    #[test]
    fn another_key_does_not_open_it() {
        let sealed = keyed().seal("device", b"acme", SECRET).unwrap();
        let other = Sealer::new(Some(&StoreKey::parse(&KEY_HEX.replace('0', "f")).unwrap()));
        assert_eq!(
            other.open("device", b"acme", &sealed),
            Err(OpenError::Unauthentic)
        );
        assert_eq!(
            Sealer::new(None).open("device", b"acme", &sealed),
            Err(OpenError::NoKey)
        );
    }

    #[test]
    fn a_changed_byte_anywhere_fails_authentication() {
        let sealer = keyed();
        let sealed = sealer.seal("wa", b"\x04acmes1@s", SECRET).unwrap();
        for at in 2..sealed.len() {
            let mut tampered = sealed.to_vec();
            tampered[at] ^= 0x01;
            assert_eq!(
                sealer.open("wa", b"\x04acmes1@s", &tampered),
                Err(OpenError::Unauthentic),
                "byte {at}"
            );
        }
        assert_eq!(
            sealer.open("wa", b"k", &sealed[..OVERHEAD - 1]),
            Err(OpenError::Unauthentic),
            "truncated"
        );
        let mut future = sealed.to_vec();
        future[1] = 9;
        assert_eq!(
            sealer.open("wa", b"\x04acmes1@s", &future),
            Err(OpenError::UnknownVersion(9))
        );
    }

    #[test]
    fn a_value_moved_to_another_row_or_tree_does_not_open() {
        let sealer = keyed();
        let sealed = sealer.seal("device", b"acme", SECRET).unwrap();
        assert_eq!(
            sealer.open("device", b"evil", &sealed),
            Err(OpenError::Unauthentic),
            "another company's row"
        );
        assert_eq!(
            sealer.open("registry", b"acme", &sealed),
            Err(OpenError::Unauthentic),
            "the same key in another tree"
        );
        // The tree name is length-prefixed: ("ab", "c…") is not ("a", "bc…").
        let sealed = sealer.seal("ab", b"c", SECRET).unwrap();
        assert_eq!(
            sealer.open("a", b"bc", &sealed),
            Err(OpenError::Unauthentic)
        );
    }

    #[test]
    fn clear_values_pass_through_with_or_without_a_key() {
        for sealer in [Sealer::new(None), keyed()] {
            for clear in [SECRET, b"\x0a\x03abc", b""] {
                assert!(matches!(
                    sealer.open("device", b"acme", clear),
                    Ok(Cow::Borrowed(value)) if value == clear
                ));
            }
        }
        let unkeyed = Sealer::new(None);
        assert!(!unkeyed.is_keyed());
        assert!(matches!(
            unkeyed.seal("device", b"acme", SECRET),
            Ok(Cow::Borrowed(value)) if value == SECRET
        ));
    }

    #[test]
    fn keys_are_64_hex_characters_and_never_printed() {
        let key = StoreKey::parse(&format!("  {KEY_HEX}\n")).unwrap();
        assert_eq!(format!("{key:?}"), "StoreKey(<redacted>)");
        for bad in [
            "",
            &KEY_HEX[..62],
            &format!("{KEY_HEX}00"),
            &KEY_HEX.replace('a', "g"),
        ] {
            let error = StoreKey::parse(bad).unwrap_err();
            assert!(error.contains("64 hexadecimal characters"), "{error}");
        }
    }
}
