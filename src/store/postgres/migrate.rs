//! The PostgreSQL schema's migrations: SQL files in `migrations/`, embedded in
//! the binary, applied in order when a store connects.
//!
//! Why our own few lines instead of a migration crate: the whole job is "run
//! the files this binary knows and the database has not seen, once, in
//! order", and the crates that do it bring a proc macro and a dozen
//! dependencies to a cold build for that.
//!
//! # Invariants
//! - Every migration this binary knows runs at most once per database (its
//!   version is recorded in `wagate_migrations` in the same transaction).
//! - Processes starting at once do not race: the whole run holds a
//!   transaction-scoped advisory lock, so one applies and the others then
//!   find nothing left to do.
//! - A database migrated by a newer wagate (a version this binary does not
//!   know) is refused, never written to.
//! - Migrations are append-only: a released file is never edited.

use crate::store::StoreError;

/// One embedded migration.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order (versions strictly increasing).
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "wa_state",
    sql: include_str!("migrations/0001_wa_state.sql"),
}];

/// Key of the advisory lock that serializes migration runs (any fixed
/// number; "wagate" read as a little-endian integer).
const MIGRATION_LOCK: i64 = 0x6574_6167_6177;

/// Applies the migrations `client`'s database has not seen; returns how many.
pub(super) async fn run(client: &mut deadpool_postgres::Object) -> Result<usize, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS wagate_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query(
            "SELECT version FROM wagate_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&newest) = applied.last()
        && newest > known
    {
        return Err(StoreError::SchemaTooNew {
            found: newest,
            known,
        });
    }
    let mut count = 0;
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO wagate_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
        tracing::info!(
            migration.version = migration.version,
            migration.name = migration.name,
            "applied a PostgreSQL migration"
        );
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn migration_versions_strictly_increase_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1, "{}", migration.name);
        }
    }
}
