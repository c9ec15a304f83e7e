//! The simulated phone of a company: it scans the company's QR code or
//! enters its pair code (linking a fictitious number), and WhatsApp drops
//! the linked device (`replaced`, `device_removed`, a server error).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{admin_session, fake_error, not_linked, sandbox_of};
use crate::domain::PhoneNumber;
use crate::http::AppState;
use crate::http::access::CompanyAccess;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::pool::{Qr, SessionEvent, SessionHandle, SessionState};
use crate::sandbox::Sandbox;

/// How long a scan waits for the session to show its first QR code (a
/// session created a moment ago is still connecting).
const QR_WAIT: Duration = Duration::from_secs(15);

/// The simulated phone's number once linked.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct LinkedPhone {
    /// The linked (fictitious) phone number, digits.
    #[schema(example = "15550001234")]
    pub phone: String,
    /// The company's device JID on the simulated WhatsApp.
    #[schema(example = "15550001234:1@s.whatsapp.net")]
    pub jid: String,
}

crate::domain::redacted_debug!(LinkedPhone {});

impl From<fakewa::Linked> for LinkedPhone {
    fn from(linked: fakewa::Linked) -> Self {
        Self {
            phone: linked.phone,
            jid: linked.jid,
        }
    }
}

/// Query of the scan.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScanQuery {
    /// Link this number (digits, with country code) instead of a fresh
    /// fictitious `1555000NNNN`.
    pub phone: Option<String>,
}

/// The simulated phone scans the company's current QR code; answers once
/// the session signed the pairing (it then reconnects and turns
/// `connected`: follow the status or the event stream).
#[utoipa::path(
    post, path = "/v1/sandbox/sessions/{company}/scan", tag = "sandbox",
    params(("company" = String, Path, description = "Company id"), ScanQuery),
    responses(
        (status = 200, description = "Linked", body = LinkedPhone),
        (status = 400, description = "`invalid_phone`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "`forbidden`: not the admin key", body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 409, description = "`no_qr` (`error.state`: nothing to scan, e.g. already `connected`), `sandbox_no_pending_pairing`, `sandbox_pairing_failed`", body = ErrorBody),
        (status = 504, description = "`sandbox_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn scan(
    State(state): State<AppState>,
    access: CompanyAccess,
    ApiQuery(query): ApiQuery<ScanQuery>,
) -> Result<Json<LinkedPhone>, ApiError> {
    let phone = query.phone.as_deref().map(PhoneNumber::parse).transpose()?;
    let sandbox = sandbox_of(&state)?;
    let handle = admin_session(&state, &access)?;
    let phone = phone.as_ref().map(PhoneNumber::digits);
    Ok(Json(scan_current_qr(sandbox, &handle, phone).await?))
}

/// The simulated phone (of `phone`, or a fresh fictitious number) scans the
/// session's current QR code, waiting [`QR_WAIT`] for one if the session is
/// still connecting. Also the pairing page's "simulate scan" button.
pub(in crate::http) async fn scan_current_qr(
    sandbox: &Sandbox,
    handle: &SessionHandle,
    phone: Option<&str>,
) -> Result<LinkedPhone, ApiError> {
    let qr = current_or_next_qr(handle).await?;
    let linked = match phone {
        Some(phone) => sandbox.fake().scan_qr_as(phone, &qr.code).await,
        None => sandbox.fake().scan_qr(&qr.code).await,
    }
    .map_err(fake_error)?;
    tracing::info!(company.id = %handle.company(), "sandbox: the simulated phone scanned the QR code");
    Ok(linked.into())
}

/// The current QR code, or the next one within [`QR_WAIT`] while the
/// session can still show one; else 409 `no_qr` with the state.
async fn current_or_next_qr(handle: &SessionHandle) -> Result<Qr, ApiError> {
    // Subscribed before reading, so a code shown in between is not missed.
    let mut events = handle.subscribe();
    let no_qr = |state: SessionState| ApiError::NoQr {
        state: state.as_str().to_owned(),
    };
    let wait = async {
        loop {
            if let Some(qr) = handle.current_qr() {
                return Ok(qr);
            }
            let state = handle.status().state;
            if !matches!(
                state,
                SessionState::Connecting | SessionState::Pairing | SessionState::Reconnecting
            ) {
                return Err(no_qr(state));
            }
            match events.recv().await {
                Ok(SessionEvent::QrRotated(qr)) => return Ok(qr),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(no_qr(handle.status().state));
                }
            }
        }
    };
    tokio::time::timeout(QR_WAIT, wait)
        .await
        .unwrap_or_else(|_| Err(no_qr(handle.status().state)))
}

/// Body of the pair-code entry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeEntry {
    /// The number the company asked a pair code for
    /// (`POST /v1/sessions/{company}/pair-code`).
    #[schema(example = "15550001234")]
    pub phone: String,
    /// The 8-character code that request returned.
    #[schema(example = "ABCD1234")]
    pub code: String,
}

