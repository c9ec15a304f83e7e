//! `POST /v1/sessions/{company}/messages`: send a text, media, a location or
//! contact cards, optionally as a quoted reply; safely retryable with an
//! `Idempotency-Key` header (the same key returns the first send's message
//! id and sends nothing).
//!
//! The body is JSON (media as `base64` or `url`) or `multipart/form-data`
//! (a `file` part plus the same fields as form fields). Everything is
//! validated, and media received, checked and spooled, before the session
//! is asked to send: a refusal sends nothing.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::AppState;
use super::super::access::CompanyAccess;
use super::super::error::{ApiError, ErrorBody};
use super::super::send_rate::take_for_send;
use super::super::sessions::session;
use super::media::{Spool, max_bytes, spool_base64};
use crate::domain::media::{MediaKind, parse_caption, parse_file_name, parse_mime};
use crate::domain::outgoing::{ContactCard, Content, Location};
use crate::domain::{IdempotencyKey, MessageId, MessageText, PhoneNumber, Recipient};

/// The header that makes a send idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Largest JSON body of a send (base64 media included), in bytes.
pub const MAX_JSON_BYTES: usize = 24 * 1024 * 1024;
/// Largest non-file form field of a multipart send, in bytes.
const MAX_FORM_FIELD: usize = 128 * 1024;

/// The most contact cards one contact message carries, its `vcard` and
/// its `contacts` together.
pub const MAX_CARDS: usize = 50;

/// Body of a send (JSON, or the form fields of a multipart send).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// Recipient: an E.164 number (`+15550002222`), a phone JID
    /// (`…@s.whatsapp.net`), a LID JID (`…@lid`) or a group JID (`…@g.us`).
    #[schema(example = "+15550002222")]
    pub to: String,
    /// `text` (default), `image`, `video`, `audio`, `voice` (push-to-talk),
    /// `document`, `sticker`, `location` or `contact`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "text")]
    pub kind: Option<String>,
    /// The text (`text` only), 1 to 65,536 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Your order has shipped.")]
    pub text: Option<String>,
    /// Media: the file in standard base64 (small files; JSON bodies are
    /// capped at 24 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Media: an `http(s)` URL the gateway fetches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://example.com/invoice.pdf")]
    pub url: Option<String>,
    /// Media: the MIME type; sniffed from the file when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "application/pdf")]
    pub mime_type: Option<String>,
    /// Image, video, document: the caption (at most 4,096 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Document: the file name shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "invoice-42.pdf")]
    pub file_name: Option<String>,
    /// Location: latitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 52.52)]
    pub latitude: Option<f64>,
    /// Location: longitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 13.405)]
    pub longitude: Option<f64>,
    /// Location: the place's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Location: the place's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Contact: one vCard (`BEGIN:VCARD … END:VCARD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcard: Option<String>,
    /// Contact: one or more cards, each a vCard or a name and phone numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<ContactInput>>,
    /// Any kind: the id of a message in this chat to quote (404
    /// `unknown_message` if the gateway neither sent nor received it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// Every field of a send body, in the document's order.
pub const FIELDS: [&str; 15] = [
    "to",
    "type",
    "text",
    "base64",
    "url",
    "mime_type",
    "caption",
    "file_name",
    "latitude",
    "longitude",
    "name",
    "address",
    "vcard",
    "contacts",
    "reply_to",
];

/// The `type` values.
pub const KINDS: [&str; 9] = [
    "text", "image", "video", "audio", "voice", "document", "sticker", "location", "contact",
];

/// The fields a message of `kind` takes (`type` included); a field of
/// another kind is refused (422 `invalid_body`), not ignored.
pub fn allowed_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "text" => &["to", "type", "text", "reply_to"],
        "location" => &[
            "to",
            "type",
            "latitude",
            "longitude",
            "name",
            "address",
            "reply_to",
        ],
        "contact" => &["to", "type", "vcard", "contacts", "reply_to"],
        _ => &[
            "to",
            "type",
            "base64",
            "url",
            "mime_type",
            "caption",
            "file_name",
            "reply_to",
        ],
    }
}

