//! [`SessionActor`]: the one task per company that owns its whatsapp-rust
//! client, its state machine, its reconnect backoff and the stream-error
//! policy.
//!
//! # How a connection is driven
//!
//! The client is built with its own auto-reconnect **off**, so one run of
//! `Client::run` is exactly one connection. The actor starts a run on a
//! spawned task that reports `RunExited` into the actor's signal channel when
//! the run loop returns; the client's events are forwarded inline into the
//! same channel. Because the client dispatches an event before its run loop
//! returns, the actor always sees why a connection ended (`LoggedOut`,
//! `StreamReplaced`, `Disconnected`, …) before it sees that it ended, and
//! decides what happens next ([`super::state::ExitCause`]):
//!
//! | cause | next |
//! |---|---|
//! | pairing finished (515 follows) | run the same client again at once |
//! | 515 (stream restart) | `connecting`, run the same client again at once |
//! | 503 / 429 / lost connection / connect error | `reconnecting`, jittered exponential backoff |
//! | 401 / `device_removed` / 516 | `logged_out`, credentials wiped |
//! | `replaced` / 409 | `replaced`, nothing until an explicit reconnect |
//! | temporary ban, other refusals | `banned` |
//! | client outdated | `outdated` |
//! | every QR expired | `stopped` (`qr_expired`) |
//!
//! # Invariant 1 (one socket per company)
//!
//! Only this task creates clients for its company, and [`SessionActor::stop_client`]
//! returns only after the old client's run loop has returned (its socket is
//! closed and its connection state cleaned up), so a new client is never built
//! while an old one can still hold a socket. A re-pair is a logout (which
//! unlinks on WhatsApp, stops the client and waits for it, then wipes the
//! credentials) followed by a start on the empty device store: there is no
//! path that builds a pairing client next to a linked one.
//!
//! A stopped client may outlive its stop for a while without a socket:
//! whatsapp-rust's QR rotation task keeps it (and its device store handle)
//! until the current QR reference expires (at most ~160 s). Its events are
//! ignored (they carry an old generation).

mod chats;
mod events;
mod liveness;
mod pairing;
mod sending;
mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use wacore::types::events::Event;
use whatsapp_rust::Client;

use super::backoff::Backoff;
use super::error::PoolError;
use super::handle::{ActorDeleteOutcome, Command, Sent, StartReason, StepOutcome};
use super::state::{
    ExitCause, Qr, SessionEvent, SessionState, SessionStatus, Transition, is_lifecycle_event,
};
use super::{PoolEvent, WaConfig};
use crate::domain::CompanyId;
use crate::store::Store;
use crate::wa::client::{BuiltBot, EventSink, build_bot};

/// Signals from the client side, all through one channel so their order is
/// the order things happened in.
pub(crate) enum Signal {
    /// An event of the client of generation `generation`.
    Event { generation: u64, event: Arc<Event> },
    /// The run loop of generation `generation` returned: its socket is gone.
    RunExited { generation: u64 },
    /// A watchdog ping of generation `generation` finished.
    Ping {
        generation: u64,
        result: Result<Duration, &'static str>,
    },
    /// A send spawned by the actor finished.
    SendDone {
        key: String,
        result: Result<Sent, PoolError>,
    },
}

/// The client currently owned by the actor.
struct Conn {
    client: Arc<Client>,
    generation: u64,
    /// Set while a run of the client is live; used to abort a run loop that
    /// does not return after a disconnect.
    run: Option<tokio::task::AbortHandle>,
    /// Held for the client's life: forwards `stream:error` stanzas.
    _raw_nodes: whatsapp_rust::RawNodeLease,
}

/// How [`SessionActor::stop_client`] ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopMode {
    /// Close the socket, keep the link (shutdown, reconnect).
    Disconnect,
    /// Unlink the device on WhatsApp first (logout, delete).
    Logout,
}

/// How a link came about, for the reason code of the first `connected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linking {
    Qr,
    PairCode,
}

