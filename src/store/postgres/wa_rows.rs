//! [`WaRows`] on PostgreSQL: one company's row in `wa_device` and its rows
//! in `wa_state` (see the migrations).
//!
//! Every statement names the company, so it touches that company's rows
//! only. A multi-row write is one statement (or one transaction when it both
//! writes and removes); [`WaRows::update`] is one transaction holding the
//! company's advisory lock, so concurrent read-modify-writes of one company
//! are serialized even for rows that do not exist yet (which `SELECT … FOR
//! UPDATE` could not lock).

use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::domain::CompanyId;
use crate::store::StoreError;
use crate::store::wa_rows::{RowView, RowWrite, WaRows, last_write_wins};

type Result<T> = std::result::Result<T, StoreError>;

/// First key of the advisory locks that serialize one company's updates
/// (the second is the hash of its id). Distinct from the migration lock.
const UPDATE_LOCK_CLASS: i32 = 0x7761;

/// One company's whatsapp-rust rows in the PostgreSQL store. Obtain it with
/// [`PgStore::wa_rows`]; cheap to build.
pub struct PgWaRows {
    store: PgStore,
    company: String,
}

impl PgWaRows {
    pub(super) fn new(store: PgStore, company: &CompanyId) -> PgWaRows {
        PgWaRows {
            store,
            company: company.as_str().to_owned(),
        }
    }

    /// The rows of one statement that reads `sql` with the company and `params`.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.store.client().await?;
        let statement = client.prepare_cached(sql).await?;
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&self.company];
        all.extend_from_slice(params);
        Ok(client.query(&statement, &all).await?)
    }

    /// The first column of the first row `sql` returns, if any.
    async fn first(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.query(sql, params).await?.first().map(|row| row.get(0)))
    }

    /// Whether `sql` returns a row.
    async fn any(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool> {
        Ok(!self.query(sql, params).await?.is_empty())
    }

    /// The prefix scan's rows: `columns` of every row whose key starts with
    /// `prefix`, in key order.
    async fn scan_rows(&self, columns: &str, prefix: &[u8]) -> Result<Vec<tokio_postgres::Row>> {
        let end = prefix_end(prefix);
        self.query(
            &format!(
                "SELECT {columns} FROM wa_state WHERE company = $1 AND key >= $2 \
                 AND ($3::bytea IS NULL OR key < $3) ORDER BY key"
            ),
            &[&prefix, &end],
        )
        .await
    }
}

