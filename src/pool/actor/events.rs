//! What the client tells the actor: its events (pairing, QR codes, stream
//! errors, disconnects), the moment a connection is ready, and the end of a run,
//! where the stream-error policy decides what happens next.

use tokio::time::Instant;
use wacore::types::events::Event;

use crate::domain::now_ms;
use crate::pool::state::{
    ExitCause, Qr, SessionEvent, SessionState, Verdict, classify, merge_exit,
};

use super::{Linking, SessionActor, StopMode};

impl SessionActor {
    pub(super) async fn handle_event(&mut self, event: &Event) {
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
    pub(super) async fn ready(&mut self) {
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
    pub(super) async fn run_exited(&mut self) {
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
                // WhatsApp moved on: fetch the current version now (one
                // fetch however many sessions are told at once).
                self.config.version.request_refresh();
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
}
