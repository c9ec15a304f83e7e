//! The webhook outbox: inbound events, their deduplication keys and their
//! deliveries, with every key encoding of these trees.
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
//!   `wh_dead`: every move between them is one transaction.
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

use std::sync::Arc;

use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::ConflictableTransactionError;

use super::{StoreError, decode, keys};
use crate::domain::{CompanyId, now_ms};
use crate::pb;

/// Which endpoint a delivery is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The company's own webhook.
    Company,
    /// The gateway-wide webhook (configured at start).
    Global,
}

impl Target {
    /// The byte in keys: part of the on-disk format, never change it.
    fn byte(self) -> u8 {
        match self {
            Target::Company => b'c',
            Target::Global => b'g',
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'c' => Some(Target::Company),
            b'g' => Some(Target::Global),
            _ => None,
        }
    }

    /// The stable name used in delivery ids and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Company => "company",
            Target::Global => "global",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Target::Company, Target::Global]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// What makes two events "the same" for deduplication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DedupKey {
    /// An inbound message: `(chat, sender, message id)` within the company
    /// (stanza ids are unique only within a chat and sender).
    Message {
        chat: String,
        sender: String,
        message_id: String,
    },
    /// Any other event: its stable event id.
    Event(String),
}

impl DedupKey {
    fn encode(&self, company: &CompanyId) -> Vec<u8> {
        let mut key = keys::company_prefix(company);
        match self {
            DedupKey::Message {
                chat,
                sender,
                message_id,
            } => {
                key.push(b'm');
                for part in [chat, sender] {
                    // JIDs are far below 4 GiB.
                    key.extend_from_slice(&(part.len() as u32).to_be_bytes());
                    key.extend_from_slice(part.as_bytes());
                }
                key.extend_from_slice(message_id.as_bytes());
            }
            DedupKey::Event(id) => {
                key.push(b'e');
                key.extend_from_slice(id.as_bytes());
            }
        }
        key
    }
}

/// An event to commit.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub dedup: DedupKey,
    pub event: pb::WebhookEvent,
    /// The ordering lane within the company (the chat JID; a fixed name for
    /// session events).
    pub lane: String,
}

/// Identifies one delivery row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    pub company: CompanyId,
    pub seq: u64,
    pub target: Target,
}

impl DeliveryKey {
    fn encode(&self) -> Vec<u8> {
        let mut key = keys::company_prefix(&self.company);
        key.extend_from_slice(&self.seq.to_be_bytes());
        key.push(self.target.byte());
        key
    }

    fn decode(key: &[u8]) -> Option<Self> {
        let (&len, rest) = key.split_first()?;
        let len = usize::from(len);
        if rest.len() != len + 9 {
            return None;
        }
        let company = CompanyId::parse(std::str::from_utf8(&rest[..len]).ok()?).ok()?;
        let seq = u64::from_be_bytes(rest[len..len + 8].try_into().ok()?);
        let target = Target::from_byte(rest[len + 8])?;
        Some(Self {
            company,
            seq,
            target,
        })
    }

    /// The public id of the delivery (`{seq}-{target}`), unique per company.
    pub fn public_id(&self) -> String {
        format!("{}-{}", self.seq, self.target.as_str())
    }

    /// Parses [`DeliveryKey::public_id`] for `company`.
    pub fn parse_public_id(company: &CompanyId, id: &str) -> Option<Self> {
        let (seq, target) = id.split_once('-')?;
        Some(Self {
            company: company.clone(),
            seq: seq.parse().ok()?,
            target: Target::parse(target)?,
        })
    }
}

/// The result of committing one [`NewEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Sequence number of the stored event (the earlier one for a duplicate).
    pub event_seq: u64,
    /// Whether the event was already stored (nothing was written for it).
    pub duplicate: bool,
    /// Deliveries queued by this commit (empty for a duplicate).
    pub queued: Vec<DeliveryKey>,
}

