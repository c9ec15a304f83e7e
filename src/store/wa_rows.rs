//! The rows whatsapp-rust's state is kept in, as one small interface both
//! stores implement: sled ([`super::SledWaRows`]) and PostgreSQL
//! ([`super::postgres::PgWaRows`]).
//!
//! A [`WaRows`] is one company's view: its single device row and its `wa`
//! rows, each an opaque key (built by [`super::keys::WaKeys`], company prefix
//! first) with an opaque value. Everything whatsapp-rust means by those rows
//! (which key holds what, how values are encoded and sealed, how a
//! read-modify-write merges) lives once, above this interface, in
//! `crate::wa::backend`; the store implementations only keep bytes. So both
//! stores hold the same keys and the same (sealed) values: a sealed value is
//! bound to its key, and copying rows from one store to the other is a plain
//! copy.
//!
//! # Atomicity
//! [`WaRows::write`] applies all its rows or none; [`WaRows::update`] reads
//! some rows and writes what its closure decides as one serializable step
//! (a sled transaction, a PostgreSQL transaction under the company's lock).

use std::collections::HashMap;
use std::future::Future;

use super::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// One row of a [`WaRows::write`]: its key and `Some(value)` to store, or
/// `None` to remove it.
pub type RowWrite = (Vec<u8>, Option<Vec<u8>>);

/// One company's whatsapp-rust rows in a store. Values are handed over as
/// stored (sealed or not: the caller decides).
pub trait WaRows: Send + Sync + 'static {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Whether `key` has a value.
    fn contains(&self, key: &[u8]) -> impl Future<Output = Result<bool>> + Send;

    /// Removes `key`, returning its value: of two concurrent takes, one gets it.
    fn take(&self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Applies `rows` atomically; of two writes of one key, the later wins.
    fn write(&self, rows: Vec<RowWrite>) -> impl Future<Output = Result<()>> + Send;

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> impl Future<Output = Result<Vec<(Vec<u8>, Vec<u8>)>>> + Send;

    /// Every key that starts with `prefix`, in key order.
    fn scan_keys(&self, prefix: &[u8]) -> impl Future<Output = Result<Vec<Vec<u8>>>> + Send;

    /// The first (`last: false`) or last (`last: true`) key that starts with
    /// `prefix`.
    fn edge_key(
        &self,
        prefix: &[u8],
        last: bool,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Reads the rows `reads`, lets `change` see them and stage writes on a
    /// [`RowView`], and applies the writes, all as one atomic, isolated step.
    /// `change` may run more than once (a retried transaction) and must not
    /// have other effects.
    fn update<F>(&self, reads: Vec<Vec<u8>>, change: F) -> impl Future<Output = Result<()>> + Send
    where
        F: Fn(&mut RowView) -> Result<()> + Send + Sync;

    /// The company's device row.
    fn device(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Whether the company has a device row.
    fn device_exists(&self) -> impl Future<Output = Result<bool>> + Send;

    /// Stores the device row; with `durable`, it is on disk before this returns
    /// (a store whose every commit is durable ignores the flag).
    fn put_device(&self, value: Vec<u8>, durable: bool) -> impl Future<Output = Result<()>> + Send;

    /// Stores the device row unless one exists (never replaces it).
    fn create_device(&self, value: Vec<u8>) -> impl Future<Output = Result<()>> + Send;
}

/// The rows a [`WaRows::update`] read, with the writes its closure staged
/// on top: a read after a write sees the write.
#[derive(Debug, Default)]
pub struct RowView {
    current: HashMap<Vec<u8>, Option<Vec<u8>>>,
    writes: Vec<RowWrite>,
}

impl RowView {
    /// A view of `reads` (each key with its stored value, if any).
    pub fn new(reads: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> RowView {
        RowView {
            current: reads.into_iter().collect(),
            writes: Vec::new(),
        }
    }

    /// The value of `key`: the last staged write, else what was read. A key
    /// neither read nor written is absent (callers read every key they look at).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        debug_assert!(
            self.current.contains_key(key),
            "a RowView is asked for a key it did not read"
        );
        self.current.get(key).and_then(Option::as_deref)
    }

    /// Stages `value` for `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.stage(key, Some(value));
    }

    /// Stages the removal of `key`.
    pub fn remove(&mut self, key: Vec<u8>) {
        self.stage(key, None);
    }

    fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.current.insert(key.clone(), value.clone());
        self.writes.push((key, value));
    }

    /// The staged writes, in order.
    pub fn into_writes(self) -> Vec<RowWrite> {
        self.writes
    }
}

/// `rows` with only the last write of each key, in first-write order: what a
/// store that cannot write one key twice in a statement applies.
pub(crate) fn last_write_wins(rows: Vec<RowWrite>) -> Vec<RowWrite> {
    let mut at: HashMap<Vec<u8>, usize> = HashMap::with_capacity(rows.len());
    let mut unique: Vec<RowWrite> = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        match at.get(&key) {
            Some(&index) => unique[index].1 = value,
            None => {
                at.insert(key.clone(), unique.len());
                unique.push((key, value));
            }
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::CompanyId;
    use crate::store::Store;
    use crate::store::postgres::test_db;

    /// A counter row's value.
    fn counter(value: Option<&[u8]>) -> u64 {
        value.map_or(0, |bytes| u64::from_be_bytes(bytes.try_into().unwrap()))
    }

    /// Runs 32 concurrent updates that each add one to a counter row; the count.
    async fn concurrent_increments(rows: Arc<impl WaRows>) -> u64 {
        let key = b"counter".to_vec();
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (rows, key) = (rows.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let reads = vec![key.clone()];
                rows.update(reads, |view| {
                    let next = counter(view.get(&key)) + 1;
                    view.put(key.clone(), next.to_be_bytes().to_vec());
                    Ok(())
                })
                .await
                .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        counter(rows.get(&key).await.unwrap().as_deref())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_of_one_row_never_lose_a_write() {
        let acme = CompanyId::parse("acme").unwrap();
        let store = Store::open_temporary().unwrap();
        assert_eq!(
            concurrent_increments(Arc::new(store.wa_rows(&acme))).await,
            32
        );
        if let Some(pg) = test_db::start(None).await {
            let rows = Arc::new(pg.store.wa_rows(&acme));
            assert_eq!(concurrent_increments(rows).await, 32, "PostgreSQL");
            pg.drop_schema().await;
        }
    }

    #[test]
    fn a_view_reads_its_own_writes_and_keeps_their_order() {
        let mut view = RowView::new([(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)]);
        assert_eq!(view.get(b"a"), Some(&b"1"[..]));
        assert_eq!(view.get(b"b"), None);
        view.put(b"b".to_vec(), b"2".to_vec());
        view.remove(b"a".to_vec());
        assert_eq!(view.get(b"a"), None);
        assert_eq!(view.get(b"b"), Some(&b"2"[..]));
        assert_eq!(
            view.into_writes(),
            vec![(b"b".to_vec(), Some(b"2".to_vec())), (b"a".to_vec(), None)]
        );
    }

    #[test]
    fn the_last_write_of_a_key_wins() {
        let rows = vec![
            (b"k".to_vec(), Some(b"1".to_vec())),
            (b"j".to_vec(), None),
            (b"k".to_vec(), None),
            (b"j".to_vec(), Some(b"2".to_vec())),
        ];
        assert_eq!(
            last_write_wins(rows),
            vec![(b"k".to_vec(), None), (b"j".to_vec(), Some(b"2".to_vec()))]
        );
    }
}
