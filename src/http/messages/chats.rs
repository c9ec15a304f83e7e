//! Chat-level calls that send no message: `POST …/chats/{chat}/read`
//! (read receipts), `POST …/chats/{chat}/presence` (typing, recording,
//! paused) and `POST …/contacts/check` (which numbers are on WhatsApp).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::AppState;
use super::super::access::CompanyAccess;
use super::super::error::{ApiError, ErrorBody};
use super::super::extract::ApiJson;
use super::super::sessions::session;
use crate::domain::outgoing::ChatState;
use crate::domain::{MessageId, PhoneNumber, Recipient};

/// Body of `…/read`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// Ids of received messages of the chat (1 to 100).
    #[schema(example = json!(["3EB0C431C26A1916E07E"]))]
    pub message_ids: Vec<String>,
}

/// Body of `…/presence`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    /// `composing` (typing), `recording` (recording audio) or `paused`.
    #[schema(example = "composing")]
    pub state: String,
}

/// Body of `…/contacts/check`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// E.164 numbers (1 to 50).
    #[schema(example = json!(["+15550002222"]))]
    pub phones: Vec<String>,
}

/// One number's answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContactCheckView {
    /// The number (digits).
    #[schema(example = "15550002222")]
    pub phone: String,
    pub on_whatsapp: bool,
    /// Its phone JID, when on WhatsApp.
    #[schema(example = "15550002222@s.whatsapp.net")]
    pub jid: Option<String>,
    /// Its LID, when WhatsApp told it.
    #[schema(example = "100000012345678@lid")]
    pub lid: Option<String>,
    /// A WhatsApp Business account.
    pub business: bool,
}

/// Answer of `…/contacts/check`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckResponse {
    pub contacts: Vec<ContactCheckView>,
}

#[derive(Deserialize)]
pub struct ChatPath {
    #[allow(dead_code)]
    company: String,
    chat: String,
}

fn invalid_body(message: &str) -> ApiError {
    ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
}

/// Mark received messages of a chat as read.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/chats/{chat}/read", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("chat" = String, Path, description = "E.164 number, phone JID, LID JID or group JID"),
    ),
    request_body = ReadRequest,
    responses(
        (status = 204, description = "Read receipts sent"),
        (status = 400, description = "`invalid_phone`, `invalid_recipient`, `invalid_message_id`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`unknown_company`; `unknown_message` (group message the gateway did not receive)", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 502, description = "`send_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn read(
    State(state): State<AppState>,
    access: CompanyAccess,
    Path(path): Path<ChatPath>,
    ApiJson(body): ApiJson<ReadRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let chat = Recipient::parse(&path.chat)?;
    if body.message_ids.is_empty() || body.message_ids.len() > 100 {
        return Err(invalid_body("`message_ids` holds 1 to 100 ids"));
    }
    let ids = body
        .message_ids
        .iter()
        .map(|id| MessageId::parse(id))
        .collect::<Result<Vec<_>, _>>()?;
    session(&state, &access)?.mark_read(chat, ids).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Show typing, recording or paused in a chat.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/chats/{chat}/presence", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("chat" = String, Path, description = "E.164 number, phone JID, LID JID or group JID"),
    ),
    request_body = PresenceRequest,
    responses(
        (status = 204, description = "Chat state sent"),
        (status = 400, description = "`invalid_phone`, `invalid_recipient`, `invalid_presence`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 502, description = "`send_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn presence(
    State(state): State<AppState>,
    access: CompanyAccess,
    Path(path): Path<ChatPath>,
    ApiJson(body): ApiJson<PresenceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let chat = Recipient::parse(&path.chat)?;
    let chat_state = match body.state.as_str() {
        "composing" => ChatState::Composing,
        "recording" => ChatState::Recording,
        "paused" => ChatState::Paused,
        _ => {
            return Err(ApiError::refused(
                StatusCode::BAD_REQUEST,
                "invalid_presence",
                "state must be composing, recording or paused",
            ));
        }
    };
    session(&state, &access)?
        .set_chat_state(chat, chat_state)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which numbers are on WhatsApp (answers cached for ten minutes).
#[utoipa::path(
    post, path = "/v1/sessions/{company}/contacts/check", tag = "messages",
    params(("company" = String, Path, description = "Company id")),
    request_body = CheckRequest,
    responses(
        (status = 200, description = "One answer per number, in order", body = CheckResponse),
        (status = 400, description = "`invalid_phone`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
        (status = 502, description = "`send_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn check_contacts(
    State(state): State<AppState>,
    access: CompanyAccess,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if body.phones.is_empty() || body.phones.len() > 50 {
        return Err(invalid_body("`phones` holds 1 to 50 numbers"));
    }
    let phones = body
        .phones
        .iter()
        .map(|p| PhoneNumber::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let answers = session(&state, &access)?.check_contacts(phones).await?;
    Ok(Json(CheckResponse {
        contacts: answers
            .into_iter()
            .map(|c| ContactCheckView {
                phone: c.phone,
                on_whatsapp: c.on_whatsapp,
                jid: c.jid,
                lid: c.lid,
                business: c.business,
            })
            .collect(),
    }))
}
