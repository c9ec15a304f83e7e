//! The session state machine's vocabulary: states, status snapshots, the
//! events a session broadcasts, and the pure classification of whatsapp-rust
//! events into what the session must do next.
//!
//! Everything here is plain data and pure functions, so the policy of
//! DESIGN.md invariant 3 ("stream errors are classified, not retried blindly")
//! is unit-tested without a socket; the actor (`super::actor`) only executes
//! the [`Verdict`]s produced here.

use serde::Serialize;
use wacore::types::events::{ConnectFailureReason, Event};

/// Where a company's session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Socket open, not linked yet: showing a QR code / waiting for a pair code.
    Pairing,
    /// Opening a socket (first attempt, or right after pairing).
    Connecting,
    /// Socket open **and** the device has its own JID (`client.pn()`).
    Connected,
    /// Lost the connection for a transient reason; retrying with backoff.
    Reconnecting,
    /// Unlinked (401, `device_removed`, 516 or an explicit logout): credentials
    /// wiped, no reconnect. The next ensure shows a fresh QR.
    LoggedOut,
    /// Another client took the number (440 `replaced`, 409): credentials kept,
    /// no automatic reconnect; an explicit reconnect takes it back.
    Replaced,
    /// WhatsApp banned the number temporarily; no reconnect.
    Banned,
    /// WhatsApp refused the client version (405); no reconnect.
    Outdated,
    /// No socket and nothing scheduled (shutdown, QR expired, pairing failed).
    Stopped,
}

impl SessionState {
    /// Every state, in declaration order.
    pub const ALL: [SessionState; 9] = [
        Self::Pairing,
        Self::Connecting,
        Self::Connected,
        Self::Reconnecting,
        Self::LoggedOut,
        Self::Replaced,
        Self::Banned,
        Self::Outdated,
        Self::Stopped,
    ];

    /// The stable snake_case code (the same string serde emits).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pairing => "pairing",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::LoggedOut => "logged_out",
            Self::Replaced => "replaced",
            Self::Banned => "banned",
            Self::Outdated => "outdated",
            Self::Stopped => "stopped",
        }
    }

    /// The state whose [`as_str`](Self::as_str) code is `code`.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == code)
    }

    /// States only an explicit reconnect leaves: not restarted by `ensure`,
    /// nor by a gateway restart.
    pub fn waits_for_reconnect(self) -> bool {
        matches!(self, Self::Replaced | Self::Banned | Self::Outdated)
    }

    /// Whether a socket is open or being opened (or a retry is scheduled).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Pairing | Self::Connecting | Self::Connected | Self::Reconnecting
        )
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reason code of the last transition of a deleted session (to `stopped`).
pub const DELETED: &str = "deleted";

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// The state before.
    pub from: SessionState,
    /// The state after.
    pub to: SessionState,
    /// Stable snake_case reason code, e.g. `stream_replaced`.
    pub reason: String,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// A snapshot of a session, as `GET /v1/sessions/{company}` returns it.
///
/// `phone` and `jid` are the company's own number: returned to API callers,
/// never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// The company id.
    pub company: String,
    /// The current state.
    pub state: SessionState,
    /// Stable snake_case code of the last transition's cause.
    pub reason: String,
    /// When the session entered `state` (unix ms).
    pub since_ms: i64,
    /// Own device JID (`15550001111:7@s.whatsapp.net`) once linked.
    pub jid: Option<String>,
    /// Own phone number (digits, E.164 without `+`) once linked.
    pub phone: Option<String>,
    /// Own LID JID once linked.
    pub lid: Option<String>,
    /// The linked account's display name, when linked.
    pub push_name: Option<String>,
    /// When the current connection reached `connected` (unix ms).
    pub connected_since_ms: Option<i64>,
    /// Last time anything happened on the session (unix ms).
    pub last_activity_ms: i64,
    /// Automatic reconnects since the session was started in this process.
    pub reconnect_count: u64,
    /// Reconnect attempts in the last 24 hours (this process).
    pub reconnects_24h: u64,
    /// When the session's client last received a message (unix ms; seen at
    /// the watchdog's tick granularity).
    pub last_inbound_ms: Option<i64>,
    /// When a message was last sent through the session (unix ms).
    pub last_outbound_ms: Option<i64>,
    /// Round trip of the watchdog's last answered keepalive ping (ms).
    pub keepalive_rtt_ms: Option<u64>,
    /// The last transitions, oldest first.
    pub recent_transitions: Vec<Transition>,
}

