//! [`MsgSecretStore`] on sled: message secrets (for reactions, polls and
//! edits) of one company, merged on conflict so deadlines never shrink.

use async_trait::async_trait;
use prost::Message as _;
use sled::transaction::ConflictableTransactionError;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::{
    MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use crate::pb;
use crate::store::keys::Category;

use super::SledBackend;

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
                if let Some(bytes) = self.tx_get(tx, &key)? {
                    let existing: pb::MsgSecretRow = self
                        .proto("message secret", &bytes)
                        .map_err(ConflictableTransactionError::Abort)?;
                    row.expires_at_secs =
                        merge_msg_secret_expiry(existing.expires_at_secs, entry.expires_at);
                    row.message_ts_secs =
                        merge_msg_secret_message_ts(existing.message_ts_secs, entry.message_ts);
                }
                self.tx_insert(tx, key, &row.encode_to_vec())?;
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
