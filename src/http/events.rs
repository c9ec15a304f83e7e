//! `GET /v1/sessions/{company}/events`: a Server-Sent Events stream of the
//! session's status changes and QR rotations.
//!
//! The stream opens with the current status (and the current QR code, if
//! any), so a client never has to race a separate status request. Event
//! names: `session.status` (data: [`SessionView`]), `session.qr` (data:
//! [`QrEvent`]), `session.pair_code` (data: [`PairCodeEvent`]),
//! `message.received` (data: the same event JSON a webhook receives; the SSE
//! id is the event id, stable across redeliveries) and `stream.lagged` (data: how many events this slow client missed; it should
//! re-read the status). The stream ends when the company is deleted, the
//! gateway shuts down, or its lifetime is over: `?max_duration_s=` and the
//! operator's `--http-stream-max-duration-s` bound it (the sooner wins;
//! neither by default), so a client behind a proxy that cuts long responses
//! can end and reopen it on its own schedule. A comment is sent every 15 s to
//! keep proxies from closing an idle stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::ToSchema;

use super::AppState;
use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::limits;
use super::sessions::{SessionView, session};
use crate::pool::{Qr, SessionEvent};

/// Data of a `session.qr` event: a new QR code to show.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct QrEvent {
    pub code: String,
    /// When it rotates (unix ms).
    pub expires_at_ms: i64,
}

crate::domain::redacted_debug!(QrEvent { expires_at_ms });

/// Data of a `session.pair_code` event: a pair code was issued (the code
/// itself only goes to the caller that asked for it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PairCodeEvent {
    pub expires_at_ms: i64,
}

/// Query of `GET …/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Seconds after which the stream ends.
    pub max_duration_s: Option<u64>,
}

/// Subscribe to the session's events.
#[utoipa::path(
    get, path = "/v1/sessions/{company}/events", tag = "sessions",
    params(
        ("company" = String, Path, description = "Company id"),
        ("max_duration_s" = Option<u64>, Query, description = "End the stream after this many seconds (1 to 86400); the client reconnects to go on. The gateway's own limit (`--http-stream-max-duration-s`) may end it sooner. Omitted: the stream lasts until the company is deleted or the gateway stops (or the gateway's limit)"),
    ),
    responses(
        (status = 200, description = "An event stream: `session.status` (SessionView), `session.qr` (QrEvent), `session.pair_code` (PairCodeEvent), `stream.lagged`", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "`too_many_streams`: the company holds as many open streams as allowed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    access: CompanyAccess,
    ApiQuery(query): ApiQuery<EventsQuery>,
    webhooks: Option<axum::extract::Extension<crate::webhook::Webhooks>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let asked = limits::asked_stream_lifetime(query.max_duration_s)?;
    let deadline = limits::stream_deadline(asked, state.stream_max_duration);
    let handle = session(&state, &access)?;
    // Held by the stream: given back when it ends or its client goes away.
    let slot = state
        .company_streams
        .try_open(access.company.as_str())
        .ok_or(ApiError::TooManyStreams)?;
    // Subscribe before reading the snapshot: a change in between is then
    // delivered twice (harmless) instead of lost.
    let updates = BroadcastStream::new(handle.subscribe());
    let mut opening = vec![status_event(SessionView::from(handle.status()))];
    opening.extend(handle.current_qr().map(qr_event));

    // Message events (inbound, reactions, edits, revokes, delivery
    // statuses): the committed events the webhooks deliver, so a
    // consumer that pulls sees exactly what a webhook receiver would.
    let company = access.company.to_string();
    let messages = match webhooks {
        Some(axum::extract::Extension(webhooks)) => {
            BroadcastStream::new(webhooks.subscribe()).boxed()
        }
        None => stream::empty().boxed(),
    }
    .filter_map(move |committed| {
        let company = company.clone();
        async move {
            match committed {
                Ok(event)
                    if event.company_id == company
                        && event.r#type != crate::webhook::event::SESSION_STATUS =>
                {
                    let data = crate::webhook::event::to_json(&event);
                    Some(
                        Event::default()
                            .event(event.r#type.as_str())
                            .id(event.id.as_str())
                            .data(data.to_string()),
                    )
                }
                Ok(_) => None,
                Err(BroadcastStreamRecvError::Lagged(missed)) => Some(
                    Event::default()
                        .event("stream.lagged")
                        .data(missed.to_string()),
                ),
            }
        }
    });

    let lifecycle = state.lifecycle.clone();
    let session_events = stream::iter(opening)
        .chain(updates.filter_map(|update| async move {
            match update {
                Ok(event) => to_sse(event),
                Err(BroadcastStreamRecvError::Lagged(missed)) => Some(
                    Event::default()
                        .event("stream.lagged")
                        .data(missed.to_string()),
                ),
            }
        }))
        // `None` marks the end of the session's own stream (company deleted):
        // the whole stream ends there, although the message feed never does.
        .map(Some)
        .chain(stream::once(async { None }))
        .boxed();
    let stream = stream::select(session_events, messages.map(Some))
        .take_while(|event| std::future::ready(event.is_some()))
        .filter_map(std::future::ready)
        .map(move |event| {
            let _held = &slot;
            Ok(event)
        })
        .take_until(async move {
            tokio::select! {
                () = lifecycle.stopped() => {}
                () = limits::until(deadline) => {}
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn to_sse(event: SessionEvent) -> Option<Event> {
    match event {
        SessionEvent::StatusChanged(status) => {
            Some(status_event(Arc::unwrap_or_clone(status).into()))
        }
        SessionEvent::QrRotated(qr) => Some(qr_event(qr)),
        SessionEvent::PairCodeIssued { expires_at_ms } => Some(json_event(
            "session.pair_code",
            &PairCodeEvent { expires_at_ms },
        )),
        // Kinds added later are not part of this stream's contract yet.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn status_event(status: SessionView) -> Event {
    json_event("session.status", &status)
}

fn qr_event(qr: Qr) -> Event {
    json_event(
        "session.qr",
        &QrEvent {
            code: qr.code,
            expires_at_ms: qr.expires_at_ms,
        },
    )
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    // Serializing these plain structs cannot fail (no maps with non-string
    // keys, no custom serializers); an empty payload would still be valid SSE.
    let data = serde_json::to_string(data).unwrap_or_default();
    Event::default().event(name).data(data)
}
