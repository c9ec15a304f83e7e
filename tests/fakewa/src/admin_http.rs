//! The admin HTTP API served on the WebSocket's port, for driving the fake
//! from other processes (DESIGN.md "Fake WhatsApp server: binary and admin API").
//!
//! Errors are JSON `{"error":{"code","message"}}` with a stable snake_case
//! code; each [`FakeError`] variant maps to one status.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::chat_states::{ChatState, PresenceUpdate};
use crate::control::{self, Linked, ReceiptKind, SentMessage, Shared, StreamErrorKind};
use crate::error::FakeError;
use crate::read_receipts::ClientReceipt;
use crate::rich::ContactContent;

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
        .route("/admin/contacts/{phone}/receipts", post(receipts))
        .route(
            "/admin/contacts/{phone}/auto-receipts",
            post(contact_auto_receipts),
        )
        .route("/admin/auto-receipts", post(auto_receipts))
        .route("/admin/contacts/{phone}/lid", post(contact_lid))
        .route(
            "/admin/contacts/{phone}/not-on-whatsapp",
            post(not_on_whatsapp),
        )
        .route("/admin/contacts/{phone}/business", post(business))
        .route("/admin/groups", post(create_group))
        .route("/admin/media/{sha256}/expire", post(expire_media))
        .route("/admin/receipts", get(read_receipts))
        .route("/admin/chatstates", get(chat_states))
        .route("/admin/presences", get(presences))
        .route(
            "/admin/web-version",
            get(crate::web_version::report).post(crate::web_version::set_revision),
        )
        .route("/sw.js", get(crate::web_version::sw_js))
        .route(
            "/mms/{kind}/{token}",
            post(crate::media::upload).get(crate::media::download_mms),
        )
        .route("/v/fakewa/{file}", get(crate::media::download_direct))
        // Media uploads and admin messages carrying a file (base64) are far
        // larger than axum's 2 MiB default; WhatsApp takes files of up to
        // 2 GB, the fake (which keeps them in memory) up to this.
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// Largest request body the fake's HTTP routes accept.
const MAX_BODY: usize = 256 << 20;

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
            FakeError::UnknownMedia(_) => (StatusCode::NOT_FOUND, "unknown_media"),
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
    #[serde(flatten)]
    content: ContactContent,
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
    let c = &body.content;
    let plain_text = c.kind() == "text" && c.quoted_id.is_none() && !c.as_lid;
    let id = match (&c.text, plain_text) {
        (Some(text), true) => {
            shared
                .queue_contact_text(&from, &body.to, text, None, false)
                .await?
        }
        _ => shared.queue_contact_content(&from, &body.to, c).await?,
    };
    Ok(Json(MessageIdBody { id }))
}

#[derive(Deserialize)]
struct ReceiptsBody {
    to: Option<String>,
    message_ids: Vec<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

async fn receipts(
    State(shared): State<Arc<Shared>>,
    Path(phone): Path<String>,
    Json(body): Json<ReceiptsBody>,
) -> Result<StatusCode, ApiError> {
    let from = control::normalize_phone(&phone)?;
    let kind: ReceiptKind = body.kind.as_deref().unwrap_or("delivered").parse()?;
    shared.contact_receipt(&from, body.to.as_deref(), &body.message_ids, kind)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct EnabledBody {
    enabled: bool,
}

async fn contact_auto_receipts(
    State(shared): State<Arc<Shared>>,
    Path(phone): Path<String>,
    Json(body): Json<EnabledBody>,
) -> Result<StatusCode, ApiError> {
    shared.set_auto_receipts(Some(&phone), body.enabled)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn auto_receipts(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<EnabledBody>,
) -> Result<StatusCode, ApiError> {
    shared.set_auto_receipts(None, body.enabled)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct LidBody {
    lid: String,
}

async fn contact_lid(
    State(shared): State<Arc<Shared>>,
    Path(phone): Path<String>,
) -> Result<Json<LidBody>, ApiError> {
    let phone = control::normalize_phone(&phone)?;
    let lid = format!("{}@lid", shared.reg.lock().lid_for(&phone));
    Ok(Json(LidBody { lid }))
}

/// Optional body `{"enabled": false}` reverts the flag.
fn flag(body: &axum::body::Bytes) -> Result<bool, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(true);
    }
    serde_json::from_slice::<EnabledBody>(body)
        .map(|b| b.enabled)
        .map_err(|e| ApiError(FakeError::InvalidInput(e.to_string())))
}

async fn not_on_whatsapp(
    State(shared): State<Arc<Shared>>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    shared.mark_contact(&phone, flag(&body)?, |reg| &mut reg.not_on_whatsapp)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn business(
    State(shared): State<Arc<Shared>>,
    Path(phone): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    shared.mark_contact(&phone, flag(&body)?, |reg| &mut reg.business)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct GroupBody {
    subject: String,
    participants: Vec<String>,
}

#[derive(Serialize)]
struct JidBody {
    jid: String,
}

async fn create_group(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<GroupBody>,
) -> Result<Json<JidBody>, ApiError> {
    let jid = shared.create_group(&body.subject, &body.participants)?;
    Ok(Json(JidBody { jid }))
}

async fn expire_media(
    State(shared): State<Arc<Shared>>,
    Path(sha256): Path<String>,
) -> Result<StatusCode, ApiError> {
    if shared.media.lock().expire(&sha256) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(FakeError::UnknownMedia(sha256)))
    }
}

async fn messages(State(shared): State<Arc<Shared>>) -> Json<Vec<SentMessage>> {
    Json(shared.journal.lock().sent.clone())
}

/// Read / played receipts clients sent (client → contact; the opposite
/// direction is `POST /admin/contacts/{phone}/receipts`).
async fn read_receipts(State(shared): State<Arc<Shared>>) -> Json<Vec<ClientReceipt>> {
    Json(shared.journal.lock().read_receipts.clone())
}

async fn chat_states(State(shared): State<Arc<Shared>>) -> Json<Vec<ChatState>> {
    Json(shared.journal.lock().chat_states.clone())
}

async fn presences(State(shared): State<Arc<Shared>>) -> Json<Vec<PresenceUpdate>> {
    Json(shared.journal.lock().presences.clone())
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
