//! Actions on a message of a chat, sent or received:
//! `POST …/messages/{id}/reaction` (empty emoji removes it),
//! `PATCH …/messages/{id}` (edit) and `DELETE …/messages/{id}?chat=…`
//! (delete for everyone). Edits and deletes apply to the gateway's own
//! messages only. Each honours `Idempotency-Key` like a send.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::super::AppState;
use super::super::access::CompanyAccess;
use super::super::error::{ApiError, ErrorBody};
use super::super::extract::{ApiJson, ApiQuery};
use super::super::send_rate::take_for_send;
use super::super::sessions::session;
use super::send::{SendResponse, idempotency_key, sent_response};
use crate::domain::outgoing::{Action, parse_emoji};
use crate::domain::{IdempotencyKey, MessageId, MessageText, Recipient};

/// Body of a reaction.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionRequest {
    /// The chat of the message (E.164 number or JID, as in `to`).
    #[schema(example = "+15550002222")]
    pub chat: String,
    /// One emoji; empty removes the reaction.
    #[schema(example = "👍")]
    pub emoji: String,
}

/// Body of an edit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The chat of the message.
    #[schema(example = "+15550002222")]
    pub chat: String,
    /// The new text.
    #[schema(example = "Your order has shipped (corrected).")]
    pub text: String,
}

/// Query of a delete.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatQuery {
    /// The chat of the message (E.164 number or JID).
    pub chat: String,
}

#[derive(Deserialize)]
pub struct MessagePath {
    #[allow(dead_code)]
    company: String,
    id: String,
}

async fn act(
    state: &AppState,
    access: &CompanyAccess,
    headers: &HeaderMap,
    chat: &str,
    id: &str,
    action: Action,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let key = idempotency_key(headers)?;
    let chat = Recipient::parse(chat)?;
    let id = MessageId::parse(id)?;
    let handle = session(state, access)?;
    take_for_send(state, &access.company, key.as_ref())?;
    let sent = handle
        .act(chat, id, action, key.map(IdempotencyKey::into_string))
        .await?;
    Ok(sent_response(sent))
}

/// React to a message (sent or received); an empty emoji removes the reaction.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/messages/{id}/reaction", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("id" = String, Path, description = "The message's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe, as on sends"),
    ),
    request_body = ReactionRequest,
    responses(
        (status = 201, description = "Reaction sent (its own message id)", body = SendResponse),
        (status = 200, description = "Replayed (same Idempotency-Key)", body = SendResponse),
        (status = 400, description = "`invalid_phone`, `invalid_recipient`, `invalid_message_id`, `invalid_emoji`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`unknown_company`, `unknown_message`", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the company's send budget is used up; nothing was sent", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until a send is allowed again (rounded up)"))),
        (status = 422, description = "`invalid_body`, `not_on_whatsapp`", body = ErrorBody),
        (status = 502, description = "`send_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn react(
    State(state): State<AppState>,
    access: CompanyAccess,
    Path(path): Path<MessagePath>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReactionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let emoji = parse_emoji(body.emoji)?;
    act(
        &state,
        &access,
        &headers,
        &body.chat,
        &path.id,
        Action::React { emoji },
    )
    .await
}

/// Edit the text of a message the gateway sent.
#[utoipa::path(
    patch, path = "/v1/sessions/{company}/messages/{id}", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("id" = String, Path, description = "The message's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe, as on sends"),
    ),
    request_body = EditRequest,
    responses(
        (status = 201, description = "Edit sent (the message keeps its id)", body = SendResponse),
        (status = 200, description = "Replayed (same Idempotency-Key)", body = SendResponse),
        (status = 400, description = "`invalid_phone`, `invalid_recipient`, `invalid_message_id`, `invalid_text`, `invalid_json`", body = ErrorBody),
        (status = 404, description = "`unknown_company`, `unknown_message`", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the company's send budget is used up; nothing was sent", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until a send is allowed again (rounded up)"))),
        (status = 422, description = "`invalid_body`, `not_own_message`, `not_on_whatsapp`", body = ErrorBody),
        (status = 502, description = "`send_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn edit(
    State(state): State<AppState>,
    access: CompanyAccess,
    Path(path): Path<MessagePath>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<EditRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let text = MessageText::parse(body.text)?;
    act(
        &state,
        &access,
        &headers,
        &body.chat,
        &path.id,
        Action::Edit { text },
    )
    .await
}

/// Delete a message the gateway sent, for everyone.
#[utoipa::path(
    delete, path = "/v1/sessions/{company}/messages/{id}", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("id" = String, Path, description = "The message's id"),
        ChatQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe, as on sends"),
    ),
    responses(
        (status = 201, description = "Delete sent", body = SendResponse),
        (status = 200, description = "Replayed (same Idempotency-Key)", body = SendResponse),
        (status = 400, description = "`invalid_phone`, `invalid_recipient`, `invalid_message_id`, `invalid_query`", body = ErrorBody),
        (status = 404, description = "`unknown_company`, `unknown_message`", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the company's send budget is used up; nothing was sent", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until a send is allowed again (rounded up)"))),
        (status = 422, description = "`not_own_message`, `not_on_whatsapp`", body = ErrorBody),
        (status = 502, description = "`send_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    access: CompanyAccess,
    Path(path): Path<MessagePath>,
    ApiQuery(query): ApiQuery<ChatQuery>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    act(
        &state,
        &access,
        &headers,
        &query.chat,
        &path.id,
        Action::Revoke,
    )
    .await
}
