//! Retention: pruning delivered rows and events (with their deduplication
//! keys) older than the retention time, never what may still be sent.

use super::*;
use crate::pb;
use crate::store::{StoreError, decode, keys};

/// What [`Outbox::prune_before`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events removed.
    pub events: usize,
    /// Deduplication keys removed.
    pub dedup_keys: usize,
    /// Delivered-log rows removed.
    pub delivered: usize,
}

impl Outbox {
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
        let cutoff = keys::u64_at(&cutoff, 0)
            .ok_or_else(|| StoreError::corrupt("?", "webhook retention mark", "not 8 bytes"))?;

        // Events still referenced by a delivery that may be sent again.
        let mut referenced = std::collections::HashSet::new();
        for tree in [&self.queue, &self.dead] {
            for row in tree {
                let (key, value) = row?;
                let delivery: pb::OutboxDelivery = decode("?", "webhook delivery", &value)?;
                referenced.insert((keys::prefix_of(&key).to_vec(), delivery.event_seq));
            }
        }
        let old_unreferenced = |key: &[u8], seq: u64| {
            seq < cutoff && !referenced.contains(&(keys::prefix_of(key).to_vec(), seq))
        };

        let mut pruned = Pruned::default();
        let mut batch = sled::Batch::default();
        for key in self.events.iter().keys() {
            let key = key?;
            if let Some(seq) = keys::u64_at(&key, keys::prefix_of(&key).len())
                && old_unreferenced(&key, seq)
            {
                batch.remove(key);
                pruned.events += 1;
            }
        }
        self.events.apply_batch(batch)?;

        let mut batch = sled::Batch::default();
        for row in &self.dedup {
            let (key, value) = row?;
            if let Some(seq) = keys::u64_at(&value, 0)
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
            if keys::u64_at(&key, keys::prefix_of(&key).len()).is_some_and(|seq| seq < cutoff) {
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
}
