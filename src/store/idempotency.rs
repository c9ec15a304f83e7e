//! Idempotency keys of sends: the message id a send with a client's key
//! produced, stamped with its time, pruned after the configured TTL (tree
//! `idempotency`, key encoding in [`super::keys::idempotency`]).

use super::{Store, StoreError, keys};
use crate::domain::CompanyId;

impl Store {
    /// The message id a send with this idempotency key produced, if any
    /// (and not yet pruned: see [`Store::prune_idempotency_keys`]).
    pub fn idempotent_message_id(
        &self,
        company: &CompanyId,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.trees
            .idempotency
            .get(keys::idempotency(company, key))?
            .map(|value| {
                let (_, message_id) = split_idempotency_row(&value);
                String::from_utf8(message_id.to_vec()).map_err(|error| {
                    StoreError::corrupt(company.as_str(), "idempotency key", error)
                })
            })
            .transpose()
    }

    /// Remembers the message id a send with this idempotency key produced,
    /// stamped with the current time (for [`Store::prune_idempotency_keys`]).
    pub fn remember_idempotent_message_id(
        &self,
        company: &CompanyId,
        key: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let created_ms = u64::try_from(crate::domain::now_ms()).unwrap_or(0);
        let mut value = Vec::with_capacity(8 + message_id.len());
        value.extend_from_slice(&created_ms.to_be_bytes());
        value.extend_from_slice(message_id.as_bytes());
        self.trees
            .idempotency
            .insert(keys::idempotency(company, key), value)?;
        Ok(())
    }

    /// Removes every idempotency key (of every company) remembered before
    /// `cutoff_ms` (unix ms); returns how many. A retry with a pruned key
    /// sends again, so callers keep keys for much longer than any client
    /// retries (the gateway: `--idempotency-ttl-hours`, a day by default).
    pub fn prune_idempotency_keys(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let cutoff = u64::try_from(cutoff_ms).unwrap_or(0);
        let mut expired = Vec::new();
        for row in self.trees.idempotency.iter() {
            let (key, value) = row?;
            if split_idempotency_row(&value).0 < cutoff {
                expired.push(key);
            }
        }
        // Bounded batches: one sweep must not build one huge sled batch.
        for chunk in expired.chunks(1024) {
            let mut batch = sled::Batch::default();
            for key in chunk {
                batch.remove(key.clone());
            }
            self.trees.idempotency.apply_batch(batch)?;
        }
        Ok(expired.len())
    }
}

/// An idempotency row's creation time (unix ms) and message id. Rows written
/// before keys carried a time (a bare message id, never starting with a NUL
/// byte, unlike a big-endian time of this era) count as created at 0, so the
/// next prune removes them.
fn split_idempotency_row(value: &[u8]) -> (u64, &[u8]) {
    match value.split_first_chunk::<8>() {
        Some((created, message_id)) if created[0] == 0 => {
            (u64::from_be_bytes(*created), message_id)
        }
        _ => (0, value),
    }
}
