//! [`MsgSecretStore`]: message secrets (for reactions, polls and
//! edits) of one company, merged on conflict so deadlines never shrink.

use async_trait::async_trait;
use prost::Message as _;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::{
    MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use crate::pb;
use crate::store::WaRows;
use crate::store::keys::Category;

use super::RowBackend;

#[async_trait]
impl<R: WaRows> MsgSecretStore for RowBackend<R> {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> WaResult<usize> {
        // One update: on key conflict, merge (deadlines never shrink, a
        // known parent time is never replaced by "unknown").
        let keys = entries
            .iter()
            .map(|entry| self.msg_secret_key(&entry.chat, &entry.sender, &entry.msg_id))
            .collect::<Vec<_>>();
        self.rows
            .update(keys.clone(), |view| {
                for (entry, key) in entries.iter().zip(&keys) {
                    let mut row = pb::MsgSecretRow {
                        secret: entry.secret.to_vec(),
                        expires_at_secs: entry.expires_at,
                        message_ts_secs: entry.message_ts,
                    };
                    if let Some(bytes) = self.view_get(view, key)? {
                        let existing: pb::MsgSecretRow = self.proto("message secret", &bytes)?;
                        row.expires_at_secs =
                            merge_msg_secret_expiry(existing.expires_at_secs, entry.expires_at);
                        row.message_ts_secs =
                            merge_msg_secret_message_ts(existing.message_ts_secs, entry.message_ts);
                    }
                    self.view_put(view, key.clone(), row.encode_to_vec())?;
                }
                Ok(())
            })
            .await?;
        Ok(entries.len())
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .msg_secret_row(chat, sender, msg_id)
            .await?
            .map(|row| row.secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<(Vec<u8>, i64)>> {
        Ok(self
            .msg_secret_row(chat, sender, msg_id)
            .await?
            .map(|row| (row.secret, row.message_ts_secs)))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        Ok(self
            .remove_where(&self.keys.category(Category::MsgSecret), |_, value| {
                let row: pb::MsgSecretRow = self.proto("message secret", value)?;
                // 0 = never expires.
                Ok(row.expires_at_secs != 0 && row.expires_at_secs <= cutoff_timestamp)
            })
            .await?)
    }
}
