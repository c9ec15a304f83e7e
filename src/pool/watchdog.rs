//! The liveness watchdog of a `connected` session: the pure decision of what
//! to do at each tick, and the keepalive round trip it sends when idle.
//!
//! whatsapp-rust has its own keepalive (a `w:p` ping every 15–30 s, the
//! socket declared dead 20 s after a send without anything received), but its
//! timings are constants and its verdict only surfaces as a generic
//! disconnect. The watchdog therefore measures for itself, with configurable
//! timings ([`WatchdogConfig`]), from the client's own wire statistics
//! (`Client::stats().last_data_received_ms`):
//!
//! - **idle** (nothing received for `idle_after`): send one `w:p` round trip
//!   (never two at once); its RTT is the keepalive RTT;
//! - **keepalive failures**: `max_failures` consecutive unanswered pings →
//!   reconnect with reason `keepalive_timeout`;
//! - **stall** (nothing received for `stall_after`, whatever the pings
//!   say): reconnect with reason `stalled`.
//!
//! # Invariant: bounded, never a loop
//!
//! The watchdog only acts on a `connected` session and at most once per
//! connection (the connection it judged is closed and the failure count
//! starts over on the next one); the reconnect goes through the actor's
//! ordinary backoff, so a peer that never answers yields a backed-off retry
//! series, not a tight loop.

use std::time::Duration;

use whatsapp_rust::Client;

/// Timings of the watchdog. Defaults are well above whatsapp-rust's own
/// keepalive deadline, so in production the client's verdict usually comes
/// first and the watchdog is the backstop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogConfig {
    /// How often a connected session is checked.
    pub interval: Duration,
    /// Nothing received for this long → send a keepalive ping.
    pub idle_after: Duration,
    /// How long a ping may take.
    pub ping_timeout: Duration,
    /// Consecutive failed pings that end the connection (`keepalive_timeout`).
    pub max_failures: u32,
    /// Nothing received for this long ends the connection (`stalled`).
    pub stall_after: Duration,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            idle_after: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(20),
            max_failures: 2,
            stall_after: Duration::from_secs(180),
        }
    }
}

/// Reason codes the watchdog records.
pub const KEEPALIVE_TIMEOUT: &str = "keepalive_timeout";
/// Reason code: the socket stayed silent past the stall limit.
pub const STALLED: &str = "stalled";

/// What a tick decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Traffic is recent (or a ping is already out): nothing to do.
    Fine,
    /// Idle: send a keepalive ping.
    Ping,
    /// End the connection with this reason code.
    Reconnect(&'static str),
}

/// The tick's decision. `idle` is the time since anything was received
/// (`None`: nothing received yet on this connection, which counts from the
/// moment it became connected, given as `connected_for`).
pub fn check(
    config: &WatchdogConfig,
    idle: Option<Duration>,
    connected_for: Duration,
    failures: u32,
    ping_in_flight: bool,
) -> Check {
    let idle = idle.unwrap_or(connected_for).min(connected_for);
    if failures >= config.max_failures.max(1) {
        return Check::Reconnect(KEEPALIVE_TIMEOUT);
    }
    if idle >= config.stall_after {
        return Check::Reconnect(STALLED);
    }
    if idle >= config.idle_after && !ping_in_flight {
        return Check::Ping;
    }
    Check::Fine
}

/// Time since the client last received data, from its wire statistics.
pub fn idle_for(client: &Client) -> Option<Duration> {
    let last = client.stats().last_data_received_ms;
    if last == 0 {
        return None;
    }
    wacore::protocol::keepalive::ms_since(last).map(Duration::from_millis)
}

/// One `w:p` round trip. `Ok(rtt)`, or the failure kind for the metrics
/// (`timeout`, `error`).
pub async fn ping(client: &Client, timeout: Duration) -> Result<Duration, &'static str> {
    let started = tokio::time::Instant::now();
    let spec = wacore::iq::keepalive::KeepaliveSpec::with_timeout(timeout);
    match tokio::time::timeout(timeout, client.execute(spec)).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(whatsapp_rust::request::IqError::Timeout)) | Err(_) => Err("timeout"),
        Ok(Err(_)) => Err("error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WatchdogConfig {
        WatchdogConfig {
            interval: Duration::from_millis(100),
            idle_after: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(1),
            max_failures: 2,
            stall_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn pings_only_when_idle_and_one_at_a_time() {
        let c = config();
        let s = Duration::from_secs;
        assert_eq!(
            check(&c, Some(Duration::from_millis(200)), s(60), 0, false),
            Check::Fine
        );
        assert_eq!(check(&c, Some(s(2)), s(60), 0, false), Check::Ping);
        assert_eq!(check(&c, Some(s(2)), s(60), 0, true), Check::Fine);
        // Nothing received yet: idle counts from the connect.
        assert_eq!(
            check(&c, None, Duration::from_millis(500), 0, false),
            Check::Fine
        );
        // Traffic from a previous connection does not count against this one.
        assert_eq!(
            check(&c, Some(s(600)), Duration::from_millis(500), 0, false),
            Check::Fine
        );
    }

    #[test]
    fn failures_and_stalls_end_the_connection_with_their_reason() {
        let c = config();
        let s = Duration::from_secs;
        assert_eq!(check(&c, Some(s(3)), s(60), 1, false), Check::Ping);
        assert_eq!(
            check(&c, Some(s(3)), s(60), 2, false),
            Check::Reconnect(KEEPALIVE_TIMEOUT)
        );
        assert_eq!(
            check(&c, Some(s(6)), s(60), 0, true),
            Check::Reconnect(STALLED)
        );
    }
}
