//! The one durable store: a sled database (by default `./sessions/`) holding the
//! company registry, every company's whatsapp-rust credentials, session state
//! transitions, idempotency keys and process-wide settings.
//!
//! # Layout
//!
//! A few shared trees with company-prefixed keys, never a tree per company
//! (measured ~10x worse on disk, RSS and open time; see DESIGN.md). All key
//! encodings live in [`keys`].
//!
//! | tree          | key                               | value                                |
//! |---------------|-----------------------------------|--------------------------------------|
//! | `registry`    | company id                        | [`pb::CompanyRecord`]                |
//! | `device`      | company id                        | whatsapp-rust `Device` (JSON)        |
//! | `wa`          | company prefix + category + parts | whatsapp-rust Backend state          |
//! | `transitions` | company prefix + sequence         | [`pb::StateTransition`]              |
//! | `idempotency` | company prefix + client key       | created (unix ms, u64 BE) + message id |
//! | `sent`        | company prefix + chat + message id | created (unix ms, u64 BE) + kind     |
//! | `settings`    | setting name                      | raw bytes                            |
//!
//! # Sealing
//!
//! With a store key ([`StoreKey`], `WAGATE_STORE_KEY`), the values that give
//! away an account or a tenant's secrets are sealed ([`sealed`]): every
//! `device` and `registry` row, every `settings` row, and the `wa` rows of the
//! secret categories ([`keys::Category::SECRET`]). Keys, and every other
//! value, stay in clear. [`store_key`] checks at open that the key is the one
//! the store was sealed with, and seals a clear store the first time it is
//! opened with a key. Without a key nothing is sealed and nothing costs more.
//!
//! whatsapp-rust's rows (`device`, `wa`) are reached through [`WaRows`], one
//! company at a time: implemented here on sled ([`SledWaRows`]) and in
//! [`postgres`] on PostgreSQL, so `crate::wa`'s backend is one code on both
//! stores. The rest of this store is sled only until `--database-url` lands
//! (ARCHITECTURE.md, "Next").
//!
//! The `device` tree holds one small row per company that has credentials, so
//! [`Store::companies_with_credentials`] scans only that tree.
//!
//! # Invariants
//!
//! - Wiping one company ([`Store::wipe_credentials`], [`Store::remove_company`])
//!   is a single sled transaction over every company-scoped tree: after a
//!   crash, either all of the company's rows are gone or none are. Other
//!   companies' keys are never touched (the company prefix is
//!   self-delimiting, see [`keys`]).
//! - Multi-row writes of one Backend call are one sled batch or transaction.
//! - One company's undecodable data yields [`StoreError::Corrupt`] naming that
//!   company; it never fails an operation on another company.
//!
//! # Flush policy
//!
//! sled writes go to its in-memory log and page cache; its background flusher
//! makes them durable every 500 ms (`flush_every_ms`). A crash therefore loses
//! at most the last ~500 ms of writes, and the database always reopens in a
//! consistent state: sled recovers a prefix of its log, cut at the last
//! complete batch/transaction. Where losing a write is not acceptable, the
//! write is flushed explicitly (sled's flush, then `fdatasync` of its log
//! file: see [`Durable`]) before the call returns:
//! - saving a whatsapp-rust `Device` whose own JID changed (pairing):
//!   the whatsapp-rust `Backend` (`crate::wa`) flushes it before `save` returns,
//!   so once whatsapp-rust's `PersistenceManager::flush()` returns after a
//!   `PairSuccess` event, the credentials are on disk (the session actor should
//!   call it before it reports the company as paired);
//! - wiping or removing a company, and registry writes, so an acknowledged
//!   delete or create survives a crash;
//! - [`Store::flush`] for callers with their own durability points (the
//!   outbox's group commit before whatsapp-rust acks a message, shutdown).
//!
//! # Blocking
//!
//! sled calls are made directly from async code, not through `spawn_blocking`:
//! reads and writes hit sled's page cache and in-memory log (microseconds), and
//! a thread hop per call would cost more than the call. Flushes on hot paths
//! ([`Store::flush`], device saves) go through sled's `flush_async`; the rare
//! registry writes, wipes and settings flush synchronously to keep a plain
//! `fn` API (one fsync: milliseconds of one runtime worker).

mod idempotency;
pub(crate) mod keys;
pub mod messages;
pub mod outbox;
pub mod postgres;
mod private_dir;
mod registry;
mod sealed;
mod sent;
mod store_key;
mod wa_rows;
mod wa_sled;

