//! A throwaway PostgreSQL store for tests: a fresh schema of the server named
//! by `WAGATE_TEST_DATABASE_URL` per test, dropped afterwards, so tests run in
//! parallel and never see each other's rows.
//!
//! Without the variable a test that needs PostgreSQL prints a loud SKIPPED
//! notice (once per test binary) and passes, unless `WAGATE_REQUIRE_POSTGRES`
//! is set (CI sets both, see `.ci/postgres`): then it fails. Start a server by
//! hand with `.ci/postgres start` (README, "Run the tests").

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

use super::PgStore;
use crate::store::StoreKey;

/// The server tests use (a connection string).
pub(crate) const URL_VAR: &str = "WAGATE_TEST_DATABASE_URL";
/// Set: a missing server fails the tests instead of skipping them.
pub(crate) const REQUIRE_VAR: &str = "WAGATE_REQUIRE_POSTGRES";

/// A store in its own schema; [`TestPg::drop_schema`] removes it.
pub(crate) struct TestPg {
    pub(crate) store: PgStore,
    schema: String,
    /// The schema's connection settings.
    config: tokio_postgres::Config,
    admin: tokio_postgres::Config,
}

/// A fresh store sealing with `key`, or `None` (after the notice) when no
/// server is configured.
///
/// # Panics
/// When the server is configured but unusable, or none is configured and
/// [`REQUIRE_VAR`] is set.
pub(crate) async fn start(key: Option<&StoreKey>) -> Option<TestPg> {
    let Some(url) = std::env::var_os(URL_VAR).filter(|url| !url.is_empty()) else {
        let message = format!(
            "{URL_VAR} is not set: the PostgreSQL backend tests did not run (start a server with `.ci/postgres start`)"
        );
        if std::env::var_os(REQUIRE_VAR).is_some() {
            panic!("{REQUIRE_VAR} is set: {message}");
        }
        notice_once(&message);
        return None;
    };
    let url = url
        .into_string()
        .expect("WAGATE_TEST_DATABASE_URL is UTF-8");
    let admin: tokio_postgres::Config = url.parse().expect("WAGATE_TEST_DATABASE_URL parses");
    let schema = unique_schema();
    // A schema of the same name is a dead process's leftover (same pid).
    execute(
        &admin,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .await;
    let mut config = admin.clone();
    config.options(format!("-c search_path={schema}"));
    let store = PgStore::connect_with(config.clone(), key)
        .await
        .expect("connect to the test schema");
    Some(TestPg {
        store,
        schema,
        config,
        admin,
    })
}

impl TestPg {
    /// Closes the store and drops its schema with every row in it.
    pub(crate) async fn drop_schema(self) {
        self.store.close();
        execute(&self.admin, &format!("DROP SCHEMA {} CASCADE", self.schema)).await;
    }

    /// Connects another store (as another process would) to the same schema.
    pub(crate) async fn connect_again(&self) -> Result<PgStore, crate::store::StoreError> {
        PgStore::connect_with(self.config.clone(), None).await
    }

    /// Runs `sql` in the schema (a test's setup).
    pub(crate) async fn execute(&self, sql: &str) {
        execute(&self.config, sql).await;
    }

    /// Every stored `(key, value)` of whatsapp-rust's rows and every device
    /// row's value (with an empty key), whoever's they are.
    pub(crate) async fn raw_rows(&self) -> (Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<u8>>) {
        let client = self.store.client().await.expect("a pooled connection");
        let wa = client
            .query("SELECT key, value FROM wa_state", &[])
            .await
            .expect("read wa_state");
        let device = client
            .query("SELECT value FROM wa_device", &[])
            .await
            .expect("read wa_device");
        (
            wa.iter().map(|row| (row.get(0), row.get(1))).collect(),
            device.iter().map(|row| row.get(0)).collect(),
        )
    }
}

/// `wagate_test_<pid>_<n>`: unique among the tests of every running binary
/// on one server (a plain identifier: no quoting needed).
fn unique_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "wagate_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `sql` on its own connection to the server.
async fn execute(config: &tokio_postgres::Config, sql: &str) {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|error| panic!("connect to {URL_VAR}: {error}"));
    let driver = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    drop(client);
    let _ = driver.await;
}

/// Writes `message` framed to stderr once per process, past the test
/// harness's capture (like the browser tests' notice).
fn notice_once(message: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write as _;
        let bar = "=".repeat(78);
        let _ =
            std::io::stderr().write_all(format!("\n{bar}\nSKIPPED: {message}\n{bar}\n").as_bytes());
    });
}
