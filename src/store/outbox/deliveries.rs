//! The delivery logs: settling attempts (delivered, retry, dead), moving dead
//! letters back to the queue, replaying stored events, and listing.

use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::ConflictableTransactionError;

use super::*;
use crate::domain::{CompanyId, now_ms};
use crate::pb;
use crate::store::{StoreError, decode, keys};

impl Outbox {
    /// Moves a queued delivery to the delivered log (`to = Delivered`) or the
    /// dead letters (`to = Dead`), or records a failed attempt to be retried
    /// (`to = Queued`), in one transaction.
    pub fn finish(
        &self,
        key: &DeliveryKey,
        delivery: &pb::OutboxDelivery,
        to: DeliveryState,
    ) -> Result<(), StoreError> {
        self.finish_all(&[Settled {
            key: key.clone(),
            delivery: delivery.clone(),
            to,
        }])
    }

    /// Records every settlement in `settled`: each queued delivery moves to
    /// the delivered log or the dead letters (or, for `to = Queued`, gets its
    /// attempt recorded). A delivery no longer queued (deleted, or settled
    /// earlier) is skipped, never resurrected.
    ///
    /// Plain sled writes, not a transaction: each sled transaction forces a
    /// write of sled's log buffer, and settling is on the path of every
    /// event (the dispatcher is the only caller, one task, so nothing else
    /// settles the same rows at once). Crash order: the row is written to its
    /// new log first and removed from the queue after, so a crash in between
    /// leaves it in both, never in neither; the delivery is then sent again
    /// (at least once, same event id) and [`Outbox::queued`] drops the stale
    /// copy from the logs when the dispatcher starts.
    pub fn finish_all(&self, settled: &[Settled]) -> Result<(), StoreError> {
        for s in settled {
            let key = keys::outbox_delivery(&s.key);
            if !self.queue.contains_key(&key)? {
                continue;
            }
            let value = s.delivery.encode_to_vec();
            match s.to {
                DeliveryState::Queued => {
                    self.queue.insert(key, value)?;
                }
                DeliveryState::Delivered => {
                    self.delivered.insert(key.as_slice(), value)?;
                    self.queue.remove(key)?;
                }
                DeliveryState::Dead => {
                    self.dead.insert(key.as_slice(), value)?;
                    self.queue.remove(key)?;
                }
            }
        }
        Ok(())
    }

    /// Moves a dead letter back to the queue with its attempts reset.
    /// Returns the delivery, or `None` if `key` is not a dead letter.
    pub fn requeue_dead(
        &self,
        key: &DeliveryKey,
    ) -> Result<Option<pb::OutboxDelivery>, StoreError> {
        let encoded = keys::outbox_delivery(key);
        let company = key.company.as_str();
        let now = now_ms();
        let result = (&self.dead, &self.queue).transaction(|(dead, queue)| -> TxResult<_> {
            let Some(value) = dead.remove(encoded.as_slice())? else {
                return Ok(None);
            };
            let mut delivery: pb::OutboxDelivery = decode(company, "webhook delivery", &value)
                .map_err(ConflictableTransactionError::Abort)?;
            delivery.attempts = 0;
            delivery.next_attempt_ms = 0;
            delivery.updated_at_ms = now;
            queue.insert(encoded.as_slice(), delivery.encode_to_vec())?;
            Ok(Some(delivery))
        })?;
        Ok(result)
    }

    /// Queues `company`'s stored events of `event_type` from `since_ms` on (event time) again,
    /// as new deliveries to `targets`, oldest first, at most `limit` events.
    /// The events keep their ids, so receivers deduplicate replays.
    pub fn replay(
        &self,
        company: &CompanyId,
        since_ms: i64,
        event_type: &str,
        targets: &[Target],
        limit: usize,
    ) -> Result<Vec<DeliveryKey>, StoreError> {
        let mut picked = Vec::new();
        for row in self.events.scan_prefix(keys::company_prefix(company)) {
            let (key, value) = row?;
            let event: pb::WebhookEvent = decode(company.as_str(), "webhook event", &value)?;
            if event.timestamp_ms < since_ms || event.r#type != event_type {
                continue;
            }
            let seq = key
                .len()
                .checked_sub(8)
                .and_then(|at| key[at..].try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| {
                    StoreError::corrupt(company.as_str(), "webhook event key", "too short")
                })?;
            picked.push((seq, event));
            if picked.len() >= limit {
                break;
            }
        }
        let now = now_ms();
        let mut queued = Vec::new();
        for (event_seq, event) in picked {
            let lane = lane_of(&event);
            let new = NewEvent {
                dedup: DedupKey::Event(event.id.clone()),
                event,
                lane,
            };
            let delivery_seq = self.db.generate_id()?;
            let mut batch = sled::Batch::default();
            for (key, delivery) in deliveries(company, delivery_seq, event_seq, &new, targets, now)
            {
                batch.insert(keys::outbox_delivery(&key), delivery.encode_to_vec());
                queued.push(key);
            }
            self.queue.apply_batch(batch)?;
        }
        Ok(queued)
    }

    /// Up to `limit` deliveries of `company` in `state`, newest first.
    pub fn list(
        &self,
        company: &CompanyId,
        state: DeliveryState,
        limit: usize,
    ) -> Result<Vec<(DeliveryKey, pb::OutboxDelivery)>, StoreError> {
        let tree = match state {
            DeliveryState::Queued => &self.queue,
            DeliveryState::Delivered => &self.delivered,
            DeliveryState::Dead => &self.dead,
        };
        tree.scan_prefix(keys::company_prefix(company))
            .rev()
            .take(limit)
            .map(|row| {
                let (key, value) = row?;
                decode_delivery(&key, &value)
            })
            .collect()
    }
}
