//! The simulated contacts: they send a company messages of every kind,
//! acknowledge what it sent them (delivered, read, played), and show what
//! they received (decrypted by the fake, as a phone would).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fakewa::{ContactContent, ReceiptKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{fake_error, linked_phone, refusal, sandbox_of};
use crate::domain::{CompanyId, PhoneNumber};
use crate::http::AppState;
use crate::http::access::AdminAccess;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::pool::SessionHandle;

/// What a contact sends. `kind` says which other fields apply.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactMessage {
    /// The company whose linked number receives it.
    #[schema(example = "acme")]
    pub company: String,
    /// `text` (default), `image`, `video`, `audio`, `voice`, `document`,
    /// `sticker`, `reaction`, `edit` (of the contact's own message),
    /// `revoke` (deletes the contact's own message), `location`.
    #[serde(default)]
    #[schema(example = "text")]
    pub kind: Option<String>,
    /// `text`, `edit`.
    #[schema(example = "Hello from a simulated contact")]
    pub text: Option<String>,
    /// The file, base64 (media kinds).
    pub base64: Option<String>,
    /// Media MIME type, e.g. `image/png`.
    pub mime_type: Option<String>,
    /// Media caption.
    pub caption: Option<String>,
    /// Document file name.
    pub file_name: Option<String>,
    /// The message a `reaction`, `edit` or `revoke` refers to.
    pub target_id: Option<String>,
    /// Reaction emoji (empty removes the reaction).
    pub emoji: Option<String>,
    /// `location`.
    pub latitude: Option<f64>,
    /// `location`.
    pub longitude: Option<f64>,
    /// Quote (reply to) this message id.
    pub quoted_id: Option<String>,
}

crate::domain::redacted_debug!(ContactMessage { kind });

impl ContactMessage {
    fn into_content(self) -> ContactContent {
        ContactContent {
            kind: self.kind,
            text: self.text,
            base64: self.base64,
            mime_type: self.mime_type,
            caption: self.caption,
            file_name: self.file_name,
            target_id: self.target_id,
            emoji: self.emoji,
            latitude: self.latitude,
            longitude: self.longitude,
            quoted_id: self.quoted_id,
            ..ContactContent::default()
        }
    }
}

/// The id of the message a contact sent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContactMessageId {
    /// WhatsApp's id of the message (the `message_id` of the webhook event).
    pub id: String,
}

/// The company's session, linked, for a sandbox contact: 404
/// `unknown_company`, 409 `not_linked`.
fn company_session(state: &AppState, raw: &str) -> Result<(SessionHandle, String), ApiError> {
    let company = CompanyId::parse(raw)?;
    let handle = state.pool.get(&company).ok_or(ApiError::UnknownCompany)?;
    let phone = linked_phone(&handle)?;
    Ok((handle, phone))
}

/// Contact `phone` (any number: contacts exist on first use) sends the
/// company a message; it arrives as a webhook event like a real one.
#[utoipa::path(
    post, path = "/v1/sandbox/contacts/{phone}/messages", tag = "sandbox",
    params(("phone" = String, Path, description = "The contact's number, digits with country code")),
    request_body = ContactMessage,
    responses(
        (status = 200, description = "Sent", body = ContactMessageId),
        (status = 400, description = "`invalid_phone`, `invalid_company_id`, `sandbox_invalid_input` (a field this kind needs is missing, bad base64, unknown kind)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`, `sandbox_unknown_device`", body = ErrorBody),
        (status = 409, description = "`not_linked`: the company has no (simulated) phone linked yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send(
    State(state): State<AppState>,
    _admin: AdminAccess,
    Path(phone): Path<String>,
    ApiJson(body): ApiJson<ContactMessage>,
) -> Result<Json<ContactMessageId>, ApiError> {
    let from = PhoneNumber::parse(&phone)?;
    let sandbox = sandbox_of(&state)?;
    let (handle, to) = company_session(&state, &body.company)?;
    let id = sandbox
        .fake()
        .contact_send(from.digits(), &to, body.into_content())
        .await
        .map_err(fake_error)?;
    tracing::info!(company.id = %handle.company(), "sandbox: a simulated contact sent a message");
    Ok(Json(ContactMessageId { id }))
}

/// What a contact acknowledges.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactReceipt {
    /// Ids of messages the company sent this contact (the `message_id` of
    /// `POST /v1/sessions/{company}/messages`).
    pub message_ids: Vec<String>,
    /// `delivered` (default), `read` or `played`.
    #[serde(default, rename = "type")]
    #[schema(example = "read")]
    pub kind: Option<String>,
}

