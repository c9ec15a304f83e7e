//! The HTTP layer's one error type, [`ApiError`], and the one JSON envelope
//! every failed request gets.
//!
//! # Error policy
//!
//! - **One envelope.** Every error response, including the ones axum's own
//!   extractors would produce (bad JSON, bad path, bad query, body too large,
//!   unknown route, wrong method), is
//!   `{"error":{"code":"snake_case","message":"human text"}}`, sometimes with
//!   one documented extra field (`state` on the 409s). Clients match on `code`,
//!   which is stable; `message` is for humans and may change.
//! - **Status from the variant.** Each variant's doc names the status it
//!   returns; the mapping lives in [`ApiError::status`] and nowhere else.
//! - **Internal details are logged once, never returned.** A 500 answers
//!   `internal` with a generic message; the cause is logged here, once, at
//!   `error` level. 4xx are the caller's business and are not logged above
//!   `debug`.
//! - **Refusals change nothing.** Handlers validate everything (path, body,
//!   credentials) before calling the pool, so an `ApiError` from validation
//!   means no state was touched (invariant 6 of DESIGN.md).
//! - **No secrets in messages.** Messages never echo tokens, keys, phone
//!   numbers or texts back.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::domain::InvalidInput;
use crate::pool::PoolError;

/// Everything an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with the input's own code (`invalid_company_id`, `invalid_phone`,
    /// `invalid_text`, `invalid_idempotency_key`, …).
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),

    /// 400 `invalid_json` (syntax), 422 `invalid_body` (wrong shape or
    /// types), 415 `unsupported_media_type`, 400 `invalid_query`,
    /// 400 `invalid_path`: a request axum could not even parse. Also the
    /// content refusals of sends: 413 `media_too_large`, 415
    /// `invalid_media_type`, 400 `invalid_media`, 400 `invalid_multipart`,
    /// 422 `media_url_refused`, 502 `media_url_failed`. And 409
    /// `admin_key_configured` (a configured admin key is not rotated here).
    #[error("{message}")]
    Malformed {
        /// The HTTP status to answer with.
        status: StatusCode,
        /// The stable error code.
        code: &'static str,
        /// What was wrong, for humans.
        message: String,
    },

    /// 413 `payload_too_large`: the body is over the limit.
    #[error("the request body is too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },

    /// 401 `missing_credentials` (no `Authorization: Bearer …` header),
    /// 401 `invalid_credentials` (the key or token is not valid) or 403
    /// `forbidden` (a company token outside its own company, or on an
    /// admin-only endpoint). Never an invalid company id or a store failure:
    /// [`From<AuthError>`] maps those to their own variants.
    #[error(transparent)]
    Unauthorized(AuthError),

    /// 404 `unknown_company`: no session exists for that company.
    #[error("no session exists for this company")]
    UnknownCompany,

    /// 404 `not_found`: no such route.
    #[error("no such endpoint")]
    NotFound,

    /// 405 `method_not_allowed`.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,

    /// 409 `no_qr`: the session shows no QR code in its current state
    /// (returned in the envelope's `state` field).
    #[error("the session has no QR code to show in state `{state}`")]
    NoQr {
        /// The session's state.
        state: String,
    },

    /// 503 `not_ready`: the gateway is still restoring sessions.
    #[error("the gateway is starting; sessions are still being restored")]
    NotReady,

    /// 503 `request_timeout`: the request took longer than
    /// `--http-request-timeout-s` (body included); nothing more is done for it.
    #[error("the request took too long")]
    RequestTimeout,

    /// 429 `rate_limited` (with `Retry-After`): this address failed to
    /// authenticate too often and must wait; its credentials were not checked.
    #[error("too many failed authentications from this address; retry later")]
    AuthThrottled {
        /// How long the address must wait.
        retry_after: std::time::Duration,
    },

    /// 429 `rate_limited` (with `Retry-After`): the company used up its send
    /// budget (`--send-rate-per-minute`, `--send-burst`); nothing was sent.
    #[error("too many sends for this company; retry later")]
    SendRateLimited {
        /// How long until the next send is allowed.
        retry_after: std::time::Duration,
    },

    /// 429 `too_many_streams`: the company holds as many open event streams
    /// as `--http-streams-per-company` allows.
    #[error("too many open event streams for this company")]
    TooManyStreams,

    /// A pool refusal or failure; the status comes from its stable code
    /// (see [`pool_error_status`]).
    #[error(transparent)]
    Pool(#[from] PoolError),

    /// 500 `internal`: a bug or a storage failure. Logged, never returned.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON envelope of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong: a stable code to match on and a human message.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `invalid_phone`, `not_connected`.
    #[schema(example = "not_connected")]
    pub code: String,
    /// Human-readable explanation; may change between versions.
    pub message: String,
    /// The session's state, on `no_qr`, `not_connected` and `invalid_state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl ApiError {
    /// Wraps an unexpected failure (storage, rendering) as a 500.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Self::Malformed { status, .. } => *status,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(AuthError::Forbidden) => StatusCode::FORBIDDEN,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::UnknownCompany | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoQr { .. } => StatusCode::CONFLICT,
            Self::NotReady | Self::RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyStreams | Self::AuthThrottled { .. } | Self::SendRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Pool(err) => pool_error_status(err.code()),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable snake_case code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(err) => err.code,
            Self::Malformed { code, .. } => code,
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unauthorized(AuthError::MissingCredentials) => "missing_credentials",
            Self::Unauthorized(AuthError::Forbidden) => "forbidden",
            Self::Unauthorized(_) => "invalid_credentials",
            Self::UnknownCompany => "unknown_company",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NoQr { .. } => "no_qr",
            Self::NotReady => "not_ready",
            Self::RequestTimeout => "request_timeout",
            Self::TooManyStreams => "too_many_streams",
            Self::AuthThrottled { .. } | Self::SendRateLimited { .. } => "rate_limited",
            Self::Pool(_) if self.is_internal() => "internal",
            Self::Pool(err) => err.code(),
            Self::Internal(_) => "internal",
        }
    }

    /// A 500: the caller did nothing wrong and the cause must stay private.
    fn is_internal(&self) -> bool {
        self.status() == StatusCode::INTERNAL_SERVER_ERROR
    }

    fn body(&self) -> ErrorBody {
        let message = if self.is_internal() {
            // Never return internal details (policy above); they are logged.
            "internal error; the server log has the details".to_owned()
        } else {
            self.to_string()
        };
        let state = match self {
            Self::NoQr { state } => Some(state.clone()),
            Self::Pool(PoolError::NotConnected { state } | PoolError::InvalidState { state }) => {
                Some(state.as_str().to_owned())
            }
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                state,
            },
        }
    }
}

