//! Inbound events and their delivery: the outbox pipeline of DESIGN.md
//! invariant 5.
//!
//! ```text
//! whatsapp-rust ─ inbound durability hook ─┐
//! SessionPool ─ status changes ────────────┤→ Webhooks::commit → group committer: every commit
//!                                          │    waiting at once → outbox rows (event, queue,
//!                                          │    dedup) and one flush
//!                                          └→ Dispatcher (one task) → HTTP POST, signed → receivers
//!                                             SSE subscribers (broadcast of committed events)
//! ```
//!
//! - [`content`]: what a message holds (kind, text, media, location, cards, actions).
//! - [`event`]: events from messages, delivery statuses and session status changes; stable ids.
//! - [`json`]: the JSON body of each event type.
//! - `status_recorder`: receipts and server acks → monotonic per-recipient
//!   status (`crate::store::messages`) → `message.status` events.
//! - [`sign`]: Standard Webhooks signatures.
//! - [`endpoint`]: endpoints, URL policy, the cached endpoint registry.
//! - [`dispatcher`]: delivery, retries, ordering, dead letters.
//! - `replay`: one replay per company at a time; what a caller's replay or
//!   retry may reach ([`Reach`]).
//! - `crate::store::outbox`: the sled trees and their key encodings.
//!
//! # Invariants
//!
//! - An inbound message is acknowledged to WhatsApp only after its event is
//!   committed **and flushed** ([`Webhooks::commit`] returns after the
//!   group commit's flush that covers its rows); on any error the hook fails
//!   and WhatsApp redelivers.
//! - Deduplication by `(company, chat, sender, message id)` happens in the
//!   same serialized commit (`Outbox::commit_all`), so a redelivered message
//!   yields no second event, and its event id is derived from that key, so
//!   even an event whose first commit was cut short by a crash keeps its id.
//! - Deliveries are queued in the same commit as the event, for the
//!   endpoints configured at that moment; [`Webhooks::replay`] queues stored
//!   events again.
//! - Session status events go through the same outbox, taken from the pool's
//!   event stream (subscribed before restore starts), so every transition of
//!   every session is recorded, in order per company.

pub mod content;
pub mod dispatcher;
pub mod endpoint;
pub mod event;
mod group_commit;
mod inbound_hook;
pub mod json;
mod options;
mod replay;
pub mod retention;
pub mod sign;
mod status_recorder;

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::domain::CompanyId;
use crate::outbound::Guard;
use crate::pb;
use crate::pool::{
    InboundHookFactory, PoolEvent, RemovalListener, SessionEvent, SessionPool, SessionStatus,
};
use crate::store::messages::Messages;
use crate::store::outbox::{Committed, DeliveryKey, DeliveryState, NewEvent, Outbox, Target};
use crate::store::{Store, StoreError};

pub use dispatcher::DispatcherConfig;
pub use endpoint::Endpoint;
use group_commit::GroupCommitter;
pub use options::WebhookOptions;
pub use replay::Reach;
pub use retention::Retention;

/// Most pool events the status watcher commits in one batch.
const STATUS_BATCH: usize = 256;

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// 400 `invalid_webhook_url`.
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// 400 `invalid_webhook_secret`: empty, or `whsec_` followed by invalid base64.
    #[error("invalid webhook secret: use `whsec_<base64>` or a non-empty string")]
    InvalidSecret,
    /// 400 `invalid_event_type`.
    #[error("unknown event type `{0}`")]
    InvalidEventType(String),
    /// 404 `unknown_company`.
    #[error("no such company")]
    UnknownCompany,
    /// 404 `unknown_delivery`.
    #[error("no such dead letter")]
    UnknownDelivery,
    /// 409 `replay_in_progress`: the company's previous replay is still
    /// being delivered.
    #[error("a replay of this company is still being delivered; retry when it is done")]
    ReplayInProgress,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The group flush failed: nothing committed since the last good flush
    /// may be durable.
    #[error("the durable flush failed: {0}")]
    Flush(String),
    /// A test event was asked for a company without a webhook.
    #[error("the company has no webhook")]
    NoWebhook,
    /// The webhook service has stopped (shutdown).
    #[error("the webhook service is stopped")]
    Stopped,
    /// Startup: the HTTP client could not be built.
    #[error("cannot build the webhook HTTP client")]
    Http(#[from] reqwest::Error),
    /// The system random source failed.
    #[error("cannot generate a webhook secret")]
    Random,
}

