//! The PostgreSQL store (issue 19): a connection pool to one database, its
//! embedded migrations, and the rows kept there. To the PostgreSQL backend of
//! whatsapp-rust what [`super::Store`] is to the sled one.
//!
//! Driver: `tokio-postgres` behind `deadpool-postgres`'s pool, prepared
//! statements cached per connection. Chosen over `sqlx` for a cold build:
//! no proc macros and about twenty small crates; statements are plain
//! runtime SQL strings, so building never needs a live database.
//!
//! # Layout
//!
//! | table               | key              | value                                  |
//! |---------------------|------------------|----------------------------------------|
//! | `wa_device`         | company          | whatsapp-rust `Device` (as sled's `device` tree) |
//! | `wa_state`          | company + key    | whatsapp-rust Backend state (as sled's `wa` tree) |
//! | `wagate_migrations` | version          | name, when applied ([`migrate`])       |
//!
//! Every row is keyed by its company: statements name exactly one company,
//! so one company never sees another's rows.
//!
//! # Durability
//!
//! A statement (or transaction) returns after PostgreSQL committed it, and a
//! commit is on disk with the server's default `synchronous_commit`: there
//! is no separate flush.
//!
//! # Connections
//!
//! `--database-url` style connection strings (`postgres://user@host/db`, or
//! `postgres:///db?host=/run/postgresql` for a Unix socket). Without TLS for
//! now: loopback and Unix sockets only until the cluster slice adds it.

mod migrate;
#[cfg(test)]
pub(crate) mod test_db;
mod wa_rows;

pub use wa_rows::PgWaRows;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{Sealer, StoreError, StoreKey};
use crate::domain::CompanyId;

/// Connections the pool keeps open at most. Each statement holds one for its
/// duration only, so a few serve many sessions; PostgreSQL's own default
/// limit is 100 connections for every process together.
pub const POOL_SIZE: usize = 16;

/// Handle to the PostgreSQL store. Cheap to clone: every clone shares one pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Seals secret-bearing values with the store key, if one is configured.
    sealer: Sealer,
}

impl PgStore {
    /// Connects to the database at `url` and applies the migrations it has
    /// not seen. Values are sealed with `key`, if any (as in the sled store).
    /// Not yet checked against the key the data was sealed with (the sled
    /// store's check value lives in its settings, which come to PostgreSQL
    /// with the gateway's own store): until then a wrong key shows as
    /// unreadable rows of the companies it sealed.
    pub async fn connect(url: &str, key: Option<&StoreKey>) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        Self::connect_with(config, key).await
    }

    /// [`PgStore::connect`] with a parsed configuration.
    pub async fn connect_with(
        config: tokio_postgres::Config,
        key: Option<&StoreKey>,
    ) -> Result<PgStore, StoreError> {
        let manager = Manager::from_config(
            config,
            NoTls,
            // A pooled connection is checked by its state, not a round trip:
            // a broken one fails its statement, and the next one gets a fresh.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|error| StoreError::PostgresPool(error.to_string()))?;
        let store = PgStore {
            pool,
            sealer: Sealer::new(key),
        };
        let applied = migrate::run(&mut store.client().await?).await?;
        tracing::info!(migrations.applied = applied, "connected to PostgreSQL");
        Ok(store)
    }

    /// `company`'s whatsapp-rust rows (the storage under `crate::wa`'s backend).
    pub fn wa_rows(&self, company: &CompanyId) -> PgWaRows {
        PgWaRows::new(self.clone(), company)
    }

    /// Removes all whatsapp-rust state of `company` (device and every
    /// `wa_state` row) in one transaction. Other companies are untouched. The
    /// company's client must be stopped first: a client still running could
    /// write new rows after the wipe.
    pub async fn wipe_credentials(&self, company: &CompanyId) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for sql in [
            "DELETE FROM wa_device WHERE company = $1",
            "DELETE FROM wa_state WHERE company = $1",
        ] {
            tx.execute(sql, &[&company.as_str()]).await?;
        }
        Ok(tx.commit().await?)
    }

    /// The sealer values of this store are sealed with.
    pub(crate) fn sealer(&self) -> Sealer {
        self.sealer.clone()
    }

    /// Closes the pool: every connection, now or when it is handed back.
    pub fn close(&self) {
        self.pool.close();
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::PostgresPool(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::test_db;
    use crate::store::StoreError;

    #[tokio::test]
    async fn migrations_run_once_and_a_newer_schema_is_refused() {
        let Some(pg) = test_db::start(None).await else {
            return;
        };
        let mut client = pg.connect_again().await.unwrap().client().await.unwrap();
        assert_eq!(
            super::migrate::run(&mut client).await.unwrap(),
            0,
            "a second connect finds every migration applied"
        );
        drop(client);
        pg.execute(
            "INSERT INTO wagate_migrations (version, name) VALUES (9999, 'from the future')",
        )
        .await;
        let Err(error) = pg.connect_again().await else {
            panic!("a schema migrated by a newer wagate was accepted");
        };
        assert!(
            matches!(error, StoreError::SchemaTooNew { found: 9999, .. }),
            "{error}"
        );
        pg.drop_schema().await;
    }

    #[tokio::test]
    async fn wiping_a_company_leaves_the_company_whose_id_it_prefixes() {
        use wacore::store::traits::{DeviceStore as _, SignalStore as _};

        use crate::wa::PgBackend;
        use crate::wa::backend::tests::company;

        let Some(pg) = test_db::start(None).await else {
            return;
        };
        let (a, ab) = (company("a"), company("ab"));
        for id in [&a, &ab] {
            let backend = PgBackend::open(&pg.store, id);
            backend.create().await.unwrap();
            backend
                .put_session("1555@s.whatsapp.net", b"s")
                .await
                .unwrap();
        }
        pg.store.wipe_credentials(&a).await.unwrap();
        let (wiped, kept) = (
            PgBackend::open(&pg.store, &a),
            PgBackend::open(&pg.store, &ab),
        );
        assert!(!wiped.exists().await.unwrap());
        assert!(!wiped.has_session("1555@s.whatsapp.net").await.unwrap());
        assert!(kept.exists().await.unwrap());
        assert!(kept.has_session("1555@s.whatsapp.net").await.unwrap());
        pg.drop_schema().await;
    }

    #[tokio::test]
    async fn a_bad_connection_string_is_an_error_that_shows_no_password() {
        let Err(error) =
            super::PgStore::connect("postgres://u:s3cret@/db?port=notaport", None).await
        else {
            panic!("a bad connection string connected");
        };
        assert!(
            !format!("{error} {error:?}").contains("s3cret"),
            "{error:?}"
        );
    }
}
