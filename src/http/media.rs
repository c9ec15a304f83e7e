//! `GET /v1/sessions/{company}/messages/{id}/media`: an inbound file,
//! downloaded from WhatsApp's media host through the company's live
//! session, decrypted, checked against the SHA-256 the sender announced,
//! and only then served with its content type.
//!
//! | outcome | status |
//! |---|---|
//! | the file | 200, `Content-Type` = the message's MIME type |
//! | no such inbound media message (or older than the retention time) | 404 `unknown_message` |
//! | the session is not connected | 409 `not_connected` |
//! | WhatsApp's servers no longer hold the file | 410 `media_expired` |
//! | the bytes do not match their hashes or MAC | 502 `media_corrupt`, nothing served |
//! | any other download failure | 502 `media_unavailable` |

use axum::extract::{Extension, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use super::AppState;
use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};
use super::message_status::{message_id, unknown_message};
use crate::pool::{MediaError, MediaRef};
use crate::webhook::Webhooks;

/// Download an inbound message's file.
#[utoipa::path(
    get, path = "/v1/sessions/{company}/messages/{id}/media", tag = "messages",
    params(
        ("company" = String, Path, description = "Company id"),
        ("id" = String, Path, description = "The inbound message's id (`data.message_id` of its `message.received` event)"),
    ),
    responses(
        (status = 200, description = "The decrypted file, its SHA-256 checked; `Content-Type` is the message's MIME type", content_type = "*/*"),
        (status = 400, description = "`invalid_message_id`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`, `unknown_message`", body = ErrorBody),
        (status = 409, description = "`not_connected`", body = ErrorBody),
        (status = 410, description = "`media_expired`: WhatsApp's servers no longer hold the file", body = ErrorBody),
        (status = 502, description = "`media_corrupt` (hash or MAC mismatch; nothing served), `media_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn media(
    State(state): State<AppState>,
    access: CompanyAccess,
    Path(path): Path<(String, String)>,
    webhooks: Option<Extension<Webhooks>>,
) -> Result<Response, ApiError> {
    let id = message_id(&path.1)?;
    let webhooks = webhooks.map(|Extension(w)| w).ok_or(ApiError::NotReady)?;
    let info = webhooks
        .messages()
        .media(&access.company, id)
        .map_err(ApiError::internal)?
        .ok_or_else(unknown_message)?;
    let media = MediaRef {
        direct_path: info.direct_path.clone(),
        media_key: info.media_key.clone(),
        file_sha256: info.file_sha256.clone(),
        file_enc_sha256: info.file_enc_sha256.clone(),
        size: info.size,
        media_type: info.media_type.clone(),
    };
    let bytes = state
        .pool
        .download_media(&access.company, &media)
        .await
        .map_err(media_error)?;
    // whatsapp-rust checks the hashes too; this check is the endpoint's own
    // promise, whatever the client version does.
    if Sha256::digest(&bytes).as_slice() != info.file_sha256.as_slice() {
        tracing::warn!(company.id = %access.company, "downloaded media does not match its SHA-256");
        return Err(media_error(MediaError::Corrupt));
    }
    let content_type = HeaderValue::from_str(&info.mime_type)
        .ok()
        .filter(|_| !info.mime_type.is_empty())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (StatusCode::OK, [(CONTENT_TYPE, content_type)], bytes).into_response();
    if !info.file_name.is_empty()
        && let Ok(value) = HeaderValue::from_str(&format!(
            "attachment; filename=\"{}\"",
            info.file_name.replace(['"', '\\', '\r', '\n'], "_")
        ))
    {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The envelope of a download failure (see the module table).
fn media_error(error: MediaError) -> ApiError {
    let (status, code) = match &error {
        MediaError::NotConnected => (StatusCode::CONFLICT, "not_connected"),
        MediaError::Expired => (StatusCode::GONE, "media_expired"),
        MediaError::Corrupt => (StatusCode::BAD_GATEWAY, "media_corrupt"),
        MediaError::Failed(reason) => {
            tracing::warn!(%reason, "media download failed");
            (StatusCode::BAD_GATEWAY, "media_unavailable")
        }
    };
    ApiError::Malformed {
        status,
        code,
        message: error.to_string(),
    }
}
