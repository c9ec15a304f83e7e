//! [`SignalStore`]: identities, Signal sessions, pre-keys, signed
//! pre-keys and sender keys of one company.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use prost::Message as _;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::SignalStore;

use crate::pb;
use crate::store::WaRows;
use crate::store::keys::Category;

use super::RowBackend;

#[async_trait]
impl<R: WaRows> SignalStore for RowBackend<R> {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> WaResult<()> {
        Ok(self
            .insert(
                self.keys.key(Category::Identity, address.as_bytes()),
                key.to_vec(),
            )
            .await?)
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> WaResult<()> {
        let rows = identities
            .iter()
            .map(|(address, key)| (&**address, &key[..]));
        let rows = self.category_rows(Category::Identity, rows);
        Ok(self.write_batch(rows).await?)
    }

    async fn load_identity(&self, address: &str) -> WaResult<Option<[u8; 32]>> {
        let Some(bytes) = self
            .get(&self.keys.key(Category::Identity, address.as_bytes()))
            .await?
        else {
            return Ok(None);
        };
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            self.corrupt(
                "identity key",
                format!("{} bytes instead of 32", bytes.len()),
            )
        })?;
        Ok(Some(key))
    }

    async fn delete_identity(&self, address: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::Identity, address.as_bytes()))
            .await?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> WaResult<Option<Bytes>> {
        Ok(self
            .get(&self.keys.key(Category::Session, address.as_bytes()))
            .await?
            .map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> WaResult<()> {
        Ok(self
            .insert(
                self.keys.key(Category::Session, address.as_bytes()),
                session.to_vec(),
            )
            .await?)
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        let rows = sessions
            .iter()
            .map(|(address, session)| (&**address, &session[..]));
        let rows = self.category_rows(Category::Session, rows);
        Ok(self.write_batch(rows).await?)
    }

    async fn delete_session(&self, address: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::Session, address.as_bytes()))
            .await?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> WaResult<bool> {
        Ok(self
            .rows
            .contains(&self.keys.key(Category::Session, address.as_bytes()))
            .await?)
    }

    async fn has_signal_state_for_user(&self, user: &str) -> WaResult<bool> {
        // Addresses are `user@server` or `user:device@server`.
        for category in [Category::Session, Category::Identity] {
            for separator in ["@", ":"] {
                let prefix = self
                    .keys
                    .key(category, format!("{user}{separator}").as_bytes());
                if self.rows.edge_key(&prefix, false).await?.is_some() {
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
        Ok(self
            .insert(self.keys.id(Category::PreKey, id), row.encode_to_vec())
            .await?)
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> WaResult<()> {
        Ok(self
            .write_batch(keys.iter().map(|(id, record)| {
                let row = pb::PreKeyRow {
                    record: record.to_vec(),
                    uploaded,
                };
                (
                    self.keys.id(Category::PreKey, *id),
                    Some(row.encode_to_vec()),
                )
            }))
            .await?)
    }

    async fn load_prekey(&self, id: u32) -> WaResult<Option<Bytes>> {
        let Some(bytes) = self.get(&self.keys.id(Category::PreKey, id)).await? else {
            return Ok(None);
        };
        let row: pb::PreKeyRow = self.proto("pre-key", &bytes)?;
        Ok(Some(Bytes::from(row.record)))
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> WaResult<()> {
        // UPDATE, never upsert: a key consumed since the upload snapshot stays deleted.
        let keys = ids
            .iter()
            .map(|&id| self.keys.id(Category::PreKey, id))
            .collect::<Vec<_>>();
        Ok(self
            .rows
            .update(keys.clone(), |view| {
                for key in &keys {
                    if let Some(bytes) = self.view_get(view, key)? {
                        let mut row: pb::PreKeyRow = self.proto("pre-key", &bytes)?;
                        if !row.uploaded {
                            row.uploaded = true;
                            self.view_put(view, key.clone(), row.encode_to_vec())?;
                        }
                    }
                }
                Ok(())
            })
            .await?)
    }

    async fn remove_prekey(&self, id: u32) -> WaResult<()> {
        self.remove(&self.keys.id(Category::PreKey, id)).await?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> WaResult<u32> {
        // Big-endian ids: the last key of the category is the largest id.
        let last = self
            .rows
            .edge_key(&self.keys.category(Category::PreKey), true)
            .await?;
        match last {
            None => Ok(0),
            Some(key) => Ok(self
                .keys
                .parse_id(Category::PreKey, &key)
                .ok_or_else(|| self.corrupt("pre-key id", "malformed key"))?),
        }
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> WaResult<()> {
        Ok(self
            .insert(self.keys.id(Category::SignedPreKey, id), record.to_vec())
            .await?)
    }

    async fn load_signed_prekey(&self, id: u32) -> WaResult<Option<Vec<u8>>> {
        Ok(self.get(&self.keys.id(Category::SignedPreKey, id)).await?)
    }

    async fn load_all_signed_prekeys(&self) -> WaResult<Vec<(u32, Vec<u8>)>> {
        let mut all = Vec::new();
        for (key, value) in self
            .scan(&self.keys.category(Category::SignedPreKey))
            .await?
        {
            let id = self
                .keys
                .parse_id(Category::SignedPreKey, &key)
                .ok_or_else(|| self.corrupt("signed pre-key id", "malformed key"))?;
            all.push((id, value));
        }
        Ok(all)
    }

    async fn remove_signed_prekey(&self, id: u32) -> WaResult<()> {
        self.remove(&self.keys.id(Category::SignedPreKey, id))
            .await?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> WaResult<()> {
        Ok(self
            .insert(
                self.keys.key(Category::SenderKey, address.as_bytes()),
                record.to_vec(),
            )
            .await?)
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        let rows = sender_keys
            .iter()
            .map(|(address, record)| (&**address, &record[..]));
        let rows = self.category_rows(Category::SenderKey, rows);
        Ok(self.write_batch(rows).await?)
    }

    async fn get_sender_key(&self, address: &str) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(&self.keys.key(Category::SenderKey, address.as_bytes()))
            .await?)
    }

    async fn delete_sender_key(&self, address: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::SenderKey, address.as_bytes()))
            .await?;
        Ok(())
    }
}