pub(crate) struct SessionActor {
    company: CompanyId,
    store: Store,
    config: Arc<WaConfig>,
    status: watch::Sender<SessionStatus>,
    qr: watch::Sender<Option<Qr>>,
    events: broadcast::Sender<SessionEvent>,
    /// The pool-wide stream: every event again, tagged with the company.
    pool_events: broadcast::Sender<PoolEvent>,
    commands: mpsc::Receiver<Command>,
    signals_tx: mpsc::UnboundedSender<Signal>,
    signals: mpsc::UnboundedReceiver<Signal>,
    conn: Option<Conn>,
    next_generation: u64,
    /// When the scheduled reconnect fires (`reconnecting` only).
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Why the live run will end / ended, as the events said.
    exit: Option<ExitCause>,
    /// A pair code was requested on the current pairing connection.
    linking: Linking,
    /// Pairing just finished; the next `connected` is the first login.
    just_paired: bool,
    /// The first connection after a restore, for the `restored` reason code.
    restoring: bool,
    /// When the current connection became `connected` (for the backoff reset).
    connected_at: Option<Instant>,
    /// Sends in flight per idempotency key: later callers with the same key
    /// wait for the first one's result instead of sending again.
    in_flight: HashMap<String, Vec<oneshot::Sender<Result<Sent, PoolError>>>>,
    /// What WhatsApp answered about phone numbers (on WhatsApp or not).
    registrations: Arc<super::registered::Registrations>,
    recent: Vec<Transition>,
    /// Watchdog: consecutive unanswered pings on the current connection.
    ping_failures: u32,
    /// Watchdog: a ping is out (never two at once).
    ping_in_flight: bool,
    /// The client's message counters at the last tick (for deltas).
    seen_messages: (u64, u64),
    /// When reconnect attempts started, for `reconnects_24h`.
    reconnect_times: std::collections::VecDeque<Instant>,
    /// When the last pair code was requested (`WaConfig::pair_code_interval`).
    last_pair_code: Option<Instant>,
}

/// The channels a new actor is created with; the pool keeps the other ends in
/// the [`super::SessionHandle`].
pub(crate) struct ActorChannels {
    pub status: watch::Sender<SessionStatus>,
    pub qr: watch::Sender<Option<Qr>>,
    pub events: broadcast::Sender<SessionEvent>,
    pub pool_events: broadcast::Sender<PoolEvent>,
    pub commands: mpsc::Receiver<Command>,
}

impl SessionActor {
    pub(crate) fn new(
        company: CompanyId,
        store: Store,
        config: Arc<WaConfig>,
        backoff: Backoff,
        channels: ActorChannels,
        recent: Vec<Transition>,
    ) -> Self {
        let (signals_tx, signals) = mpsc::unbounded_channel();
        Self {
            company,
            store,
            config,
            status: channels.status,
            qr: channels.qr,
            events: channels.events,
            pool_events: channels.pool_events,
            commands: channels.commands,
            signals_tx,
            signals,
            conn: None,
            next_generation: 0,
            retry_at: None,
            backoff,
            exit: None,
            linking: Linking::Qr,
            just_paired: false,
            restoring: false,
            connected_at: None,
            in_flight: HashMap::new(),
            registrations: Arc::default(),
            recent,
            ping_failures: 0,
            ping_in_flight: false,
            seen_messages: (0, 0),
            reconnect_times: std::collections::VecDeque::new(),
            last_pair_code: None,
        }
    }

