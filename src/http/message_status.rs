//! `GET /v1/sessions/{company}/messages/{id}`: the current status of a
//! message the gateway sent, overall and per recipient (per participant in
//! a group), with the time of each step. Kept for the webhook retention time
//! since the last change, like the `message.status` events it summarises.

use axum::Json;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};
use crate::pb;
use crate::webhook::Webhooks;

/// A sent message's status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageStatusView {
    #[schema(example = "3EB0C431C26A1916E07E")]
    pub message_id: String,
    /// The chat it was sent to (peer or group JID).
    #[schema(example = "15550002222@s.whatsapp.net")]
    pub chat: String,
    /// The furthest status any recipient reached: `sent`, `failed`,
    /// `delivered`, `read`, `played`.
    #[schema(example = "read")]
    pub status: String,
    pub recipients: Vec<RecipientStatusView>,
    /// When the gateway first saw a status of it (unix ms).
    pub created_at_ms: i64,
    /// When its status last changed (unix ms).
    pub updated_at_ms: i64,
}

/// One recipient's status and when each step happened (unix ms, as
/// WhatsApp reported it; absent = not reached).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecipientStatusView {
    /// The peer, the group participant, or the chat itself for `sent` and
    /// `failed` (the server's ack is per message).
    #[schema(example = "15550002222@s.whatsapp.net")]
    pub recipient: String,
    #[schema(example = "read")]
    pub status: String,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    pub played_at: Option<i64>,
    pub failed_at: Option<i64>,
    /// `failed` only: a stable reason code (`server_error_479`, `server_error`).
    pub reason: Option<String>,
}

/// A sent message's current status.
#[utoipa::path(
    get, path = "/v1/sessions/{company}/messages/{id}", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("id" = String, Path, description = "WhatsApp's message id, as the send returned it"),
    ),
    responses(
        (status = 200, description = "The status", body = MessageStatusView),
        (status = 400, description = "`invalid_message_id`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`, `unknown_message` (never sent, no status yet, or older than the retention time)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn message_status(
    access: CompanyAccess,
    Path(path): Path<(String, String)>,
    webhooks: Option<Extension<Webhooks>>,
) -> Result<Json<MessageStatusView>, ApiError> {
    let id = message_id(&path.1)?;
    let webhooks = webhooks.map(|Extension(w)| w).ok_or(ApiError::NotReady)?;
    let record = webhooks
        .messages()
        .status(&access.company, id)
        .map_err(ApiError::internal)?
        .ok_or_else(unknown_message)?;
    Ok(Json(view(record)))
}

fn view(record: pb::MessageStatusRecord) -> MessageStatusView {
    let at = |ms: i64| (ms > 0).then_some(ms);
    MessageStatusView {
        message_id: record.message_id,
        chat: record.chat,
        status: record.status,
        recipients: record
            .recipients
            .into_iter()
            .map(|r| RecipientStatusView {
                recipient: r.recipient,
                status: r.status,
                sent_at: at(r.sent_at_ms),
                delivered_at: at(r.delivered_at_ms),
                read_at: at(r.read_at_ms),
                played_at: at(r.played_at_ms),
                failed_at: at(r.failed_at_ms),
                reason: (!r.reason.is_empty()).then_some(r.reason),
            })
            .collect(),
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
    }
}

/// Checks a WhatsApp message id from a path: 1 to 128 ASCII letters,
/// digits, `-`, `_`, `.` (ids the client generates are hex; other clients
/// use these characters).
pub(super) fn message_id(raw: &str) -> Result<&str, ApiError> {
    let valid = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(raw)
    } else {
        Err(ApiError::Malformed {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_message_id",
            message: "a message id is 1 to 128 letters, digits, `-`, `_` or `.`".to_owned(),
        })
    }
}

/// 404 `unknown_message`.
pub(super) fn unknown_message() -> ApiError {
    ApiError::Malformed {
        status: StatusCode::NOT_FOUND,
        code: "unknown_message",
        message: "no such message (or it is older than the retention time)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_checked() {
        assert!(message_id("3EB0C431C26A1916E07E").is_ok());
        assert!(message_id("").is_err());
        assert!(message_id("a/b").is_err());
        assert!(message_id(&"a".repeat(129)).is_err());
    }
}
