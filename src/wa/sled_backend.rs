//! whatsapp-rust's storage [`Backend`] on sled, one company's keyspace at a time.
//!
//! A [`SledBackend`] is a view of one company: its whatsapp-rust `Device` row in
//! the `device` tree and its rows under the company prefix in the shared `wa`
//! tree (key layout in [`crate::store::keys`]). It holds no state of its own
//! beyond the pairing-flush marker, so any number of views of one company agree.
//!
//! Semantics follow `wacore::store::InMemoryBackend` (the reference); the
//! conformance suite in `store::tests` runs the same cases against both.
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
//! # Atomicity and durability
//! Every multi-row call is one sled batch; read-modify-write calls (uploaded
//! marks, tc-token merges, LID mappings with their reverse index, message
//! secret merges) are sled transactions. Saving a device whose own JID changed
//! (pairing) is flushed to disk before `save` returns; everything else is made
//! durable by sled's background flusher (see [`crate::store`]).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use prost::Message as _;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use crate::domain::CompanyId;
use crate::pb;
use crate::store::keys::{Category, META_LATEST_SYNC_KEY_ID, WaKeys, company_row};
use crate::store::{Durable, StoreError, Trees, decode};

type Result<T> = std::result::Result<T, StoreError>;
type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// whatsapp-rust's storage `Backend` over one company's keyspace. Obtain it
/// from [`crate::store::Store::backend`].
pub struct SledBackend {
    company: CompanyId,
    keys: WaKeys,
    durable: Durable,
    device: sled::Tree,
    wa: sled::Tree,
    /// The own JID of the last device row this view flushed to disk. A save
    /// whose JID differs (pairing, re-pairing) is flushed before it returns.
    flushed_pn: parking_lot::Mutex<Option<String>>,
}

