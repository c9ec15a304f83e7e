//! `POST /pair/{token}/sandbox-scan` (`wagate --sandbox` only): the pairing
//! page's "simulate scan" button. The link's token is the capability, as
//! for the page's other forms: whoever may see the QR code may have the
//! simulated phone scan it. Registered with the sandbox routes
//! (`crate::http::sandbox`), so it exists only in sandbox mode.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};

use super::{PairAccess, Refused, ensure_session, page_headers};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::pairing::page_path;

/// Simulate the phone scanning this page's QR code, then back to the page
/// (`303`), which shows the session turn `connected`; the page's script
/// (`Accept: application/json`) gets the linked number instead.
#[utoipa::path(
    post, path = "/pair/{token}/sandbox-scan", tag = "sandbox",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 303, description = "Scanned; back to the page"),
        (status = 200, description = "Scanned (`Accept: application/json`)", body = crate::http::sandbox::LinkedPhone),
        (status = 409, description = "`no_qr`, `sandbox_no_pending_pairing`, `sandbox_pairing_failed`"),
        (status = 403), (status = 404), (status = 410), (status = 503), (status = 504),
    )
)]
pub async fn sandbox_scan(
    State(state): State<AppState>,
    access: PairAccess,
) -> Result<Response, Refused> {
    let handle = ensure_session(&state, &access).await?;
    let audience = access.audience;
    let Some(sandbox) = state.sandbox.as_ref() else {
        return Ok(ApiError::NotFound.into_response());
    };
    match crate::http::sandbox::scan_current_qr(sandbox, &handle, None).await {
        Ok(linked) if audience.json => Ok((page_headers(), Json(linked)).into_response()),
        Ok(_) => Ok((
            StatusCode::SEE_OTHER,
            page_headers(),
            [(LOCATION, page_path(&access.token))],
        )
            .into_response()),
        Err(err) => Ok(audience.answer(
            err.status(),
            err.code(),
            audience.strings.title,
            &err.to_string(),
        )),
    }
}
