//! `/v1/sandbox/…` (`wagate --sandbox` only): the simulated phone and
//! contacts of the sandbox's fake WhatsApp (`crate::sandbox`), admin key
//! only. The routes exist, and are in `/openapi.json`, only when the gateway
//! runs in sandbox mode (`super::router`).
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/sandbox/sessions/{company}/scan` | the phone scans the company's current QR code |
//! | `POST /v1/sandbox/sessions/{company}/pair-code` | the phone enters the company's pair code |
//! | `POST /v1/sandbox/sessions/{company}/disconnect` | WhatsApp drops the device: `replaced`, `device_removed`, `server_error` |
//! | `POST /v1/sandbox/contacts/{phone}/messages` | a contact sends the company text, media, a reaction, an edit or a delete |
//! | `POST /v1/sandbox/contacts/{phone}/receipts` | a contact acknowledges messages: delivered, read, played |
//! | `GET /v1/sandbox/messages` | what contacts received from the companies |
//! | `POST /pair/{token}/sandbox-scan` | the pairing page's "simulate scan" button (in `super::pair`, with this module's [`scan_current_qr`]) |
//!
//! Each route calls the fake's own typed API; nothing of the simulation is
//! written again here. Refusals are the API's envelope with stable codes
//! ([`fake_error`]); messages never echo phone numbers or texts.

mod contacts;
mod phone;

use std::sync::Arc;

use axum::http::StatusCode;
use fakewa::FakeError;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::access::CompanyAccess;
use super::error::ApiError;
use crate::auth::AuthError;
use crate::pool::SessionHandle;
use crate::sandbox::Sandbox;

pub(super) use phone::{LinkedPhone, scan_current_qr};

#[derive(OpenApi)]
#[openapi(tags((
    name = "sandbox",
    description = "Sandbox mode only (`wagate --sandbox`): the simulated phone and contacts of a simulated WhatsApp. Admin key only"
)))]
struct SandboxDoc;

/// The sandbox routes (merged by `super::router` in sandbox mode only).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(SandboxDoc::openapi())
        .routes(routes!(phone::scan))
        .routes(routes!(phone::pair_code))
        .routes(routes!(phone::disconnect))
        .routes(routes!(contacts::send))
        .routes(routes!(contacts::receipts))
        .routes(routes!(contacts::received))
}

/// The sandbox (its routes exist only when there is one).
fn sandbox_of(state: &AppState) -> Result<&Arc<Sandbox>, ApiError> {
    state.sandbox.as_ref().ok_or(ApiError::NotFound)
}

/// The company's session, for the admin only (a company token is refused:
/// the simulated phone acts for WhatsApp, not for the company).
fn admin_session(state: &AppState, access: &CompanyAccess) -> Result<SessionHandle, ApiError> {
    if !access.admin {
        return Err(ApiError::Unauthorized(AuthError::Forbidden));
    }
    state
        .pool
        .get(&access.company)
        .ok_or(ApiError::UnknownCompany)
}

/// The phone number the company's session is linked to, or 409 `not_linked`.
fn linked_phone(handle: &SessionHandle) -> Result<String, ApiError> {
    handle.status().phone.ok_or_else(not_linked)
}

/// 409 `not_linked`: the session has no (simulated) phone to act on.
fn not_linked() -> ApiError {
    refusal(
        StatusCode::CONFLICT,
        "not_linked",
        "the company's session is not linked to a (simulated) phone yet",
    )
}

fn refusal(status: StatusCode, code: &'static str, message: &str) -> ApiError {
    ApiError::Malformed {
        status,
        code,
        message: message.to_owned(),
    }
}

/// The fake's refusal as the API's: a stable `sandbox_*` code and a fixed
/// message (the fake's own text may name numbers).
fn fake_error(err: FakeError) -> ApiError {
    let (status, code, message) = match err {
        FakeError::InvalidInput(_) => (
            StatusCode::BAD_REQUEST,
            "sandbox_invalid_input",
            "the simulated WhatsApp refused the input (an unknown message id, bad base64, a missing field for this kind)",
        ),
        FakeError::NoPendingPairing(_) => (
            StatusCode::CONFLICT,
            "sandbox_no_pending_pairing",
            "no session is waiting for this QR code or pair code (it rotated or expired)",
        ),
        FakeError::UnknownDevice(_) | FakeError::UnknownMedia(_) => (
            StatusCode::NOT_FOUND,
            "sandbox_unknown_device",
            "the simulated WhatsApp knows no such linked device",
        ),
        FakeError::NotConnected(_) => (
            StatusCode::CONFLICT,
            "sandbox_not_connected",
            "the company's device is not connected to the simulated WhatsApp",
        ),
        FakeError::PairingFailed(_) => (
            StatusCode::CONFLICT,
            "sandbox_pairing_failed",
            "the session did not finish pairing with the simulated phone",
        ),
        FakeError::Timeout(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "sandbox_timeout",
            "the session did not answer the simulated WhatsApp in time",
        ),
        other @ (FakeError::Io(_) | FakeError::Protocol(_) | FakeError::Signal(_)) => {
            return ApiError::internal(other);
        }
    };
    refusal(status, code, message)
}
