//! Per-message rows beside the outbox: the current status of each message
//! the gateway sent, and what downloading each inbound file needs.
//!
//! # Layout
//!
//! | tree         | key                                  | value                        |
//! |--------------|--------------------------------------|------------------------------|
//! | `msg_status` | company prefix + WhatsApp message id | [`pb::MessageStatusRecord`]  |
//! | `msg_media`  | company prefix + WhatsApp message id | [`pb::MediaRow`]             |
//!
//! (key encodings in [`super::keys::message_row`]).
//!
//! # Invariants
//!
//! - A recipient's status in `msg_status` only moves forward
//!   ([`DeliveryStatus::advances`]); [`Messages::advance`] says which of a
//!   batch of updates moved something, and only those become events.
//! - Rows are kept for the webhook retention time, measured from their last
//!   change ([`Messages::prune_before`]), like the events they explain.
//! - Nothing here flushes: the webhook commit that follows is the durability
//!   point.

use prost::Message as _;

use super::{StoreError, decode, keys};
use crate::domain::CompanyId;
use crate::domain::delivery::{DeliveryStatus, StatusUpdate};
use crate::pb;

impl super::Store {
    /// The per-message trees: sent messages' statuses, inbound files.
    pub fn messages(&self) -> Result<Messages, StoreError> {
        Messages::open(&self.db)
    }
}

/// The per-message trees. Cheap to clone.
#[derive(Clone)]
pub struct Messages {
    status: sled::Tree,
    media: sled::Tree,
}

impl Messages {
    pub(crate) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            status: db.open_tree("msg_status")?,
            media: db.open_tree("msg_media")?,
        })
    }

    /// The trees whose rows start with the company prefix (company removal).
    pub(crate) fn company_trees(&self) -> [&sled::Tree; 2] {
        [&self.status, &self.media]
    }

    /// The stored status of `company`'s sent message `message_id`.
    pub fn status(
        &self,
        company: &CompanyId,
        message_id: &str,
    ) -> Result<Option<pb::MessageStatusRecord>, StoreError> {
        self.status
            .get(keys::message_row(company, message_id))?
            .map(|v| decode(company.as_str(), "message status", &v))
            .transpose()
    }

    /// Which of `updates` move a recipient forward, given the stored
    /// records, and the records as they are after them. Writes nothing: the
    /// caller commits the events of the accepted updates first and then
    /// [`Messages::put_status`]es the records, so a crash in between repeats
    /// an event (same id, deduplicated) instead of losing one.
    ///
    /// The chat of a message is the one of its first update; later updates
    /// (a receipt from the peer's LID after a send to its phone number) keep
    /// it, so one message stays in one ordering lane.
    pub fn advance(
        &self,
        company: &CompanyId,
        updates: Vec<StatusUpdate>,
        now_ms: i64,
    ) -> Result<(Vec<StatusUpdate>, Vec<pb::MessageStatusRecord>), StoreError> {
        let mut records: Vec<pb::MessageStatusRecord> = Vec::new();
        let mut accepted = Vec::new();
        for mut update in updates {
            let index = match records
                .iter()
                .position(|r| r.message_id == update.message_id)
            {
                Some(index) => index,
                None => {
                    let record = self
                        .status(company, &update.message_id)?
                        .unwrap_or_else(|| pb::MessageStatusRecord {
                            message_id: update.message_id.clone(),
                            chat: update.chat.clone(),
                            created_at_ms: now_ms,
                            ..Default::default()
                        });
                    records.push(record);
                    records.len() - 1
                }
            };
            let record = &mut records[index];
            if apply(record, &update, now_ms) {
                update.chat = record.chat.clone();
                accepted.push(update);
            }
        }
        Ok((accepted, records))
    }

    /// Stores `records` of `company` (from [`Messages::advance`]).
    pub fn put_status(
        &self,
        company: &CompanyId,
        records: &[pb::MessageStatusRecord],
    ) -> Result<(), StoreError> {
        for record in records {
            self.status.insert(
                keys::message_row(company, &record.message_id),
                record.encode_to_vec(),
            )?;
        }
        Ok(())
    }

    /// Remembers what downloading `company`'s inbound file `message_id`
    /// needs (idempotent: a redelivered message writes the same row).
    pub fn put_media(
        &self,
        company: &CompanyId,
        message_id: &str,
        media: &pb::MediaInfo,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let row = pb::MediaRow {
            media: Some(media.clone()),
            stored_at_ms: now_ms,
        };
        self.media
            .insert(keys::message_row(company, message_id), row.encode_to_vec())?;
        Ok(())
    }

    /// What downloading `company`'s inbound file `message_id` needs.
    pub fn media(
        &self,
        company: &CompanyId,
        message_id: &str,
    ) -> Result<Option<pb::MediaInfo>, StoreError> {
        let row: Option<pb::MediaRow> = self
            .media
            .get(keys::message_row(company, message_id))?
            .map(|v| decode(company.as_str(), "inbound media", &v))
            .transpose()?;
        Ok(row.and_then(|r| r.media))
    }

    /// Removes rows last changed before `before_ms`; returns how many.
    /// Unreadable rows are removed too (nothing could ever read them).
    pub fn prune_before(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        for row in &self.status {
            let (key, value) = row?;
            let old = pb::MessageStatusRecord::decode(value.as_ref())
                .map_or(true, |r| r.updated_at_ms < before_ms);
            if old {
                batch.remove(key);
                removed += 1;
            }
        }
        self.status.apply_batch(batch)?;
        let mut batch = sled::Batch::default();
        for row in &self.media {
            let (key, value) = row?;
            let old =
                pb::MediaRow::decode(value.as_ref()).map_or(true, |r| r.stored_at_ms < before_ms);
            if old {
                batch.remove(key);
                removed += 1;
            }
        }
        self.media.apply_batch(batch)?;
        Ok(removed)
    }
}