/// One company's events to commit ([`Outbox::commit_all`]).
#[derive(Clone, Copy, Debug)]
pub struct CommitRequest<'a> {
    pub company: &'a CompanyId,
    pub events: &'a [NewEvent],
    /// The endpoints each new event is queued for.
    pub targets: &'a [Target],
}

/// A delivery attempt's outcome to record ([`Outbox::finish_all`]).
#[derive(Clone, Debug)]
pub struct Settled {
    pub key: DeliveryKey,
    /// The delivery row as it should be stored (attempts, last status, ...).
    pub delivery: pb::OutboxDelivery,
    /// Where it goes: `Delivered`, `Dead`, or `Queued` (a retry later).
    pub to: DeliveryState,
}

/// Which delivery list to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    Queued,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
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

/// What [`Outbox::prune_before`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: usize,
    pub dedup_keys: usize,
    pub delivered: usize,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

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
            let key = new.dedup.encode(company);
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
                .insert(event_key(company, seq), new.event.encode_to_vec())?;
            let mut queued = Vec::with_capacity(request.targets.len());
            for (key, delivery) in deliveries(company, seq, seq, new, request.targets, now) {
                self.queue.insert(key.encode(), delivery.encode_to_vec())?;
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
            .insert(dedup.encode(company), b"not a sequence".as_slice())
            .unwrap();
    }

    /// Every queued delivery, in key order (company, then sequence). Rows
    /// that cannot be decoded are logged and skipped.
    pub fn queued(&self) -> Result<Vec<(DeliveryKey, pb::OutboxDelivery)>, StoreError> {
        let mut rows = Vec::new();
        for row in self.queue.iter() {
            let (key, value) = row?;
            match decode_delivery(&key, &value) {
                Ok(pair) => rows.push(pair),
                Err(error) => tracing::error!(%error, "skipping an unreadable webhook delivery"),
            }
        }
        Ok(rows)
    }

    /// One queued delivery, if it is still queued.
    pub fn get_queued(&self, key: &DeliveryKey) -> Result<Option<pb::OutboxDelivery>, StoreError> {
        self.queue
            .get(key.encode())?
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
            .get(event_key(company, seq))?
            .map(|v| decode(company.as_str(), "webhook event", &v))
            .transpose()
    }

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
            .map(|s| (s.key.encode(), s.delivery.encode_to_vec(), s.to))
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
        let encoded = key.encode();
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
                batch.insert(key.encode(), delivery.encode_to_vec());
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

    /// Keeps only the newest `keep` rows of the delivered log per company.
    /// Returns how many rows were removed.
    pub fn prune_delivered(&self, keep: usize) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut current: Option<Vec<u8>> = None;
        let mut seen = 0usize;
        let mut batch = sled::Batch::default();
        // Newest first: the first `keep` rows of each company prefix stay.
        for key in self.delivered.iter().keys().rev() {
            let key = key?;
            let prefix_len = usize::from(key.first().copied().unwrap_or(0)) + 1;
            let prefix = key.get(..prefix_len).map(<[u8]>::to_vec);
            if prefix != current {
                current = prefix;
                seen = 0;
            }
            seen += 1;
            if seen > keep {
                batch.remove(key);
                removed += 1;
            }
        }
        if removed > 0 {
            self.delivered.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// Records that every sequence number generated so far was generated
    /// before `now_ms` (see the module's retention notes).
    pub fn mark_time(&self, now_ms: i64) -> Result<(), StoreError> {
        let seq = self.db.generate_id()?;
        let at = u64::try_from(now_ms).unwrap_or(0);
        self.marks.insert(at.to_be_bytes(), &seq.to_be_bytes())?;
        Ok(())
    }

    /// Removes the events (with their dedup keys) and delivered rows
    /// committed before `before_ms`, as far as the marks tell, except events
    /// a queued or dead delivery still points at; drops marks no longer
    /// needed. Each tree is changed in one batch; a crash between them leaves
    /// rows that the next call removes.
    pub fn prune_before(&self, before_ms: i64) -> Result<Pruned, StoreError> {
        let before = u64::try_from(before_ms).unwrap_or(0);
        let Some(mark) = self.marks.range(..=before.to_be_bytes()).next_back() else {
            return Ok(Pruned::default());
        };
        let (mark_key, cutoff) = mark?;
        let cutoff = u64_at(&cutoff, 0)
            .ok_or_else(|| StoreError::corrupt("?", "webhook retention mark", "not 8 bytes"))?;

        // Events still referenced by a delivery that may be sent again.
        let mut referenced = std::collections::HashSet::new();
        for tree in [&self.queue, &self.dead] {
            for row in tree.iter() {
                let (key, value) = row?;
                let delivery: pb::OutboxDelivery = decode("?", "webhook delivery", &value)?;
                referenced.insert((key_prefix(&key).to_vec(), delivery.event_seq));
            }
        }
        let old_unreferenced = |key: &[u8], seq: u64| {
            seq < cutoff && !referenced.contains(&(key_prefix(key).to_vec(), seq))
        };

        let mut pruned = Pruned::default();
        let mut batch = sled::Batch::default();
        for key in self.events.iter().keys() {
            let key = key?;
            if let Some(seq) = u64_at(&key, key_prefix(&key).len())
                && old_unreferenced(&key, seq)
            {
                batch.remove(key);
                pruned.events += 1;
            }
        }
        self.events.apply_batch(batch)?;

        let mut batch = sled::Batch::default();
        for row in self.dedup.iter() {
            let (key, value) = row?;
            if let Some(seq) = u64_at(&value, 0)
                && old_unreferenced(&key, seq)
            {
                batch.remove(key);
                pruned.dedup_keys += 1;
            }
        }
        self.dedup.apply_batch(batch)?;

        let mut batch = sled::Batch::default();
        for key in self.delivered.iter().keys() {
            let key = key?;
            if u64_at(&key, key_prefix(&key).len()).is_some_and(|seq| seq < cutoff) {
                batch.remove(key);
                pruned.delivered += 1;
            }
        }
        self.delivered.apply_batch(batch)?;

        // The mark used stays: it is the cutoff until a newer one qualifies.
        let mut batch = sled::Batch::default();
        for key in self.marks.range(..mark_key).keys() {
            batch.remove(key?);
        }
        self.marks.apply_batch(batch)?;
        Ok(pruned)
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

fn event_key(company: &CompanyId, seq: u64) -> Vec<u8> {
    let mut key = keys::company_prefix(company);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The company prefix at the start of an outbox key (length byte + id).
fn key_prefix(key: &[u8]) -> &[u8] {
    let len = usize::from(key.first().copied().unwrap_or(0)) + 1;
    key.get(..len).unwrap_or(key)
}

/// The big-endian u64 at `at` in `bytes`, if there are 8 bytes there.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    bytes.get(at..end)?.try_into().ok().map(u64::from_be_bytes)
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
    let key = DeliveryKey::decode(key)
        .ok_or_else(|| StoreError::corrupt("?", "webhook delivery key", "undecodable"))?;
    let delivery = decode(key.company.as_str(), "webhook delivery", value)?;
    Ok((key, delivery))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn company(id: &str) -> CompanyId {
        CompanyId::parse(id).unwrap()
    }

    fn message(id: &str, chat: &str) -> NewEvent {
        NewEvent {
            dedup: DedupKey::Message {
                chat: chat.into(),
                sender: chat.into(),
                message_id: id.into(),
            },
            event: pb::WebhookEvent {
                id: format!("evt_{id}"),
                company_id: "acme".into(),
                r#type: "message.received".into(),
                timestamp_ms: 1_000,
                payload: Some(pb::webhook_event::Payload::Message(pb::InboundMessage {
                    chat: chat.into(),
                    message_id: id.into(),
                    ..Default::default()
                })),
            },
            lane: chat.into(),
        }
    }

    #[test]
    fn a_redelivered_message_is_stored_and_queued_once() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        let acme = company("acme");
        let chat = "15550003333@s.whatsapp.net";
        let first = outbox
            .commit(
                &acme,
                &[message("A1", chat)],
                &[Target::Company, Target::Global],
            )
            .unwrap();
        assert!(!first[0].duplicate);
        assert_eq!(first[0].queued.len(), 2);
        // Same message again, in a batch with a new one.
        let second = outbox
            .commit(
                &acme,
                &[message("A1", chat), message("A2", chat)],
                &[Target::Company],
            )
            .unwrap();
        assert!(second[0].duplicate);
        assert_eq!(second[0].event_seq, first[0].event_seq);
        assert!(second[0].queued.is_empty());
        assert!(!second[1].duplicate);
        assert_eq!(outbox.event_count(&acme), 2);
        assert_eq!(outbox.queued().unwrap().len(), 3);
        // The same message twice in one commit: stored once.
        let twice = outbox
            .commit(&acme, &[message("B1", chat), message("B1", chat)], &[])
            .unwrap();
        assert!(!twice[0].duplicate && twice[1].duplicate);
        assert_eq!(twice[0].event_seq, twice[1].event_seq);
        assert_eq!(outbox.event_count(&acme), 3);
        // The same id in another chat is another message.
        let other = outbox
            .commit(&acme, &[message("A1", "15550004444@s.whatsapp.net")], &[])
            .unwrap();
        assert!(!other[0].duplicate);
    }

    #[test]
    fn deliveries_move_between_queue_delivered_and_dead() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        let acme = company("acme");
        let committed = outbox
            .commit(
                &acme,
                &[message("A1", "c"), message("A2", "c")],
                &[Target::Company],
            )
            .unwrap();
        let (k1, k2) = (
            committed[0].queued[0].clone(),
            committed[1].queued[0].clone(),
        );
        let d1 = outbox.get_queued(&k1).unwrap().unwrap();
        outbox.finish(&k1, &d1, DeliveryState::Delivered).unwrap();
        let mut d2 = outbox.get_queued(&k2).unwrap().unwrap();
        d2.attempts = 5;
        outbox.finish(&k2, &d2, DeliveryState::Dead).unwrap();
        assert!(outbox.queued().unwrap().is_empty());
        assert_eq!(
            outbox
                .list(&acme, DeliveryState::Delivered, 10)
                .unwrap()
                .len(),
            1
        );
        let dead = outbox.list(&acme, DeliveryState::Dead, 10).unwrap();
        assert_eq!(dead[0].0, k2);
        assert_eq!(dead[0].1.attempts, 5);
        // Retry: back to the queue with attempts reset; only once.
        let requeued = outbox.requeue_dead(&k2).unwrap().unwrap();
        assert_eq!(requeued.attempts, 0);
        assert!(outbox.requeue_dead(&k2).unwrap().is_none());
        assert_eq!(outbox.queued().unwrap()[0].0, k2);
    }

    #[test]
    fn one_group_commit_deduplicates_across_its_requests_per_company() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        let (acme, globex) = (company("acme"), company("globex"));
        let once = [message("A1", "c")];
        let twice = [message("A1", "c"), message("A2", "c")];
        let targets = [Target::Company];
        let request = |company, events| CommitRequest {
            company,
            events,
            targets: &targets,
        };
        let results = outbox
            .commit_all(&[
                request(&acme, &once),
                request(&globex, &once),
                request(&acme, &twice),
            ])
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let flags: Vec<Vec<bool>> = results
            .iter()
            .map(|r| r.iter().map(|c| c.duplicate).collect())
            .collect();
        // The same message id in another company is another message; within
        // one company, a later request of the group sees the earlier one.
        assert_eq!(flags, [vec![false], vec![false], vec![true, false]]);
        assert_eq!(results[2][0].event_seq, results[0][0].event_seq);
        assert_eq!(outbox.event_count(&acme), 2);
        assert_eq!(outbox.event_count(&globex), 1);
        assert_eq!(outbox.queued().unwrap().len(), 3);
    }

    #[test]
    fn racing_commits_of_the_same_messages_store_each_once() {
        let store = Store::open_temporary().unwrap();
        let acme = company("acme");
        let events: Vec<NewEvent> = (0..200).map(|i| message(&format!("M{i}"), "c")).collect();
        // Each thread has its own handle: the lock is the store's, not the
        // handle's.
        let new_events: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    let outbox = store.outbox().unwrap();
                    let (acme, events) = (&acme, &events);
                    scope.spawn(move || {
                        events
                            .iter()
                            .map(|e| {
                                let done = outbox.commit(acme, std::slice::from_ref(e), &[]);
                                usize::from(!done.unwrap()[0].duplicate)
                            })
                            .sum::<usize>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(new_events, 200);
        assert_eq!(store.outbox().unwrap().event_count(&acme), 200);
    }

    #[test]
    fn settlements_recorded_together_skip_deliveries_no_longer_queued() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        let acme = company("acme");
        let events = [message("A1", "c"), message("A2", "c"), message("A3", "c")];
        let committed = outbox.commit(&acme, &events, &[Target::Company]).unwrap();
        let settled: Vec<Settled> = committed
            .iter()
            .zip([
                DeliveryState::Delivered,
                DeliveryState::Dead,
                DeliveryState::Queued,
            ])
            .map(|(c, to)| {
                let key = c.queued[0].clone();
                let mut delivery = outbox.get_queued(&key).unwrap().unwrap();
                delivery.attempts = 1;
                Settled { key, delivery, to }
            })
            .collect();
        // The first settlement again: it already left the queue, so it is
        // skipped (not written to the delivered log twice, never requeued).
        let mut again = settled[0].clone();
        again.to = DeliveryState::Queued;
        outbox
            .finish_all(&[settled.clone(), vec![again]].concat())
            .unwrap();
        let ids = |state| -> Vec<DeliveryKey> {
            outbox
                .list(&acme, state, 10)
                .unwrap()
                .into_iter()
                .map(|(key, _)| key)
                .collect()
        };
        assert_eq!(ids(DeliveryState::Delivered), [settled[0].key.clone()]);
        assert_eq!(ids(DeliveryState::Dead), [settled[1].key.clone()]);
        let queued = outbox.queued().unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].0, settled[2].key);
        assert_eq!(queued[0].1.attempts, 1, "the retry's attempt is recorded");
        // A retry recorded after its delivery was removed is dropped.
        store.remove_company(&acme).unwrap();
        outbox.finish_all(&settled[2..]).unwrap();
        assert!(outbox.queued().unwrap().is_empty());
    }

    #[test]
    fn replay_queues_stored_events_again_in_order() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        let acme = company("acme");
        outbox
            .commit(&acme, &[message("A1", "c"), message("A2", "c")], &[])
            .unwrap();
        let keys = outbox
            .replay(&acme, 0, "message.received", &[Target::Company], 100)
            .unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[0] < keys[1]);
        let queued = outbox.queued().unwrap();
        assert_eq!(queued[0].1.event_id, "evt_A1");
        assert_eq!(queued[1].1.event_id, "evt_A2");
        let event = outbox.event(&acme, queued[0].1.event_seq).unwrap().unwrap();
        assert_eq!(event.id, "evt_A1");
    }

    #[test]
    fn delivery_ids_round_trip_and_keys_decode() {
        let key = DeliveryKey {
            company: company("acme"),
            seq: 42,
            target: Target::Global,
        };
        assert_eq!(key.public_id(), "42-global");
        assert_eq!(
            DeliveryKey::parse_public_id(&company("acme"), "42-global"),
            Some(key.clone())
        );
        assert_eq!(DeliveryKey::parse_public_id(&company("acme"), "42-x"), None);
        assert_eq!(DeliveryKey::decode(&key.encode()), Some(key));
    }

    #[test]
    fn pruning_keeps_the_newest_rows_per_company() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        for name in ["a", "b"] {
            let c = company(name);
            let events: Vec<NewEvent> = (0..5).map(|i| message(&format!("M{i}"), "c")).collect();
            for committed in outbox.commit(&c, &events, &[Target::Company]).unwrap() {
                let key = &committed.queued[0];
                let d = outbox.get_queued(key).unwrap().unwrap();
                outbox.finish(key, &d, DeliveryState::Delivered).unwrap();
            }
        }
        assert_eq!(outbox.prune_delivered(2).unwrap(), 6);
        let kept = outbox
            .list(&company("a"), DeliveryState::Delivered, 10)
            .unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].1.event_id, "evt_M4");
    }

    #[test]
    fn retention_prunes_by_commit_time_and_keeps_what_may_still_be_sent() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        let acme = company("acme");
        let deliver = |committed: &Committed, to| {
            let key = &committed.queued[0];
            let d = outbox.get_queued(key).unwrap().unwrap();
            if to != DeliveryState::Queued {
                outbox.finish(key, &d, to).unwrap();
            }
        };
        // Before any mark nothing can be dated, so nothing is pruned.
        let old = outbox
            .commit(
                &acme,
                &[
                    message("OLD-DELIVERED", "c"),
                    message("OLD-DEAD", "c"),
                    message("OLD-QUEUED", "c"),
                ],
                &[Target::Company],
            )
            .unwrap();
        assert_eq!(outbox.prune_before(i64::MAX).unwrap(), Pruned::default());
        deliver(&old[0], DeliveryState::Delivered);
        deliver(&old[1], DeliveryState::Dead);
        deliver(&old[2], DeliveryState::Queued);
        outbox.mark_time(1_000).unwrap();
        let new = outbox
            .commit(&acme, &[message("NEW", "c")], &[Target::Company])
            .unwrap();
        deliver(&new[0], DeliveryState::Delivered);
        outbox.mark_time(2_000).unwrap();

        // Cutoff = the mark at 1 000: only rows committed before it go, and
        // of those only the event nothing may send again.
        let pruned = outbox.prune_before(1_500).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                events: 1,
                dedup_keys: 1,
                delivered: 1
            }
        );
        assert_eq!(outbox.event_count(&acme), 3);
        assert!(
            outbox.list(&acme, DeliveryState::Delivered, 10).unwrap()[0]
                .1
                .event_id
                == "evt_NEW"
        );
        // The pruned message is forgotten (a redelivery now would be new),
        // the dead and queued ones are still deduplicated.
        let again = outbox
            .commit(
                &acme,
                &[
                    message("OLD-DELIVERED", "c"),
                    message("OLD-DEAD", "c"),
                    message("OLD-QUEUED", "c"),
                    message("NEW", "c"),
                ],
                &[],
            )
            .unwrap();
        let duplicates: Vec<bool> = again.iter().map(|c| c.duplicate).collect();
        assert_eq!(duplicates, [false, true, true, true]);
        // Marks older than the cutoff mark are gone; running again is a no-op.
        assert_eq!(outbox.marks.len(), 2);
        assert_eq!(outbox.prune_before(1_500).unwrap(), Pruned::default());
    }

    #[test]
    fn removing_a_company_removes_its_outbox_rows_only() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        outbox
            .commit(&company("a"), &[message("M", "c")], &[Target::Company])
            .unwrap();
        outbox
            .commit(&company("ab"), &[message("M", "c")], &[Target::Company])
            .unwrap();
        store.remove_company(&company("a")).unwrap();
        assert_eq!(outbox.event_count(&company("a")), 0);
        assert_eq!(outbox.event_count(&company("ab")), 1);
        assert_eq!(outbox.queued().unwrap().len(), 1);
    }
}