impl SledBackend {
    pub(crate) fn new(company: CompanyId, durable: Durable, trees: Trees) -> Self {
        Self {
            keys: WaKeys::new(&company),
            company,
            durable,
            device: trees.device,
            wa: trees.wa,
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

    fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        Ok(self.wa.get(key)?)
    }

    fn insert(&self, key: Vec<u8>, value: impl Into<sled::IVec>) -> Result<()> {
        self.wa.insert(key, value)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        Ok(self.wa.remove(key)?)
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
                (key, Some(value)) => self.wa.insert(key, value)?,
                (key, None) => self.wa.remove(key)?,
            };
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in std::iter::once(first).chain(rows) {
            match value {
                Some(value) => batch.insert(key, value),
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

    /// Every `(key, value)` under `prefix`.
    fn scan(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec)>> + '_ {
        self.wa
            .scan_prefix(prefix)
            .map(|row| row.map_err(StoreError::from))
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

/// Decodes a stored whatsapp-rust `Device` of `company`.
pub(crate) fn decode_device(company: &CompanyId, bytes: &[u8]) -> Result<Device> {
    serde_json::from_slice(bytes)
        .map_err(|error| StoreError::corrupt(company.as_str(), "device credentials", error))
}

// ---------------------------------------------------------------------------
// SignalStore
// ---------------------------------------------------------------------------

#[async_trait]
impl SignalStore for SledBackend {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> WaResult<()> {
        Ok(self.insert(
            self.keys.key(Category::Identity, address.as_bytes()),
            &key[..],
        )?)
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> WaResult<()> {
        let rows = identities
            .iter()
            .map(|(address, key)| (&**address, &key[..]));
        Ok(self.put_all(Category::Identity, rows)?)
    }

    async fn load_identity(&self, address: &str) -> WaResult<Option<[u8; 32]>> {
        let Some(bytes) = self.get(&self.keys.key(Category::Identity, address.as_bytes()))? else {
            return Ok(None);
        };
        let key = <[u8; 32]>::try_from(bytes.as_ref()).map_err(|_| {
            self.corrupt(
                "identity key",
                format!("{} bytes instead of 32", bytes.len()),
            )
        })?;
        Ok(Some(key))
    }

    async fn delete_identity(&self, address: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::Identity, address.as_bytes()))?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> WaResult<Option<Bytes>> {
        Ok(self
            .get(&self.keys.key(Category::Session, address.as_bytes()))?
            .map(|v| Bytes::copy_from_slice(&v)))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> WaResult<()> {
        Ok(self.insert(
            self.keys.key(Category::Session, address.as_bytes()),
            session,
        )?)
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        let rows = sessions
            .iter()
            .map(|(address, session)| (&**address, &session[..]));
        Ok(self.put_all(Category::Session, rows)?)
    }

    async fn delete_session(&self, address: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::Session, address.as_bytes()))?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> WaResult<bool> {
        Ok(self
            .wa
            .contains_key(self.keys.key(Category::Session, address.as_bytes()))
            .map_err(StoreError::from)?)
    }

    async fn has_signal_state_for_user(&self, user: &str) -> WaResult<bool> {
        // Addresses are `user@server` or `user:device@server`.
        for category in [Category::Session, Category::Identity] {
            for separator in ["@", ":"] {
                let prefix = self
                    .keys
                    .key(category, format!("{user}{separator}").as_bytes());
                if self.scan(&prefix).next().transpose()?.is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> WaResult<()> {
        let row = pb::PreKeyRow {
            record: record.to_vec(),
            uploaded,
        };
        Ok(self.insert(self.keys.id(Category::PreKey, id), row.encode_to_vec())?)
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> WaResult<()> {
        Ok(self.write_batch(keys.iter().map(|(id, record)| {
            let row = pb::PreKeyRow {
                record: record.to_vec(),
                uploaded,
            };
            (
                self.keys.id(Category::PreKey, *id),
                Some(row.encode_to_vec()),
            )
        }))?)
    }

    async fn load_prekey(&self, id: u32) -> WaResult<Option<Bytes>> {
        let Some(bytes) = self.get(&self.keys.id(Category::PreKey, id))? else {
            return Ok(None);
        };
        let row: pb::PreKeyRow = self.proto("pre-key", &bytes)?;
        Ok(Some(Bytes::from(row.record)))
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> WaResult<()> {
        // UPDATE, never upsert: a key consumed since the upload snapshot stays deleted.
        Ok(self.transaction(|tx| {
            for &id in ids {
                let key = self.keys.id(Category::PreKey, id);
                if let Some(bytes) = tx.get(&key)? {
                    let mut row: pb::PreKeyRow = self
                        .proto("pre-key", &bytes)
                        .map_err(ConflictableTransactionError::Abort)?;
                    if !row.uploaded {
                        row.uploaded = true;
                        tx.insert(key, row.encode_to_vec())?;
                    }
                }
            }
            Ok(())
        })?)
    }

    async fn remove_prekey(&self, id: u32) -> WaResult<()> {
        self.remove(&self.keys.id(Category::PreKey, id))?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> WaResult<u32> {
        // Big-endian ids: the last key of the category is the largest id.
        let last = self
            .wa
            .scan_prefix(self.keys.category(Category::PreKey))
            .keys()
            .next_back();
        match last.transpose().map_err(StoreError::from)? {
            None => Ok(0),
            Some(key) => Ok(self
                .keys
                .parse_id(Category::PreKey, &key)
                .ok_or_else(|| self.corrupt("pre-key id", "malformed key"))?),
        }
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> WaResult<()> {
        Ok(self.insert(self.keys.id(Category::SignedPreKey, id), record)?)
    }

    async fn load_signed_prekey(&self, id: u32) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(&self.keys.id(Category::SignedPreKey, id))?
            .map(|v| v.to_vec()))
    }

    async fn load_all_signed_prekeys(&self) -> WaResult<Vec<(u32, Vec<u8>)>> {
        let mut all = Vec::new();
        for row in self.scan(&self.keys.category(Category::SignedPreKey)) {
            let (key, value) = row?;
            let id = self
                .keys
                .parse_id(Category::SignedPreKey, &key)
                .ok_or_else(|| self.corrupt("signed pre-key id", "malformed key"))?;
            all.push((id, value.to_vec()));
        }
        Ok(all)
    }

    async fn remove_signed_prekey(&self, id: u32) -> WaResult<()> {
        self.remove(&self.keys.id(Category::SignedPreKey, id))?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> WaResult<()> {
        Ok(self.insert(
            self.keys.key(Category::SenderKey, address.as_bytes()),
            record,
        )?)
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        let rows = sender_keys
            .iter()
            .map(|(address, record)| (&**address, &record[..]));
        Ok(self.put_all(Category::SenderKey, rows)?)
    }

    async fn get_sender_key(&self, address: &str) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(&self.keys.key(Category::SenderKey, address.as_bytes()))?
            .map(|v| v.to_vec()))
    }

    async fn delete_sender_key(&self, address: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::SenderKey, address.as_bytes()))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// AppSyncStore
// ---------------------------------------------------------------------------

#[async_trait]
impl AppSyncStore for SledBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> WaResult<Option<AppStateSyncKey>> {
        Ok(self
            .get(&self.keys.key(Category::SyncKey, key_id))?
            .map(|v| self.json("app-state sync key", &v))
            .transpose()?)
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> WaResult<()> {
        let value = self.to_json("app-state sync key", &key)?;
        Ok(self.write_batch([
            (self.keys.key(Category::SyncKey, key_id), Some(value)),
            (
                self.keys.key(Category::Meta, META_LATEST_SYNC_KEY_ID),
                Some(key_id.to_vec()),
            ),
        ])?)
    }

    async fn get_version(&self, name: &str) -> WaResult<HashState> {
        match self.get(&self.keys.key(Category::AppStateVersion, name.as_bytes()))? {
            Some(bytes) => Ok(self.json("app-state version", &bytes)?),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> WaResult<()> {
        let value = self.to_json("app-state version", &state)?;
        Ok(self.insert(
            self.keys.key(Category::AppStateVersion, name.as_bytes()),
            value,
        )?)
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> WaResult<()> {
        Ok(self.write_batch(mutations.iter().map(|m| {
            (
                self.keys
                    .composite(Category::MutationMac, &[name.as_bytes()], &m.index_mac),
                Some(m.value_mac.clone()),
            )
        }))?)
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(
                &self
                    .keys
                    .composite(Category::MutationMac, &[name.as_bytes()], index_mac),
            )?
            .map(|v| v.to_vec()))
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> WaResult<()> {
        Ok(self.write_batch(index_macs.iter().map(|index_mac| {
            (
                self.keys
                    .composite(Category::MutationMac, &[name.as_bytes()], index_mac),
                None,
            )
        }))?)
    }

    async fn clear_mutation_macs(&self, name: &str) -> WaResult<()> {
        self.remove_where(
            &self
                .keys
                .composite(Category::MutationMac, &[name.as_bytes()], b""),
            |_, _| Ok(true),
        )?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(&self.keys.key(Category::Meta, META_LATEST_SYNC_KEY_ID))?
            .map(|v| v.to_vec()))
    }
}

// ---------------------------------------------------------------------------
// ProtocolStore
// ---------------------------------------------------------------------------

#[async_trait]
impl ProtocolStore for SledBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> WaResult<Vec<(String, bool)>> {
        let prefix = self
            .keys
            .composite(Category::SenderKeyDevice, &[group_jid.as_bytes()], b"");
        let mut devices = Vec::new();
        for row in self.scan(&prefix) {
            let (key, value) = row?;
            let device = self.string_part("sender-key device", &key[prefix.len()..])?;
            devices.push((device, value.first() == Some(&1)));
        }
        Ok(devices)
    }

    async fn set_sender_key_status(
        &self,
        group_jid: &str,
        entries: &[(&str, bool)],
    ) -> WaResult<()> {
        Ok(self.write_batch(entries.iter().map(|(device, has_key)| {
            let key = self.keys.composite(
                Category::SenderKeyDevice,
                &[group_jid.as_bytes()],
                device.as_bytes(),
            );
            (key, Some(vec![u8::from(*has_key)]))
        }))?)
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> WaResult<()> {
        let prefix = self
            .keys
            .composite(Category::SenderKeyDevice, &[group_jid.as_bytes()], b"");
        self.remove_where(&prefix, |_, _| Ok(true))?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> WaResult<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        self.remove_where(&self.keys.category(Category::SenderKeyDevice), |key, _| {
            let (_, device) = self
                .keys
                .split_composite(Category::SenderKeyDevice, key, 1)
                .ok_or_else(|| self.corrupt("sender-key device", "malformed key"))?;
            Ok(device_jids.iter().any(|jid| jid.as_bytes() == device))
        })?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> WaResult<()> {
        self.remove_where(&self.keys.category(Category::SenderKeyDevice), |_, _| {
            Ok(true)
        })?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> WaResult<Option<LidPnMappingEntry>> {
        Ok(self
            .get(&self.keys.key(Category::LidMapping, lid.as_bytes()))?
            .map(|v| self.json("LID mapping", &v))
            .transpose()?)
    }

    async fn get_pn_mapping(&self, phone: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let Some(lid) = self.get(&self.keys.key(Category::PnToLid, phone.as_bytes()))? else {
            return Ok(None);
        };
        Ok(self
            .get(&self.keys.key(Category::LidMapping, &lid))?
            .map(|v| self.json("LID mapping", &v))
            .transpose()?)
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> WaResult<()> {
        Ok(self.transaction(|tx| self.put_lid_mapping_in(tx, entry))?)
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> WaResult<()> {
        Ok(self.transaction(|tx| {
            entries
                .iter()
                .try_for_each(|entry| self.put_lid_mapping_in(tx, entry))
        })?)
    }

    async fn get_all_lid_mappings(&self) -> WaResult<Vec<LidPnMappingEntry>> {
        let mut all = Vec::new();
        for row in self.scan(&self.keys.category(Category::LidMapping)) {
            all.push(self.json("LID mapping", &row?.1)?);
        }
        Ok(all)
    }

    async fn save_base_key(
        &self,
        address: &str,
        message_id: &str,
        base_key: &[u8],
    ) -> WaResult<()> {
        let key = self.keys.composite(
            Category::BaseKey,
            &[address.as_bytes()],
            message_id.as_bytes(),
        );
        Ok(self.insert(key, base_key)?)
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> WaResult<bool> {
        let key = self.keys.composite(
            Category::BaseKey,
            &[address.as_bytes()],
            message_id.as_bytes(),
        );
        Ok(self
            .get(&key)?
            .is_some_and(|stored| stored.as_ref() == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> WaResult<()> {
        self.remove(&self.keys.composite(
            Category::BaseKey,
            &[address.as_bytes()],
            message_id.as_bytes(),
        ))?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> WaResult<()> {
        let value = self.to_json("device list", &record)?;
        Ok(self.insert(
            self.keys.key(Category::DeviceList, record.user.as_bytes()),
            value,
        )?)
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> WaResult<()> {
        let mut rows = Vec::with_capacity(records.len());
        for record in &records {
            rows.push((
                self.keys.key(Category::DeviceList, record.user.as_bytes()),
                Some(self.to_json("device list", record)?),
            ));
        }
        Ok(self.write_batch(rows)?)
    }

    async fn get_devices(&self, user: &str) -> WaResult<Option<DeviceListRecord>> {
        Ok(self
            .get(&self.keys.key(Category::DeviceList, user.as_bytes()))?
            .map(|v| self.json("device list", &v))
            .transpose()?)
    }

    async fn delete_devices(&self, user: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::DeviceList, user.as_bytes()))?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(&self.keys.key(Category::GroupMetadata, group_jid.as_bytes()))?
            .map(|v| v.to_vec()))
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> WaResult<()> {
        Ok(self.insert(
            self.keys.key(Category::GroupMetadata, group_jid.as_bytes()),
            blob,
        )?)
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::GroupMetadata, group_jid.as_bytes()))?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> WaResult<Option<TcTokenEntry>> {
        Ok(self
            .get(&self.keys.key(Category::TcToken, jid.as_bytes()))?
            .map(|v| self.json("tc token", &v))
            .transpose()?)
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> WaResult<()> {
        let value = self.to_json("tc token", entry)?;
        Ok(self.insert(self.keys.key(Category::TcToken, jid.as_bytes()), value)?)
    }

    async fn delete_tc_token(&self, jid: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::TcToken, jid.as_bytes()))?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> WaResult<Vec<String>> {
        let prefix = self.keys.category(Category::TcToken);
        let mut jids = Vec::new();
        for key in self.wa.scan_prefix(&prefix).keys() {
            let key = key.map_err(StoreError::from)?;
            jids.push(self.string_part("tc token jid", &key[prefix.len()..])?);
        }
        Ok(jids)
    }

    async fn delete_expired_tc_tokens(
        &self,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> WaResult<u32> {
        Ok(
            self.remove_where(&self.keys.category(Category::TcToken), |_, value| {
                let entry: TcTokenEntry = self.json("tc token", value)?;
                // A row goes only when both its received token and its sender bucket are stale.
                let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
                let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
                Ok(!(token_live || sender_live))
            })?,
        )
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> WaResult<()> {
        let key = self.keys.key(Category::TcToken, jid.as_bytes());
        Ok(self.transaction(|tx| {
            let entry = match self.tc_token_in(tx, &key)? {
                Some(existing) => TcTokenEntry {
                    sender_timestamp: Some(
                        existing
                            .sender_timestamp
                            .map_or(sender_timestamp, |e| e.max(sender_timestamp)),
                    ),
                    ..existing
                },
                None => TcTokenEntry {
                    token: Vec::new(),
                    token_timestamp: sender_timestamp,
                    sender_timestamp: Some(sender_timestamp),
                },
            };
            self.put_tc_token_in(tx, &key, &entry)
        })?)
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> WaResult<()> {
        let key = self.keys.key(Category::TcToken, jid.as_bytes());
        Ok(self.transaction(|tx| {
            let existing = self.tc_token_in(tx, &key)?;
            // Newer wins; a byte-less placeholder never blocks the first real token.
            if let Some(existing) = &existing
                && !existing.token.is_empty()
                && token_timestamp < existing.token_timestamp
            {
                return Ok(());
            }
            let entry = TcTokenEntry {
                token: token.to_vec(),
                token_timestamp,
                sender_timestamp: existing.and_then(|e| e.sender_timestamp),
            };
            self.put_tc_token_in(tx, &key, &entry)
        })?)
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> WaResult<()> {
        let key = self.timed_blob_key(Category::SentMessage, chat_jid, None, message_id);
        Ok(self.insert(key, Self::timed_blob(payload))?)
    }

    async fn take_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        // `remove` returns the old value atomically: two retries cannot both take it.
        let Some(bytes) =
            self.remove(&self.timed_blob_key(Category::SentMessage, chat_jid, None, message_id))?
        else {
            return Ok(None);
        };
        let row: pb::TimedBlob = self.proto("sent message", &bytes)?;
        Ok(Some(row.payload))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        Ok(
            self.remove_where(&self.keys.category(Category::SentMessage), |_, value| {
                let row: pb::TimedBlob = self.proto("sent message", value)?;
                Ok(row.stored_at_secs < cutoff_timestamp)
            })?,
        )
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> WaResult<()> {
        Ok(self.insert(
            self.pending_inbound_key(chat, sender, id),
            Self::timed_blob(message),
        )?)
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        let Some(bytes) = self.get(&self.pending_inbound_key(chat, sender, id))? else {
            return Ok(None);
        };
        let row: pb::TimedBlob = self.proto("pending inbound message", &bytes)?;
        Ok(Some(row.payload))
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> WaResult<()> {
        self.remove(&self.pending_inbound_key(chat, sender, id))?;
        Ok(())
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        Ok(
            self.remove_where(&self.keys.category(Category::PendingInbound), |_, value| {
                let row: pb::TimedBlob = self.proto("pending inbound message", value)?;
                Ok(row.stored_at_secs < cutoff_timestamp)
            })?,
        )
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> WaResult<()> {
        Ok(self.write_batch(rows.iter().map(|row| {
            (
                self.pending_inbound_key(row.chat, row.sender, row.id),
                Some(Self::timed_blob(row.message)),
            )
        }))?)
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> WaResult<()> {
        Ok(self.write_batch(
            keys.iter()
                .map(|key| (self.pending_inbound_key(key.chat, key.sender, key.id), None)),
        )?)
    }
}

// ---------------------------------------------------------------------------
// MsgSecretStore
// ---------------------------------------------------------------------------

#[async_trait]
impl MsgSecretStore for SledBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> WaResult<usize> {
        // One transaction: on key conflict, merge (deadlines never shrink, a
        // known parent time is never replaced by "unknown").
        self.transaction(|tx| {
            for entry in &entries {
                let key = self.msg_secret_key(&entry.chat, &entry.sender, &entry.msg_id);
                let mut row = pb::MsgSecretRow {
                    secret: entry.secret.to_vec(),
                    expires_at_secs: entry.expires_at,
                    message_ts_secs: entry.message_ts,
                };
                if let Some(bytes) = tx.get(&key)? {
                    let existing: pb::MsgSecretRow = self
                        .proto("message secret", &bytes)
                        .map_err(ConflictableTransactionError::Abort)?;
                    row.expires_at_secs =
                        merge_msg_secret_expiry(existing.expires_at_secs, entry.expires_at);
                    row.message_ts_secs =
                        merge_msg_secret_message_ts(existing.message_ts_secs, entry.message_ts);
                }
                tx.insert(key, row.encode_to_vec())?;
            }
            Ok(())
        })?;
        Ok(entries.len())
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .msg_secret_row(chat, sender, msg_id)?
            .map(|row| row.secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<(Vec<u8>, i64)>> {
        Ok(self
            .msg_secret_row(chat, sender, msg_id)?
            .map(|row| (row.secret, row.message_ts_secs)))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        Ok(
            self.remove_where(&self.keys.category(Category::MsgSecret), |_, value| {
                let row: pb::MsgSecretRow = self.proto("message secret", value)?;
                // 0 = never expires.
                Ok(row.expires_at_secs != 0 && row.expires_at_secs <= cutoff_timestamp)
            })?,
        )
    }
}

// ---------------------------------------------------------------------------
// DeviceStore
// ---------------------------------------------------------------------------

#[async_trait]
impl DeviceStore for SledBackend {
    /// Saves the device. When its own JID differs from the last one this view
    /// flushed (i.e. the device was just paired), the write is flushed to disk
    /// before returning: pairing credentials must survive a crash. Other saves
    /// (push name, counters) ride sled's background flush.
    async fn save(&self, device: &Device) -> WaResult<()> {
        let value = self.to_json("device", device)?;
        self.device
            .insert(company_row(&self.company), value)
            .map_err(StoreError::from)?;
        let pn = device.pn.as_ref().map(ToString::to_string);
        if *self.flushed_pn.lock() != pn {
            self.durable.flush().await?;
            *self.flushed_pn.lock() = pn;
        }
        Ok(())
    }

    async fn load(&self) -> WaResult<Option<Device>> {
        let Some(bytes) = self
            .device
            .get(company_row(&self.company))
            .map_err(StoreError::from)?
        else {
            return Ok(None);
        };
        Ok(Some(decode_device(&self.company, &bytes)?))
    }

    async fn exists(&self) -> WaResult<bool> {
        Ok(self
            .device
            .contains_key(company_row(&self.company))
            .map_err(StoreError::from)?)
    }

    /// Materializes a fresh (unpaired) device unless one exists. There is one
    /// device per company, so its id is always 1.
    async fn create(&self) -> WaResult<i32> {
        let value = self.to_json("device", &Device::new())?;
        // compare-and-swap: a concurrent create never replaces a stored device.
        let _ = self
            .device
            .compare_and_swap(company_row(&self.company), None::<&[u8]>, Some(value))
            .map_err(StoreError::from)?;
        Ok(1)
    }
}
