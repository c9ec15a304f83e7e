//! Every sled key wagate writes is encoded here, and nowhere else.
//!
//! # Layout
//!
//! A few shared trees (see [`super::Trees`]); company-scoped keys start with
//! the company prefix `[len: u8][company id bytes]`. The length byte makes the
//! prefix *self-delimiting*: company `a` (`01 61`) is never a prefix of company
//! `ab` (`02 61 62`), so a prefix scan for one company can never return another
//! company's keys. A [`CompanyId`] is at most 64 bytes (its invariant), so the
//! length always fits one byte.
//!
//! In the `wa` tree (whatsapp-rust's Backend state) the company prefix is
//! followed by a one-byte [`Category`], then the category's own key parts.
//! Inner parts that are followed by more parts are length-prefixed
//! (`[len: u32 BE][bytes]`) for the same reason; the *last* part is stored raw
//! so that prefix scans over it (e.g. "every session of user X") work.
//! Integer ids are big-endian so that sled's byte order is numeric order.

use super::outbox::{DedupKey, DeliveryKey, Target};
use crate::domain::CompanyId;

/// One category of whatsapp-rust Backend state inside the `wa` tree.
///
/// The byte values are part of the on-disk format: never change or reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Category {
    Identity = b'i',
    Session = b's',
    PreKey = b'p',
    SignedPreKey = b'P',
    SenderKey = b'k',
    SyncKey = b'y',
    /// Single-row metadata (e.g. the latest app-state sync key id).
    Meta = b'm',
    AppStateVersion = b'v',
    MutationMac = b'M',
    SenderKeyDevice = b'd',
    LidMapping = b'l',
    PnToLid = b'n',
    BaseKey = b'b',
    DeviceList = b'D',
    GroupMetadata = b'g',
    TcToken = b't',
    SentMessage = b'o',
    PendingInbound = b'I',
    MsgSecret = b'x',
}

impl Category {
    /// The categories whose rows are sealed with the store key: what gives
    /// away the account or its messages (Signal sessions, pre-keys, signed
    /// pre-keys, sender keys, app-state sync keys, message secrets). The
    /// rest is public keys (identities), routing and bookkeeping.
    pub(crate) const SECRET: [Category; 6] = [
        Category::Session,
        Category::PreKey,
        Category::SignedPreKey,
        Category::SenderKey,
        Category::SyncKey,
        Category::MsgSecret,
    ];
}

/// Whether the `wa` row under `key` is of a secret category (its category
/// byte follows the company prefix).
pub(crate) fn is_secret_wa_row(key: &[u8]) -> bool {
    let at = prefix_of(key).len();
    key.get(at)
        .is_some_and(|&byte| Category::SECRET.iter().any(|c| *c as u8 == byte))
}

/// Key of the "latest app-state sync key id" row in [`Category::Meta`].
pub(crate) const META_LATEST_SYNC_KEY_ID: &[u8] = b"latest_sync_key_id";

/// `[len: u8][company]`: the prefix every company-scoped key starts with.
pub(crate) fn company_prefix(company: &CompanyId) -> Vec<u8> {
    let id = company.as_str().as_bytes();
    // Invariant of CompanyId: 1..=64 bytes, so the length fits in a u8.
    debug_assert!(id.len() <= usize::from(u8::MAX));
    let mut key = Vec::with_capacity(1 + id.len() + 40);
    key.push(id.len() as u8);
    key.extend_from_slice(id);
    key
}

/// Builds keys of one company in the `wa` tree. Cheap to clone; one per backend.
#[derive(Clone, Debug)]
pub(crate) struct WaKeys {
    company: Vec<u8>,
}

impl WaKeys {
    pub(crate) fn new(company: &CompanyId) -> Self {
        Self {
            company: company_prefix(company),
        }
    }

