//! [`AppSyncStore`]: app-state sync keys, versions (hash states) and
//! mutation MACs of one company.

use async_trait::async_trait;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use crate::store::WaRows;
use crate::store::keys::{Category, META_LATEST_SYNC_KEY_ID};

use super::RowBackend;

#[async_trait]
impl<R: WaRows> AppSyncStore for RowBackend<R> {
    async fn get_sync_key(&self, key_id: &[u8]) -> WaResult<Option<AppStateSyncKey>> {
        Ok(self
            .get(&self.keys.key(Category::SyncKey, key_id))
            .await?
            .map(|v| self.json("app-state sync key", &v))
            .transpose()?)
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> WaResult<()> {
        let value = self.to_json("app-state sync key", &key)?;
        Ok(self
            .write_batch([
                (self.keys.key(Category::SyncKey, key_id), Some(value)),
                (
                    self.keys.key(Category::Meta, META_LATEST_SYNC_KEY_ID),
                    Some(key_id.to_vec()),
                ),
            ])
            .await?)
    }

    async fn get_version(&self, name: &str) -> WaResult<HashState> {
        match self
            .get(&self.keys.key(Category::AppStateVersion, name.as_bytes()))
            .await?
        {
            Some(bytes) => Ok(self.json("app-state version", &bytes)?),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> WaResult<()> {
        let value = self.to_json("app-state version", &state)?;
        Ok(self
            .insert(
                self.keys.key(Category::AppStateVersion, name.as_bytes()),
                value,
            )
            .await?)
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> WaResult<()> {
        Ok(self
            .write_batch(mutations.iter().map(|m| {
                (
                    self.keys
                        .composite(Category::MutationMac, &[name.as_bytes()], &m.index_mac),
                    Some(m.value_mac.clone()),
                )
            }))
            .await?)
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(
                &self
                    .keys
                    .composite(Category::MutationMac, &[name.as_bytes()], index_mac),
            )
            .await?)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> WaResult<()> {
        Ok(self
            .write_batch(index_macs.iter().map(|index_mac| {
                (
                    self.keys
                        .composite(Category::MutationMac, &[name.as_bytes()], index_mac),
                    None,
                )
            }))
            .await?)
    }

    async fn clear_mutation_macs(&self, name: &str) -> WaResult<()> {
        self.remove_where(
            &self
                .keys
                .composite(Category::MutationMac, &[name.as_bytes()], b""),
            |_, _| Ok(true),
        )
        .await?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(&self.keys.key(Category::Meta, META_LATEST_SYNC_KEY_ID))
            .await?)
    }
}
