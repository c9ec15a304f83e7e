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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument as _;
use wacore::types::events::Event;
use whatsapp_rust::Client;

use super::backoff::Backoff;
use super::error::PoolError;
use super::handle::{ActorDeleteOutcome, Command, SendText, Sent, StartReason, StepOutcome};
use super::state::{
    ExitCause, Qr, SessionEvent, SessionState, SessionStatus, Transition, Verdict, classify,
    is_lifecycle_event, merge_exit,
};
use super::watchdog::{self, Check};
use super::{PoolEvent, WaConfig};
use crate::domain::now_ms;
use crate::domain::{CompanyId, PhoneNumber};
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
            Command::Send(send) => {
                let SendText {
                    to,
                    text,
                    idempotency_key,
                    reply,
                } = *send;
                self.send(to, text, idempotency_key, reply);
            }
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
        let sink: EventSink = Arc::new(move |event| {
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

    /// One watchdog tick: message counters, then the liveness check of a
    /// `connected` session.
    async fn watchdog_tick(&mut self) {
        let Some(conn) = self.conn.as_ref().filter(|c| c.run.is_some()) else {
            return;
        };
        let client = conn.client.clone();
        let generation = conn.generation;
        let stats = client.stats();
        let (sent, received) = (stats.messages_sent, stats.messages_received);
        let (seen_sent, seen_received) = self.seen_messages;
        // A new client starts its counters at zero.
        let (new_sent, new_received) = if sent < seen_sent || received < seen_received {
            (sent, received)
        } else {
            (sent - seen_sent, received - seen_received)
        };
        self.seen_messages = (sent, received);
        crate::metrics::messages(&self.company, new_sent, new_received);
        if new_received > 0 || new_sent > 0 {
            let now = now_ms();
            self.status.send_if_modified(|s| {
                if new_received > 0 {
                    s.last_inbound_ms = Some(now);
                }
                if new_sent > 0 {
                    s.last_outbound_ms = Some(now);
                }
                false
            });
        }

        let Some(connected_at) = self
            .connected_at
            .filter(|_| self.state() == SessionState::Connected)
        else {
            return;
        };
        let config = self.config.watchdog;
        let idle = watchdog::idle_for(&client);
        match watchdog::check(
            &config,
            idle,
            connected_at.elapsed(),
            self.ping_failures,
            self.ping_in_flight,
        ) {
            Check::Fine => {}
            Check::Ping => {
                self.ping_in_flight = true;
                let signals = self.signals_tx.clone();
                // In the session's span, so its logs carry `company.id`.
                tokio::spawn(
                    async move {
                        let result = watchdog::ping(&client, config.ping_timeout).await;
                        let _ = signals.send(Signal::Ping { generation, result });
                    }
                    .in_current_span(),
                );
            }
            Check::Reconnect(reason) => self.watchdog_reconnect(reason).await,
        }
    }

    async fn ping_done(&mut self, result: Result<Duration, &'static str>) {
        self.ping_in_flight = false;
        crate::metrics::keepalive(&self.company, result);
        match result {
            Ok(rtt) => {
                self.ping_failures = 0;
                let rtt_ms = u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX);
                self.status.send_if_modified(|s| {
                    s.keepalive_rtt_ms = Some(rtt_ms);
                    false
                });
            }
            Err(kind) => {
                self.ping_failures += 1;
                tracing::warn!(failures = self.ping_failures, kind, "keepalive ping failed");
                if self.state() == SessionState::Connected
                    && self.ping_failures >= self.config.watchdog.max_failures.max(1)
                {
                    self.watchdog_reconnect(watchdog::KEEPALIVE_TIMEOUT).await;
                }
            }
        }
    }

    /// The connection failed a liveness check: close it with `reason` as the
    /// exit cause; the run loop's exit then leads to `reconnecting` (backoff)
    /// like any transient loss.
    async fn watchdog_reconnect(&mut self, reason: &'static str) {
        tracing::warn!(
            reason,
            "connected session failed its liveness check; reconnecting"
        );
        self.ping_failures = 0;
        self.ping_in_flight = false;
        self.exit = Some(ExitCause::Transient {
            reason: reason.to_owned(),
        });
        let Some(client) = self.conn.as_ref().map(|c| c.client.clone()) else {
            return;
        };
        if tokio::time::timeout(self.config.stop_timeout, client.disconnect())
            .await
            .is_err()
        {
            // The run loop may be wedged on the dead socket: abort it and
            // treat the run as over (its `RunExited` will never come).
            tracing::warn!("disconnect timed out; aborting the client's run loop");
            if let Some(run) = self.conn.as_mut().and_then(|c| c.run.take()) {
                run.abort();
                self.run_exited().await;
            }
        }
    }

    async fn handle_event(&mut self, event: &Event) {
        let verdict = classify(event);
        if verdict != Verdict::Ignore {
            self.status.send_if_modified(|s| {
                s.last_activity_ms = now_ms();
                false
            });
        }
        match verdict {
            Verdict::Ready => self.ready().await,
            Verdict::Qr { code, timeout_ms } => {
                let qr = Qr {
                    code,
                    expires_at_ms: now_ms().saturating_add(timeout_ms),
                };
                self.qr.send_replace(Some(qr.clone()));
                self.emit(SessionEvent::QrRotated(qr));
                if self.state() != SessionState::Pairing {
                    self.transition(SessionState::Pairing, "qr_issued");
                }
            }
            Verdict::PairCode { timeout_ms } => {
                self.linking = Linking::PairCode;
                self.emit(SessionEvent::PairCodeIssued {
                    expires_at_ms: now_ms().saturating_add(timeout_ms),
                });
            }
            Verdict::PairFailed => tracing::warn!("the phone's pairing was refused by the client"),
            Verdict::Exit(cause) => {
                if cause == ExitCause::Paired {
                    self.just_paired = true;
                    self.clear_qr();
                    self.transition(SessionState::Connecting, "paired");
                }
                self.exit = Some(merge_exit(self.exit.take(), cause));
            }
            Verdict::Ignore => {}
        }
    }

    /// `Event::Connected`: connected only if the device has its own JID
    /// (invariant 2).
    ///
    /// Right after pairing, the new credentials are made durable before the
    /// session is reported `connected`: whatsapp-rust saves the paired device
    /// in the background, so without this a crash just after "connected"
    /// could lose the link and force a new QR.
    async fn ready(&mut self) {
        let Some(client) = self.conn.as_ref().map(|c| c.client.clone()) else {
            return;
        };
        self.refresh_identity(&client);
        if client.pn().is_none() {
            self.transition(SessionState::Pairing, "not_linked");
            return;
        }
        if self.just_paired {
            if let Err(error) = client.persistence_manager().flush().await {
                tracing::error!(%error, "saving the paired device failed");
            }
            if let Err(error) = self.store.flush().await {
                tracing::error!(%error, "flushing the store after pairing failed");
            }
        }
        let reason = if self.just_paired {
            match self.linking {
                Linking::Qr => "qr_scanned",
                Linking::PairCode => "pair_code_linked",
            }
        } else if self.restoring {
            "restored"
        } else if self.state() == SessionState::Reconnecting {
            "reconnected"
        } else {
            "logged_in"
        };
        self.just_paired = false;
        self.restoring = false;
        self.linking = Linking::Qr;
        self.connected_at = Some(Instant::now());
        self.ping_failures = 0;
        self.ping_in_flight = false;
        self.clear_qr();
        let now = now_ms();
        self.status
            .send_modify(|s| s.connected_since_ms = Some(now));
        self.transition(SessionState::Connected, reason);
    }

    /// The live run loop returned: decide what comes next.
    async fn run_exited(&mut self) {
        let cause = self.exit.take().unwrap_or(ExitCause::Transient {
            reason: "connect_failed".to_owned(),
        });
        self.clear_qr();
        self.status.send_modify(|s| s.connected_since_ms = None);
        match cause {
            ExitCause::Paired => {
                // The 515 restart: log in at once on the same client.
                self.connect().await;
            }
            ExitCause::Restart => {
                self.transition(SessionState::Connecting, "stream_error_515");
                self.connect().await;
            }
            ExitCause::LoggedOut { reason } => {
                self.stop_client(StopMode::Disconnect).await;
                if let Err(e) = self.store.wipe_credentials(&self.company) {
                    tracing::error!(error = %e, "wiping credentials after a logout failed");
                }
                self.clear_identity();
                self.transition(SessionState::LoggedOut, &reason);
            }
            ExitCause::Replaced { reason } => {
                self.stop_client(StopMode::Disconnect).await;
                self.transition(SessionState::Replaced, &reason);
            }
            ExitCause::Banned { reason } => {
                self.stop_client(StopMode::Disconnect).await;
                self.transition(SessionState::Banned, &reason);
            }
            ExitCause::Outdated => {
                self.stop_client(StopMode::Disconnect).await;
                self.transition(SessionState::Outdated, "client_outdated");
            }
            ExitCause::QrExpired => {
                self.stop_client(StopMode::Disconnect).await;
                self.transition(SessionState::Stopped, "qr_expired");
            }
            ExitCause::Transient { reason } => {
                let stable = self
                    .connected_at
                    .take()
                    .is_some_and(|at| at.elapsed() >= self.backoff.config().stable_after);
                if stable {
                    self.backoff.reset();
                }
                let delay = self.backoff.next_delay();
                tracing::info!(delay_ms = delay.as_millis() as u64, reason = %reason, "connection lost; reconnecting");
                self.retry_at = Some(Instant::now() + delay);
                self.transition(SessionState::Reconnecting, &reason);
            }
        }
    }

    // ----- pairing -----------------------------------------------------------

    async fn pair_code(
        &mut self,
        phone: PhoneNumber,
        reply: oneshot::Sender<Result<String, PoolError>>,
    ) {
        let state = self.state();
        match state {
            SessionState::Stopped | SessionState::LoggedOut => {
                self.transition(SessionState::Connecting, "pair_code_requested");
                self.backoff.reset();
                self.connect().await;
            }
            SessionState::Pairing | SessionState::Connecting => {}
            _ => {
                let _ = reply.send(Err(PoolError::InvalidState { state }));
                return;
            }
        }
        let Some(client) = self
            .conn
            .as_ref()
            .filter(|c| c.run.is_some())
            .map(|c| c.client.clone())
        else {
            let _ = reply.send(Err(PoolError::InvalidState {
                state: self.state(),
            }));
            return;
        };
        if client.pn().is_some() {
            let _ = reply.send(Err(PoolError::InvalidState {
                state: self.state(),
            }));
            return;
        }
        // A new code replaces the earlier one (below), so a burst of requests
        // would keep invalidating the code someone is typing, and WhatsApp
        // throttles codes per number: at most one per interval.
        let now = Instant::now();
        if let Some(last) = self.last_pair_code {
            let ready_at = last + self.config.pair_code_interval;
            if now < ready_at {
                let _ = reply.send(Err(PoolError::TooSoon {
                    retry_after: ready_at - now,
                }));
                return;
            }
        }
        self.last_pair_code = Some(now);
        let timeout = self.config.op_timeout;
        // Off the actor: PBKDF2 and a server round trip take a while, and the
        // actor must keep handling events (the QR keeps rotating meanwhile).
        tokio::spawn(async move {
            let result = async {
                client
                    .wait_for_socket(timeout)
                    .await
                    .map_err(|e| PoolError::Pairing(e.to_string()))?;
                // A code still outstanding (a lost page, a mistyped number)
                // would make whatsapp-rust refuse the new request for its
                // whole validity window; the caller asked for a new code, so
                // the earlier one is withdrawn (it stops working).
                client.cancel_pair_code().await;
                let options = wacore::pair_code::PairCodeOptions {
                    phone_number: phone.digits().to_owned(),
                    ..Default::default()
                };
                tokio::time::timeout(timeout, client.pair_with_code(options))
                    .await
                    .map_err(|_| PoolError::Timeout)?
                    .map_err(|e| PoolError::Pairing(e.to_string()))
            }
            .await;
            let _ = reply.send(result);
        });
    }

    // ----- sending -------------------------------------------------------------

    fn send(
        &mut self,
        to: PhoneNumber,
        text: String,
        key: Option<String>,
        reply: oneshot::Sender<Result<Sent, PoolError>>,
    ) {
        let state = self.state();
        let client = self.conn.as_ref().map(|c| c.client.clone());
        let (SessionState::Connected, Some(client)) = (state, client) else {
            let _ = reply.send(Err(PoolError::NotConnected { state }));
            return;
        };
        if let Some(key) = &key {
            match self.store.idempotent_message_id(&self.company, key) {
                Ok(Some(message_id)) => {
                    let _ = reply.send(Ok(Sent {
                        message_id,
                        to: to.digits().to_owned(),
                        duplicate: true,
                    }));
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
            }
            if let Some(waiters) = self.in_flight.get_mut(key) {
                waiters.push(reply);
                return;
            }
        }
        let timeout = self.config.op_timeout;
        let signals = self.signals_tx.clone();
        match key {
            Some(key) => {
                // The first caller waits like the later ones: the actor
                // answers all of them once the id is remembered.
                self.in_flight.insert(key.clone(), vec![reply]);
                tokio::spawn(async move {
                    let result = send_text(&client, &to, text, timeout).await;
                    let _ = signals.send(Signal::SendDone { key, result });
                });
            }
            None => {
                tokio::spawn(async move {
                    let _ = reply.send(send_text(&client, &to, text, timeout).await);
                });
            }
        }
    }

    /// A keyed send finished: remember its id and answer the callers that
    /// waited on the same key.
    fn finish_send(&mut self, key: String, result: Result<Sent, PoolError>) {
        if let Ok(sent) = &result
            && let Err(e) =
                self.store
                    .remember_idempotent_message_id(&self.company, &key, &sent.message_id)
        {
            tracing::error!(error = %e, "remembering an idempotency key failed");
        }
        let mut waiters = self.in_flight.remove(&key).unwrap_or_default().into_iter();
        let first = waiters.next();
        for waiter in waiters {
            let _ = waiter.send(match &result {
                Ok(sent) => Ok(Sent {
                    duplicate: true,
                    ..sent.clone()
                }),
                Err(e) => Err(PoolError::Send(e.to_string())),
            });
        }
        if let Some(first) = first {
            let _ = first.send(result);
        }
    }

    // ----- status ----------------------------------------------------------------

    fn refresh_identity(&self, client: &Client) {
        let pn = client.pn();
        let lid = client.lid();
        let push_name = client.push_name();
        self.status.send_if_modified(|s| {
            let jid = pn.as_ref().map(|j| j.to_string());
            let phone = pn.as_ref().map(|j| j.user.to_string());
            let lid = lid.as_ref().map(|j| j.to_string());
            let push_name = (!push_name.is_empty()).then(|| push_name.clone());
            let changed =
                s.jid != jid || s.phone != phone || s.lid != lid || s.push_name != push_name;
            s.jid = jid;
            s.phone = phone;
            s.lid = lid;
            s.push_name = push_name;
            changed
        });
    }

    fn clear_identity(&self) {
        self.status.send_modify(|s| {
            s.jid = None;
            s.phone = None;
            s.lid = None;
            s.connected_since_ms = None;
        });
    }

    /// An automatic (or hurried) reconnect starts: count it.
    fn reconnect_attempt(&mut self) {
        let now = Instant::now();
        self.reconnect_times.push_back(now);
        while self
            .reconnect_times
            .front()
            .is_some_and(|at| now.duration_since(*at) > DAY)
        {
            self.reconnect_times.pop_front();
        }
        let recent = self.reconnect_times.len() as u64;
        self.status.send_modify(|s| {
            s.reconnect_count += 1;
            s.reconnects_24h = recent;
        });
        crate::metrics::reconnect_attempt(&self.company);
    }

    fn clear_qr(&self) {
        self.qr.send_if_modified(|qr| qr.take().is_some());
    }

    /// Record a state change (store + broadcast). A same-state "change" only
    /// updates the reason.
    fn transition(&mut self, to: SessionState, reason: &str) {
        let now = now_ms();
        let from = self.state();
        if from == to {
            self.status.send_modify(|s| s.reason = reason.to_owned());
            return;
        }
        tracing::info!(from = %from, to = %to, reason, "session state changed");
        crate::metrics::transition(&self.company, from.as_str(), to.as_str(), reason);
        let record = crate::pb::StateTransition {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            reason: reason.to_owned(),
            at_ms: now,
        };
        if let Err(e) = self.store.record_transition(&self.company, &record) {
            tracing::error!(error = %e, "recording a state transition failed");
        }
        self.recent.push(Transition {
            from,
            to,
            reason: reason.to_owned(),
            at_ms: now,
        });
        let keep = self.config.transition_history.max(1);
        if self.recent.len() > keep {
            let excess = self.recent.len() - keep;
            self.recent.drain(..excess);
        }
        let recent = self.recent.clone();
        self.status.send_modify(|s| {
            s.state = to;
            s.reason = reason.to_owned();
            s.since_ms = now;
            s.last_activity_ms = now;
            s.recent_transitions = recent;
        });
        self.emit(SessionEvent::StatusChanged(Arc::new(
            self.status.borrow().clone(),
        )));
    }

    /// Broadcast to the session's subscribers and to the pool-wide stream.
    /// Nobody listening is fine.
    fn emit(&self, event: SessionEvent) {
        let _ = self.pool_events.send(PoolEvent {
            company: self.company.clone(),
            event: event.clone(),
        });
        let _ = self.events.send(event);
    }
}

async fn send_text(
    client: &Arc<Client>,
    to: &PhoneNumber,
    text: String,
    timeout: Duration,
) -> Result<Sent, PoolError> {
    use wacore::proto_helpers::MessageBuilderExt as _;
    let jid: wacore_binary::Jid = to
        .jid()
        .parse()
        .map_err(|_| PoolError::Send("invalid recipient".to_owned()))?;
    let message_id = client.generate_message_id();
    let options = whatsapp_rust::SendOptions::default().with_message_id(message_id);
    let sent = tokio::time::timeout(
        timeout,
        client.send_message_with_options(jid, waproto::whatsapp::Message::text(text), options),
    )
    .await
    .map_err(|_| PoolError::Timeout)?
    .map_err(|e| PoolError::Send(e.to_string()))?;
    Ok(Sent {
        message_id: sent.message_id,
        to: to.digits().to_owned(),
        duplicate: false,
    })
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