impl WebhookError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "invalid_webhook_url",
            Self::InvalidSecret => "invalid_webhook_secret",
            Self::InvalidEventType(_) => "invalid_event_type",
            Self::UnknownCompany => "unknown_company",
            Self::UnknownDelivery => "unknown_delivery",
            Self::ReplayInProgress => "replay_in_progress",
            Self::NoWebhook => "no_webhook",
            Self::Store(_) | Self::Flush(_) | Self::Http(_) | Self::Random => "internal",
            Self::Stopped => "stopping",
        }
    }
}

/// Checks an event filter; returns it deduplicated.
pub fn validate_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        let e = e.trim();
        if !event::EVENT_TYPES.contains(&e) {
            return Err(WebhookError::InvalidEventType(e.to_owned()));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    Ok(out)
}

/// A company's webhook as the API shows it.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The company's webhook URL, if set.
    pub url: Option<String>,
    /// The event types it receives (empty: all).
    pub events: Vec<String>,
    /// The secret in display form, only when this call generated it.
    pub generated_secret: Option<String>,
}

crate::domain::redacted_debug!(WebhookSettings { url, events });

/// The webhook service. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    outbox: Outbox,
    /// Sent messages' statuses and inbound media references.
    messages: Messages,
    /// Status updates on their way to the recorder task (`status_recorder`).
    statuses: mpsc::UnboundedSender<status_recorder::Batch>,
    endpoints: Arc<endpoint::Endpoints>,
    committer: GroupCommitter,
    dispatcher: mpsc::UnboundedSender<dispatcher::Command>,
    events: broadcast::Sender<Arc<pb::WebhookEvent>>,
    /// The outbound address guard, for URLs being set.
    guard: Guard,
    /// Replays in progress (one per company at a time).
    replays: replay::ReplayGate,
    /// The retention sweep; it holds the store open, so it ends with us.
    _retention: retention::Sweeper,
}

