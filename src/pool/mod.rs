//! The session pool: one session actor per company, found by company id.
//!
//! - [`SessionPool`] owns the map `company → SessionHandle` and the
//!   company-level operations (ensure, restore, delete, shutdown).
//! - [`SessionHandle`] (in `handle`) is how callers talk to one company's
//!   actor: reads from `watch`/`broadcast` channels, changes through commands.
//! - `actor` holds the [`SessionActor`](actor::SessionActor) task that owns
//!   the whatsapp-rust client, the state machine and the stream-error policy.
//! - [`state`] is the vocabulary (states, status, events) and the pure
//!   classification of client events; [`backoff`] the reconnect delays;
//!   [`watchdog`] the liveness checks of connected sessions.
//!
//! Invariants (DESIGN.md):
//! 1. At most one actor per company in this process (the map's double-checked
//!    insert), and each actor has at most one live client (see `actor`).
//! 4. Delete removes the WhatsApp link, the credentials, the registry record
//!    and the queues, and reports each step; [`SessionPool::restore`] removes
//!    credentials that have no registry record.

mod actor;
pub mod backoff;
mod config;
mod error;
mod handle;
mod live;
mod media;
mod registered;
pub mod state;
pub mod watchdog;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument as _;

pub use backoff::{Backoff, BackoffConfig, InvalidBackoff};
pub use config::{DEFAULT_RESTORE_CONCURRENCY, RemovalListener, WaConfig};
pub use error::PoolError;
pub use handle::{ContactCheck, Sent, SessionHandle, StepOutcome};
pub use state::{Qr, SessionEvent, SessionState, SessionStatus, Transition};
pub use watchdog::WatchdogConfig;
pub use {live::LiveClients, media::MediaError, media::MediaRef};

use crate::domain::{CompanyId, now_ms};
use crate::store::Store;
pub use crate::wa::client::InboundHookFactory;
use actor::{ActorChannels, SessionActor};
use handle::StartReason;

/// One session's event, on the pool-wide stream ([`SessionPool::subscribe`]).
#[derive(Debug, Clone)]
pub struct PoolEvent {
    /// The company whose session it is.
    pub company: CompanyId,
    /// What happened.
    pub event: SessionEvent,
}

/// Capacity of the pool-wide event stream; a subscriber that falls further
/// behind gets `RecvError::Lagged`.
const POOL_EVENTS_CAPACITY: usize = 1024;

/// Capacity of one session's event channel ([`SessionHandle::subscribe`]);
/// a subscriber further behind gets `Lagged` and resynchronises from the
/// current status.
const SESSION_EVENTS_CAPACITY: usize = 16;

/// Result of [`SessionPool::ensure`].
#[derive(Clone)]
pub struct Ensured {
    /// The session, existing or just created.
    pub handle: SessionHandle,
    /// This call created the company (its registry record).
    pub created: bool,
    /// The company's API token, in plaintext — only when `created`; it is
    /// stored hashed and can never be shown again.
    pub token: Option<String>,
}

crate::domain::redacted_debug!(Ensured { handle, created });

/// Longest a restore slot waits for one session to leave `connecting`: a
/// connection that hangs must not hold the slot for ever.
const RESTORE_SLOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until `handle`'s session has left `connecting` (logged in, or
/// failed and waiting for its retry), at most [`RESTORE_SLOT_TIMEOUT`].
async fn until_connecting_ends(handle: &SessionHandle) {
    let mut status = handle.watch_status();
    let left = status.wait_for(|s| s.state != SessionState::Connecting);
    let _ = tokio::time::timeout(RESTORE_SLOT_TIMEOUT, left).await;
}