impl SessionStatus {
    /// A session of `company` in `state` since `since_ms` for `reason`, with
    /// nothing else known yet (no link, no activity, no history).
    pub fn new(company: &str, state: SessionState, reason: &str, since_ms: i64) -> Self {
        Self {
            company: company.to_owned(),
            state,
            reason: reason.to_owned(),
            since_ms,
            jid: None,
            phone: None,
            lid: None,
            push_name: None,
            connected_since_ms: None,
            last_activity_ms: since_ms,
            reconnect_count: 0,
            reconnects_24h: 0,
            last_inbound_ms: None,
            last_outbound_ms: None,
            keepalive_rtt_ms: None,
            recent_transitions: Vec::new(),
        }
    }
}

/// A QR code to show for linking. `code` is a secret while it is valid: it
/// is returned to API callers, never logged.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Qr {
    /// The QR code's text (what the phone scans).
    pub code: String,
    /// When WhatsApp rotates it (unix ms).
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for Qr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qr")
            .field("code", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// What a session broadcasts to subscribers (SSE, webhooks). Past-tense facts.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// The state changed; carries the new snapshot (shared: every
    /// subscriber and every slot of the channel points at one copy).
    StatusChanged(std::sync::Arc<SessionStatus>),
    /// A new QR code is current.
    QrRotated(Qr),
    /// A pair code was issued (the code itself is only returned to the caller
    /// that asked for it).
    PairCodeIssued {
        /// When the code expires (Unix ms).
        expires_at_ms: i64,
    },
}

/// Why the current connection attempt ended, as far as the events said.
///
/// Collected while a run of the client is live and consumed when the run loop
/// exits: the client dispatches these events inline, before its run loop
/// returns, so the actor always sees the cause before the exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitCause {
    /// Pairing finished; WhatsApp restarts the stream (515) and the client
    /// must log in at once.
    Paired,
    /// WhatsApp asked for a stream restart (515) outside pairing: reconnect
    /// at once, no backoff.
    Restart,
    /// The device was unlinked: wipe credentials, never reconnect.
    LoggedOut {
        /// The stable reason code.
        reason: String,
    },
    /// Another client took the number.
    Replaced {
        /// The stable reason code.
        reason: String,
    },
    /// Temporary ban.
    Banned {
        /// The stable reason code.
        reason: String,
    },
    /// Client version refused.
    Outdated,
    /// Every QR code expired without a scan; the client closed the socket.
    QrExpired,
    /// Transient: retry with backoff.
    Transient {
        /// The stable reason code.
        reason: String,
    },
}

/// What an event from whatsapp-rust means for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The connection is authenticated and ready (`Event::Connected`).
    Ready,
    /// A QR code to show; `timeout_ms` until it rotates.
    Qr {
        /// The QR code's text.
        code: String,
        /// Milliseconds until it rotates or expires.
        timeout_ms: i64,
    },
    /// A pair code was generated.
    PairCode {
        /// Milliseconds until it rotates or expires.
        timeout_ms: i64,
    },
    /// The connection will end (or has ended) for this cause.
    Exit(ExitCause),
    /// Pairing was refused by the client (bad signature, ...): stop.
    PairFailed,
    /// Nothing for the state machine.
    Ignore,
}