crate::domain::redacted_debug!(ContactReceipt { kind });

/// Contact `phone` acknowledges messages a company sent it: the company gets
/// the `message.status` events a real phone would cause.
#[utoipa::path(
    post, path = "/v1/sandbox/contacts/{phone}/receipts", tag = "sandbox",
    params(("phone" = String, Path, description = "The contact's number, digits with country code")),
    request_body = ContactReceipt,
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "`invalid_phone`, `sandbox_invalid_input` (no ids, an id this contact never received, an unknown type)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`sandbox_unknown_device`", body = ErrorBody),
        (status = 409, description = "`sandbox_not_connected`: the sender's device is offline", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn receipts(
    State(state): State<AppState>,
    _admin: AdminAccess,
    Path(phone): Path<String>,
    ApiJson(body): ApiJson<ContactReceipt>,
) -> Result<StatusCode, ApiError> {
    let from = PhoneNumber::parse(&phone)?;
    let sandbox = sandbox_of(&state)?;
    if body.message_ids.is_empty() {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "sandbox_invalid_input",
            "message_ids must name at least one message",
        ));
    }
    let kind: ReceiptKind = body
        .kind
        .as_deref()
        .unwrap_or("delivered")
        .parse()
        .map_err(fake_error)?;
    sandbox
        .fake()
        .contact_receipt(from.digits(), None, &body.message_ids, kind)
        .map_err(fake_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filter of the received messages.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceivedQuery {
    /// Only what this company sent.
    pub company: Option<String>,
}

/// Messages contacts received, oldest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReceivedMessages {
    /// What each contact decrypted.
    pub messages: Vec<ReceivedMessage>,
}

/// One message a contact received, as its phone decrypted it. Fields that
/// do not apply to `kind` are absent.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReceivedMessage {
    /// The company's linked number (digits).
    pub from: String,
    /// The contact's number (digits).
    pub to: String,
    /// WhatsApp's id of the message (the `message_id` a send returned).
    pub id: String,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location`, `contact`, `reaction`, `edit`, `revoke`, `protocol`, `other`.
    pub kind: String,
    /// The text (`text`, `edit`; else empty).
    pub text: String,
    /// Media caption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Media MIME type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Document file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Hex SHA-256 of the decrypted media file (present only when the file
    /// was downloaded and every hash and MAC checked out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_sha256: Option<String>,
    /// The message this one replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quoted_id: Option<String>,
    /// The reaction's emoji (`reaction`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// The message a `reaction` targets, an `edit` replaces or a `revoke` deletes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
}

crate::domain::redacted_debug!(ReceivedMessage { id, kind });

impl From<fakewa::SentMessage> for ReceivedMessage {
    fn from(m: fakewa::SentMessage) -> Self {
        let (emoji, reaction_target) = m
            .reaction
            .map_or((None, None), |r| (Some(r.emoji), Some(r.target_id)));
        Self {
            target_id: reaction_target.or(m.edit_of).or(m.revoke_of),
            from: m.from,
            to: m.to,
            id: m.id,
            kind: m.kind,
            text: m.text,
            caption: m.caption,
            mime_type: m.mime_type,
            file_name: m.file_name,
            media_sha256: m.media_sha256,
            quoted_id: m.quoted_id,
            emoji,
        }
    }
}

/// What contacts received from the companies (every company, or one).
#[utoipa::path(
    get, path = "/v1/sandbox/messages", tag = "sandbox",
    params(ReceivedQuery),
    responses(
        (status = 200, body = ReceivedMessages),
        (status = 400, description = "`invalid_company_id`, `invalid_query`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 409, description = "`not_linked`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn received(
    State(state): State<AppState>,
    _admin: AdminAccess,
    ApiQuery(query): ApiQuery<ReceivedQuery>,
) -> Result<Json<ReceivedMessages>, ApiError> {
    let sandbox = sandbox_of(&state)?;
    let from = match &query.company {
        Some(company) => Some(company_session(&state, company)?.1),
        None => None,
    };
    let messages = sandbox
        .fake()
        .sent_messages()
        .into_iter()
        .filter(|m| from.as_ref().is_none_or(|from| &m.from == from))
        .map(ReceivedMessage::from)
        .collect();
    Ok(Json(ReceivedMessages { messages }))
}
