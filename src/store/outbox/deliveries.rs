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

    /// Records every settlement in `settled` in one transaction: each queued
    /// delivery moves to the delivered log or the dead letters (or, for
    /// `to = Queued`, gets its attempt recorded). A delivery no longer queued
    /// (deleted, or settled earlier) is skipped, never resurrected.
    ///
    /// One transaction for many settlements, because each sled transaction
    /// forces a write of sled's log buffer: the dispatcher settles whatever
    /// finished at the same moment together.
    pub fn finish_all(&self, settled: &[Settled]) -> Result<(), StoreError> {
        if settled.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Vec<u8>, Vec<u8>, DeliveryState)> = settled
            .iter()
            .map(|s| {
                (
                    keys::outbox_delivery(&s.key),
                    s.delivery.encode_to_vec(),
                    s.to,
                )
            })
            .collect();
        (&self.queue, &self.delivered, &self.dead).transaction(
            |(queue, delivered, dead)| -> TxResult<()> {
                for (key, value, to) in &rows {
                    let key = key.as_slice();
                    if queue.get(key)?.is_none() {
                        continue;
                    }
                    match to {
                        DeliveryState::Queued => queue.insert(key, value.as_slice())?,
                        DeliveryState::Delivered => {
                            queue.remove(key)?;
                            delivered.insert(key, value.as_slice())?
                        }
                        DeliveryState::Dead => {
                            queue.remove(key)?;
                            dead.insert(key, value.as_slice())?
                        }
                    };
                }
                Ok(())
            },
        )?;
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
