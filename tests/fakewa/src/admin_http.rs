//! The admin HTTP API served on the WebSocket's port, for driving the fake
//! from other processes (DESIGN.md "Fake WhatsApp server: binary and admin API").
//!
//! Errors are JSON `{"error":{"code","message"}}` with a stable snake_case
//! code; each [`FakeError`] variant maps to one status.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::control::{self, Linked, SentMessage, Shared, StreamErrorKind};
use crate::error::FakeError;

/// The admin routes, bound to the server's shared state.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/admin/mock-phone/scan-qr", post(scan_qr))
        .route("/admin/mock-phone/pair-code", post(pair_code))
        .route("/admin/contacts/{phone}/messages", post(contact_message))
        .route("/admin/messages", get(messages))
        .route("/admin/devices", get(devices))
        .route("/admin/devices/{jid}/stream-error", post(stream_error))
        .route("/admin/connections", get(connections))
        .route("/admin/messages/{id}/redeliver", post(redeliver))
        .route("/admin/devices/{jid}/mute", post(mute))
        .with_state(shared)
}

struct ApiError(FakeError);

impl From<FakeError> for ApiError {
    fn from(e: FakeError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self.0 {
            FakeError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            FakeError::NoPendingPairing(_) => (StatusCode::NOT_FOUND, "no_pending_pairing"),
            FakeError::UnknownDevice(_) => (StatusCode::NOT_FOUND, "unknown_device"),
            FakeError::NotConnected(_) => (StatusCode::CONFLICT, "not_connected"),
            FakeError::PairingFailed(_) => (StatusCode::CONFLICT, "pairing_failed"),
            FakeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            FakeError::Io(_) | FakeError::Protocol(_) | FakeError::Signal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = serde_json::json!({"error": {"code": code, "message": self.0.to_string()}});
        (status, Json(body)).into_response()
    }
}

#[derive(Deserialize)]
struct ScanQuery {
    /// Link this phone number instead of a fresh fictitious one.
    phone: Option<String>,
}

async fn scan_qr(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ScanQuery>,
    body: String,
) -> Result<Json<Linked>, ApiError> {
    Ok(Json(
        control::scan(&shared, query.phone.as_deref(), body.trim()).await?,
    ))
}

#[derive(Deserialize)]
struct PairCodeBody {
    phone: String,
    code: String,
}

async fn pair_code(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<PairCodeBody>,
) -> Result<Json<Linked>, ApiError> {
    Ok(Json(
        control::enter_pair_code(&shared, &body.phone, &body.code).await?,
    ))
}

#[derive(Deserialize)]
struct ContactMessageBody {
    to: String,
    text: String,
}

#[derive(Serialize)]
struct MessageIdBody {
    id: String,
}

async fn contact_message(
    State(shared): State<Arc<Shared>>,
    Path(phone): Path<String>,
    Json(body): Json<ContactMessageBody>,
) -> Result<Json<MessageIdBody>, ApiError> {
    let from = control::normalize_phone(&phone)?;
    let id = shared
        .queue_contact_text(&from, &body.to, &body.text, None, false)
        .await?;
    Ok(Json(MessageIdBody { id }))
}

async fn messages(State(shared): State<Arc<Shared>>) -> Json<Vec<SentMessage>> {
    Json(shared.journal.lock().sent.clone())
}

async fn devices(State(shared): State<Arc<Shared>>) -> Json<Vec<Linked>> {
    Json(shared.linked_devices())
}

#[derive(Deserialize)]
struct StreamErrorBody {
    kind: String,
}

async fn stream_error(
    State(shared): State<Arc<Shared>>,
    Path(jid): Path<String>,
    Json(body): Json<StreamErrorBody>,
) -> Result<StatusCode, ApiError> {
    let kind: StreamErrorKind = body.kind.parse()?;
    shared.inject_stream_error(&jid, kind)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct ConnectionsItem {
    jid: String,
    connections: usize,
}

async fn connections(State(shared): State<Arc<Shared>>) -> Json<Vec<ConnectionsItem>> {
    Json(
        shared
            .connections()
            .into_iter()
            .map(|(jid, connections)| ConnectionsItem { jid, connections })
            .collect(),
    )
}

async fn redeliver(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    shared.redeliver(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct MuteBody {
    muted: bool,
}

async fn mute(
    State(shared): State<Arc<Shared>>,
    Path(jid): Path<String>,
    Json(body): Json<MuteBody>,
) -> Result<StatusCode, ApiError> {
    shared.set_device_muted(&jid, body.muted)?;
    Ok(StatusCode::NO_CONTENT)
}