pub use sent::{QuoteTarget, SENT_RETENTION_MS};

mod error;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use prost::Message as _;
use sled::transaction::Transactional as _;

use crate::domain::CompanyId;
use crate::pb;

pub use error::StoreError;
pub(crate) use sealed::Sealer;
pub use sealed::StoreKey;
#[cfg(test)]
pub(crate) use sealed::is_sealed;
pub use wa_rows::{RowView, RowWrite, WaRows};
pub use wa_sled::SledWaRows;

/// How many state transitions are kept per company (oldest dropped first).
pub const TRANSITIONS_KEPT: usize = 50;

/// The shared trees. Cheap to clone (sled trees are `Arc`s).
#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) registry: sled::Tree,
    pub(crate) device: sled::Tree,
    pub(crate) wa: sled::Tree,
    pub(crate) transitions: sled::Tree,
    pub(crate) idempotency: sled::Tree,
    /// Messages the gateway sent (`sent`), for replies and actions.
    pub(crate) sent: sled::Tree,
    pub(crate) settings: sled::Tree,
}

/// Names of the trees whose values may be sealed: part of every sealed
/// value's associated data, so never rename one.
pub(crate) mod tree {
    pub(crate) const REGISTRY: &str = "registry";
    pub(crate) const DEVICE: &str = "device";
    pub(crate) const WA: &str = "wa";
    pub(crate) const SETTINGS: &str = "settings";
}

impl Trees {
    fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            registry: db.open_tree(tree::REGISTRY)?,
            device: db.open_tree(tree::DEVICE)?,
            wa: db.open_tree(tree::WA)?,
            transitions: db.open_tree("transitions")?,
            idempotency: db.open_tree("idempotency")?,
            sent: db.open_tree("sent")?,
            settings: db.open_tree(tree::SETTINGS)?,
        })
    }
}

/// How a company's rows are found in one tree.
enum Rows {
    /// One row under this exact key.
    Exact(Vec<u8>),
    /// Every row whose key starts with this (self-delimiting) prefix.
    Prefix(Vec<u8>),
}

/// Default bound of sled's page cache, in MiB (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_MIB: u64 = 64;

/// Handle to the store. Cheap to clone: every clone shares one sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    durable: Durable,
    trees: Trees,
    /// Seals secret-bearing values with the store key, if one is configured.
    sealer: Sealer,
    /// Serializes outbox commits across every [`outbox::Outbox`] handle.
    outbox_commits: Arc<parking_lot::Mutex<()>>,
}

