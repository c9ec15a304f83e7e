//! whatsapp-rust's storage [`Backend`], one company's keyspace at a time, on
//! either store: sled ([`SledBackend`]) or PostgreSQL ([`PgBackend`]).
//!
//! A [`RowBackend`] is a view of one company: its whatsapp-rust `Device` row
//! and its `wa` rows (key layout in [`crate::store::keys`]), kept by a
//! [`WaRows`] of the store it runs on. Everything whatsapp-rust means by those
//! rows is here, once for both stores: which key holds what, the value
//! encodings, sealing, and how read-modify-write calls merge; the stores only
//! keep bytes. A view holds no state of its own beyond the pairing-flush
//! marker, so any number of views of one company agree.
//!
//! Semantics follow `wacore::store::InMemoryBackend` (the reference); the
//! conformance suite in `tests` runs the same cases against it, sled and
//! PostgreSQL.
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
//! the few accessors below (`get`, `insert`, `write_batch`, `scan`,
//! `view_get`, `view_put`); a value bound to its key, so it opens nowhere else.
//! Without a key they pass values through untouched.
//!
//! # Atomicity and durability
//! Every multi-row call is one atomic [`WaRows::write`]; read-modify-write
//! calls (uploaded marks, tc-token merges, LID mappings with their reverse
//! index, message secret merges) are one [`WaRows::update`]. Saving a device
//! whose own JID changed (pairing) is durable before `save` returns;
//! everything else is as durable as the store makes it (sled: its background
//! flusher, see [`crate::store`]; PostgreSQL: every commit).

use std::sync::Arc;

use prost::Message as _;
use wacore::store::traits::{LidPnMappingEntry, TcTokenEntry};

use crate::domain::CompanyId;
use crate::pb;
use crate::store::keys::{Category, WaKeys, is_secret_wa_row};
use crate::store::postgres::{PgStore, PgWaRows};
use crate::store::{
    RowView, RowWrite, Sealer, SledWaRows, Store, StoreError, WaRows, decode, tree,
};

mod app_sync;
mod device;
mod protocol;
mod secrets;
mod signal;
#[cfg(test)]
pub(crate) mod tests;

pub use device::is_linked;

type Result<T> = std::result::Result<T, StoreError>;

/// whatsapp-rust's storage `Backend` over one company's rows in a store.
pub struct RowBackend<R> {
    company: CompanyId,
    keys: WaKeys,
    rows: R,
    /// Seals the device row and secret `wa` rows with the store key, if any.
    sealer: Sealer,
    /// The own JID of the last device row this view made durable. A save
    /// whose JID differs (pairing, re-pairing) is durable before it returns.
    flushed_pn: parking_lot::Mutex<Option<String>>,
}

/// The `Backend` on the sled store. Obtain it with [`SledBackend::open`].
pub type SledBackend = RowBackend<SledWaRows>;

/// The `Backend` on PostgreSQL. Obtain it with [`PgBackend::open`].
pub type PgBackend = RowBackend<PgWaRows>;

impl SledBackend {
    /// The view of `company`'s keyspace in `store`.
    pub fn open(store: &Store, company: &CompanyId) -> Arc<Self> {
        Arc::new(Self::new(
            company.clone(),
            store.wa_rows(company),
            store.sealer(),
        ))
    }
}

impl PgBackend {
    /// The view of `company`'s rows in the PostgreSQL `store`.
    pub fn open(store: &PgStore, company: &CompanyId) -> Arc<Self> {
        Arc::new(Self::new(
            company.clone(),
            store.wa_rows(company),
            store.sealer(),
        ))
    }
}