impl WaRows for PgWaRows {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.first(
            "SELECT value FROM wa_state WHERE company = $1 AND key = $2",
            &[&key],
        )
        .await
    }

    async fn contains(&self, key: &[u8]) -> Result<bool> {
        self.any(
            "SELECT 1 FROM wa_state WHERE company = $1 AND key = $2",
            &[&key],
        )
        .await
    }

    async fn take(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.first(
            "DELETE FROM wa_state WHERE company = $1 AND key = $2 RETURNING value",
            &[&key],
        )
        .await
    }

    async fn write(&self, rows: Vec<RowWrite>) -> Result<()> {
        let writes = Writes::from(rows);
        if writes.keys.is_empty() && writes.removes.is_empty() {
            return Ok(());
        }
        let mut client = self.store.client().await?;
        if writes.keys.is_empty() || writes.removes.is_empty() {
            // One statement is atomic by itself.
            return writes.apply(&client, &self.company).await;
        }
        let tx = client.transaction().await?;
        writes.apply(&tx, &self.company).await?;
        Ok(tx.commit().await?)
    }

    async fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = self.scan_rows("key, value", prefix).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn scan_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let rows = self.scan_rows("key", prefix).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn edge_key(&self, prefix: &[u8], last: bool) -> Result<Option<Vec<u8>>> {
        let end = prefix_end(prefix);
        let order = if last { "DESC" } else { "ASC" };
        self.first(
            &format!(
                "SELECT key FROM wa_state WHERE company = $1 AND key >= $2 \
                 AND ($3::bytea IS NULL OR key < $3) ORDER BY key {order} LIMIT 1"
            ),
            &[&prefix, &end],
        )
        .await
    }

    async fn update<F>(&self, reads: Vec<Vec<u8>>, change: F) -> Result<()>
    where
        F: Fn(&mut RowView) -> Result<()> + Send + Sync,
    {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .await?;
        tx.execute(&lock, &[&UPDATE_LOCK_CLASS, &self.company])
            .await?;
        let select = tx
            .prepare_cached("SELECT key, value FROM wa_state WHERE company = $1 AND key = ANY($2)")
            .await?;
        let found = tx.query(&select, &[&self.company, &reads]).await?;
        let current: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            found.iter().map(|row| (row.get(0), row.get(1))).collect();
        // `get`, not `remove`: a key may be read twice (a batch naming it twice).
        let mut view = RowView::new(reads.into_iter().map(|key| {
            let value = current.get(&key).cloned();
            (key, value)
        }));
        change(&mut view)?;
        Writes::from(view.into_writes())
            .apply(&tx, &self.company)
            .await?;
        Ok(tx.commit().await?)
    }

    async fn device(&self) -> Result<Option<Vec<u8>>> {
        self.first("SELECT value FROM wa_device WHERE company = $1", &[])
            .await
    }

    async fn device_exists(&self) -> Result<bool> {
        self.any("SELECT 1 FROM wa_device WHERE company = $1", &[])
            .await
    }

    /// Every commit is durable: `durable` asks for nothing more.
    async fn put_device(&self, value: Vec<u8>, _durable: bool) -> Result<()> {
        self.query(
            "INSERT INTO wa_device (company, value) VALUES ($1, $2) \
             ON CONFLICT (company) DO UPDATE SET value = excluded.value",
            &[&value],
        )
        .await?;
        Ok(())
    }

    async fn create_device(&self, value: Vec<u8>) -> Result<()> {
        self.query(
            "INSERT INTO wa_device (company, value) VALUES ($1, $2) \
             ON CONFLICT (company) DO NOTHING",
            &[&value],
        )
        .await?;
        Ok(())
    }
}

/// The upserts and removals of one write, each key once.
#[derive(Debug, PartialEq)]
struct Writes {
    /// Keys to store, and their values at the same index.
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    removes: Vec<Vec<u8>>,
}

impl From<Vec<RowWrite>> for Writes {
    /// The last write of a key wins: one `INSERT … ON CONFLICT` cannot touch
    /// a row twice.
    fn from(rows: Vec<RowWrite>) -> Writes {
        let mut writes = Writes {
            keys: Vec::new(),
            values: Vec::new(),
            removes: Vec::new(),
        };
        for (key, value) in last_write_wins(rows) {
            match value {
                Some(value) => {
                    writes.keys.push(key);
                    writes.values.push(value);
                }
                None => writes.removes.push(key),
            }
        }
        writes
    }
}

impl Writes {
    /// Applies the writes to `company`'s rows through `client`.
    async fn apply(&self, client: &impl GenericClient, company: &str) -> Result<()> {
        if !self.keys.is_empty() {
            let upsert = client
                .prepare_cached(
                    "INSERT INTO wa_state (company, key, value) \
                     SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS t(k, v) \
                     ON CONFLICT (company, key) DO UPDATE SET value = excluded.value",
                )
                .await?;
            client
                .execute(&upsert, &[&company, &self.keys, &self.values])
                .await?;
        }
        if !self.removes.is_empty() {
            let delete = client
                .prepare_cached("DELETE FROM wa_state WHERE company = $1 AND key = ANY($2)")
                .await?;
            client.execute(&delete, &[&company, &self.removes]).await?;
        }
        Ok(())
    }
}

/// The smallest key after every key that starts with `prefix`, or `None`
/// when there is none (an empty prefix, or only `0xff` bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_before_the_next_prefix_of_its_length() {
        assert_eq!(prefix_end(b"\x02ab"), Some(b"\x02ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn writes_split_into_upserts_and_removals_with_the_last_write_winning() {
        let rows = vec![
            (b"a".to_vec(), Some(b"1".to_vec())),
            (b"b".to_vec(), Some(b"2".to_vec())),
            (b"a".to_vec(), None),
        ];
        assert_eq!(
            Writes::from(rows),
            Writes {
                keys: vec![b"b".to_vec()],
                values: vec![b"2".to_vec()],
                removes: vec![b"a".to_vec()],
            }
        );
    }
}