    /// The prefix of every key of one category.
    pub(crate) fn category(&self, category: Category) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.company.len() + 64);
        key.extend_from_slice(&self.company);
        key.push(category as u8);
        key
    }

    /// `category` + raw last part.
    pub(crate) fn key(&self, category: Category, last: &[u8]) -> Vec<u8> {
        let mut key = self.category(category);
        key.extend_from_slice(last);
        key
    }

    /// `category` + length-prefixed inner parts + raw last part.
    pub(crate) fn composite(&self, category: Category, inner: &[&[u8]], last: &[u8]) -> Vec<u8> {
        let mut key = self.category(category);
        for part in inner {
            push_len_prefixed(&mut key, part);
        }
        key.extend_from_slice(last);
        key
    }

    /// `category` + big-endian id: numeric order is key order.
    pub(crate) fn id(&self, category: Category, id: u32) -> Vec<u8> {
        self.key(category, &id.to_be_bytes())
    }

    /// The id back from a key built by [`WaKeys::id`].
    pub(crate) fn parse_id(&self, category: Category, key: &[u8]) -> Option<u32> {
        let tail = key.strip_prefix(self.category(category).as_slice())?;
        Some(u32::from_be_bytes(tail.try_into().ok()?))
    }

    /// The raw last part of a key built by [`WaKeys::key`].
    pub(crate) fn last_part<'k>(&self, category: Category, key: &'k [u8]) -> Option<&'k [u8]> {
        let header = self.company.len() + 1;
        (key.len() >= header && key[self.company.len()] == category as u8).then(|| &key[header..])
    }

    /// Splits a key built by [`WaKeys::composite`] with `inner_count` inner
    /// parts back into `(inner parts, last part)`.
    pub(crate) fn split_composite<'k>(
        &self,
        category: Category,
        key: &'k [u8],
        inner_count: usize,
    ) -> Option<(Vec<&'k [u8]>, &'k [u8])> {
        let mut rest = self.last_part(category, key)?;
        let mut inner = Vec::with_capacity(inner_count);
        for _ in 0..inner_count {
            let (part, tail) = take_len_prefixed(rest)?;
            inner.push(part);
            rest = tail;
        }
        Some((inner, rest))
    }
}

fn push_len_prefixed(key: &mut Vec<u8>, part: &[u8]) {
    // Key parts are JIDs, message ids and collection names: far below 4 GiB.
    key.extend_from_slice(&(part.len() as u32).to_be_bytes());
    key.extend_from_slice(part);
}