impl<R: WaRows> RowBackend<R> {
    fn new(company: CompanyId, rows: R, sealer: Sealer) -> Self {
        Self {
            keys: WaKeys::new(&company),
            company,
            rows,
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
    fn seal(&self, key: &[u8], value: Vec<u8>) -> Result<Vec<u8>> {
        if !is_secret_wa_row(key) {
            return Ok(value);
        }
        Ok(self.sealer.seal_vec(tree::WA, key, value)?)
    }

    /// The clear value of the stored `wa` row `key`.
    fn open_row(&self, key: &[u8], value: Vec<u8>) -> Result<Vec<u8>> {
        if !is_secret_wa_row(key) {
            return Ok(value);
        }
        match self.sealer.open(tree::WA, key, &value) {
            Ok(clear) => Ok(clear.into_owned()),
            Err(error) => Err(self.corrupt("sealed whatsapp-rust state", error)),
        }
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.rows
            .get(key)
            .await?
            .map(|value| self.open_row(key, value))
            .transpose()
    }

    async fn insert(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.write_batch([(key, Some(value))]).await
    }

    async fn remove(&self, key: &[u8]) -> Result<()> {
        self.rows.write(vec![(key.to_vec(), None)]).await
    }

    /// [`RowBackend::get`] inside an update.
    fn view_get(&self, view: &RowView, key: &[u8]) -> Result<Option<Vec<u8>>> {
        view.get(key)
            .map(|value| self.open_row(key, value.to_vec()))
            .transpose()
    }

    /// [`RowBackend::insert`] inside an update.
    fn view_put(&self, view: &mut RowView, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let value = self.seal(&key, value)?;
        view.put(key, value);
        Ok(())
    }

    /// Applies `rows` (key, `Some(clear value)` to insert / `None` to
    /// remove) atomically.
    async fn write_batch(&self, rows: impl IntoIterator<Item = RowWrite>) -> Result<()> {
        let rows = rows
            .into_iter()
            .map(|(key, value)| {
                let value = value.map(|value| self.seal(&key, value)).transpose()?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        self.rows.write(rows).await
    }

    /// `(address, value)` rows of one category as writes for
    /// [`RowBackend::write_batch`]. (Built before any `.await`: an iterator of
    /// borrowing closures held across one makes the future's `Send` bound
    /// fail to prove.)
    fn category_rows<'a>(
        &self,
        category: Category,
        rows: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Vec<RowWrite> {
        rows.into_iter()
            .map(|(address, value)| {
                (
                    self.keys.key(category, address.as_bytes()),
                    Some(value.to_vec()),
                )
            })
            .collect()
    }

    /// Every `(key, clear value)` under `prefix`.
    async fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = self.rows.scan(prefix).await?;
        rows.into_iter()
            .map(|(key, value)| {
                let value = self.open_row(&key, value)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Removes, in one batch, every row under `prefix` for which `expired`
    /// says so; returns how many.
    async fn remove_where(
        &self,
        prefix: &[u8],
        mut expired: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<u32> {
        let mut doomed = Vec::new();
        for (key, value) in self.scan(prefix).await? {
            if expired(&key, &value)? {
                doomed.push((key, None));
            }
        }
        let count = doomed.len() as u32;
        self.rows.write(doomed).await?;
        Ok(count)
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

    async fn msg_secret_row(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<pb::MsgSecretRow>> {
        self.get(&self.msg_secret_key(chat, sender, msg_id))
            .await?
            .map(|bytes| self.proto("message secret", &bytes))
            .transpose()
    }

    fn tc_token_in(&self, view: &RowView, key: &[u8]) -> Result<Option<TcTokenEntry>> {
        view.get(key)
            .map(|bytes| self.json::<TcTokenEntry>("tc token", bytes))
            .transpose()
    }

    fn put_tc_token_in(
        &self,
        view: &mut RowView,
        key: Vec<u8>,
        entry: &TcTokenEntry,
    ) -> Result<()> {
        view.put(key, self.to_json("tc token", entry)?);
        Ok(())
    }

    /// The keys [`RowBackend::put_lid_mapping_in`] reads for `entries`.
    fn lid_mapping_reads(&self, entries: &[LidPnMappingEntry]) -> Vec<Vec<u8>> {
        entries
            .iter()
            .map(|entry| self.keys.key(Category::LidMapping, entry.lid.as_bytes()))
            .collect()
    }

    /// Writes one LID mapping and its reverse index inside an update.
    fn put_lid_mapping_in(&self, view: &mut RowView, entry: &LidPnMappingEntry) -> Result<()> {
        let lid_key = self.keys.key(Category::LidMapping, entry.lid.as_bytes());
        if let Some(old) = view.get(&lid_key) {
            let old: LidPnMappingEntry = self.json("LID mapping", old)?;
            // The LID moved to another number: its old number no longer maps to it.
            if old.phone_number != entry.phone_number {
                view.remove(
                    self.keys
                        .key(Category::PnToLid, old.phone_number.as_bytes()),
                );
            }
        }
        view.put(
            self.keys
                .key(Category::PnToLid, entry.phone_number.as_bytes()),
            entry.lid.as_bytes().to_vec(),
        );
        view.put(lid_key, self.to_json("LID mapping", entry)?);
        Ok(())
    }

    fn string_part(&self, what: &str, bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|error| self.corrupt(what, error))
    }
}