impl Webhooks {
    /// Starts the flusher and the dispatcher (which resumes every delivery
    /// still queued from an earlier run). Must run inside a tokio runtime.
    /// Every webhook URL, set or stored, is checked with `guard`.
    pub fn start(
        store: Store,
        options: &WebhookOptions,
        guard: Guard,
    ) -> Result<Self, WebhookError> {
        let outbox = store.outbox()?;
        let endpoints = Arc::new(endpoint::Endpoints::new(
            store.clone(),
            options.global_endpoint(guard)?,
        ));
        let dispatcher = dispatcher::Dispatcher::new(
            outbox.clone(),
            endpoints.clone(),
            options.dispatcher_config(),
            guard,
        )?;
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatcher.run(rx));
        let messages = store.messages()?;
        let retention =
            retention::Sweeper::spawn(outbox.clone(), messages.clone(), options.retention());
        let (statuses, status_rx) = mpsc::unbounded_channel();
        let webhooks = Self {
            inner: Arc::new(Inner {
                committer: GroupCommitter::spawn(store.clone(), outbox.clone()),
                messages,
                statuses,
                store,
                outbox,
                endpoints,
                dispatcher: commands,
                events: broadcast::channel(1024).0,
                guard,
                replays: replay::ReplayGate::default(),
                _retention: retention,
            }),
        };
        tokio::spawn(status_recorder::run(
            Arc::downgrade(&webhooks.inner),
            status_rx,
        ));
        Ok(webhooks)
    }

    /// Whether the dispatcher task is alive (it owns the receiving end of its
    /// command channel until it ends). Part of `/readyz`.
    pub fn dispatcher_running(&self) -> bool {
        !self.inner.dispatcher.is_closed()
    }

    /// Commits `events` of `company` durably (see the module invariants),
    /// hands the new deliveries to the dispatcher and the new events to SSE
    /// subscribers. Events of several types are committed in runs of one
    /// type each (the webhook filter is per type), in their order.
    ///
    /// # Cancel safety
    /// Not cancel-safe in the sense that matters: dropping the future after
    /// the commit leaves the events stored but maybe not yet flushed or
    /// dispatched (they are dispatched after a restart). Callers await it.
    pub async fn commit(
        &self,
        company: &CompanyId,
        mut events: Vec<NewEvent>,
    ) -> Result<Vec<Committed>, WebhookError> {
        let mut committed = Vec::with_capacity(events.len());
        while !events.is_empty() {
            let run = events
                .iter()
                .position(|e| e.event.r#type != events[0].event.r#type)
                .unwrap_or(events.len());
            let rest = events.split_off(run);
            committed.extend(self.commit_one_type(company, events).await?);
            events = rest;
        }
        Ok(committed)
    }

    /// [`Webhooks::commit`] of events that all have the same type.
    async fn commit_one_type(
        &self,
        company: &CompanyId,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Committed>, WebhookError> {
        let Some(first) = events.first() else {
            return Ok(Vec::new());
        };
        let targets = self.inner.endpoints.targets(company, &first.event.r#type);
        self.commit_to(company, events, targets).await
    }

    /// Commits a `webhook.test` event for `company`'s own webhook only (not
    /// the gateway-wide one, whatever its filter) and returns its id; it is
    /// delivered, retried and logged like any other event.
    ///
    /// # Errors
    /// [`WebhookError::NoWebhook`] when the company has no webhook,
    /// [`WebhookError::UnknownCompany`] when it does not exist.
    pub async fn send_test(&self, company: &CompanyId) -> Result<String, WebhookError> {
        if self.webhook(company).is_none() {
            return Err(match self.inner.store.get_company(company)? {
                Some(_) => WebhookError::NoWebhook,
                None => WebhookError::UnknownCompany,
            });
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|_| WebhookError::Random)?;
        let event = event::test_event(company, crate::domain::now_ms(), &json::hex(&nonce));
        let id = event.event.id.clone();
        self.commit_to(company, vec![event], vec![Target::Company])
            .await?;
        Ok(id)
    }

    /// Commits `events` (all of one type) with deliveries to `targets`.
    async fn commit_to(
        &self,
        company: &CompanyId,
        events: Vec<NewEvent>,
        targets: Vec<Target>,
    ) -> Result<Vec<Committed>, WebhookError> {
        let (events, committed) = self.inner.committer.commit(company, events, targets).await;
        let committed = committed?;
        let mut queued = Vec::new();
        for (new, result) in events.into_iter().zip(&committed) {
            if !result.duplicate {
                queued.extend(result.queued.iter().cloned());
                // No subscriber is fine.
                let _ = self.inner.events.send(Arc::new(new.event));
            }
        }
        if !queued.is_empty() {
            self.inner
                .dispatcher
                .send(dispatcher::Command::Queued(queued))
                .map_err(|_| WebhookError::Stopped)?;
        }
        Ok(committed)
    }

    /// Stores what downloading the inbound files among `events` needs (the
    /// media endpoint finds them by message id). Not flushed: the commit of
    /// the same events is the durability point.
    pub fn remember_media(
        &self,
        company: &CompanyId,
        events: &[NewEvent],
    ) -> Result<(), WebhookError> {
        let now = crate::domain::now_ms();
        for new in events {
            if let Some(pb::webhook_event::Payload::Message(message)) = &new.event.payload
                && let Some(media) = &message.media
            {
                self.inner
                    .messages
                    .put_media(company, &message.message_id, media, now)?;
            }
        }
        Ok(())
    }

    /// Sent messages' statuses and inbound media references.
    pub fn messages(&self) -> &Messages {
        &self.inner.messages
    }

    /// Committed events as they happen, for SSE. A slow subscriber misses
    /// events (`Lagged`); webhooks never do.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<pb::WebhookEvent>> {
        self.inner.events.subscribe()
    }

    /// The hook factory to plug into the pool's `WaConfig::inbound_hook`.
    pub fn hook_factory(&self) -> Arc<dyn InboundHookFactory> {
        Arc::new(self.clone())
    }

    /// `company`'s webhook, if any.
    pub fn webhook(&self, company: &CompanyId) -> Option<Arc<Endpoint>> {
        self.inner.endpoints.get(company, Target::Company)
    }

    /// Sets (`url = Some`) or removes `company`'s webhook. Without a
    /// `secret`, the existing one is kept, or a new one is generated and
    /// returned once.
    pub fn set_webhook(
        &self,
        company: &CompanyId,
        url: Option<&str>,
        secret: Option<&str>,
        events: &[String],
    ) -> Result<WebhookSettings, WebhookError> {
        let url = url
            .map(|u| endpoint::validate_url(self.inner.guard, u))
            .transpose()?;
        let events = validate_events(events)?;
        let secret = secret
            .map(|s| sign::parse_secret(s).ok_or(WebhookError::InvalidSecret))
            .transpose()?;
        // Drawn before the update (which may run its change more than once)
        // and used only when the company has no secret yet.
        let fresh = match (&url, &secret) {
            (Some(_), None) => Some(sign::generate_secret().map_err(|_| WebhookError::Random)?),
            _ => None,
        };
        // Conditional on the record existing: a company deleted meanwhile is
        // not brought back by its webhook settings.
        let record = self
            .inner
            .store
            .update_company(company, |record| {
                if let Some(url) = &url {
                    record.webhook_url = url.to_string();
                    record.webhook_events.clone_from(&events);
                    if let Some(secret) = &secret {
                        record.webhook_secret.clone_from(secret);
                    } else if record.webhook_secret.is_empty()
                        && let Some(fresh) = &fresh
                    {
                        record.webhook_secret.clone_from(fresh);
                    }
                } else {
                    record.webhook_url.clear();
                    record.webhook_events.clear();
                    record.webhook_secret.clear();
                }
            })?
            .ok_or(WebhookError::UnknownCompany)?;
        let generated_secret = fresh
            .filter(|fresh| *fresh == record.webhook_secret)
            .map(|fresh| sign::display_secret(&fresh));
        // Re-read, not set from `record`: a delete may have removed the
        // company since (endpoint.rs, "Race window").
        if !self.inner.endpoints.refresh(company)? {
            return Err(WebhookError::UnknownCompany);
        }
        tracing::info!(company.id = %company, configured = url.is_some(), "company webhook updated");
        Ok(WebhookSettings {
            url: url.map(|u| u.to_string()),
            events,
            generated_secret,
        })
    }

    /// The outbox at a glance: queued, oldest queued, dead letters.
    pub fn outbox_summary(&self) -> Result<crate::store::outbox::OutboxSummary, WebhookError> {
        Ok(self.inner.outbox.summary()?)
    }

    /// Up to `limit` deliveries of `company` in `state`, newest first.
    pub fn deliveries(
        &self,
        company: &CompanyId,
        state: DeliveryState,
        limit: usize,
    ) -> Result<Vec<(DeliveryKey, pb::OutboxDelivery)>, WebhookError> {
        Ok(self.inner.outbox.list(company, state, limit)?)
    }

    /// Queues the dead letter `id` of `company` again (attempts reset), if
    /// its endpoint is within `reach`.
    pub fn retry(
        &self,
        company: &CompanyId,
        id: &str,
        reach: Reach,
    ) -> Result<pb::OutboxDelivery, WebhookError> {
        let key = DeliveryKey::parse_public_id(company, id)
            .filter(|key| reach.allows(key.target))
            .ok_or(WebhookError::UnknownDelivery)?;
        let delivery = self
            .inner
            .outbox
            .requeue_dead(&key)?
            .ok_or(WebhookError::UnknownDelivery)?;
        self.inner
            .dispatcher
            .send(dispatcher::Command::Queued(vec![key]))
            .map_err(|_| WebhookError::Stopped)?;
        Ok(delivery)
    }

    /// Queues `company`'s stored events from `since_ms` on again (to the
    /// endpoints configured now within `reach`, each event's own filter
    /// applied), at most `limit` per event type; returns how many
    /// deliveries were queued. One replay per company at a time: refused
    /// while the previous one's deliveries are still queued.
    pub fn replay(
        &self,
        company: &CompanyId,
        since_ms: i64,
        limit: usize,
        reach: Reach,
    ) -> Result<usize, WebhookError> {
        self.inner.replays.begin(&self.inner.outbox, company)?;
        let queued = match self.queue_replay(company, since_ms, limit, reach) {
            Ok(queued) => queued,
            Err(error) => {
                self.inner.replays.finish(company, Vec::new());
                return Err(error);
            }
        };
        self.inner.replays.finish(company, queued.clone());
        let count = queued.len();
        if count > 0 {
            self.inner
                .dispatcher
                .send(dispatcher::Command::Queued(queued))
                .map_err(|_| WebhookError::Stopped)?;
        }
        Ok(count)
    }

    fn queue_replay(
        &self,
        company: &CompanyId,
        since_ms: i64,
        limit: usize,
        reach: Reach,
    ) -> Result<Vec<DeliveryKey>, WebhookError> {
        let mut queued = Vec::new();
        for event_type in event::EVENT_TYPES {
            let mut targets = self.inner.endpoints.targets(company, event_type);
            targets.retain(|target| reach.allows(*target));
            if targets.is_empty() {
                continue;
            }
            queued.extend(
                self.inner
                    .outbox
                    .replay(company, since_ms, event_type, &targets, limit)?,
            );
        }
        queued.sort();
        Ok(queued)
    }

    /// The listener to plug into the pool's `WaConfig::removal_listener`:
    /// a deleted company's cached endpoint and replay are dropped once its
    /// registry row is gone.
    pub fn removal_listener(&self) -> Arc<dyn RemovalListener> {
        Arc::new(self.clone())
    }

    /// Follows every session of `pool` (including those created later) and
    /// commits its status changes as `session.status` events. Subscribes
    /// before returning, so no transition after this call is missed unless
    /// the watcher falls [`crate::pool::SessionPool::subscribe`]'s capacity
    /// behind (logged). Runs until the returned task is aborted.
    pub fn watch_sessions(&self, pool: SessionPool) -> JoinHandle<()> {
        let webhooks = self.clone();
        let mut events = pool.subscribe();
        tokio::spawn(async move {
            loop {
                let first = match events.recv().await {
                    Ok(first) => first,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "session.status events were missed");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                // Drain what is already queued so a burst (a restore of
                // thousands of sessions) costs one flush per company, not
                // one per transition.
                let mut batch = vec![first];
                while batch.len() < STATUS_BATCH {
                    match events.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "session.status events were missed");
                        }
                        Err(_) => break,
                    }
                }
                webhooks.commit_status_batch(batch).await;
            }
        })
    }

    /// Commits the status changes among `batch` (in order per company).
    async fn commit_status_batch(&self, batch: Vec<PoolEvent>) {
        let mut by_company: Vec<(CompanyId, Vec<NewEvent>)> = Vec::new();
        for PoolEvent { company, event } in batch {
            let SessionEvent::StatusChanged(status) = event else {
                continue;
            };
            let new = event::status_event(&company, status_change(&status));
            match by_company.iter_mut().find(|(c, _)| *c == company) {
                Some((_, events)) => events.push(new),
                None => by_company.push((company, vec![new])),
            }
        }
        // Every company at once (each company's events stay one ordered
        // commit): they share one group commit instead of one flush each, so
        // a burst of thousands (a restore) keeps up with the event stream.
        let commits = by_company.into_iter().map(|(company, events)| async move {
            if let Err(error) = self.commit(&company, events).await {
                tracing::error!(company.id = %company, %error, "cannot record session.status events");
            }
        });
        futures_util::future::join_all(commits).await;
    }
}

impl RemovalListener for Webhooks {
    fn company_removed(&self, company: &CompanyId) {
        self.inner.endpoints.forget(company);
        self.inner.replays.forget(company);
    }
}

/// The `StatusChange` of a status snapshot (its last transition, when it
/// led to the current state).
fn status_change(status: &SessionStatus) -> pb::StatusChange {
    let from = status
        .recent_transitions
        .last()
        .filter(|t| t.to == status.state)
        .map(|t| t.from.as_str().to_owned())
        .unwrap_or_default();
    pb::StatusChange {
        company_id: status.company.clone(),
        from,
        to: status.state.as_str().to_owned(),
        reason: status.reason.clone(),
        at_ms: status.since_ms,
    }
}

#[cfg(test)]
mod tests;
