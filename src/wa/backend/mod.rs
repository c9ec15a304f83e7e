//! whatsapp-rust's storage [`Backend`] on sled, one company's keyspace at a time.
//!
//! A [`SledBackend`] is a view of one company: its whatsapp-rust `Device` row in
//! the `device` tree and its rows under the company prefix in the shared `wa`
//! tree (key layout in [`crate::store::keys`]). It holds no state of its own
//! beyond the pairing-flush marker, so any number of views of one company agree.
//!
//! Semantics follow `wacore::store::InMemoryBackend` (the reference); the
//! conformance suite in `wa::tests` runs the same cases against both.
//! Deliberate differences:
//! - pre-keys keep their `uploaded` mark (the reference drops it);
//! - sent messages are not capped at 4,096 rows: they live on disk, and the
//!   client's keepalive sweep (`delete_expired_sent_messages`) bounds them.
//!
//! # Encodings
//! - opaque whatsapp-rust bytes (sessions, pre-keys, sender keys, ...) are
//!   stored as they are;
//! - whatsapp-rust serde types (`Device`, `HashState`, `LidPnMappingEntry`,
//!   ...) are JSON, the self-describing format their `#[serde(default)]`
//!   fields are designed for, so records written by an older whatsapp-rust
//!   still load after an upgrade;
//! - rows whose shape is wagate's (payload + timestamps) are prost messages
//!   from `proto/wagate.proto`.
//!
//! # Sealing
//! With a store key, the device row and the rows of the secret categories
//! ([`Category::SECRET`]) are sealed on write and opened on read, all in
//! the few accessors below (`get`, `insert`, `write_batch`, `scan`, `tx_get`,
//! `tx_insert`); a value bound to its key, so it opens nowhere else.
//! Without a key they pass values through untouched.
//!
//! # Atomicity and durability
//! Every multi-row call is one sled batch; read-modify-write calls (uploaded
//! marks, tc-token merges, LID mappings with their reverse index, message
//! secret merges) are sled transactions. Saving a device whose own JID changed
//! (pairing) is flushed to disk before `save` returns; everything else is made
//! durable by sled's background flusher (see [`crate::store`]).

use std::borrow::Cow;
use std::sync::Arc;

use prost::Message as _;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use wacore::store::traits::{LidPnMappingEntry, TcTokenEntry};

use crate::domain::CompanyId;
use crate::pb;
use crate::store::keys::{Category, WaKeys, is_secret_wa_row};
use crate::store::{Durable, Sealer, Store, StoreError, Trees, decode, tree};

mod app_sync;
mod device;
mod protocol;
mod secrets;
mod signal;
#[cfg(test)]
pub(crate) mod tests;

pub use device::is_linked;

type Result<T> = std::result::Result<T, StoreError>;
type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// whatsapp-rust's storage `Backend` over one company's keyspace. Obtain it
/// with [`SledBackend::open`].
pub struct SledBackend {
    company: CompanyId,
    keys: WaKeys,
    durable: Durable,
    device: sled::Tree,
    wa: sled::Tree,
    /// Seals the device row and secret `wa` rows with the store key, if any.
    sealer: Sealer,
    /// The own JID of the last device row this view flushed to disk. A save
    /// whose JID differs (pairing, re-pairing) is flushed before it returns.
    flushed_pn: parking_lot::Mutex<Option<String>>,
}

impl SledBackend {
    /// The view of `company`'s keyspace in `store`.
    pub fn open(store: &Store, company: &CompanyId) -> Arc<Self> {
        let (durable, trees, sealer) = store.raw_parts();
        Arc::new(Self::new(company.clone(), durable, trees, sealer))
    }

    fn new(company: CompanyId, durable: Durable, trees: Trees, sealer: Sealer) -> Self {
        Self {
            keys: WaKeys::new(&company),
            company,
            durable,
            device: trees.device,
            wa: trees.wa,
            sealer,
            flushed_pn: parking_lot::Mutex::new(None),
        }
    }

    /// The company whose keyspace this is.
    pub fn company(&self) -> &CompanyId {
        &self.company
    }

