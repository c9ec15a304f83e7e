//! `GET /console/events`: the console's live stream (Server-Sent Events),
//! from the pool-wide event stream ([`crate::pool::SessionPool::subscribe`]):
//! `status` for every state change (with the table row rendered on the
//! server, so the script never builds markup from data) and `qr` for every
//! new QR code. The admin sees every company; a company token only its own.
//! A subscriber that falls behind is sent every visible status again.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::broadcast;

use super::pages::{row, visible};
use super::strings::EN;
use super::{ConsoleError, Signed};
use crate::http::pair::json_event;
use crate::http::{AppState, Lifecycle};
use crate::pool::{PoolEvent, SessionEvent, SessionStatus};

/// Data of a `status` event.
#[derive(Serialize)]
struct StatusPush<'a> {
    company: &'a str,
    /// The state's code (`connected`, …).
    state: &'static str,
    /// The state in plain words.
    words: &'static str,
    /// Stable reason code of the transition.
    reason: &'a str,
    /// The sessions table's row for the company (escaped markup).
    row: String,
}

/// Data of a `qr` event.
#[derive(Serialize)]
struct QrPush<'a> {
    company: &'a str,
    /// The QR code as inline SVG markup.
    svg: String,
}

/// The live stream for a signed-in browser.
pub async fn events(
    State(state): State<AppState>,
    signed: Signed,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    // Subscribe before reading the snapshot: a change in between is then
    // sent twice (harmless) instead of lost.
    let events = state.pool.subscribe();
    let mut feed = Feed {
        events,
        queue: VecDeque::new(),
        lifecycle: state.lifecycle.clone(),
        signed,
        state,
        ended: false,
    };
    feed.resync();
    let stream = stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Feed {
    events: broadcast::Receiver<PoolEvent>,
    queue: VecDeque<Event>,
    lifecycle: Lifecycle,
    signed: Signed,
    state: AppState,
    ended: bool,
}

impl Feed {
    /// Every visible status, and the QR codes on show.
    fn resync(&mut self) {
        for status in visible(&self.state, &self.signed) {
            self.push_status(&status);
        }
        for status in visible(&self.state, &self.signed) {
            let company = crate::domain::CompanyId::parse(&status.company);
            if let Some(qr) = company
                .ok()
                .and_then(|c| self.state.pool.get(&c))
                .and_then(|h| h.current_qr())
            {
                self.push_qr(&status.company, &qr.code);
            }
        }
    }

    fn push_status(&mut self, status: &SessionStatus) {
        let push = StatusPush {
            company: &status.company,
            state: status.state.as_str(),
            words: EN.state(status.state),
            reason: &status.reason,
            row: row(status).into_string(),
        };
        self.queue.push_back(json_event("status", &push));
    }

    fn push_qr(&mut self, company: &str, code: &str) {
        if let Some(svg) = crate::http::qr::inline_svg(code) {
            self.queue
                .push_back(json_event("qr", &QrPush { company, svg }));
        }
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.ended {
                return None;
            }
            if !self.signed.console.sessions.is_live(&self.signed.id) {
                // Signed out or idle too long: the stream ends with it.
                return None;
            }
            tokio::select! {
                received = self.events.recv() => match received {
                    Ok(PoolEvent { company, event }) if self.signed.sees(company.as_str()) => {
                        match event {
                            SessionEvent::StatusChanged(status) => self.push_status(&status),
                            SessionEvent::QrRotated(qr) => self.push_qr(company.as_str(), &qr.code),
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync(),
                    Err(broadcast::error::RecvError::Closed) => self.ended = true,
                },
                () = self.lifecycle.stopped() => self.ended = true,
            }
        }
    }
}
