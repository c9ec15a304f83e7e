//! The webhook outbox: inbound events, their deduplication keys and their
//! deliveries (records in `records`, the delivery logs in `deliveries`,
//! retention in `retention`; every key encoding in [`crate::store::keys`]).
//!
//! # Layout
//!
//! | tree           | key                                         | value                      |
//! |----------------|---------------------------------------------|----------------------------|
//! | `wh_events`    | company prefix + event seq (u64 BE)         | [`pb::WebhookEvent`]       |
//! | `wh_dedup`     | company prefix + [`DedupKey`] encoding      | event seq (u64 BE)         |
//! | `wh_queue`     | company prefix + delivery seq + target byte | [`pb::OutboxDelivery`]     |
//! | `wh_delivered` | same as `wh_queue`                          | [`pb::OutboxDelivery`]     |
//! | `wh_dead`      | same as `wh_queue`                          | [`pb::OutboxDelivery`]     |
//! | `wh_marks`     | unix ms (u64 BE)                            | sequence number (u64 BE)   |
//!
//! Sequence numbers come from sled's monotonic `generate_id`, so within one
//! company key order is commit order; a delivery's ordering lane is
//! `(company, target, chat)` and the dispatcher keeps each lane in key order.
//!
//! # Invariants
//!
//! - [`Outbox::commit`] stores, deduplicates and queues an event under one
//!   lock, so two concurrent commits of one message produce exactly one
//!   event; across a crash an event is stored with its deliveries, and a
//!   dedup row never exists without them (see [`Outbox::commit_all`]).
//! - A delivery row lives in exactly one of `wh_queue`, `wh_delivered`,
//!   `wh_dead`. A move out of the queue writes the new row before it removes
//!   the queued one, so a crash in between leaves it in two places, never in
//!   none; [`Outbox::repair_interrupted_settles`] (run when the dispatcher
//!   starts) keeps the queued row, which is sent again.
//! - Nothing here flushes: the caller decides the durability point (the
//!   inbound hook flushes before it lets whatsapp-rust ack).
//!
//! # Retention
//!
//! Events, their dedup keys and delivered rows are kept for a retention
//! period *measured from their commit*, not from the message's own
//! timestamp (a message delivered after a week offline must still be
//! deduplicated). Sequence numbers carry no time, so [`Outbox::mark_time`]
//! records "every sequence number below N was generated before time T" in
//! `wh_marks`, and [`Outbox::prune_before`] turns a time into a sequence
//! cutoff through the newest mark at or before it. An event some queued or
//! dead delivery still points at is never pruned (nor its dedup key): it may
//! still be sent or retried.

mod deliveries;
mod records;
mod retention;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use prost::Message as _;
use sled::transaction::ConflictableTransactionError;

use super::{StoreError, decode, keys};
use crate::domain::{CompanyId, now_ms};
use crate::pb;

pub use records::{
    CommitRequest, Committed, DedupKey, DeliveryKey, DeliveryState, NewEvent, Settled, Target,
};
pub use retention::Pruned;

/// The outbox at a glance ([`Outbox::summary`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxSummary {
    /// Deliveries waiting to be sent (or retried).
    pub queued: usize,
    /// When the oldest of them was created (unix ms).
    pub oldest_queued_ms: Option<i64>,
    /// Dead letters.
    pub dead: usize,
}

/// The outbox trees. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
    /// Serializes commits (see [`Outbox::commit_all`]).
    commit_lock: Arc<parking_lot::Mutex<()>>,
    events: sled::Tree,
    dedup: sled::Tree,
    queue: sled::Tree,
    delivered: sled::Tree,
    dead: sled::Tree,
    marks: sled::Tree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// The most inbound rows of one chat [`Outbox::received_sender`] looks at.
pub const RECEIVED_SCAN_LIMIT: usize = 100_000;