/// Applies `update` to `record` if it moves its recipient forward; returns
/// whether it did.
fn apply(record: &mut pb::MessageStatusRecord, update: &StatusUpdate, now_ms: i64) -> bool {
    let index = match record
        .recipients
        .iter()
        .position(|r| r.recipient == update.recipient)
    {
        Some(index) => index,
        None => {
            record.recipients.push(pb::RecipientStatus {
                recipient: update.recipient.clone(),
                ..Default::default()
            });
            record.recipients.len() - 1
        }
    };
    let recipient = &mut record.recipients[index];
    let current = DeliveryStatus::parse(&recipient.status);
    if !update.status.advances(current) {
        return false;
    }
    recipient.status = update.status.as_str().to_owned();
    let at = update.at_ms;
    match update.status {
        DeliveryStatus::Sent => recipient.sent_at_ms = at,
        DeliveryStatus::Delivered => recipient.delivered_at_ms = at,
        DeliveryStatus::Read => recipient.read_at_ms = at,
        DeliveryStatus::Played => recipient.played_at_ms = at,
        DeliveryStatus::Failed => {
            recipient.failed_at_ms = at;
            recipient.reason = update.reason.clone();
        }
    }
    let furthest = DeliveryStatus::parse(&record.status);
    if update.status.advances(furthest) {
        record.status = update.status.as_str().to_owned();
    }
    record.updated_at_ms = now_ms;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn update(id: &str, recipient: &str, status: DeliveryStatus) -> StatusUpdate {
        StatusUpdate {
            message_id: id.into(),
            chat: "15550003333@s.whatsapp.net".into(),
            recipient: recipient.into(),
            status,
            at_ms: 7,
            reason: String::new(),
        }
    }

    #[test]
    fn only_forward_updates_are_accepted_and_stored() {
        let store = Store::open_temporary().unwrap();
        let messages = store.messages().unwrap();
        let company = CompanyId::parse("acme").unwrap();
        let peer = "15550003333@s.whatsapp.net";
        let (accepted, records) = messages
            .advance(
                &company,
                vec![
                    update("m1", peer, DeliveryStatus::Sent),
                    update("m1", peer, DeliveryStatus::Read),
                    update("m1", peer, DeliveryStatus::Delivered),
                    update("m1", peer, DeliveryStatus::Read),
                ],
                10,
            )
            .unwrap();
        let codes: Vec<_> = accepted.iter().map(|u| u.status).collect();
        assert_eq!(codes, [DeliveryStatus::Sent, DeliveryStatus::Read]);
        // Nothing is written until the caller stores the records.
        assert!(messages.status(&company, "m1").unwrap().is_none());
        messages.put_status(&company, &records).unwrap();
        let stored = messages.status(&company, "m1").unwrap().unwrap();
        assert_eq!(stored.status, "read");
        assert_eq!(stored.recipients[0].read_at_ms, 7);
        assert_eq!(stored.recipients[0].delivered_at_ms, 0);
        let (again, _) = messages
            .advance(
                &company,
                vec![update("m1", peer, DeliveryStatus::Delivered)],
                11,
            )
            .unwrap();
        assert!(again.is_empty(), "a late delivered after read is no event");
        assert_eq!(messages.prune_before(10).unwrap(), 0);
        assert_eq!(messages.prune_before(11).unwrap(), 1);
    }

    #[test]
    fn group_participants_advance_separately() {
        let store = Store::open_temporary().unwrap();
        let messages = store.messages().unwrap();
        let company = CompanyId::parse("acme").unwrap();
        let (accepted, records) = messages
            .advance(
                &company,
                vec![
                    update("g1", "a@s.whatsapp.net", DeliveryStatus::Delivered),
                    update("g1", "b@s.whatsapp.net", DeliveryStatus::Delivered),
                    update("g1", "a@s.whatsapp.net", DeliveryStatus::Read),
                ],
                1,
            )
            .unwrap();
        assert_eq!(accepted.len(), 3);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].recipients.len(), 2);
        assert_eq!(records[0].status, "read");
    }
}