impl SendMessageRequest {
    /// The fields given a value (not absent, not `null`).
    fn present_fields(&self) -> Vec<&'static str> {
        let present = [
            ("text", self.text.is_some()),
            ("base64", self.base64.is_some()),
            ("url", self.url.is_some()),
            ("mime_type", self.mime_type.is_some()),
            ("caption", self.caption.is_some()),
            ("file_name", self.file_name.is_some()),
            ("latitude", self.latitude.is_some()),
            ("longitude", self.longitude.is_some()),
            ("name", self.name.is_some()),
            ("address", self.address.is_some()),
            ("vcard", self.vcard.is_some()),
            ("contacts", self.contacts.is_some()),
            ("reply_to", self.reply_to.is_some()),
        ];
        present
            .into_iter()
            .filter_map(|(field, set)| set.then_some(field))
            .collect()
    }
}

/// One contact card: `vcard`, or `name` and `phones`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Eve Example")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["+15550005555"]))]
    pub phones: Option<Vec<String>>,
}

/// A sent (or, on an idempotent retry, previously sent) message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SendResponse {
    /// WhatsApp's message id.
    #[schema(example = "3EB0C431C26A1916E07E")]
    pub message_id: String,
    /// The recipient: a phone's digits (E.164, no `+`), else its JID.
    #[schema(example = "15550002222")]
    pub to: String,
    /// True when this answer replays an earlier send with the same
    /// `Idempotency-Key` (HTTP 200 instead of 201); nothing was sent again.
    pub duplicate: bool,
}

/// Send a message: text, media, location or contact cards.
///
/// JSON, or `multipart/form-data` with a `file` part and the other fields as
/// form fields. Media is also accepted as `base64` or `url` in JSON.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/messages", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key returns the first send's message id while the gateway remembers it (`--idempotency-ttl-hours`, a day by default; 1–255 visible ASCII characters)"),
    ),
    request_body(content(
        (SendMessageRequest = "application/json"),
        (SendMessageRequest = "multipart/form-data"),
    ), description = "JSON, or multipart/form-data with a `file` part (binary) and the same fields as form fields"),
    responses(
        (status = 201, description = "Sent", body = SendResponse),
        (status = 200, description = "Replayed: a send with this Idempotency-Key already happened", body = SendResponse),
        (status = 400, description = "`invalid_phone`, `invalid_recipient`, `invalid_text`, `invalid_type`, `invalid_caption`, `invalid_file_name`, `invalid_mime_type`, `invalid_location`, `invalid_contact`, `invalid_message_id`, `invalid_media`, `invalid_multipart`, `invalid_idempotency_key`, `invalid_json`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`; `unknown_message` (`reply_to` is not a message of this chat)", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 413, description = "`media_too_large` (over `--media-max-mib` or WhatsApp's limit for the kind), `payload_too_large`", body = ErrorBody),
        (status = 415, description = "`invalid_media_type` (a MIME type WhatsApp rejects for the kind, or none could be told), `unsupported_media_type` (body neither JSON nor multipart)", body = ErrorBody),
        (status = 422, description = "`invalid_body`, `not_on_whatsapp`, `media_url_refused` (a private, loopback, link-local or other non-public address, unless `--allow-private-urls`; bad scheme)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the company's send budget is used up (`--send-rate-per-minute`, `--send-burst`); nothing was sent; `Retry-After` says when to retry", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds until a send is allowed again (rounded up)"))),
        (status = 502, description = "`send_failed`, `media_url_failed`", body = ErrorBody),
        (status = 504, description = "`timeout`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send_message(
    State(state): State<AppState>,
    access: CompanyAccess,
    headers: HeaderMap,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let key = idempotency_key(&headers)?;
    let (body, file) = read_body(&state, request).await?;
    let to = Recipient::parse(&body.to)?;
    let reply_to = body.reply_to.as_deref().map(MessageId::parse).transpose()?;
    let handle = session(&state, &access)?;
    // After the body is checked and before media is decoded or fetched:
    // nothing is downloaded or spooled for a session that cannot send it
    // (the send checks again).
    let connected = || match handle.status().state {
        crate::pool::SessionState::Connected => Ok(()),
        state => Err(ApiError::from(crate::pool::PoolError::NotConnected {
            state,
        })),
    };
    let content = content(&state, body, file, &connected).await?;
    connected()?;
    take_for_send(&state, &access.company, key.as_ref())?;
    let sent = handle
        .send_message(to, content, reply_to, key.map(IdempotencyKey::into_string))
        .await?;
    Ok(sent_response(sent))
}

/// The `Idempotency-Key` header, if any.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    Ok(match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        // A header that is not visible ASCII is refused like an empty key.
        Some(value) => Some(IdempotencyKey::parse(value.to_str().unwrap_or_default())?),
    })
}

