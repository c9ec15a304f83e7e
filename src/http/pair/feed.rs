//! The page's live feed: `GET /pair/{token}/events`, Server-Sent Events of
//! the session's state and QR codes until the page is done, or until the
//! operator's stream lifetime (`--http-stream-max-duration-s`) is over: it
//! then ends without a word and the page's EventSource reconnects.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use super::{PageRefusal, PairAccess, Refused, ensure_session};
use crate::domain::now_ms;
use crate::http::limits::{self, StreamSlot};
use crate::http::{AppState, Lifecycle};
use crate::pairing::page::{self, StateView};
use crate::pairing::strings::Strings;
use crate::pairing::token::Claims;
use crate::pool::{Qr, SessionEvent, SessionStatus};

/// Data of the page's `qr` event.
#[derive(Debug, Serialize)]
pub(super) struct QrPush {
    /// The QR code as inline SVG markup.
    svg: String,
    /// When WhatsApp rotates it (unix ms).
    expires_at_ms: i64,
}

/// The page's live updates: `state` ([`StateView`]), `qr` (SVG) and `expired`.
#[utoipa::path(
    get, path = "/pair/{token}/events", tag = "pairing", operation_id = "pairing_page_events",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "Server-Sent Events: `state`, `qr`, `expired`. Ends when the page is done, and after the gateway's stream lifetime (`--http-stream-max-duration-s`, if set; the page then reconnects)", content_type = "text/event-stream"),
        (status = 403, content_type = "text/html"), (status = 404, content_type = "text/html"),
        (status = 410, content_type = "text/html"), (status = 429, description = "`too_many_streams`: this link has as many live feeds open as allowed", content_type = "text/html"),
        (status = 503, content_type = "text/html"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    access: PairAccess,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refused> {
    let slot = state
        .link_streams
        .try_open(&crate::pairing::fingerprint(&access.token))
        .ok_or_else(|| access.refuse(PageRefusal::TooManyStreams))?;
    // Only the operator's limit: the page's own script asks for none.
    let lifetime_ends = limits::stream_deadline(None, state.stream_max_duration);
    let handle = ensure_session(&state, &access).await?;
    // Subscribe before reading the snapshot: a change in between is then
    // sent twice (harmless) instead of lost.
    let mut feed = Feed {
        _slot: slot,
        revocations: state.pairing.revocations(),
        link: (state.clone(), access.claims.clone()),
        events: handle.subscribe(),
        status: handle.watch_status(),
        queue: VecDeque::new(),
        expires_at: deadline(access.claims.expires_at_ms),
        lifetime_ends,
        lifecycle: state.lifecycle.clone(),
        strings: access.audience.strings,
        ended: false,
    };
    let status = handle.status();
    let qr = handle.current_qr();
    // The handle is not kept: the stream must end when the company is
    // deleted (its event sender then goes away).
    drop(handle);
    feed.push_status(&status);
    if let (false, Some(qr)) = (feed.ended, qr) {
        feed.push_qr(&qr);
    }
    let stream = stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A link's expiry as a tokio instant.
pub(super) fn deadline(expires_at_ms: i64) -> tokio::time::Instant {
    let left = u64::try_from(expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(left)
}

/// The page's event stream, as a state machine over the session's events.
pub(super) struct Feed {
    /// This feed's place among its link's open feeds, freed with the feed.
    _slot: StreamSlot,
    /// Moves when any company's links are revoked: the link is re-checked.
    revocations: watch::Receiver<u64>,
    /// What the link is re-checked with, and its claims.
    link: (AppState, Claims),
    events: broadcast::Receiver<SessionEvent>,
    /// Re-read when this subscriber lagged behind the broadcast.
    status: watch::Receiver<SessionStatus>,
    queue: VecDeque<Event>,
    expires_at: tokio::time::Instant,
    /// When this stream's lifetime is over (`--http-stream-max-duration-s`).
    lifetime_ends: Option<tokio::time::Instant>,
    lifecycle: Lifecycle,
    strings: &'static Strings,
    /// Nothing follows what is queued.
    ended: bool,
}

impl Feed {
    fn push_view(&mut self, view: &StateView) {
        self.ended |= view.done;
        // A quick reconnect after a gateway restart.
        let event = json_event("state", view).retry(Duration::from_secs(2));
        self.queue.push_back(event);
    }

    fn push_status(&mut self, status: &SessionStatus) {
        self.push_view(&page::state_view(self.strings, status));
    }

    fn push_qr(&mut self, qr: &Qr) {
        if let Some(svg) = crate::http::qr::inline_svg(&qr.code) {
            let push = QrPush {
                svg,
                expires_at_ms: qr.expires_at_ms,
            };
            self.queue.push_back(json_event("qr", &push));
        }
    }

    /// The next event, waiting for the session, the link's expiry or shutdown.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                received = self.events.recv() => match received {
                    Ok(SessionEvent::StatusChanged(status)) => self.push_status(&status),
                    Ok(SessionEvent::QrRotated(qr)) => self.push_qr(&qr),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let status = self.status.borrow().clone();
                        self.push_status(&status);
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.push_view(&page::deleted_view(self.strings));
                    }
                },
                () = tokio::time::sleep_until(self.expires_at) => {
                    self.queue.push_back(Event::default().event("expired").data("{}"));
                    self.ended = true;
                }
                // Not the page's end: its EventSource reconnects and goes on.
                () = limits::until(self.lifetime_ends) => self.ended = true,
                Ok(()) = self.revocations.changed() => {
                    let (state, claims) = &self.link;
                    // A failed read keeps the feed: the next request re-checks.
                    if let Ok(Err(_)) = state.pairing.check_company(state.pool.store(), claims) {
                        self.push_view(&page::revoked_view(self.strings));
                    }
                }
                () = self.lifecycle.stopped() => {
                    self.push_view(&page::unavailable_view(self.strings));
                    self.ended = true;
                }
            }
        }
    }
}

pub(in crate::http) fn json_event(name: &str, data: &impl Serialize) -> Event {
    // Plain structs of strings, numbers and booleans always serialize.
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}