impl Store {
    /// Opens (or creates) the database in `dir` with the default page cache
    /// ([`DEFAULT_CACHE_MIB`]).
    ///
    /// Fails if another process holds the database (sled takes a file lock).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_MIB << 20)
    }

    /// Opens (or creates) the database in `dir`, letting sled keep up to
    /// `cache_bytes` of its pages in memory.
    ///
    /// The cache bound matters for capacity: sled keeps every page written
    /// since start (pairing writes ~250 KiB of prekeys and keys per company)
    /// until the bound, while an idle linked session's hot rows are a few
    /// KiB. Pages beyond it are read back from the file (the OS page cache).
    ///
    /// Fails if another process holds the database (sled takes a file lock),
    /// and if the store is sealed with a store key ([`Store::open_with_key`]).
    pub fn open_with_cache(dir: impl AsRef<Path>, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::open_with_key(dir, cache_bytes, None)
    }

    /// [`Store::open_with_cache`], sealing secret-bearing values with `key`
    /// (see "Sealing" above).
    ///
    /// Fails with [`StoreError::StoreKeyMissing`] when the store is sealed and
    /// `key` is `None`, and with [`StoreError::WrongStoreKey`] when `key` is
    /// not the key it was sealed with: nothing is written then. A clear store
    /// opened with a key is sealed before this returns.
    pub fn open_with_key(
        dir: impl AsRef<Path>,
        cache_bytes: u64,
        key: Option<&StoreKey>,
    ) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        let open_error = |source| StoreError::Open {
            path: dir.display().to_string(),
            source,
        };
        let loose = private_dir::make_private(dir).map_err(|e| open_error(sled::Error::Io(e)))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(open_error)?;
        let trees = Trees::open(&db).map_err(open_error)?;
        // sled created its files with the process's umask: tighten them too.
        private_dir::make_private(dir).map_err(|e| open_error(sled::Error::Io(e)))?;
        if loose > 0 {
            tracing::warn!(
                path = %dir.display(),
                loose_directories = loose,
                "the data directory holds credentials and was readable by others; made it private (directories 0700, files 0600)"
            );
        }
        // sled's log file (`<dir>/db`), opened only to `fdatasync` it.
        let log =
            std::fs::File::open(dir.join("db")).map_err(|e| open_error(sled::Error::Io(e)))?;
        let store = Store::new(db, Some(log), trees, Sealer::new(key));
        store_key::check(&store, &dir.display().to_string())?;
        Ok(store)
    }

    /// Runs `open` (a reopening of a database this process just dropped)
    /// until sled's file lock is free, for up to 5 s (tests): sled's
    /// background I/O threads may hold the file for a moment after the last
    /// handle is gone. Any other outcome is returned as it is.
    #[cfg(test)]
    pub(crate) fn when_unlocked<T>(
        mut open: impl FnMut() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match open() {
                Err(StoreError::Open {
                    source: sled::Error::Io(e),
                    ..
                }) if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                outcome => return outcome,
            }
        }
    }

    /// Opens a fresh database that is deleted when the last clone is dropped
    /// (tests).
    pub fn open_temporary() -> Result<Store, StoreError> {
        Self::open_temporary_with_key(None)
    }

    /// [`Store::open_temporary`], sealing with `key` (tests).
    pub fn open_temporary_with_key(key: Option<&StoreKey>) -> Result<Store, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        let trees = Trees::open(&db)?;
        let store = Store::new(db, None, trees, Sealer::new(key));
        store_key::check(&store, "(temporary)")?;
        Ok(store)
    }

    fn new(db: sled::Db, log: Option<std::fs::File>, trees: Trees, sealer: Sealer) -> Store {
        Store {
            durable: Durable {
                db: db.clone(),
                log: log.map(Arc::new),
            },
            db,
            trees,
            sealer,
            outbox_commits: Default::default(),
        }
    }

    /// Makes every write so far durable.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future only stops waiting; the flush itself
    /// runs to completion on a blocking thread and writes are never lost by
    /// cancelling.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.durable.flush().await
    }

    /// The trees, to look at rows as they are stored (tests).
    #[cfg(test)]
    pub(crate) fn raw_trees(&self) -> Trees {
        self.trees.clone()
    }

    /// The sealer values of this store are sealed with.
    pub(crate) fn sealer(&self) -> Sealer {
        self.sealer.clone()
    }

    /// The webhook outbox trees (see [`outbox`]).
    pub fn outbox(&self) -> Result<outbox::Outbox, StoreError> {
        outbox::Outbox::open(&self.db, self.outbox_commits.clone())
    }

    /// `company`'s stored whatsapp-rust device row, as the opaque bytes its
    /// owner (`crate::wa`) wrote (opened, when it is sealed).
    pub fn device_row(&self, company: &CompanyId) -> Result<Option<Vec<u8>>, StoreError> {
        let key = keys::company_row(company);
        let Some(row) = self.trees.device.get(&key)? else {
            return Ok(None);
        };
        let clear = self
            .sealer
            .open(tree::DEVICE, &key, &row)
            .map_err(|error| StoreError::corrupt(company.as_str(), "device credentials", error))?;
        Ok(Some(clear.into_owned()))
    }

    /// Every company holding whatsapp-rust credentials (a device row), linked
    /// or not. Cheap: scans only the small `device` tree's keys.
    pub fn companies_with_credentials(&self) -> Result<Vec<CompanyId>, StoreError> {
        let mut companies = Vec::new();
        for key in self.trees.device.iter().keys() {
            let key = key?;
            match std::str::from_utf8(&key)
                .ok()
                .and_then(|id| CompanyId::parse(id).ok())
            {
                Some(company) => companies.push(company),
                // Not a key this store writes; reported, never fatal for others.
                None => tracing::error!(
                    key.len = key.len(),
                    "device tree holds a key that is not a company id; skipped"
                ),
            }
        }
        Ok(companies)
    }

    /// Removes all whatsapp-rust state of `company` (device, keys, sessions,
    /// app state, ...) in one atomic, flushed step. Other companies are
    /// untouched. The company's client must be stopped first: a client still
    /// running could write new rows after the wipe.
    pub fn wipe_credentials(&self, company: &CompanyId) -> Result<(), StoreError> {
        self.remove_rows(&self.credential_rows(company))?;
        self.flush_now()
    }

    /// Removes everything of `company` (registry record, credentials,
    /// transitions, idempotency keys, webhook outbox) in one atomic, flushed step.
    /// The company's client must be stopped first.
    pub fn remove_company(&self, company: &CompanyId) -> Result<(), StoreError> {
        let (outbox, messages) = (self.outbox()?, self.messages()?);
        let mut rows = self.credential_rows(company);
        rows.extend(
            (outbox.company_trees().into_iter())
                .chain(messages.company_trees())
                .map(|tree| (tree, Rows::Prefix(keys::company_prefix(company)))),
        );
        rows.extend([
            (
                &self.trees.registry,
                Rows::Exact(keys::company_row(company)),
            ),
            (
                &self.trees.transitions,
                Rows::Prefix(keys::company_prefix(company)),
            ),
            (
                &self.trees.idempotency,
                Rows::Prefix(keys::company_prefix(company)),
            ),
            (
                &self.trees.sent,
                Rows::Prefix(keys::company_prefix(company)),
            ),
        ]);
        self.remove_rows(&rows)?;
        self.flush_now()
    }

    // ----- state transitions ------------------------------------------------

    /// Appends a state transition of `company`, keeping the newest
    /// [`TRANSITIONS_KEPT`]. Not flushed: transitions are diagnostics.
    pub fn record_transition(
        &self,
        company: &CompanyId,
        transition: &pb::StateTransition,
    ) -> Result<(), StoreError> {
        let tree = &self.trees.transitions;
        let seq = self.db.generate_id()?;
        let existing: Vec<sled::IVec> = tree
            .scan_prefix(keys::company_prefix(company))
            .keys()
            .collect::<Result<_, _>>()?;
        let mut batch = sled::Batch::default();
        let excess = (existing.len() + 1).saturating_sub(TRANSITIONS_KEPT);
        for old in existing.iter().take(excess) {
            batch.remove(old);
        }
        batch.insert(keys::transition(company, seq), transition.encode_to_vec());
        tree.apply_batch(batch)?;
        Ok(())
    }

    /// The newest `limit` transitions of `company`, oldest first.
    pub fn recent_transitions(
        &self,
        company: &CompanyId,
        limit: usize,
    ) -> Result<Vec<pb::StateTransition>, StoreError> {
        let mut newest_first = Vec::with_capacity(limit.min(TRANSITIONS_KEPT));
        for value in self
            .trees
            .transitions
            .scan_prefix(keys::company_prefix(company))
            .values()
            .rev()
            .take(limit)
        {
            newest_first.push(decode(company.as_str(), "state transition", &value?)?);
        }
        newest_first.reverse();
        Ok(newest_first)
    }

    // ----- settings ---------------------------------------------------------

    /// A process-wide setting (e.g. the admin key's hash).
    pub fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(value) = self.trees.settings.get(key.as_bytes())? else {
            return Ok(None);
        };
        let clear = self
            .sealer
            .open(tree::SETTINGS, key.as_bytes(), &value)
            .map_err(|error| StoreError::UnreadableSetting {
                name: key.to_owned(),
                detail: error.to_string(),
            })?;
        Ok(Some(clear.into_owned()))
    }

    /// Sets a process-wide setting (sealed with the store key, if any).
    /// Flushed: settings are rare and must survive a crash (a generated
    /// admin key that was printed once).
    pub fn put_setting(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let value = self.sealer.seal(tree::SETTINGS, key.as_bytes(), value)?;
        self.trees.settings.insert(key.as_bytes(), &*value)?;
        self.flush_now()
    }

    /// Removes a process-wide setting (flushed); whether it was there.
    pub fn remove_setting(&self, key: &str) -> Result<bool, StoreError> {
        let removed = self.trees.settings.remove(key.as_bytes())?.is_some();
        if removed {
            self.flush_now()?;
        }
        Ok(removed)
    }

    // ----- internals --------------------------------------------------------

    /// Flushes synchronously. Used only by rare operations (registry writes,
    /// wipes, settings) whose callers expect a plain `fn`: one fsync blocks the
    /// calling runtime worker for a few milliseconds, which is acceptable there.
    fn flush_now(&self) -> Result<(), StoreError> {
        self.durable.flush_blocking()
    }

    /// Where `company`'s whatsapp-rust state lives. A new company-scoped tree
    /// of credentials must be added here, or wipes would leave it behind.
    fn credential_rows(&self, company: &CompanyId) -> Vec<(&sled::Tree, Rows)> {
        vec![
            (&self.trees.device, Rows::Exact(keys::company_row(company))),
            (&self.trees.wa, Rows::Prefix(keys::company_prefix(company))),
        ]
    }

    /// Removes the given rows of several trees in one sled transaction.
    ///
    /// The prefix scans run before the transaction (sled transactions cannot
    /// scan), so rows inserted concurrently by a still-running client could
    /// survive; callers stop the company's client first.
    fn remove_rows(&self, rows: &[(&sled::Tree, Rows)]) -> Result<(), StoreError> {
        let mut batches = Vec::with_capacity(rows.len());
        for (tree, which) in rows {
            let mut batch = sled::Batch::default();
            match which {
                Rows::Exact(key) => batch.remove(key.as_slice()),
                Rows::Prefix(prefix) => {
                    for key in tree.scan_prefix(prefix).keys() {
                        batch.remove(key?);
                    }
                }
            }
            batches.push(batch);
        }
        let trees: Vec<&sled::Tree> = rows.iter().map(|(tree, _)| *tree).collect();
        trees.as_slice().transaction(|views| {
            for (view, batch) in views.iter().zip(&batches) {
                view.apply_batch(batch)?;
            }
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        })?;
        Ok(())
    }
}