/// 201 with the sent message, or 200 on an idempotent replay.
pub(super) fn sent_response(sent: crate::pool::Sent) -> impl IntoResponse {
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (
        status,
        Json(SendResponse {
            message_id: sent.message_id,
            to: sent.to,
            duplicate: sent.duplicate,
        }),
    )
}

/// The fields, and the file of a multipart body (spooled with the limit of
/// its kind when `type` came before it, else the largest limit; the kind's
/// is applied once known).
async fn read_body(
    state: &AppState,
    request: Request,
) -> Result<
    (
        SendMessageRequest,
        Option<(Spool, Option<String>, Option<String>)>,
    ),
    ApiError,
> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        return read_multipart(state, request).await;
    }
    if !content_type.starts_with("application/json") {
        return Err(ApiError::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected `Content-Type: application/json` or `multipart/form-data`",
        ));
    }
    let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_JSON_BYTES,
        })?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::refused(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    Ok((super::super::extract::from_object(value)?, None))
}

async fn read_multipart(
    state: &AppState,
    request: Request,
) -> Result<
    (
        SendMessageRequest,
        Option<(Spool, Option<String>, Option<String>)>,
    ),
    ApiError,
> {
    let bad =
        |message: String| ApiError::refused(StatusCode::BAD_REQUEST, "invalid_multipart", message);
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| bad(e.body_text()))?;
    let mut fields = serde_json::Map::new();
    let mut file = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            if file.is_some() {
                return Err(bad("only one `file` part is allowed".into()));
            }
            let kind = fields
                .get("type")
                .and_then(|v| v.as_str())
                .and_then(MediaKind::from_name);
            let mut spool = Spool::new(max_bytes(&state.media, kind)).await?;
            let part_mime = field.content_type().map(str::to_owned);
            let part_name = field.file_name().map(str::to_owned);
            while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
                spool.write(&chunk).await?;
            }
            file = Some((spool, part_mime, part_name));
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| bad(e.body_text()))? {
            value.extend_from_slice(&chunk);
            if value.len() > MAX_FORM_FIELD {
                return Err(bad(format!("the form field `{name}` is too long")));
            }
        }
        let value = String::from_utf8(value)
            .map_err(|_| bad(format!("the form field `{name}` is not UTF-8")))?;
        let value = match name.as_str() {
            "latitude" | "longitude" => serde_json::Value::from(
                value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| bad(format!("`{name}` must be a number")))?,
            ),
            // OpenAPI's multipart encoding of an array property is one part
            // per item (each a JSON object); the whole array as JSON text
            // in one part is taken too. Parts add up.
            "contacts" => {
                let items = match serde_json::from_str(&value) {
                    Ok(serde_json::Value::Array(items)) => items,
                    Ok(one @ serde_json::Value::Object(_)) => vec![one],
                    _ => {
                        return Err(bad(
                            "each `contacts` part must be a JSON object (one contact) or array"
                                .into(),
                        ));
                    }
                };
                let all = fields
                    .entry("contacts")
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                if let serde_json::Value::Array(all) = all {
                    all.extend(items);
                }
                continue;
            }
            _ => serde_json::Value::from(value),
        };
        fields.insert(name, value);
    }
    let body = serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| {
        ApiError::refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            e.to_string(),
        )
    })?;
    Ok((body, file))
}

