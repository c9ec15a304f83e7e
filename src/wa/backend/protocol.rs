//! [`ProtocolStore`]: sender-key device status, LID↔PN mappings with
//! their reverse index, base keys, device lists, group metadata, tc-tokens,
//! sent messages kept for retries and pending inbound rows of one company.

use async_trait::async_trait;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore,
    TcTokenEntry,
};

use crate::pb;
use crate::store::WaRows;
use crate::store::keys::Category;

use super::RowBackend;

#[async_trait]
impl<R: WaRows> ProtocolStore for RowBackend<R> {
    async fn get_sender_key_devices(&self, group_jid: &str) -> WaResult<Vec<(String, bool)>> {
        let prefix = self
            .keys
            .composite(Category::SenderKeyDevice, &[group_jid.as_bytes()], b"");
        let mut devices = Vec::new();
        for (key, value) in self.scan(&prefix).await? {
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
        Ok(self
            .write_batch(entries.iter().map(|(device, has_key)| {
                let key = self.keys.composite(
                    Category::SenderKeyDevice,
                    &[group_jid.as_bytes()],
                    device.as_bytes(),
                );
                (key, Some(vec![u8::from(*has_key)]))
            }))
            .await?)
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> WaResult<()> {
        let prefix = self
            .keys
            .composite(Category::SenderKeyDevice, &[group_jid.as_bytes()], b"");
        self.remove_where(&prefix, |_, _| Ok(true)).await?;
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
        })
        .await?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> WaResult<()> {
        self.remove_where(&self.keys.category(Category::SenderKeyDevice), |_, _| {
            Ok(true)
        })
        .await?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> WaResult<Option<LidPnMappingEntry>> {
        Ok(self
            .get(&self.keys.key(Category::LidMapping, lid.as_bytes()))
            .await?
            .map(|v| self.json("LID mapping", &v))
            .transpose()?)
    }

    async fn get_pn_mapping(&self, phone: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let Some(lid) = self
            .get(&self.keys.key(Category::PnToLid, phone.as_bytes()))
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .get(&self.keys.key(Category::LidMapping, &lid))
            .await?
            .map(|v| self.json("LID mapping", &v))
            .transpose()?)
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> WaResult<()> {
        let entries = std::slice::from_ref(entry);
        self.put_lid_mappings(entries).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> WaResult<()> {
        Ok(self
            .rows
            .update(self.lid_mapping_reads(entries), |view| {
                entries
                    .iter()
                    .try_for_each(|entry| self.put_lid_mapping_in(view, entry))
            })
            .await?)
    }

    async fn get_all_lid_mappings(&self) -> WaResult<Vec<LidPnMappingEntry>> {
        let mut all = Vec::new();
        for (_, value) in self.scan(&self.keys.category(Category::LidMapping)).await? {
            all.push(self.json("LID mapping", &value)?);
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
        Ok(self.insert(key, base_key.to_vec()).await?)
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
            .get(&key)
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> WaResult<()> {
        self.remove(&self.keys.composite(
            Category::BaseKey,
            &[address.as_bytes()],
            message_id.as_bytes(),
        ))
        .await?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> WaResult<()> {
        let value = self.to_json("device list", &record)?;
        Ok(self
            .insert(
                self.keys.key(Category::DeviceList, record.user.as_bytes()),
                value,
            )
            .await?)
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> WaResult<()> {
        let mut rows = Vec::with_capacity(records.len());
        for record in &records {
            rows.push((
                self.keys.key(Category::DeviceList, record.user.as_bytes()),
                Some(self.to_json("device list", record)?),
            ));
        }
        Ok(self.write_batch(rows).await?)
    }

    async fn get_devices(&self, user: &str) -> WaResult<Option<DeviceListRecord>> {
        Ok(self
            .get(&self.keys.key(Category::DeviceList, user.as_bytes()))
            .await?
            .map(|v| self.json("device list", &v))
            .transpose()?)
    }

    async fn delete_devices(&self, user: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::DeviceList, user.as_bytes()))
            .await?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get(&self.keys.key(Category::GroupMetadata, group_jid.as_bytes()))
            .await?)
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> WaResult<()> {
        Ok(self
            .insert(
                self.keys.key(Category::GroupMetadata, group_jid.as_bytes()),
                blob.to_vec(),
            )
            .await?)
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::GroupMetadata, group_jid.as_bytes()))
            .await?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> WaResult<Option<TcTokenEntry>> {
        Ok(self
            .get(&self.keys.key(Category::TcToken, jid.as_bytes()))
            .await?
            .map(|v| self.json("tc token", &v))
            .transpose()?)
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> WaResult<()> {
        let value = self.to_json("tc token", entry)?;
        Ok(self
            .insert(self.keys.key(Category::TcToken, jid.as_bytes()), value)
            .await?)
    }

    async fn delete_tc_token(&self, jid: &str) -> WaResult<()> {
        self.remove(&self.keys.key(Category::TcToken, jid.as_bytes()))
            .await?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> WaResult<Vec<String>> {
        let prefix = self.keys.category(Category::TcToken);
        let mut jids = Vec::new();
        for key in self.rows.scan_keys(&prefix).await? {
            jids.push(self.string_part("tc token jid", &key[prefix.len()..])?);
        }
        Ok(jids)
    }

    async fn delete_expired_tc_tokens(
        &self,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> WaResult<u32> {
        Ok(self
            .remove_where(&self.keys.category(Category::TcToken), |_, value| {
                let entry: TcTokenEntry = self.json("tc token", value)?;
                // A row goes only when both its received token and its sender bucket are stale.
                let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
                let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
                Ok(!(token_live || sender_live))
            })
            .await?)
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> WaResult<()> {
        let key = self.keys.key(Category::TcToken, jid.as_bytes());
        Ok(self
            .rows
            .update(vec![key.clone()], |view| {
                let entry = match self.tc_token_in(view, &key)? {
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
                self.put_tc_token_in(view, key.clone(), &entry)
            })
            .await?)
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> WaResult<()> {
        let key = self.keys.key(Category::TcToken, jid.as_bytes());
        Ok(self
            .rows
            .update(vec![key.clone()], |view| {
                let existing = self.tc_token_in(view, &key)?;
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
                self.put_tc_token_in(view, key.clone(), &entry)
            })
            .await?)
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> WaResult<()> {
        let key = self.timed_blob_key(Category::SentMessage, chat_jid, None, message_id);
        Ok(self.insert(key, Self::timed_blob(payload)).await?)
    }

    async fn take_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        // `take` removes and returns atomically: two retries cannot both take it.
        let key = self.timed_blob_key(Category::SentMessage, chat_jid, None, message_id);
        let Some(bytes) = self.rows.take(&key).await? else {
            return Ok(None);
        };
        let bytes = self.open_row(&key, bytes)?;
        let row: pb::TimedBlob = self.proto("sent message", &bytes)?;
        Ok(Some(row.payload))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        Ok(self
            .remove_where(&self.keys.category(Category::SentMessage), |_, value| {
                let row: pb::TimedBlob = self.proto("sent message", value)?;
                Ok(row.stored_at_secs < cutoff_timestamp)
            })
            .await?)
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> WaResult<()> {
        Ok(self
            .insert(
                self.pending_inbound_key(chat, sender, id),
                Self::timed_blob(message),
            )
            .await?)
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        let Some(bytes) = self
            .get(&self.pending_inbound_key(chat, sender, id))
            .await?
        else {
            return Ok(None);
        };
        let row: pb::TimedBlob = self.proto("pending inbound message", &bytes)?;
        Ok(Some(row.payload))
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> WaResult<()> {
        self.remove(&self.pending_inbound_key(chat, sender, id))
            .await?;
        Ok(())
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        Ok(self
            .remove_where(&self.keys.category(Category::PendingInbound), |_, value| {
                let row: pb::TimedBlob = self.proto("pending inbound message", value)?;
                Ok(row.stored_at_secs < cutoff_timestamp)
            })
            .await?)
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> WaResult<()> {
        Ok(self
            .write_batch(rows.iter().map(|row| {
                (
                    self.pending_inbound_key(row.chat, row.sender, row.id),
                    Some(Self::timed_blob(row.message)),
                )
            }))
            .await?)
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> WaResult<()> {
        Ok(self
            .write_batch(
                keys.iter()
                    .map(|key| (self.pending_inbound_key(key.chat, key.sender, key.id), None)),
            )
            .await?)
    }
}