fn take_len_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let rest = &bytes[4..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Key of a company's row in the `registry` and `device` trees: the id itself
/// (exact-match lookups only, never scanned by prefix).
pub(crate) fn company_row(company: &CompanyId) -> Vec<u8> {
    company.as_str().as_bytes().to_vec()
}

/// Key of one state transition: company prefix + big-endian sequence number
/// (sled's monotonic `generate_id`), so a company's transitions scan oldest first.
pub(crate) fn transition(company: &CompanyId, seq: u64) -> Vec<u8> {
    let mut key = company_prefix(company);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Key of one idempotency key: company prefix + the client's key.
pub(crate) fn idempotency(company: &CompanyId, idempotency_key: &str) -> Vec<u8> {
    let mut key = company_prefix(company);
    key.extend_from_slice(idempotency_key.as_bytes());
    key
}

/// Key of a message the gateway sent: company prefix + `[len chat][chat]` +
/// the message id (raw, last), so one chat's messages share a prefix.
pub(crate) fn sent_message(company: &CompanyId, chat: &str, message_id: &str) -> Vec<u8> {
    let mut key = company_prefix(company);
    push_len_prefixed(&mut key, chat.as_bytes());
    key.extend_from_slice(message_id.as_bytes());
    key
}

/// Key of a message's rows in `msg_status` (a sent message's status) and
/// `msg_media` (an inbound file): company prefix + WhatsApp's message id.
pub(crate) fn message_row(company: &CompanyId, message_id: &str) -> Vec<u8> {
    let mut key = company_prefix(company);
    key.extend_from_slice(message_id.as_bytes());
    key
}

/// The prefix of every [`outbox_dedup`] row of inbound messages in `chat`.
pub(crate) fn outbox_dedup_chat(company: &CompanyId, chat: &str) -> Vec<u8> {
    let mut key = company_prefix(company);
    key.push(b'm');
    push_len_prefixed(&mut key, chat.as_bytes());
    key
}

/// Splits the rest of an [`outbox_dedup`] message row after
/// [`outbox_dedup_chat`]'s prefix into `(sender, message id)`.
pub(crate) fn split_dedup_sender(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    take_len_prefixed(rest)
}

/// `[company prefix][seq: u64 BE]`: an outbox event row (and the `seq` of
/// every outbox counter row).
pub(crate) fn outbox_event(company: &CompanyId, seq: u64) -> Vec<u8> {
    let mut key = company_prefix(company);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// An outbox deduplication row: `[company prefix]` then `m[len chat][chat]
/// [len sender][sender][message id]` for a message, `e[event id]` otherwise.
pub(crate) fn outbox_dedup(company: &CompanyId, dedup: &DedupKey) -> Vec<u8> {
    let mut key = company_prefix(company);
    match dedup {
        DedupKey::Message {
            chat,
            sender,
            message_id,
        } => {
            key.push(b'm');
            for part in [chat, sender] {
                push_len_prefixed(&mut key, part.as_bytes());
            }
            key.extend_from_slice(message_id.as_bytes());
        }
        DedupKey::Event(id) => {
            key.push(b'e');
            key.extend_from_slice(id.as_bytes());
        }
    }
    key
}

/// An outbox delivery row: `[company prefix][seq: u64 BE][target byte]`.
pub(crate) fn outbox_delivery(delivery: &DeliveryKey) -> Vec<u8> {
    let mut key = company_prefix(&delivery.company);
    key.extend_from_slice(&delivery.seq.to_be_bytes());
    key.push(delivery.target.byte());
    key
}

/// Decodes [`outbox_delivery`].
pub(crate) fn parse_outbox_delivery(key: &[u8]) -> Option<DeliveryKey> {
    let (&len, rest) = key.split_first()?;
    let len = usize::from(len);
    if rest.len() != len + 9 {
        return None;
    }
    let company = CompanyId::parse(std::str::from_utf8(&rest[..len]).ok()?).ok()?;
    let seq = u64::from_be_bytes(rest[len..len + 8].try_into().ok()?);
    let target = Target::from_byte(rest[len + 8])?;
    Some(DeliveryKey {
        company,
        seq,
        target,
    })
}

/// The company prefix at the start of a company-scoped key (length byte + id).
pub(crate) fn prefix_of(key: &[u8]) -> &[u8] {
    let len = usize::from(key.first().copied().unwrap_or(0)) + 1;
    key.get(..len).unwrap_or(key)
}

/// The big-endian u64 at `at` in `bytes`, if there are 8 bytes there.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    bytes.get(at..end)?.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company(id: &str) -> CompanyId {
        CompanyId::parse(id).unwrap()
    }

    #[test]
    fn a_company_prefix_never_covers_another_company() {
        let a = WaKeys::new(&company("a"));
        let ab = WaKeys::new(&company("ab"));
        let key_of_ab = ab.key(Category::Session, b"1555@s.whatsapp.net");
        assert!(!key_of_ab.starts_with(&company_prefix(&company("a"))));
        assert!(!key_of_ab.starts_with(&a.category(Category::Session)));
        assert!(!transition(&company("ab"), 1).starts_with(&company_prefix(&company("a"))));
    }

    #[test]
    fn composite_keys_round_trip_and_do_not_alias() {
        let keys = WaKeys::new(&company("acme"));
        let k1 = keys.composite(Category::PendingInbound, &[b"ab", b"c"], b"id");
        let k2 = keys.composite(Category::PendingInbound, &[b"a", b"bc"], b"id");
        assert_ne!(k1, k2);
        let (inner, last) = keys
            .split_composite(Category::PendingInbound, &k1, 2)
            .unwrap();
        assert_eq!(inner, vec![&b"ab"[..], &b"c"[..]]);
        assert_eq!(last, b"id");
    }

    #[test]
    fn secret_rows_are_told_by_their_category_byte() {
        // Company "s" (0x01 's'): its prefix holds a secret category's byte.
        let keys = WaKeys::new(&company("s"));
        assert!(is_secret_wa_row(&keys.key(Category::Session, b"p")));
        assert!(is_secret_wa_row(&keys.id(Category::PreKey, 7)));
        assert!(!is_secret_wa_row(&keys.key(Category::Identity, b"s")));
        assert!(!is_secret_wa_row(&keys.key(Category::TcToken, b"s")));
        assert!(
            !is_secret_wa_row(b"\x05ab"),
            "a key shorter than its prefix"
        );
    }

    #[test]
    fn ids_sort_numerically_and_parse_back() {
        let keys = WaKeys::new(&company("acme"));
        assert!(keys.id(Category::PreKey, 2) < keys.id(Category::PreKey, 256));
        assert_eq!(
            keys.parse_id(Category::PreKey, &keys.id(Category::PreKey, 812)),
            Some(812)
        );
        assert_eq!(
            keys.parse_id(Category::SignedPreKey, &keys.id(Category::PreKey, 1)),
            None
        );
    }
}