/// The validated company id of a registry record.
fn record_company(record: &pb::CompanyRecord) -> Result<CompanyId, StoreError> {
    CompanyId::parse(&record.company_id).map_err(|error| StoreError::InvalidRecord {
        what: "company record",
        detail: error.to_string(),
    })
}

/// Decodes a prost value of `company`, mapping failure to [`StoreError::Corrupt`].
pub(crate) fn decode<M: prost::Message + Default>(
    company: &str,
    what: &str,
    bytes: &[u8],
) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|error| StoreError::corrupt(company, what, error))
}

/// Runs `sweep` now and then every `every`, on tokio's blocking pool (sweeps
/// scan sled trees, which blocks), until the returned task is aborted. The
/// sweep logs its own outcome; a failed one is retried at the next tick.
pub fn spawn_sweep(
    every: std::time::Duration,
    what: &'static str,
    sweep: impl Fn() + Clone + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = tokio::task::spawn_blocking(sweep.clone()).await {
                tracing::error!(%error, sweep = what, "a store sweep failed");
            }
        }
    })
}

/// Makes sled's writes durable, on the disk and not only in the OS.
///
/// sled's own flush writes its log buffers with `sync_file_range`, which
/// neither empties the disk's write cache nor records a grown file size, so
/// an acknowledged write could still be lost to a power cut or a kernel
/// crash (sled's background thread `fsync`s only every 500 ms). An
/// `fdatasync` of the log file after it closes that gap; on this class of
/// machine it costs ≈ 0.15 ms, once per group commit.
#[derive(Clone)]
pub(crate) struct Durable {
    db: sled::Db,
    /// sled's log file; `None` for a temporary database.
    log: Option<Arc<std::fs::File>>,
}