crate::domain::redacted_debug!(PairCodeEntry {});

/// The simulated phone of `phone` enters the pair code the company got for
/// it; answers once the session signed the pairing.
#[utoipa::path(
    post, path = "/v1/sandbox/sessions/{company}/pair-code", tag = "sandbox",
    params(("company" = String, Path, description = "Company id")),
    request_body = PairCodeEntry,
    responses(
        (status = 200, description = "Linked", body = LinkedPhone),
        (status = 400, description = "`invalid_phone`, `sandbox_invalid_input` (not a pair code)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "`forbidden`: not the admin key", body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 409, description = "`sandbox_no_pending_pairing` (no code outstanding for this number), `sandbox_pairing_failed`", body = ErrorBody),
        (status = 504, description = "`sandbox_timeout`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn pair_code(
    State(state): State<AppState>,
    access: CompanyAccess,
    ApiJson(body): ApiJson<PairCodeEntry>,
) -> Result<Json<LinkedPhone>, ApiError> {
    let phone = PhoneNumber::parse(&body.phone)?;
    let sandbox = sandbox_of(&state)?;
    let handle = admin_session(&state, &access)?;
    let linked = sandbox
        .fake()
        .enter_pair_code(phone.digits(), body.code.trim())
        .await
        .map_err(fake_error)?;
    tracing::info!(company.id = %handle.company(), "sandbox: the simulated phone entered the pair code");
    Ok(Json(linked.into()))
}

/// How WhatsApp drops the device.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// Another client took the number over (`<conflict type="replaced"/>`):
    /// the session turns `replaced` and waits for a `reconnect`.
    Replaced,
    /// The phone unlinked the device (`<conflict type="device_removed"/>`):
    /// the session turns `logged_out` and its credentials are wiped.
    DeviceRemoved,
    /// WhatsApp is unavailable (`503`): the session reconnects with backoff.
    ServerError,
}

/// Body of the disconnect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    /// `replaced`, `device_removed` or `server_error`.
    pub reason: DisconnectReason,
}

/// The simulated WhatsApp drops the company's linked device.
#[utoipa::path(
    post, path = "/v1/sandbox/sessions/{company}/disconnect", tag = "sandbox",
    params(("company" = String, Path, description = "Company id")),
    request_body = Disconnect,
    responses(
        (status = 204, description = "Sent; follow the session's status"),
        (status = 401, body = ErrorBody), (status = 403, description = "`forbidden`: not the admin key", body = ErrorBody),
        (status = 404, description = "`unknown_company`, `sandbox_unknown_device`", body = ErrorBody),
        (status = 409, description = "`not_linked`, `sandbox_not_connected` (`replaced` and `server_error` need a live connection)", body = ErrorBody),
        (status = 422, description = "`invalid_body`: an unknown reason", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn disconnect(
    State(state): State<AppState>,
    access: CompanyAccess,
    ApiJson(body): ApiJson<Disconnect>,
) -> Result<StatusCode, ApiError> {
    let sandbox = sandbox_of(&state)?;
    let handle = admin_session(&state, &access)?;
    let jid = handle.status().jid.ok_or_else(not_linked)?;
    let kind = match body.reason {
        DisconnectReason::Replaced => fakewa::StreamErrorKind::Replaced,
        DisconnectReason::DeviceRemoved => fakewa::StreamErrorKind::DeviceRemoved,
        DisconnectReason::ServerError => fakewa::StreamErrorKind::Code503,
    };
    sandbox
        .fake()
        .inject_stream_error(&jid, kind)
        .await
        .map_err(fake_error)?;
    tracing::info!(company.id = %handle.company(), reason = ?body.reason, "sandbox: the simulated WhatsApp dropped the device");
    Ok(StatusCode::NO_CONTENT)
}