/// Result of [`SessionPool::restore`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Linked companies whose sessions were started from stored credentials.
    pub started: Vec<String>,
    /// Registered companies without a linked device (session idle, `stopped`).
    pub idle: Vec<String>,
    /// Linked companies left as they were (`replaced`, `banned`, `outdated`):
    /// only an explicit reconnect takes the number back.
    pub held: Vec<String>,
    /// Companies whose credentials had no registry record; those credentials
    /// were removed.
    pub orphaned_credentials_removed: Vec<String>,
    /// Companies that could not be restored, with the error.
    pub failed: Vec<RestoreFailure>,
}

/// A company that could not be restored at start, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreFailure {
    /// The company id as stored.
    pub company: String,
    /// Why it failed.
    pub error: String,
}

/// Result of [`SessionPool::delete`]: each step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct DeleteReport {
    /// The company id as stored.
    pub company: String,
    /// Unlinking the device on WhatsApp.
    pub logout: StepOutcome,
    /// Wiping the device credentials.
    pub credentials: StepOutcome,
    /// Removing the registry record, transitions and idempotency keys.
    pub registry: StepOutcome,
}

/// The pool of sessions. Cheap to clone (an `Arc`).
///
/// # Locking
///
/// The map is a `parking_lot::RwLock<HashMap>`: lookups (every API request)
/// take the read lock; only creating or removing a session takes the write
/// lock. The lock is never held across an `.await` — it guards the map only,
/// and all work on a session happens in its actor.
///
/// # Race window
///
/// `ensure` looks up under the read lock, and on a miss creates the registry
/// record (an atomic compare-and-swap in the store) and then takes the write
/// lock and **checks again** before spawning an actor. Two concurrent ensures
/// for one company can both miss the read lookup; exactly one inserts the
/// registry record (that caller gets `created` and the token), and exactly one
/// inserts an actor (whichever takes the write lock first); the other finds it
/// on the second check and returns the same handle. A `delete` marks the
/// company as being deleted (under the write lock) before it removes the
/// handle, so an ensure that races a delete gets [`PoolError::Busy`] instead
/// of resurrecting a half-deleted company.
#[derive(Clone)]
pub struct SessionPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    store: Store,
    config: Arc<WaConfig>,
    events: broadcast::Sender<PoolEvent>,
    sessions: RwLock<Sessions>,
}

#[derive(Default)]
struct Sessions {
    map: HashMap<CompanyId, SessionHandle>,
    /// Companies whose delete is in progress.
    deleting: HashSet<CompanyId>,
    /// Set by shutdown: no new sessions.
    closed: bool,
}

impl SessionPool {
    /// A pool over `store`. Panics if `wa.backoff` is invalid — validate
    /// configuration at startup with [`BackoffConfig::validate`].
    pub fn new(store: Store, wa: WaConfig) -> Self {
        if let Err(e) = wa.backoff.validate() {
            panic!("invalid backoff configuration: {e}");
        }
        let mut wa = wa;
        wa.live = LiveClients::default();
        if wa.http_client.is_none() {
            wa.http_client = Some(crate::wa::client::default_http_client());
        }
        Self {
            inner: Arc::new(PoolInner {
                store,
                config: Arc::new(wa),
                events: broadcast::channel(POOL_EVENTS_CAPACITY).0,
                sessions: RwLock::new(Sessions::default()),
            }),
        }
    }

