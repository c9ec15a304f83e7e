//! The messages the gateway sent (tree `sent`): chat + message id → when and
//! what kind. Only ids are kept, never bodies (DESIGN.md invariant 7).
//!
//! Replies (`reply_to`) and actions (reaction, edit, delete) name a message
//! by id within a chat; [`Store::quote_target`] finds it among the messages
//! the gateway sent (here) and those it received (the webhook outbox's
//! deduplication rows, kept for the outbox's retention), and tells whose it
//! is. Rows older than [`SENT_RETENTION_MS`] are pruned by
//! [`Store::prune_sent_messages`].

use super::{Store, StoreError, keys};
use crate::domain::CompanyId;

/// How long a sent message can be replied to or acted on through the API
/// (WhatsApp itself allows edits for 15 minutes and deletes for about two
/// days; replies and reactions have no limit).
pub const SENT_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

/// A message found in a chat: who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteTarget {
    /// The gateway sent it (from this company's own number).
    Sent,
    /// It was received from `sender` (a JID, without device).
    Received {
        /// The sender's JID.
        sender: String,
    },
}

impl Store {
    /// Records that the gateway sent `message_id` (of API kind `kind`) to `chat`.
    pub fn remember_sent_message(
        &self,
        company: &CompanyId,
        chat: &str,
        message_id: &str,
        kind: &str,
    ) -> Result<(), StoreError> {
        let created_ms = u64::try_from(crate::domain::now_ms()).unwrap_or(0);
        let mut value = Vec::with_capacity(8 + kind.len());
        value.extend_from_slice(&created_ms.to_be_bytes());
        value.extend_from_slice(kind.as_bytes());
        self.trees
            .sent
            .insert(keys::sent_message(company, chat, message_id), value)?;
        Ok(())
    }

    /// Whether the gateway sent `message_id` to `chat` (and still remembers it).
    pub fn sent_message_exists(
        &self,
        company: &CompanyId,
        chat: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .trees
            .sent
            .contains_key(keys::sent_message(company, chat, message_id))?)
    }

    /// Finds `message_id` in `chat`: sent by the gateway, or received (and
    /// still in the webhook outbox's retention). `None` when unknown.
    pub fn quote_target(
        &self,
        company: &CompanyId,
        chat: &str,
        message_id: &str,
    ) -> Result<Option<QuoteTarget>, StoreError> {
        if self.sent_message_exists(company, chat, message_id)? {
            return Ok(Some(QuoteTarget::Sent));
        }
        Ok(self
            .outbox()?
            .received_sender(company, chat, message_id)?
            .map(|sender| QuoteTarget::Received { sender }))
    }

    /// Forgets sent messages recorded before `cutoff_ms`; returns how many.
    pub fn prune_sent_messages(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let cutoff = u64::try_from(cutoff_ms).unwrap_or(0);
        let mut expired = Vec::new();
        for row in &self.trees.sent {
            let (key, value) = row?;
            let created = keys::u64_at(&value, 0).unwrap_or(0);
            if created < cutoff {
                expired.push(key);
            }
        }
        for chunk in expired.chunks(1024) {
            let mut batch = sled::Batch::default();
            for key in chunk {
                batch.remove(key.clone());
            }
            self.trees.sent.apply_batch(batch)?;
        }
        Ok(expired.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_messages_are_found_per_chat_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let acme = CompanyId::parse("acme").unwrap();
        let other = CompanyId::parse("other").unwrap();
        let chat = "15550002222@s.whatsapp.net";
        store
            .remember_sent_message(&acme, chat, "ID1", "text")
            .unwrap();
        assert_eq!(
            store.quote_target(&acme, chat, "ID1").unwrap(),
            Some(QuoteTarget::Sent)
        );
        assert_eq!(store.quote_target(&acme, "1@g.us", "ID1").unwrap(), None);
        assert_eq!(store.quote_target(&other, chat, "ID1").unwrap(), None);
        assert_eq!(store.quote_target(&acme, chat, "ID").unwrap(), None);
        assert_eq!(store.prune_sent_messages(0).unwrap(), 0);
        assert_eq!(store.prune_sent_messages(i64::MAX).unwrap(), 1);
        assert_eq!(store.quote_target(&acme, chat, "ID1").unwrap(), None);
    }
}
