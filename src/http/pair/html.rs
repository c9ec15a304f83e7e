//! The page itself and its forms: `GET /pair/{token}`, a new linking attempt,
//! and the pair-code form (HTML, or JSON for the page's script).

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{PairAccess, Refused, ensure_session};
use crate::domain::{PhoneNumber, now_ms};
use crate::http::AppState;
use crate::pairing::page::{self, PageContext};
use crate::pairing::page_path;
use crate::pool::{PoolError, SessionState};

/// Headers of every pairing page response (see the module invariants).
pub(in crate::http) fn page_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
    ]
}

/// The pairing page.
#[utoipa::path(
    get, path = "/pair/{token}", tag = "pairing",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 200, description = "The page", content_type = "text/html"),
        (status = 403, description = "The link is not valid (tampered, garbled)", content_type = "text/html"),
        (status = 404, description = "The link's company no longer exists", content_type = "text/html"),
        (status = 410, description = "The link expired", content_type = "text/html"),
    )
)]
pub async fn pairing_page(State(state): State<AppState>, access: PairAccess) -> Response {
    let base_path = page_path(&access.token);
    let html = page::pairing_page(
        access.audience.strings,
        PageContext {
            company: access.company().as_str(),
            base_path: &base_path,
            expires_at_ms: access.claims.expires_at_ms,
            now_ms: now_ms(),
            sandbox: state.is_sandbox(),
        },
    );
    (page_headers(), Html(html)).into_response()
}

/// Start a new linking attempt (after the number was unlinked or the QR
/// codes expired): the session is started like `POST /v1/sessions/{company}`.
#[utoipa::path(
    post, path = "/pair/{token}/start", tag = "pairing",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 202, description = "Starting; follow the event stream"),
        (status = 403), (status = 404), (status = 410), (status = 503),
    )
)]
pub async fn start(State(state): State<AppState>, access: PairAccess) -> Result<Response, Refused> {
    let handle = ensure_session(&state, &access).await?;
    let view = page::state_view(access.audience.strings, &handle.status());
    Ok((StatusCode::ACCEPTED, page_headers(), Json(view)).into_response())
}

/// Form of `POST /pair/{token}/pair-code`.
#[derive(Deserialize, ToSchema)]
pub struct PairCodeForm {
    /// The phone number to link, with country code.
    pub phone: String,
}

crate::domain::redacted_debug!(PairCodeForm {});

/// Answer of `POST /pair/{token}/pair-code` (JSON).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PairCodeAnswer {
    /// The 8-character code to type on the phone.
    pub code: String,
    /// The same, as the page shows it (`ABCD-1234`).
    pub display: String,
}

crate::domain::redacted_debug!(PairCodeAnswer {});

/// Link by phone number: the 8-character pair code, as JSON for the page's
/// script (`Accept: application/json`) or as an HTML page (without script).
#[utoipa::path(
    post, path = "/pair/{token}/pair-code", tag = "pairing", operation_id = "pairing_page_pair_code",
    params(("token" = String, Path, description = "The link's token")),
    request_body(content = PairCodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The code", body = PairCodeAnswer),
        (status = 400, description = "The phone number is not valid"),
        (status = 409, description = "Already linked"),
        (status = 429, description = "`rate_limited`: a code was asked for a moment ago; `Retry-After` says when a new one may be"),
        (status = 403), (status = 404), (status = 410), (status = 502), (status = 503),
    )
)]
pub async fn pair_code(
    State(state): State<AppState>,
    access: PairAccess,
    form: Result<Form<PairCodeForm>, FormRejection>,
) -> Result<Response, Refused> {
    let audience = access.audience;
    let strings = audience.strings;
    let base_path = page_path(&access.token);
    let failure = |status: StatusCode, code: &str, message: &str| {
        if audience.json {
            return audience.answer(status, code, strings.title, message);
        }
        let back = page::back_link(strings, &base_path);
        let html = page::message_page(strings, strings.title, message, Some(&back));
        (status, page_headers(), Html(html)).into_response()
    };
    let Some(phone) = form
        .ok()
        .and_then(|Form(form)| PhoneNumber::parse(&form.phone).ok())
    else {
        return Ok(failure(
            StatusCode::BAD_REQUEST,
            "invalid_phone",
            strings.error_phone,
        ));
    };
    let handle = ensure_session(&state, &access).await?;
    match handle.pair_code(phone).await {
        Ok(code) => {
            tracing::info!(company.id = %access.company(), "pair code issued through a pairing link");
            if audience.json {
                let display = page::display_pair_code(&code);
                return Ok((page_headers(), Json(PairCodeAnswer { code, display })).into_response());
            }
            let fragment = page::pair_code_fragment(strings, &code, &base_path);
            let html = page::message_page(
                strings,
                strings.title,
                strings.pair_code_intro,
                Some(&fragment),
            );
            Ok((page_headers(), Html(html)).into_response())
        }
        Err(PoolError::InvalidState {
            state: SessionState::Connected,
        }) => Ok(failure(
            StatusCode::CONFLICT,
            "already_linked",
            strings.error_already_linked,
        )),
        Err(PoolError::Busy | PoolError::Gone) => Ok(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            strings.error_busy,
        )),
        Err(PoolError::TooSoon { retry_after }) => {
            let mut response = failure(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                strings.error_too_soon,
            );
            crate::http::error::set_retry_after(&mut response, retry_after);
            Ok(response)
        }
        Err(err) => {
            // WhatsApp's or the client's refusal: worth a line for operators
            // (the code says which; no number, no code).
            tracing::warn!(company.id = %access.company(), error.code = err.code(), "pair code through a pairing link failed");
            Ok(failure(
                StatusCode::BAD_GATEWAY,
                err.code(),
                strings.error_pair_code,
            ))
        }
    }
}
