//! [`WaRows`] on sled: one company's row in the `device` tree and its rows
//! under the company prefix in the shared `wa` tree.
//!
//! Multi-row writes are one sled batch; [`WaRows::update`] is a sled
//! transaction. Nothing is flushed except a device row written `durable`
//! (pairing); the rest rides sled's background flusher (see the store's
//! "Flush policy").
//!
//! # Blocking
//! sled calls are made inline, like everywhere in the store: they hit sled's
//! page cache and in-memory log (microseconds), so the async functions here
//! never wait on anything but a flush.

use sled::transaction::ConflictableTransactionError;

use super::wa_rows::{RowView, RowWrite, WaRows};
use super::{Durable, Store, StoreError, keys};
use crate::domain::CompanyId;

type Result<T> = std::result::Result<T, StoreError>;

/// One company's whatsapp-rust rows in the sled store. Obtain it with
/// [`Store::wa_rows`]; cheap to build (sled trees are `Arc`s).
pub struct SledWaRows {
    /// The company's key in the `device` tree.
    device_key: Vec<u8>,
    durable: Durable,
    device: sled::Tree,
    wa: sled::Tree,
}

impl Store {
    /// `company`'s whatsapp-rust rows (the storage under `crate::wa`'s backend).
    pub fn wa_rows(&self, company: &CompanyId) -> SledWaRows {
        SledWaRows {
            device_key: keys::company_row(company),
            durable: self.durable.clone(),
            device: self.trees.device.clone(),
            wa: self.trees.wa.clone(),
        }
    }
}

impl WaRows for SledWaRows {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.wa.get(key)?.map(|value| value.to_vec()))
    }

    async fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.wa.contains_key(key)?)
    }

    async fn take(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // sled's `remove` returns the old value atomically.
        Ok(self.wa.remove(key)?.map(|value| value.to_vec()))
    }

    /// One row as a plain write, several as one sled batch.
    ///
    /// The single-row case matters: whatsapp-rust writes every live inbound
    /// message's pending row (and deletes it) as a batch of one, and every
    /// sled batch or transaction seals and writes sled's current log buffer
    /// twice (`pin_log`), an `fsync`-like `sync_file_range` each time. A plain
    /// write of one key is just as atomic and only appends to the log.
    async fn write(&self, rows: Vec<RowWrite>) -> Result<()> {
        let mut rows = rows.into_iter();
        match (rows.next(), rows.len()) {
            (None, _) => {}
            (Some((key, Some(value))), 0) => {
                self.wa.insert(key, value)?;
            }
            (Some((key, None)), 0) => {
                self.wa.remove(key)?;
            }
            (Some(first), _) => {
                let mut batch = sled::Batch::default();
                for (key, value) in std::iter::once(first).chain(rows) {
                    match value {
                        Some(value) => batch.insert(key, value),
                        None => batch.remove(key),
                    }
                }
                self.wa.apply_batch(batch)?;
            }
        }
        Ok(())
    }

    async fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut rows = Vec::new();
        for row in self.wa.scan_prefix(prefix) {
            let (key, value) = row?;
            rows.push((key.to_vec(), value.to_vec()));
        }
        Ok(rows)
    }

    async fn scan_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for key in self.wa.scan_prefix(prefix).keys() {
            keys.push(key?.to_vec());
        }
        Ok(keys)
    }

    async fn edge_key(&self, prefix: &[u8], last: bool) -> Result<Option<Vec<u8>>> {
        let mut keys = self.wa.scan_prefix(prefix).keys();
        let edge = if last { keys.next_back() } else { keys.next() };
        Ok(edge.transpose()?.map(|key| key.to_vec()))
    }

    async fn update<F>(&self, reads: Vec<Vec<u8>>, change: F) -> Result<()>
    where
        F: Fn(&mut RowView) -> Result<()> + Send + Sync,
    {
        Ok(self.wa.transaction(|tx| {
            let mut read = Vec::with_capacity(reads.len());
            for key in &reads {
                read.push((key.clone(), tx.get(key)?.map(|value| value.to_vec())));
            }
            let mut view = RowView::new(read);
            change(&mut view).map_err(ConflictableTransactionError::Abort)?;
            for (key, value) in view.into_writes() {
                match value {
                    Some(value) => tx.insert(key, value)?,
                    None => tx.remove(key)?,
                };
            }
            Ok(())
        })?)
    }

    async fn device(&self) -> Result<Option<Vec<u8>>> {
        Ok(self
            .device
            .get(&self.device_key)?
            .map(|value| value.to_vec()))
    }

    async fn device_exists(&self) -> Result<bool> {
        Ok(self.device.contains_key(&self.device_key)?)
    }

    async fn put_device(&self, value: Vec<u8>, durable: bool) -> Result<()> {
        self.device.insert(&self.device_key, value)?;
        if durable {
            self.durable.flush().await?;
        }
        Ok(())
    }

    async fn create_device(&self, value: Vec<u8>) -> Result<()> {
        // compare-and-swap: a concurrent create never replaces a stored device.
        let _ = self
            .device
            .compare_and_swap(&self.device_key, None::<&[u8]>, Some(value))?;
        Ok(())
    }
}