/// The HTTP status of a pool error, by its stable code. Unknown codes are
/// treated as server errors, so a new pool failure can never be mistaken
/// for the caller's fault.
pub fn pool_error_status(code: &str) -> StatusCode {
    match code {
        "unknown_company" | "unknown_message" => StatusCode::NOT_FOUND,
        "not_on_whatsapp" | "not_own_message" => StatusCode::UNPROCESSABLE_ENTITY,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "not_connected" | "invalid_state" | "busy" => StatusCode::CONFLICT,
        "send_failed" | "pairing_failed" => StatusCode::BAD_GATEWAY,
        "session_gone" => StatusCode::SERVICE_UNAVAILABLE,
        "timeout" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if self.is_internal() {
            // The one place a 500's cause is logged (policy above).
            tracing::error!(error.code = self.code(), error.cause = ?self, "request failed");
        } else {
            tracing::debug!(
                error.code = self.code(),
                http.status = status.as_u16(),
                "request refused"
            );
        }
        let mut response = (status, Json(self.body())).into_response();
        if let Self::Pool(PoolError::TooSoon { retry_after })
        | Self::AuthThrottled { retry_after }
        | Self::SendRateLimited { retry_after } = &self
        {
            set_retry_after(&mut response, *retry_after);
        }
        response
    }
}

/// Sets `Retry-After` to `wait` in whole seconds, rounded up (at least 1).
pub fn set_retry_after(response: &mut Response, wait: std::time::Duration) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCompany(input) => Self::InvalidInput(input),
            AuthError::Store(err) => Self::internal(err),
            AuthError::Random(message) => Self::internal(anyhow::anyhow!(message)),
            AuthError::AdminKeyConfigured => Self::Malformed {
                status: StatusCode::CONFLICT,
                code: "admin_key_configured",
                message: err.to_string(),
            },
            refused => Self::Unauthorized(refused),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(err) => {
                Self::malformed(StatusCode::BAD_REQUEST, "invalid_json", err.body_text())
            }
            JsonRejection::JsonDataError(err) => Self::malformed(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                err.body_text(),
            ),
            JsonRejection::MissingJsonContentType(_) => Self::malformed(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge {
                    limit: super::MAX_BODY_BYTES,
                }
            }
            other => Self::malformed(other.status(), "invalid_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::malformed(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            rejection.body_text(),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::malformed(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

impl ApiError {
    /// A refusal of the request's content with its own status and stable
    /// code (e.g. 413 `media_too_large`, 415 `invalid_media_type`).
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::malformed(status, code, message)
    }

    fn malformed(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Malformed {
            status,
            code,
            message: message.into(),
        }
    }
}

/// Fallback for unknown routes: the JSON envelope instead of an empty 404.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Fallback for a known route with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_are_not_returned() {
        let err = ApiError::internal(anyhow::anyhow!("sled: disk full at /secret/path"));
        let body = err.body();
        assert_eq!(body.error.code, "internal");
        assert!(
            !body.error.message.contains("sled"),
            "{}",
            body.error.message
        );
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unknown_pool_codes_are_server_errors() {
        assert_eq!(
            pool_error_status("something_new"),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(pool_error_status("not_connected"), StatusCode::CONFLICT);
        assert_eq!(
            pool_error_status("store_error"),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(pool_error_status("unknown_company"), StatusCode::NOT_FOUND);
    }

    #[test]
    fn no_qr_carries_the_state() {
        let body = ApiError::NoQr {
            state: "connected".into(),
        }
        .body();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["error"]["code"], "no_qr");
        assert_eq!(json["error"]["state"], "connected");
    }
}