/// Classify one whatsapp-rust event. Pure: the policy of DESIGN.md
/// invariant 3 lives here.
pub fn classify(event: &Event) -> Verdict {
    match event {
        Event::Connected(_) => Verdict::Ready,
        Event::PairingQrCode(qr) => Verdict::Qr {
            code: qr.code.clone(),
            timeout_ms: i64::try_from(qr.timeout.as_millis()).unwrap_or(i64::MAX),
        },
        Event::PairingCode(pc) => Verdict::PairCode {
            timeout_ms: i64::try_from(pc.timeout.as_millis()).unwrap_or(i64::MAX),
        },
        Event::PairSuccess(_) => Verdict::Exit(ExitCause::Paired),
        Event::PairError(_) => Verdict::PairFailed,
        Event::PairingQrCodesExhausted(e) if e.disconnected => Verdict::Exit(ExitCause::QrExpired),
        Event::LoggedOut(lo) => Verdict::Exit(ExitCause::LoggedOut {
            reason: logged_out_reason(lo.on_connect, lo.reason, lo.raw.as_ref()),
        }),
        Event::StreamReplaced(_) => Verdict::Exit(ExitCause::Replaced {
            // whatsapp-rust emits the same event for `<conflict type="replaced"/>`
            // and for a bare 409; the raw stanza is not carried, so one code.
            reason: "stream_replaced".to_owned(),
        }),
        Event::TemporaryBan(ban) => Verdict::Exit(ExitCause::Banned {
            reason: format!("temporary_ban_{}", ban.code.code()),
        }),
        Event::ClientOutdated(_) => Verdict::Exit(ExitCause::Outdated),
        Event::ConnectFailure(cf) => {
            let code = cf.reason.code();
            if cf.reason.should_reconnect() {
                Verdict::Exit(ExitCause::Transient {
                    reason: format!("connect_failure_{code}"),
                })
            } else {
                // whatsapp-rust stops its own loop for these; an unknown
                // refusal must not become a reconnect loop against a server
                // that just said no. Treated like a ban: stop, keep creds.
                Verdict::Exit(ExitCause::Banned {
                    reason: format!("connect_failure_{code}"),
                })
            }
        }
        // whatsapp-rust handles 503/429 stream errors without an event of
        // their own (the server's close follows); the raw stanza names the
        // cause, the `Disconnected` that follows only the close.
        Event::RawNode(node) if node.tag() == "stream:error" => {
            match node
                .get_attr("code")
                .map(|code| code.as_str().to_string())
                .as_deref()
            {
                Some(code @ ("503" | "429")) => Verdict::Exit(ExitCause::Transient {
                    reason: format!("stream_error_{code}"),
                }),
                Some("515") => Verdict::Exit(ExitCause::Restart),
                _ => Verdict::Ignore,
            }
        }
        Event::Disconnected(d) => Verdict::Exit(ExitCause::Transient {
            reason: match &d.reason {
                wacore::net::DisconnectReason::ServerClose { .. } => "server_closed",
                wacore::net::DisconnectReason::StreamEnded => "stream_ended",
                wacore::net::DisconnectReason::ReadError(_) => "connection_lost",
                wacore::net::DisconnectReason::Unknown => "disconnected",
            }
            .to_owned(),
        }),
        _ => Verdict::Ignore,
    }
}

/// A stable reason code for a `LoggedOut` event, from the stanza that caused
/// it: `device_removed` (`<conflict type="device_removed"/>`),
/// `stream_error_401`, `stream_error_516`, `connect_failure_401`, ...
fn logged_out_reason(
    on_connect: bool,
    reason: ConnectFailureReason,
    raw: Option<&wacore_binary::Node>,
) -> String {
    if on_connect {
        return format!("connect_failure_{}", reason.code());
    }
    let Some(raw) = raw else {
        // Locally initiated (client.logout()).
        return "logout".to_owned();
    };
    if let Some(conflict) = raw.get_optional_child("conflict") {
        let kind = conflict
            .attrs()
            .optional_string("type")
            .map(|t| t.to_string())
            .unwrap_or_default();
        return match kind.as_str() {
            "device_removed" => "device_removed".to_owned(),
            "" => "conflict".to_owned(),
            other => format!("conflict_{}", sanitize_code(other)),
        };
    }
    match raw.attrs().optional_string("code") {
        Some(code) => format!("stream_error_{}", sanitize_code(&code)),
        None => "logged_out".to_owned(),
    }
}

/// Whether the session actor needs to see `event` at all. Called inline on
/// the client's dispatch path for every event, so it only matches variants.
pub fn is_lifecycle_event(event: &Event) -> bool {
    match event {
        Event::RawNode(node) => node.tag() == "stream:error",
        _ => matches!(
            event,
            Event::Connected(_)
                | Event::PairingQrCode(_)
                | Event::PairingCode(_)
                | Event::PairSuccess(_)
                | Event::PairError(_)
                | Event::PairingQrCodesExhausted(_)
                | Event::LoggedOut(_)
                | Event::StreamReplaced(_)
                | Event::TemporaryBan(_)
                | Event::ClientOutdated(_)
                | Event::ConnectFailure(_)
                | Event::Disconnected(_)
        ),
    }
}