impl Outbox {
    /// The outbox trees of `db`; `commit_lock` must be the one lock shared
    /// by every handle on `db`.
    pub(crate) fn open(
        db: &sled::Db,
        commit_lock: Arc<parking_lot::Mutex<()>>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            commit_lock,
            events: db.open_tree("wh_events")?,
            dedup: db.open_tree("wh_dedup")?,
            queue: db.open_tree("wh_queue")?,
            delivered: db.open_tree("wh_delivered")?,
            dead: db.open_tree("wh_dead")?,
            marks: db.open_tree("wh_marks")?,
        })
    }

    /// The outbox trees paired with `company`'s key prefix, for removing the
    /// company in the store's single transaction.
    pub(crate) fn company_trees(&self) -> [&sled::Tree; 5] {
        [
            &self.events,
            &self.dedup,
            &self.queue,
            &self.delivered,
            &self.dead,
        ]
    }

    /// Stores, deduplicates and queues `events` of `company` (see the module
    /// invariants). Each new event gets one queued delivery per target in
    /// `targets`. Not flushed.
    pub fn commit(
        &self,
        company: &CompanyId,
        events: &[NewEvent],
        targets: &[Target],
    ) -> Result<Vec<Committed>, StoreError> {
        self.commit_all(&[CommitRequest {
            company,
            events,
            targets,
        }])
        .pop()
        .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// [`Outbox::commit`] of several requests (companies) at once, one result
    /// per request, in order. A request whose stored rows cannot be read
    /// fails alone, before anything of it is written.
    ///
    /// Plain sled writes, not a transaction: every sled transaction or batch
    /// forces two writes of sled's log buffer, which made the outbox several
    /// times slower. What the transaction gave is kept:
    /// - **Isolation:** commits are serialized by `commit_lock`, so a message
    ///   committed twice at once (two requests in one group, or two callers)
    ///   is checked and stored once.
    /// - **Crash atomicity:** sled recovers a prefix of its log, and each
    ///   event is written as event row, then queue rows, then dedup row. A
    ///   crash leaves an event either absent, complete, or stored without its
    ///   dedup row; in the last case the message, not yet acknowledged, is
    ///   redelivered and committed again under the same event id (derived
    ///   from the message), so receivers see at most a repeat of one id and
    ///   never a dedup row without its event (which would drop the message).
    pub fn commit_all(
        &self,
        requests: &[CommitRequest<'_>],
    ) -> Vec<Result<Vec<Committed>, StoreError>> {
        let _serialized = self.commit_lock.lock();
        let now = now_ms();
        requests
            .iter()
            .map(|request| self.commit_one(request, now))
            .collect()
    }

    /// One request of [`Outbox::commit_all`]; `commit_lock` is held.
    fn commit_one(
        &self,
        request: &CommitRequest<'_>,
        now: i64,
    ) -> Result<Vec<Committed>, StoreError> {
        let company = request.company;
        // Read (and check) every dedup row first: a bad row fails the
        // request with nothing written.
        let mut checked = Vec::with_capacity(request.events.len());
        for new in request.events {
            let key = keys::outbox_dedup(company, &new.dedup);
            let existing = self
                .dedup
                .get(&key)?
                .map(|seq| seq_from(company, &seq))
                .transpose()?;
            checked.push((new, key, existing));
        }
        let mut out = Vec::with_capacity(checked.len());
        // Also a duplicate: the same message earlier in this request.
        let mut stored_now: Vec<(Vec<u8>, u64)> = Vec::new();
        for (new, dedup_key, existing) in checked {
            let existing = existing.or_else(|| {
                stored_now
                    .iter()
                    .find(|(key, _)| *key == dedup_key)
                    .map(|(_, seq)| *seq)
            });
            if let Some(event_seq) = existing {
                out.push(Committed {
                    event_seq,
                    duplicate: true,
                    queued: Vec::new(),
                });
                continue;
            }
            let seq = self.db.generate_id()?;
            // Order matters for crash atomicity (see `commit_all`).
            self.events
                .insert(keys::outbox_event(company, seq), new.event.encode_to_vec())?;
            let mut queued = Vec::with_capacity(request.targets.len());
            for (key, delivery) in deliveries(company, seq, seq, new, request.targets, now) {
                self.queue
                    .insert(keys::outbox_delivery(&key), delivery.encode_to_vec())?;
                queued.push(key);
            }
            self.dedup
                .insert(dedup_key.as_slice(), &seq.to_be_bytes())?;
            stored_now.push((dedup_key, seq));
            out.push(Committed {
                event_seq: seq,
                duplicate: false,
                queued,
            });
        }
        Ok(out)
    }

    /// Makes `company`'s dedup row of `dedup` unreadable (tests of how one
    /// company's bad data is contained).
    #[cfg(test)]
    pub(crate) fn corrupt_dedup_row(&self, company: &CompanyId, dedup: &DedupKey) {
        self.dedup
            .insert(
                keys::outbox_dedup(company, dedup),
                b"not a sequence".as_slice(),
            )
            .unwrap();
    }

    /// The sender of the inbound message `message_id` in `chat`, while its
    /// deduplication row is kept (the outbox retention). Scans the chat's
    /// rows, at most [`RECEIVED_SCAN_LIMIT`] of them.
    pub fn received_sender(
        &self,
        company: &CompanyId,
        chat: &str,
        message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let prefix = keys::outbox_dedup_chat(company, chat);
        for key in self
            .dedup
            .scan_prefix(&prefix)
            .keys()
            .take(RECEIVED_SCAN_LIMIT)
        {
            let key = key?;
            let Some((sender, id)) = keys::split_dedup_sender(&key[prefix.len()..]) else {
                continue;
            };
            if id == message_id.as_bytes() {
                return Ok(Some(String::from_utf8_lossy(sender).into_owned()));
            }
        }
        Ok(None)
    }

    /// Removes from the delivered log and the dead letters every row that is
    /// also still queued (what a crash in the middle of
    /// [`Outbox::finish_all`] leaves); returns how many. The queued row
    /// stands: it is sent again (at least once, same event id).
    pub fn repair_interrupted_settles(&self) -> Result<usize, StoreError> {
        let mut repaired = 0;
        for key in self.queue.iter().keys() {
            let key = key?;
            repaired += usize::from(self.delivered.remove(&key)?.is_some());
            repaired += usize::from(self.dead.remove(&key)?.is_some());
        }
        Ok(repaired)
    }

    /// Every queued delivery, in key order (company, then sequence). Rows
    /// that cannot be decoded are logged and skipped.
    pub fn queued(&self) -> Result<Vec<(DeliveryKey, pb::OutboxDelivery)>, StoreError> {
        let mut rows = Vec::new();
        for row in &self.queue {
            let (key, value) = row?;
            match decode_delivery(&key, &value) {
                Ok(pair) => rows.push(pair),
                Err(error) => tracing::error!(%error, "skipping an unreadable webhook delivery"),
            }
        }
        Ok(rows)
    }

    /// How many deliveries are queued and dead, gateway-wide, and when the
    /// oldest queued one was created (unix ms): the console's overview.
    /// Walks the queue (its rows are few while the dispatcher keeps up).
    pub fn summary(&self) -> Result<OutboxSummary, StoreError> {
        let queued = self.queued()?;
        Ok(OutboxSummary {
            queued: queued.len(),
            oldest_queued_ms: queued.iter().map(|(_, d)| d.created_at_ms).min(),
            dead: self.dead.len(),
        })
    }

    /// One queued delivery, if it is still queued.
    pub fn get_queued(&self, key: &DeliveryKey) -> Result<Option<pb::OutboxDelivery>, StoreError> {
        self.queue
            .get(keys::outbox_delivery(key))?
            .map(|v| decode(key.company.as_str(), "webhook delivery", &v))
            .transpose()
    }

    /// The stored event `seq` of `company`.
    pub fn event(
        &self,
        company: &CompanyId,
        seq: u64,
    ) -> Result<Option<pb::WebhookEvent>, StoreError> {
        self.events
            .get(keys::outbox_event(company, seq))?
            .map(|v| decode(company.as_str(), "webhook event", &v))
            .transpose()
    }

    /// How many events of `company` are stored (tests, metrics).
    pub fn event_count(&self, company: &CompanyId) -> usize {
        self.events
            .scan_prefix(keys::company_prefix(company))
            .count()
    }
}

/// The ordering lane stored with a delivery of `event`.
pub(crate) fn lane_of(event: &pb::WebhookEvent) -> String {
    match &event.payload {
        Some(pb::webhook_event::Payload::Message(message)) => message.chat.clone(),
        Some(pb::webhook_event::Payload::Delivery(delivery)) => delivery.chat.clone(),
        // `webhook::event::TEST_LANE`.
        Some(pb::webhook_event::Payload::Test(_)) => String::from("webhook.test"),
        _ => String::from("session"),
    }
}

/// The queue rows of event `event_seq`: one delivery per target.
fn deliveries(
    company: &CompanyId,
    delivery_seq: u64,
    event_seq: u64,
    new: &NewEvent,
    targets: &[Target],
    now: i64,
) -> Vec<(DeliveryKey, pb::OutboxDelivery)> {
    targets
        .iter()
        .map(|&target| {
            let key = DeliveryKey {
                company: company.clone(),
                seq: delivery_seq,
                target,
            };
            let delivery = pb::OutboxDelivery {
                event_seq,
                event_id: new.event.id.clone(),
                event_type: new.event.r#type.clone(),
                target: target.as_str().to_owned(),
                chat: new.lane.clone(),
                created_at_ms: now,
                updated_at_ms: now,
                ..Default::default()
            };
            (key, delivery)
        })
        .collect()
}

fn seq_from(company: &CompanyId, bytes: &[u8]) -> Result<u64, StoreError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::corrupt(company.as_str(), "webhook dedup row", "not 8 bytes"))
}

fn decode_delivery(
    key: &[u8],
    value: &[u8],
) -> Result<(DeliveryKey, pb::OutboxDelivery), StoreError> {
    let key = keys::parse_outbox_delivery(key)
        .ok_or_else(|| StoreError::corrupt("?", "webhook delivery key", "undecodable"))?;
    let delivery = decode(key.company.as_str(), "webhook delivery", value)?;
    Ok((key, delivery))
}