    fn corrupt(&self, what: &str, detail: impl ToString) -> StoreError {
        StoreError::corrupt(self.company.as_str(), what, detail)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|error| self.corrupt(what, error))
    }

    fn to_json<T: serde::Serialize>(&self, what: &str, value: &T) -> Result<Vec<u8>> {
        // Serializing whatsapp-rust's plain data types cannot fail; kept as an
        // error (not a panic) should a future version add a fallible field.
        serde_json::to_vec(value).map_err(|error| StoreError::InvalidRecord {
            what: "whatsapp-rust value",
            detail: format!("{what}: {error}"),
        })
    }

    fn proto<M: prost::Message + Default>(&self, what: &str, bytes: &[u8]) -> Result<M> {
        decode(self.company.as_str(), what, bytes)
    }

    /// `value` of the `wa` row `key` as it is stored: sealed if the row's
    /// category is secret and there is a store key, else `value` itself.
    fn seal<'v>(&self, key: &[u8], value: &'v [u8]) -> Result<Cow<'v, [u8]>> {
        if !self.sealer.is_keyed() || !is_secret_wa_row(key) {
            return Ok(Cow::Borrowed(value));
        }
        Ok(self.sealer.seal(tree::WA, key, value)?)
    }

    /// The clear value of the stored `wa` row `key`.
    fn open_row(&self, key: &[u8], value: sled::IVec) -> Result<sled::IVec> {
        if !is_secret_wa_row(key) {
            return Ok(value);
        }
        match self.sealer.open(tree::WA, key, &value) {
            Ok(Cow::Borrowed(_)) => Ok(value),
            Ok(Cow::Owned(clear)) => Ok(clear.into()),
            Err(error) => Err(self.corrupt("sealed whatsapp-rust state", error)),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        self.wa
            .get(key)?
            .map(|value| self.open_row(key, value))
            .transpose()
    }

    fn insert(&self, key: Vec<u8>, value: &[u8]) -> Result<()> {
        let value = self.seal(&key, value)?;
        self.wa.insert(key, &*value)?;
        Ok(())
    }

    /// [`SledBackend::get`] inside a transaction.
    fn tx_get(&self, tx: &TransactionalTree, key: &[u8]) -> TxResult<Option<sled::IVec>> {
        tx.get(key)?
            .map(|value| self.open_row(key, value))
            .transpose()
            .map_err(ConflictableTransactionError::Abort)
    }

    /// [`SledBackend::insert`] inside a transaction.
    fn tx_insert(&self, tx: &TransactionalTree, key: Vec<u8>, value: &[u8]) -> TxResult<()> {
        let value = self
            .seal(&key, value)
            .map_err(ConflictableTransactionError::Abort)?;
        tx.insert(key, &*value)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        self.wa
            .remove(key)?
            .map(|value| self.open_row(key, value))
            .transpose()
    }

    /// Applies `rows` (key, `Some(value)` to insert / `None` to remove)
    /// atomically: one row as a plain write, several as one sled batch.
    ///
    /// The single-row case matters: whatsapp-rust writes every live inbound
    /// message's pending row (and deletes it) as a batch of one, and every
    /// sled batch or transaction seals and writes sled's current log buffer
    /// twice (`pin_log`), an `fsync`-like `sync_file_range` each time. A plain
    /// write of one key is just as atomic and only appends to the log.
    fn write_batch(
        &self,
        rows: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<()> {
        let mut rows = rows.into_iter().peekable();
        let Some(first) = rows.next() else {
            return Ok(());
        };
        if rows.peek().is_none() {
            match first {
                (key, Some(value)) => self.insert(key, &value)?,
                (key, None) => {
                    self.wa.remove(key)?;
                }
            };
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in std::iter::once(first).chain(rows) {
            match value {
                Some(value) => {
                    let sealed = self.seal(&key, &value)?;
                    batch.insert(key, &*sealed);
                }
                None => batch.remove(key),
            }
        }
        self.wa.apply_batch(batch)?;
        Ok(())
    }

    /// Inserts `(address, value)` rows of one category as one atomic batch.
    fn put_all<'a>(
        &self,
        category: Category,
        rows: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<()> {
        let rows = rows.into_iter().map(|(address, value)| {
            (
                self.keys.key(category, address.as_bytes()),
                Some(value.to_vec()),
            )
        });
        self.write_batch(rows)
    }

    /// Every `(key, clear value)` under `prefix`.
    fn scan(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> + '_ {
        self.wa.scan_prefix(prefix).map(|row| {
            let (key, value) = row?;
            let value = self.open_row(&key, value)?;
            Ok((key, value))
        })
    }

    /// Removes, in one batch, every row under `prefix` for which `expired`
    /// says so; returns how many.
    fn remove_where(
        &self,
        prefix: &[u8],
        mut expired: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<u32> {
        let mut doomed = Vec::new();
        for row in self.scan(prefix) {
            let (key, value) = row?;
            if expired(&key, &value)? {
                doomed.push((key.to_vec(), None));
            }
        }
        let count = doomed.len() as u32;
        if count > 0 {
            self.write_batch(doomed)?;
        }
        Ok(count)
    }

    /// Runs `body` as a transaction on the `wa` tree, surfacing its abort
    /// error (e.g. [`StoreError::Corrupt`]) as is.
    fn transaction<T>(&self, body: impl Fn(&TransactionalTree) -> TxResult<T>) -> Result<T> {
        Ok(self.wa.transaction(body)?)
    }

    fn timed_blob_key(
        &self,
        category: Category,
        chat: &str,
        sender: Option<&str>,
        id: &str,
    ) -> Vec<u8> {
        match sender {
            Some(sender) => self.keys.composite(
                category,
                &[chat.as_bytes(), sender.as_bytes()],
                id.as_bytes(),
            ),
            None => self
                .keys
                .composite(category, &[chat.as_bytes()], id.as_bytes()),
        }
    }

    fn timed_blob(payload: &[u8]) -> Vec<u8> {
        pb::TimedBlob {
            payload: payload.to_vec(),
            stored_at_secs: wacore::time::now_secs(),
        }
        .encode_to_vec()
    }

    fn pending_inbound_key(&self, chat: &str, sender: &str, id: &str) -> Vec<u8> {
        self.timed_blob_key(Category::PendingInbound, chat, Some(sender), id)
    }

    fn msg_secret_key(&self, chat: &str, sender: &str, msg_id: &str) -> Vec<u8> {
        self.keys.composite(
            Category::MsgSecret,
            &[chat.as_bytes(), sender.as_bytes()],
            msg_id.as_bytes(),
        )
    }

    fn msg_secret_row(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<pb::MsgSecretRow>> {
        self.get(&self.msg_secret_key(chat, sender, msg_id))?
            .map(|bytes| self.proto("message secret", &bytes))
            .transpose()
    }

    fn tc_token_in(&self, tx: &TransactionalTree, key: &[u8]) -> TxResult<Option<TcTokenEntry>> {
        tx.get(key)?
            .map(|bytes| self.json::<TcTokenEntry>("tc token", &bytes))
            .transpose()
            .map_err(ConflictableTransactionError::Abort)
    }

    fn put_tc_token_in(
        &self,
        tx: &TransactionalTree,
        key: &[u8],
        entry: &TcTokenEntry,
    ) -> TxResult<()> {
        let value = self
            .to_json("tc token", entry)
            .map_err(ConflictableTransactionError::Abort)?;
        tx.insert(key, value)?;
        Ok(())
    }

    /// Writes one LID mapping and its reverse index inside a transaction.
    fn put_lid_mapping_in(
        &self,
        tx: &TransactionalTree,
        entry: &LidPnMappingEntry,
    ) -> TxResult<()> {
        let lid_key = self.keys.key(Category::LidMapping, entry.lid.as_bytes());
        if let Some(old) = tx.get(&lid_key)? {
            let old: LidPnMappingEntry = self
                .json("LID mapping", &old)
                .map_err(ConflictableTransactionError::Abort)?;
            // The LID moved to another number: its old number no longer maps to it.
            if old.phone_number != entry.phone_number {
                tx.remove(
                    self.keys
                        .key(Category::PnToLid, old.phone_number.as_bytes()),
                )?;
            }
        }
        tx.insert(
            self.keys
                .key(Category::PnToLid, entry.phone_number.as_bytes()),
            entry.lid.as_bytes(),
        )?;
        let value = self
            .to_json("LID mapping", entry)
            .map_err(ConflictableTransactionError::Abort)?;
        tx.insert(lid_key, value)?;
        Ok(())
    }

    fn string_part(&self, what: &str, bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|error| self.corrupt(what, error))
    }
}
