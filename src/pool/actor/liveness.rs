//! The actor's liveness checks: the watchdog tick (keepalive pings while the
//! connection is idle, stall detection) and the reconnect it decides on.

use std::time::Duration;

use tracing::Instrument as _;

use crate::domain::now_ms;
use crate::pool::state::{ExitCause, SessionState};
use crate::pool::watchdog::{self, Check};

use super::{SessionActor, Signal};

impl SessionActor {
    /// One watchdog tick: message counters, then the liveness check of a
    /// `connected` session.
    pub(super) async fn watchdog_tick(&mut self) {
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

    pub(super) async fn ping_done(&mut self, result: Result<Duration, &'static str>) {
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
    pub(super) async fn watchdog_reconnect(&mut self, reason: &'static str) {
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
}