/// Keep a server-supplied fragment usable inside a snake_case code.
fn sanitize_code(raw: &str) -> String {
    raw.chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Merge a newly observed exit cause into the one already recorded for the
/// current run: a terminal cause (logged out, replaced, ...) is never
/// overwritten by the transient `Disconnected` that follows it.
pub fn merge_exit(current: Option<ExitCause>, new: ExitCause) -> ExitCause {
    match (current, new) {
        (None, new) => new,
        // The first transient cause names it (`stream_error_503`), not the
        // close that follows (`server_closed`).
        (Some(current @ ExitCause::Transient { .. }), ExitCause::Transient { .. }) => current,
        (Some(ExitCause::Transient { .. }), new) => new,
        // A restart is only as good as nothing worse following it.
        (Some(ExitCause::Restart), ExitCause::Transient { .. }) => ExitCause::Restart,
        (Some(ExitCause::Restart), new) => new,
        // `Paired` is followed by the 515 restart; a later terminal cause wins.
        (
            Some(ExitCause::Paired),
            new @ (ExitCause::LoggedOut { .. }
            | ExitCause::Replaced { .. }
            | ExitCause::Banned { .. }
            | ExitCause::Outdated),
        ) => new,
        (Some(current), _) => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use wacore::types::events::{
        Connected, Disconnected, LoggedOut, PairingQrCode, StreamError, StreamReplaced,
    };
    use wacore_binary::builder::NodeBuilder;

    fn logged_out(raw: Option<wacore_binary::Node>, on_connect: bool) -> Event {
        Event::LoggedOut(
            LoggedOut::builder()
                .on_connect(on_connect)
                .reason(ConnectFailureReason::LoggedOut)
                .maybe_raw(raw)
                .build(),
        )
    }

    fn exit_reason(v: Verdict) -> (String, String) {
        match v {
            Verdict::Exit(ExitCause::LoggedOut { reason }) => ("logged_out".into(), reason),
            Verdict::Exit(ExitCause::Replaced { reason }) => ("replaced".into(), reason),
            Verdict::Exit(ExitCause::Transient { reason }) => ("transient".into(), reason),
            Verdict::Exit(ExitCause::Banned { reason }) => ("banned".into(), reason),
            other => panic!("unexpected verdict {other:?}"),
        }
    }

    #[test]
    fn stream_errors_that_unlink_are_logged_out_with_their_code() {
        let e401 = NodeBuilder::new("stream:error").attr("code", "401").build();
        let e516 = NodeBuilder::new("stream:error").attr("code", "516").build();
        let removed = NodeBuilder::new("stream:error")
            .children([NodeBuilder::new("conflict")
                .attr("type", "device_removed")
                .build()])
            .build();
        assert_eq!(
            exit_reason(classify(&logged_out(Some(e401), false))),
            ("logged_out".into(), "stream_error_401".into())
        );
        assert_eq!(
            exit_reason(classify(&logged_out(Some(e516), false))),
            ("logged_out".into(), "stream_error_516".into())
        );
        assert_eq!(
            exit_reason(classify(&logged_out(Some(removed), false))),
            ("logged_out".into(), "device_removed".into())
        );
        let failure = NodeBuilder::new("failure").attr("reason", "401").build();
        assert_eq!(
            exit_reason(classify(&logged_out(Some(failure), true))),
            ("logged_out".into(), "connect_failure_401".into())
        );
        assert_eq!(
            exit_reason(classify(&logged_out(None, false))),
            ("logged_out".into(), "logout".into())
        );
    }

    #[test]
    fn replaced_never_reconnects_and_transient_errors_do() {
        let replaced = Event::StreamReplaced(StreamReplaced::builder().build());
        assert_eq!(
            exit_reason(classify(&replaced)),
            ("replaced".into(), "stream_replaced".into())
        );
        let raw = |node: wacore_binary::Node| {
            let bytes = wacore_binary::marshal::marshal(&node).unwrap();
            // `marshal` prefixes the frame flag byte; `OwnedNodeRef` wants the node bytes.
            Event::RawNode(Arc::new(
                wacore_binary::OwnedNodeRef::new(bytes[1..].to_vec()).unwrap(),
            ))
        };
        let e503 = raw(NodeBuilder::new("stream:error").attr("code", "503").build());
        assert!(is_lifecycle_event(&e503));
        assert_eq!(
            exit_reason(classify(&e503)),
            ("transient".into(), "stream_error_503".into())
        );
        let e515 = raw(NodeBuilder::new("stream:error").attr("code", "515").build());
        assert_eq!(classify(&e515), Verdict::Exit(ExitCause::Restart));
        let e401 = raw(NodeBuilder::new("stream:error").attr("code", "401").build());
        assert_eq!(
            classify(&e401),
            Verdict::Ignore,
            "the LoggedOut event carries 401"
        );
        let message = raw(NodeBuilder::new("message").attr("id", "1").build());
        assert!(!is_lifecycle_event(&message));
        let ack = Event::StreamError(StreamError::builder().code(String::new()).build());
        assert_eq!(classify(&ack), Verdict::Ignore);
        let closed = Event::Disconnected(
            Disconnected::builder()
                .reason(wacore::net::DisconnectReason::ServerClose {
                    code: Some(1000),
                    reason: String::new(),
                })
                .build(),
        );
        assert_eq!(
            exit_reason(classify(&closed)),
            ("transient".into(), "server_closed".into())
        );
    }

    #[test]
    fn connect_failures_retry_only_when_the_server_says_so() {
        use wacore::types::events::ConnectFailure;
        let cf = |reason| Event::ConnectFailure(ConnectFailure::builder().reason(reason).build());
        assert_eq!(
            exit_reason(classify(&cf(ConnectFailureReason::ServiceUnavailable))),
            ("transient".into(), "connect_failure_503".into())
        );
        assert_eq!(
            exit_reason(classify(&cf(ConnectFailureReason::Generic))),
            ("banned".into(), "connect_failure_400".into())
        );
    }

    #[test]
    fn connected_and_qr_are_classified() {
        assert_eq!(
            classify(&Event::Connected(Connected::builder().build())),
            Verdict::Ready
        );
        let qr = Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@x".to_owned())
                .timeout(std::time::Duration::from_secs(60))
                .build(),
        );
        assert_eq!(
            classify(&qr),
            Verdict::Qr {
                code: "2@x".into(),
                timeout_ms: 60_000
            }
        );
    }

    #[test]
    fn a_terminal_cause_is_not_overwritten_by_the_disconnect_after_it() {
        let replaced = ExitCause::Replaced {
            reason: "stream_replaced".into(),
        };
        let transient = ExitCause::Transient {
            reason: "server_closed".into(),
        };
        assert_eq!(
            merge_exit(Some(replaced.clone()), transient.clone()),
            replaced
        );
        assert_eq!(
            merge_exit(Some(transient.clone()), replaced.clone()),
            replaced
        );
        let e503 = ExitCause::Transient {
            reason: "stream_error_503".into(),
        };
        assert_eq!(merge_exit(Some(e503.clone()), transient.clone()), e503);
        assert_eq!(
            merge_exit(Some(ExitCause::Paired), ExitCause::Restart),
            ExitCause::Paired
        );
        assert_eq!(
            merge_exit(Some(ExitCause::Restart), transient.clone()),
            ExitCause::Restart
        );
        assert_eq!(
            merge_exit(Some(ExitCause::Paired), transient),
            ExitCause::Paired
        );
        assert_eq!(
            merge_exit(Some(ExitCause::Paired), replaced.clone()),
            replaced
        );
    }

    #[test]
    fn states_serialize_as_their_codes() {
        for s in SessionState::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }

    #[test]
    fn state_codes_round_trip() {
        for s in SessionState::ALL {
            assert_eq!(SessionState::from_code(s.as_str()), Some(s));
        }
        assert_eq!(SessionState::from_code("bogus"), None);
    }
}