    /// The actor's loop: runs until a `Delete` or `Shutdown` command, or until
    /// every handle is dropped (then it disconnects like a shutdown).
    pub(crate) async fn run(mut self) {
        let mut watchdog = tokio::time::interval(self.config.watchdog.interval);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry_at = self.retry_at;
            tokio::select! {
                _ = watchdog.tick() => self.watchdog_tick().await,
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        self.stop_client(StopMode::Disconnect).await;
                        self.transition(SessionState::Stopped, "pool_dropped");
                        return;
                    };
                    if self.handle_command(command).await.is_break() {
                        return;
                    }
                }
                Some(signal) = self.signals.recv() => self.handle_signal(signal).await,
                () = sleep_until_opt(retry_at), if retry_at.is_some() => {
                    self.retry_at = None;
                    self.reconnect_attempt();
                    self.connect().await;
                }
            }
        }
    }

    async fn handle_command(&mut self, command: Command) -> std::ops::ControlFlow<()> {
        match command {
            Command::Start { reason, reply } => {
                self.start(reason).await;
                let _ = reply.send(self.status.borrow().clone());
            }
            Command::PairCode { phone, reply } => self.pair_code(phone, reply).await,
            Command::Reconnect { reply } => {
                let result = self.reconnect().await;
                let _ = reply.send(result);
            }
            Command::Logout { reply } => {
                let result = self.logout().await;
                let _ = reply.send(result);
            }
            Command::Send(send) => self.send(*send),
            Command::Chat(request) => self.chat(*request),
            Command::Delete { reply } => {
                let logout = self.unlink().await;
                let credentials = match self.store.wipe_credentials(&self.company) {
                    Ok(()) => StepOutcome::Done,
                    Err(e) => {
                        tracing::error!(error = %e, "wiping credentials failed during delete");
                        StepOutcome::Failed {
                            error: e.to_string(),
                        }
                    }
                };
                self.clear_identity();
                self.transition(SessionState::Stopped, super::state::DELETED);
                let _ = reply.send(ActorDeleteOutcome {
                    logout,
                    credentials,
                });
                return std::ops::ControlFlow::Break(());
            }
            Command::Shutdown { reply } => {
                self.stop_client(StopMode::Disconnect).await;
                // A session waiting for an explicit reconnect keeps that state
                // (persisted), so the next start does not take the number back.
                if !self.state().waits_for_reconnect() {
                    self.transition(SessionState::Stopped, "shutdown");
                }
                let _ = reply.send(());
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn state(&self) -> SessionState {
        self.status.borrow().state
    }

    // ----- lifecycle -------------------------------------------------------

    /// Ensure semantics: open a connection only from `stopped`/`logged_out`.
    async fn start(&mut self, reason: StartReason) {
        match self.state() {
            SessionState::Stopped | SessionState::LoggedOut => {
                self.restoring = reason == StartReason::Restored;
                self.transition(SessionState::Connecting, reason.code());
                self.backoff.reset();
                self.connect().await;
            }
            // Open, opening, scheduled, or waiting for an explicit reconnect.
            _ => {}
        }
    }

    async fn reconnect(&mut self) -> Result<SessionStatus, PoolError> {
        match self.state() {
            SessionState::Connected | SessionState::Connecting | SessionState::Pairing => {}
            SessionState::Reconnecting => {
                // Retry now instead of waiting out the backoff.
                if self.conn.as_ref().is_some_and(|c| c.run.is_none()) {
                    self.retry_at = None;
                    self.reconnect_attempt();
                    self.connect().await;
                }
            }
            SessionState::Replaced
            | SessionState::Banned
            | SessionState::Outdated
            | SessionState::Stopped
            | SessionState::LoggedOut => {
                // A terminal state's client has been stopped already; make sure.
                self.stop_client(StopMode::Disconnect).await;
                self.backoff.reset();
                self.transition(SessionState::Connecting, "reconnect_requested");
                self.connect().await;
            }
        }
        Ok(self.status.borrow().clone())
    }

    /// Unlink on WhatsApp (when a linked connection is open), stop the
    /// client, wipe the credentials.
    async fn logout(&mut self) -> Result<(), PoolError> {
        let _ = self.unlink().await;
        let wiped = self.store.wipe_credentials(&self.company);
        self.clear_identity();
        self.transition(SessionState::LoggedOut, "logout_requested");
        wiped.map_err(PoolError::from)
    }

    /// Log the device out on WhatsApp if possible, then stop the client.
    /// Reports whether WhatsApp was told.
    async fn unlink(&mut self) -> StepOutcome {
        let linked_and_open = self
            .conn
            .as_ref()
            .is_some_and(|c| c.run.is_some() && c.client.is_connected() && c.client.pn().is_some());
        let outcome = if linked_and_open {
            StepOutcome::Done
        } else if self.conn.as_ref().is_some_and(|c| c.client.pn().is_some())
            || crate::wa::is_linked(&self.store, &self.company).unwrap_or(false)
        {
            StepOutcome::Skipped {
                reason: format!(
                    "not connected (state: {}); the phone may still list the device",
                    self.state()
                ),
            }
        } else {
            StepOutcome::Skipped {
                reason: "no linked device".to_owned(),
            }
        };
        let mode = if linked_and_open {
            StopMode::Logout
        } else {
            StopMode::Disconnect
        };
        self.stop_client(mode).await;
        outcome
    }

    /// Open a connection: re-run the current client if it can run again,
    /// otherwise build a new one (after the old one is fully stopped).
    async fn connect(&mut self) {
        self.exit = None;
        let reusable = self
            .conn
            .as_ref()
            .is_some_and(|c| c.run.is_none() && !c.client.shutdown_signal().is_fired());
        if reusable {
            if let Some(conn) = &mut self.conn {
                let client = conn.client.clone();
                let generation = conn.generation;
                let signals = self.signals_tx.clone();
                let task = tokio::spawn(async move {
                    client.run().await;
                    let _ = signals.send(Signal::RunExited { generation });
                });
                conn.run = Some(task.abort_handle());
            }
            return;
        }
        self.stop_client(StopMode::Disconnect).await;

        let generation = self.next_generation;
        self.next_generation += 1;
        let backend = crate::wa::SledBackend::open(&self.store, &self.company);
        let signals = self.signals_tx.clone();
        let statuses = self.config.status_sink.clone();
        let company = self.company.clone();
        let sink: EventSink = Arc::new(move |event| {
            // Acks and receipts of sent messages go straight to the status
            // sink, in dispatch order (see `crate::wa::receipts`).
            if let Some(statuses) = &statuses {
                let updates = crate::wa::receipts::status_updates(&event);
                if !updates.is_empty() {
                    statuses.record(&company, updates);
                    return;
                }
            }
            if is_lifecycle_event(&event) {
                let _ = signals.send(Signal::Event { generation, event });
            }
        });
        let built =
            match build_bot(&self.config.client_options(), &self.company, backend, sink).await {
                Ok(built) => built,
                Err(e) => {
                    tracing::error!(error = %e, "building the WhatsApp client failed");
                    self.transition(SessionState::Stopped, "client_error");
                    return;
                }
            };
        let BuiltBot { bot, raw_nodes } = built;
        let client = bot.client();
        self.config.live.set(&self.company, client.clone());
        self.refresh_identity(&client);
        let signals = self.signals_tx.clone();
        let task = tokio::spawn(async move {
            bot.run().await;
            let _ = signals.send(Signal::RunExited { generation });
        });
        self.conn = Some(Conn {
            client,
            generation,
            run: Some(task.abort_handle()),
            _raw_nodes: raw_nodes,
        });
    }

    /// Stop the current client and wait until its run loop has returned
    /// (invariant 1). Bounded by `WaConfig::stop_timeout`; a run loop that
    /// does not return in time is aborted.
    async fn stop_client(&mut self, mode: StopMode) {
        self.retry_at = None;
        self.clear_qr();
        let Some(conn) = self.conn.take() else { return };
        self.config.live.remove(&self.company);
        let timeout = self.config.stop_timeout;
        let teardown = async {
            match mode {
                StopMode::Logout => conn.client.logout().await,
                StopMode::Disconnect => conn.client.disconnect().await,
            }
        };
        if tokio::time::timeout(timeout, teardown).await.is_err() {
            tracing::warn!("client teardown timed out");
        }
        if let Some(run) = &conn.run {
            let deadline = Instant::now() + timeout;
            loop {
                match tokio::time::timeout_at(deadline, self.signals.recv()).await {
                    Ok(Some(Signal::RunExited { generation })) if generation == conn.generation => {
                        break;
                    }
                    Ok(Some(Signal::SendDone { key, result })) => self.finish_send(key, result),
                    // Events of the dying client, or of older ones: moot now.
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        tracing::warn!("client run loop did not stop in time; aborting it");
                        run.abort();
                        break;
                    }
                }
            }
        }
        self.exit = None;
        self.connected_at = None;
    }

    // ----- signals from the client ------------------------------------------

    async fn handle_signal(&mut self, signal: Signal) {
        match signal {
            Signal::Event { generation, event } => {
                if self
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.generation == generation)
                {
                    self.handle_event(&event).await;
                }
            }
            Signal::RunExited { generation } => {
                let current = self.conn.as_mut().filter(|c| c.generation == generation);
                if let Some(conn) = current {
                    conn.run = None;
                    self.run_exited().await;
                }
            }
            Signal::SendDone { key, result } => self.finish_send(key, result),
            Signal::Ping { generation, result } => {
                if self
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.generation == generation)
                {
                    self.ping_done(result).await;
                }
            }
        }
    }

    // ----- watchdog (see `super::watchdog`) ----------------------------------
}

/// The window of `SessionStatus::reconnects_24h`.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[allow(dead_code)]
fn _assert_send(actor: SessionActor) -> impl std::future::Future<Output = ()> + Send {
    actor.run()
}
