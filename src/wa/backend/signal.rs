//! [`SignalStore`] on sled: identities, Signal sessions, pre-keys, signed
//! pre-keys and sender keys of one company.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use prost::Message as _;
use sled::transaction::ConflictableTransactionError;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::SignalStore;

use crate::pb;
use crate::store::StoreError;
use crate::store::keys::Category;

use super::SledBackend;

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
        Ok(self.insert(self.keys.id(Category::PreKey, id), &row.encode_to_vec())?)
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
                if let Some(bytes) = self.tx_get(tx, &key)? {
                    let mut row: pb::PreKeyRow = self
                        .proto("pre-key", &bytes)
                        .map_err(ConflictableTransactionError::Abort)?;
                    if !row.uploaded {
                        row.uploaded = true;
                        self.tx_insert(tx, key, &row.encode_to_vec())?;
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