    /// Every session's events (status changes, QR rotations, ...), including
    /// sessions created after this call, tagged with the company. Lossy for a
    /// subscriber that falls more than 1024 events behind (`Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.inner.events.subscribe()
    }

    /// The store the pool runs on.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Startup: remove credentials without a registry record (reported), then
    /// create a session for every registered company and start every linked
    /// one from its stored credentials (no QR).
    pub async fn restore(&self) -> RestoreReport {
        let store = &self.inner.store;
        let mut report = RestoreReport::default();
        match store.companies_with_credentials() {
            Ok(with_credentials) => {
                for company in with_credentials {
                    match store.get_company(&company) {
                        Ok(Some(_)) => {}
                        Ok(None) => match store.wipe_credentials(&company) {
                            Ok(()) => {
                                tracing::warn!(company.id = %company, "removed credentials without a registry record");
                                report
                                    .orphaned_credentials_removed
                                    .push(company.to_string());
                            }
                            Err(e) => report.failed.push(RestoreFailure {
                                company: company.to_string(),
                                error: e.to_string(),
                            }),
                        },
                        // Unreadable record: keep the credentials, report it.
                        Err(e) => report.failed.push(RestoreFailure {
                            company: company.to_string(),
                            error: e.to_string(),
                        }),
                    }
                }
            }
            Err(e) => report.failed.push(RestoreFailure {
                company: String::new(),
                error: e.to_string(),
            }),
        }

        let records = match store.list_companies() {
            Ok(records) => records,
            Err(e) => {
                report.failed.push(RestoreFailure {
                    company: String::new(),
                    error: e.to_string(),
                });
                return report;
            }
        };
        let mut to_start = Vec::new();
        for record in records {
            let company = match CompanyId::parse(&record.company_id) {
                Ok(company) => company,
                Err(e) => {
                    report.failed.push(RestoreFailure {
                        company: record.company_id.clone(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let handle = match self.handle_or_spawn(&company) {
                Ok(handle) => handle,
                Err(e) => {
                    report.failed.push(RestoreFailure {
                        company: company.to_string(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            match crate::wa::is_linked(store, &company) {
                Ok(true) if handle.status().state.waits_for_reconnect() => {
                    report.held.push(company.to_string());
                }
                Ok(true) => to_start.push(handle),
                Ok(false) => report.idle.push(company.to_string()),
                Err(e) => report.failed.push(RestoreFailure {
                    company: company.to_string(),
                    error: e.to_string(),
                }),
            }
        }
        // At most `restore_concurrency` connecting at once (see `WaConfig`).
        let limit = self.inner.config.restore_concurrency.max(1);
        let mut started = futures_util::stream::iter(to_start)
            .map(|handle| async move {
                let result = handle.start(StartReason::Restored).await;
                if result.is_ok() {
                    until_connecting_ends(&handle).await;
                }
                (handle.company().to_string(), result)
            })
            .buffer_unordered(limit);
        while let Some((company, result)) = started.next().await {
            match result {
                Ok(_) => report.started.push(company),
                Err(e) => report.failed.push(RestoreFailure {
                    company,
                    error: e.to_string(),
                }),
            }
        }
        // In registry order, whatever order they finished in.
        report.started.sort_unstable();
        tracing::info!(
            started = report.started.len(),
            idle = report.idle.len(),
            held = report.held.len(),
            orphans_removed = report.orphaned_credentials_removed.len(),
            failed = report.failed.len(),
            "sessions restored"
        );
        report
    }

    /// Create the company's session if absent, and make sure it is running
    /// (idempotent: any number of concurrent calls yield one session and at
    /// most one connection). A session waiting for an explicit reconnect
    /// (`replaced`, `banned`, `outdated`) is returned as it is.
    pub async fn ensure(&self, company: &CompanyId) -> Result<Ensured, PoolError> {
        if let Some(handle) = self.lookup(company)? {
            handle.start(StartReason::Ensure).await?;
            return Ok(Ensured {
                handle,
                created: false,
                token: None,
            });
        }
        // Registry first: a session never exists without its record.
        let issued = crate::token::generate_token()?;
        let record = crate::pb::CompanyRecord {
            company_id: company.to_string(),
            created_at_ms: now_ms(),
            token_hash: issued.hash.to_vec(),
            ..Default::default()
        };
        let created = self.inner.store.insert_company_if_absent(&record)?;
        let handle = self.handle_or_spawn(company)?;
        let reason = if created {
            StartReason::Created
        } else {
            StartReason::Ensure
        };
        handle.start(reason).await?;
        Ok(Ensured {
            handle,
            created,
            token: created.then_some(issued.plaintext),
        })
    }

    /// The company's session, if it has one in this process.
    pub fn get(&self, company: &CompanyId) -> Option<SessionHandle> {
        self.inner.sessions.read().map.get(company).cloned()
    }

    /// How many entries the company's live client holds in its bounded
    /// caches (`--wa-*` cache settings); `None` without a live client.
    /// Diagnostics, tests and benchmarks.
    pub async fn cache_entries(
        &self,
        company: &CompanyId,
    ) -> Option<crate::wa::cache::CacheEntries> {
        let client = self.inner.config.live.get(company)?;
        Some(crate::wa::cache::cache_entries(&client).await)
    }

    /// Every session's status, ordered by company id.
    pub fn list(&self) -> Vec<SessionStatus> {
        let handles: Vec<SessionHandle> =
            self.inner.sessions.read().map.values().cloned().collect();
        let mut statuses: Vec<SessionStatus> = handles.iter().map(SessionHandle::status).collect();
        statuses.sort_by(|a, b| a.company.cmp(&b.company));
        statuses
    }

    /// Remove the company: log out on WhatsApp, wipe credentials, remove the
    /// registry record, transitions and idempotency keys, then tell
    /// [`WaConfig::removal_listener`]. Each step's outcome is reported; a
    /// failed step does not stop the others.
    pub async fn delete(&self, company: &CompanyId) -> Result<DeleteReport, PoolError> {
        let handle = {
            let mut sessions = self.inner.sessions.write();
            if !sessions.deleting.insert(company.clone()) {
                return Err(PoolError::Busy);
            }
            sessions.map.get(company).cloned()
        };
        let result = self.delete_steps(company, handle).await;
        let mut sessions = self.inner.sessions.write();
        sessions.deleting.remove(company);
        if result.is_ok() {
            sessions.map.remove(company);
        }
        result
    }

    async fn delete_steps(
        &self,
        company: &CompanyId,
        handle: Option<SessionHandle>,
    ) -> Result<DeleteReport, PoolError> {
        let store = &self.inner.store;
        let known = handle.is_some()
            || store.get_company(company)?.is_some()
            || crate::wa::is_linked(store, company)?;
        if !known {
            return Err(PoolError::UnknownCompany);
        }
        let (logout, credentials) = if let Some(handle) = handle {
            let outcome = handle.delete().await?;
            (outcome.logout, outcome.credentials)
        } else {
            let credentials = match store.wipe_credentials(company) {
                Ok(()) => StepOutcome::Done,
                Err(e) => StepOutcome::Failed {
                    error: e.to_string(),
                },
            };
            (
                StepOutcome::Skipped {
                    reason: "no session in this process".to_owned(),
                },
                credentials,
            )
        };
        let registry = match store.remove_company(company) {
            Ok(()) => StepOutcome::Done,
            Err(e) => {
                tracing::error!(company.id = %company, error = %e, "removing the company from the store failed");
                StepOutcome::Failed {
                    error: e.to_string(),
                }
            }
        };
        if let Some(listener) = &self.inner.config.removal_listener {
            listener.company_removed(company);
        }
        tracing::info!(company.id = %company, "company deleted");
        Ok(DeleteReport {
            company: company.to_string(),
            logout,
            credentials,
            registry,
        })
    }

    /// Disconnect every session (never log out), then flush the store. Bounded
    /// by `timeout`; sessions that have not stopped by then are left to the
    /// runtime's shutdown.
    pub async fn shutdown(&self, timeout: Duration) {
        let handles: Vec<SessionHandle> = {
            let mut sessions = self.inner.sessions.write();
            sessions.closed = true;
            sessions.map.drain().map(|(_, h)| h).collect()
        };
        let mut stops = tokio::task::JoinSet::new();
        for handle in handles {
            stops.spawn(async move {
                let _ = handle.shutdown().await;
            });
        }
        if tokio::time::timeout(timeout, stops.join_all())
            .await
            .is_err()
        {
            tracing::warn!("not every session stopped before the shutdown timeout");
        }
        if let Err(e) = self.inner.store.flush().await {
            tracing::error!(error = %e, "flushing the store at shutdown failed");
        }
    }

    /// Read-locked lookup; refuses during a delete or after shutdown.
    fn lookup(&self, company: &CompanyId) -> Result<Option<SessionHandle>, PoolError> {
        let sessions = self.inner.sessions.read();
        if sessions.closed {
            return Err(PoolError::Gone);
        }
        if sessions.deleting.contains(company) {
            return Err(PoolError::Busy);
        }
        Ok(sessions.map.get(company).cloned())
    }

    /// The company's handle, spawning its actor if there is none
    /// (double-checked under the write lock; see "Race window").
    fn handle_or_spawn(&self, company: &CompanyId) -> Result<SessionHandle, PoolError> {
        if let Some(handle) = self.lookup(company)? {
            return Ok(handle);
        }
        // Loaded outside the lock: a store read must not stall every lookup.
        let recent = self.load_recent(company);
        let mut sessions = self.inner.sessions.write();
        if sessions.closed {
            return Err(PoolError::Gone);
        }
        if sessions.deleting.contains(company) {
            return Err(PoolError::Busy);
        }
        if let Some(handle) = sessions.map.get(company) {
            return Ok(handle.clone());
        }
        let handle = self.spawn_actor(company, recent);
        sessions.map.insert(company.clone(), handle.clone());
        Ok(handle)
    }

    fn load_recent(&self, company: &CompanyId) -> Vec<Transition> {
        let limit = self.inner.config.transition_history;
        match self.inner.store.recent_transitions(company, limit) {
            Ok(rows) => rows
                .into_iter()
                .filter_map(transition_from_record)
                .collect(),
            Err(e) => {
                tracing::warn!(company.id = %company, error = %e, "could not load recent transitions");
                Vec::new()
            }
        }
    }

    /// Spawn a company's actor: idle (`stopped`), or in the persisted state
    /// if that waits for an explicit reconnect (`replaced`, ...). Called under
    /// the write lock: must not block or await.
    fn spawn_actor(&self, company: &CompanyId, recent: Vec<Transition>) -> SessionHandle {
        let now = now_ms();
        let (state, reason, since_ms) = match recent.last() {
            Some(last) if last.to.waits_for_reconnect() => {
                (last.to, last.reason.clone(), last.at_ms)
            }
            _ => (SessionState::Stopped, "idle".to_owned(), now),
        };
        let initial = SessionStatus {
            last_activity_ms: now,
            recent_transitions: recent.clone(),
            ..SessionStatus::new(company.as_str(), state, &reason, since_ms)
        };
        let (status_tx, status_rx) = watch::channel(initial);
        let (qr_tx, qr_rx) = watch::channel(None);
        // Few events per session (state changes, QR rotations) and prompt
        // subscribers; every session preallocates these slots.
        let (events_tx, _) = broadcast::channel(SESSION_EVENTS_CAPACITY);
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let config = self.inner.config.clone();
        // Validated in `new`.
        let backoff = Backoff::new(config.backoff)
            .unwrap_or_else(|_| unreachable!("validated in SessionPool::new"));
        let actor = SessionActor::new(
            company.clone(),
            self.inner.store.clone(),
            config,
            backoff,
            ActorChannels {
                status: status_tx,
                qr: qr_tx,
                events: events_tx.clone(),
                pool_events: self.inner.events.clone(),
                commands: commands_rx,
            },
            recent,
        );
        let span = tracing::info_span!("session", company.id = %company);
        tokio::spawn(actor.run().instrument(span));
        SessionHandle::new(company.clone(), commands_tx, status_rx, qr_rx, events_tx)
    }
}

fn transition_from_record(record: crate::pb::StateTransition) -> Option<Transition> {
    Some(Transition {
        from: SessionState::from_code(&record.from)?,
        to: SessionState::from_code(&record.to)?,
        reason: record.reason,
        at_ms: record.at_ms,
    })
}