/// What to send, from the validated body (and the file of a multipart body).
/// The message `body` asks for; `connected` is checked before any media is
/// read into the spool.
async fn content(
    state: &AppState,
    body: SendMessageRequest,
    file: Option<(Spool, Option<String>, Option<String>)>,
    connected: &(dyn Fn() -> Result<(), ApiError> + Sync),
) -> Result<Content, ApiError> {
    let kind = body.kind.as_deref().unwrap_or("text");
    let invalid = |message: String| {
        ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
    };
    let media_fields = file.is_some() || body.base64.is_some() || body.url.is_some();
    let allowed = allowed_fields(kind);
    if let Some(field) = body
        .present_fields()
        .into_iter()
        .find(|f| !allowed.contains(f))
        .filter(|_| KINDS.contains(&kind))
    {
        return Err(invalid(format!("a `{kind}` message carries no `{field}`")));
    }
    if let Some(media) = MediaKind::from_name(kind) {
        return media_content(state, media, body, file, connected).await;
    }
    if media_fields {
        return Err(invalid(format!("a `{kind}` message carries no file")));
    }
    match kind {
        "text" => {
            let text = body
                .text
                .ok_or_else(|| invalid("`text` is required".into()))?;
            Ok(Content::Text(MessageText::parse(text)?))
        }
        "location" => {
            let (Some(latitude), Some(longitude)) = (body.latitude, body.longitude) else {
                return Err(invalid("`latitude` and `longitude` are required".into()));
            };
            Ok(Content::Location(Location::new(
                latitude,
                longitude,
                body.name,
                body.address,
            )?))
        }
        "contact" => {
            let mut cards = Vec::new();
            if let Some(vcard) = body.vcard {
                cards.push(ContactCard::from_vcard(vcard)?);
            }
            for input in body.contacts.unwrap_or_default() {
                cards.push(match (input.vcard, input.name, input.phones) {
                    (Some(vcard), None, None) => ContactCard::from_vcard(vcard)?,
                    (None, Some(name), Some(phones)) => {
                        let phones = phones
                            .iter()
                            .map(|p| PhoneNumber::parse(p))
                            .collect::<Result<Vec<_>, _>>()?;
                        ContactCard::from_name_and_phones(&name, &phones)?
                    }
                    _ => {
                        return Err(invalid(
                            "each contact is either `vcard` or `name` and `phones`".into(),
                        ));
                    }
                });
            }
            if cards.is_empty() || cards.len() > MAX_CARDS {
                return Err(invalid(format!(
                    "a contact message carries 1 to {MAX_CARDS} cards (`vcard` and `contacts` together)"
                )));
            }
            Ok(Content::Contacts(cards))
        }
        other => Err(ApiError::refused(
            StatusCode::BAD_REQUEST,
            "invalid_type",
            format!(
                "unknown message type `{other}`; expected text, image, video, audio, voice, document, sticker, location or contact"
            ),
        )),
    }
}

async fn media_content(
    state: &AppState,
    kind: MediaKind,
    body: SendMessageRequest,
    file: Option<(Spool, Option<String>, Option<String>)>,
    connected: &(dyn Fn() -> Result<(), ApiError> + Sync),
) -> Result<Content, ApiError> {
    let invalid = |message: &str| {
        ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
    };
    if body.text.is_some() {
        return Err(invalid("media carries `caption`, not `text`"));
    }
    let sources = usize::from(file.is_some())
        + usize::from(body.base64.is_some())
        + usize::from(body.url.is_some());
    if sources != 1 {
        return Err(invalid(
            "media needs exactly one of a `file` part, `base64` or `url`",
        ));
    }
    let caption = body.caption.map(parse_caption).transpose()?;
    let mut mime = body.mime_type.as_deref().map(parse_mime).transpose()?;
    let mut file_name = body.file_name.as_deref().map(parse_file_name).transpose()?;
    let limit = max_bytes(&state.media, Some(kind));
    connected()?;
    let spool = match (file, body.base64, body.url) {
        (Some((mut spool, part_mime, part_name)), _, _) => {
            spool.limit_to(limit)?;
            mime = mime.or(part_mime);
            if file_name.is_none() && kind == MediaKind::Document {
                file_name = part_name.as_deref().map(parse_file_name).transpose()?;
            }
            spool
        }
        (None, Some(encoded), _) => {
            let mut spool = Spool::new(limit).await?;
            spool_base64(&mut spool, &encoded).await?;
            spool
        }
        (None, None, Some(url)) => {
            let (spool, fetched_mime) =
                super::fetch::fetch(state.outbound, &state.media, &url, limit).await?;
            mime = mime.or(fetched_mime);
            spool
        }
        (None, None, None) => return Err(invalid("media needs a file")),
    };
    let file = spool.finish(kind, mime).await?;
    Ok(Content::Media {
        kind,
        file,
        caption,
        file_name,
    })
}
