//! `POST /v1/sessions/{company}/messages`: send a text, safely retryable with
//! an `Idempotency-Key` header (the same key returns the first send's message
//! id and sends nothing).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::sessions::session;
use crate::domain::{IdempotencyKey, MessageText, PhoneNumber};

/// The header that makes a send idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Body of a text send.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendTextRequest {
    /// Recipient: an international phone number (`+15550002222`) or a phone
    /// JID (`15550002222@s.whatsapp.net`).
    #[schema(example = "+15550002222")]
    pub to: String,
    /// The text, 1 to 65,536 characters.
    #[schema(example = "Your order has shipped.")]
    pub text: String,
}

/// A sent (or, on an idempotent retry, previously sent) message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SendTextResponse {
    /// WhatsApp's message id.
    #[schema(example = "3EB0C431C26A1916E07E")]
    pub message_id: String,
    /// The recipient's number (E.164 digits, no `+`).
    #[schema(example = "15550002222")]
    pub to: String,
    /// True when this answer replays an earlier send with the same
    /// `Idempotency-Key` (HTTP 200 instead of 201); nothing was sent again.
    pub duplicate: bool,
}

/// Send a text message.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/messages", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key returns the first send's message id while the gateway remembers it (`--idempotency-ttl-hours`, a day by default; 1–255 visible ASCII characters)"),
    ),
    request_body = SendTextRequest,
    responses(
        (status = 201, description = "Sent", body = SendTextResponse),
        (status = 200, description = "Replayed: a send with this Idempotency-Key already happened", body = SendTextResponse),
        (status = 400, description = "`invalid_phone`, `invalid_text`, `invalid_idempotency_key`, `invalid_json`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 502, description = "`send_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send_text(
    State(state): State<AppState>,
    access: CompanyAccess,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendTextRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        // A header that is not visible ASCII is refused like an empty key.
        Some(value) => Some(IdempotencyKey::parse(value.to_str().unwrap_or_default())?),
    };
    let to = PhoneNumber::parse(&body.to)?;
    let text = MessageText::parse(body.text)?;
    let handle = session(&state, &access)?;
    let sent = handle
        .send_text(to, text.into_string(), key.map(IdempotencyKey::into_string))
        .await?;
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(SendTextResponse {
            message_id: sent.message_id,
            to: sent.to,
            duplicate: sent.duplicate,
        }),
    ))
}