impl Durable {
    /// Flushes on the calling thread.
    fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(log) = &self.log {
            log.sync_data().map_err(sled::Error::Io)?;
        }
        Ok(())
    }

    /// Flushes on tokio's blocking pool with sled's synchronous `flush`,
    /// never with `flush_async`.
    ///
    /// Why: sled 0.34.7's `flush_async` runs the flush on sled's own small IO
    /// thread pool, and concurrent calls deadlock the whole database
    /// (spacejam/sled#1308, fixed only on sled's unreleased main branch): each
    /// pooled flush holds sled's concurrency-control read lock while it waits
    /// for log writes that are queued behind it, a batch writer then waits for
    /// those readers, and every later read or write waits for the writer. The
    /// capacity suite hit it with 16 companies pairing at once (each pairing
    /// flushes its new credentials while whatsapp-rust writes its prekeys as
    /// one batch): the gateway stopped answering entirely. The synchronous
    /// flush runs in the calling thread and never queues behind other flushes.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let durable = self.clone();
        match tokio::task::spawn_blocking(move || durable.flush_blocking()).await {
            Ok(result) => result,
            // The closure does not panic (sled reports errors as values); a
            // join error means the runtime is shutting down.
            Err(_) => Err(StoreError::from(sled::Error::ReportableBug(
                "the store flush was cancelled by runtime shutdown".to_owned(),
            ))),
        }
    }
}
