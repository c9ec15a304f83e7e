//! `/v1/sessions…`: ensure, list, status, pair code, reconnect, logout and
//! delete of a company's session.
//!
//! The response types here are the API's own (with OpenAPI schemas), mapped
//! from the pool's snapshots, so a change inside the pool cannot silently
//! change the public contract.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::{AdminAccess, CompanyAccess};
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::{AppState, no_store};
use crate::domain::PhoneNumber;
use crate::pool::{DeleteReport, SessionHandle, SessionStatus, StepOutcome, Transition};

/// A session's status.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    #[schema(example = "acme")]
    pub company: String,
    /// `pairing`, `connecting`, `connected`, `reconnecting`, `logged_out`,
    /// `replaced`, `banned`, `outdated` or `stopped`.
    #[schema(example = "connected")]
    pub state: String,
    /// Stable snake_case code of the last transition's cause.
    #[schema(example = "logged_in")]
    pub reason: String,
    /// When the session entered `state` (unix ms).
    pub since_ms: i64,
    /// Own device JID once linked.
    #[schema(example = "15550001111:7@s.whatsapp.net")]
    pub jid: Option<String>,
    /// Own phone number (E.164 digits, no `+`) once linked.
    #[schema(example = "15550001111")]
    pub phone: Option<String>,
    /// Own LID JID once linked.
    pub lid: Option<String>,
    pub push_name: Option<String>,
    /// When the current connection reached `connected` (unix ms).
    pub connected_since_ms: Option<i64>,
    /// Last time anything happened on the session (unix ms).
    pub last_activity_ms: i64,
    /// Automatic reconnects since this gateway process started the session.
    pub reconnect_count: u64,
    /// Reconnect attempts in the last 24 hours.
    pub reconnects_24h: u64,
    /// When a message was last received (unix ms; at the watchdog's tick granularity).
    pub last_inbound_ms: Option<i64>,
    /// When a message was last sent (unix ms; at the watchdog's tick granularity).
    pub last_outbound_ms: Option<i64>,
    /// Round trip of the last answered keepalive ping (ms).
    pub keepalive_rtt_ms: Option<u64>,
    /// The last state transitions, oldest first.
    pub recent_transitions: Vec<TransitionView>,
}

/// One state transition.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransitionView {
    pub from: String,
    pub to: String,
    /// Stable snake_case reason code, e.g. `stream_replaced`.
    pub reason: String,
    /// Unix ms.
    pub at_ms: i64,
}

impl From<Transition> for TransitionView {
    fn from(t: Transition) -> Self {
        Self {
            from: t.from.as_str().to_owned(),
            to: t.to.as_str().to_owned(),
            reason: t.reason,
            at_ms: t.at_ms,
        }
    }
}

impl From<SessionStatus> for SessionView {
    fn from(s: SessionStatus) -> Self {
        Self {
            company: s.company,
            state: s.state.as_str().to_owned(),
            reason: s.reason,
            since_ms: s.since_ms,
            jid: s.jid,
            phone: s.phone,
            lid: s.lid,
            push_name: s.push_name,
            connected_since_ms: s.connected_since_ms,
            last_activity_ms: s.last_activity_ms,
            reconnect_count: s.reconnect_count,
            reconnects_24h: s.reconnects_24h,
            last_inbound_ms: s.last_inbound_ms,
            last_outbound_ms: s.last_outbound_ms,
            keepalive_rtt_ms: s.keepalive_rtt_ms,
            recent_transitions: s.recent_transitions.into_iter().map(Into::into).collect(),
        }
    }
}

/// Answer of `POST /v1/sessions/{company}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EnsureResponse {
    /// Whether this call created the session (HTTP 201) or found it (200).
    pub created: bool,
    /// The company's API token: returned once, on creation, and never again
    /// (only its hash is stored). It may act only on this company.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "wgc_Zm9vYmFyYmF6cXV4cXV1eGZvb2Jhcgbhei1xdXV4cXV1eA")]
    pub token: Option<String>,
    pub session: SessionView,
}

crate::domain::redacted_debug!(EnsureResponse { created, session });

/// Answer of `GET /v1/sessions`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// Body of `POST /v1/sessions/{company}/pair-code`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeRequest {
    /// The phone number to link, in international form (`+15550001111`) or as
    /// a JID.
    #[schema(example = "+15550001111")]
    pub phone: String,
}

crate::domain::redacted_debug!(PairCodeRequest {});

/// Answer of `POST /v1/sessions/{company}/pair-code`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PairCodeResponse {
    /// The 8-character code to type on the phone (Linked devices → Link with
    /// phone number).
    #[schema(example = "ABCD1234")]
    pub code: String,
}

crate::domain::redacted_debug!(PairCodeResponse {});

/// Answer of `DELETE /v1/sessions/{company}`: what each step did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteResponse {
    pub company: String,
    /// The steps in the order they ran.
    pub steps: Vec<DeleteStepView>,
}

/// One step of a delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteStepView {
    /// `logout` (unlink the device on WhatsApp), `credentials` (wipe the
    /// device keys), `registry` (the company record, transitions and
    /// idempotency keys).
    #[schema(example = "logout")]
    pub step: String,
    /// `done`, `skipped` or `failed`.
    #[schema(example = "done")]
    pub outcome: String,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl DeleteResponse {
    fn from_report(report: DeleteReport) -> Self {
        let steps = [
            ("logout", report.logout),
            ("credentials", report.credentials),
            ("registry", report.registry),
        ]
        .into_iter()
        .map(|(step, outcome)| {
            let (outcome, detail) = match outcome {
                StepOutcome::Done => ("done", None),
                StepOutcome::Skipped { reason } => ("skipped", Some(reason)),
                StepOutcome::Failed { error } => ("failed", Some(error)),
            };
            DeleteStepView {
                step: step.to_owned(),
                outcome: outcome.to_owned(),
                detail,
            }
        })
        .collect();
        Self {
            company: report.company,
            steps,
        }
    }
}

/// The session of `company`, or 404 `unknown_company`.
pub(super) fn session(state: &AppState, access: &CompanyAccess) -> Result<SessionHandle, ApiError> {
    state
        .pool
        .get(&access.company)
        .ok_or(ApiError::UnknownCompany)
}

/// Ensure a session: create it if absent, else return the existing one.
///
/// Concurrent calls for one company return the same session; exactly one of
/// them gets 201 and the token.
#[utoipa::path(
    post, path = "/v1/sessions/{company}", tag = "sessions",
    params(("company" = String, Path, description = "Company id: 1–64 of a-z 0-9 - _")),
    responses(
        (status = 201, description = "Created; the body carries the company token, once", body = EnsureResponse),
        (status = 200, description = "Already existed", body = EnsureResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn ensure(
    State(state): State<AppState>,
    access: CompanyAccess,
) -> Result<impl IntoResponse, ApiError> {
    let ensured = ensure_company(&state, &access.company).await?;
    let status = if ensured.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = EnsureResponse {
        created: ensured.created,
        token: ensured.token,
        session: ensured.handle.status().into(),
    };
    Ok((status, no_store(), Json(body)))
}

/// Ensures `company`'s session (the API's `POST` and the console): a new
/// company's token is recorded for telling callers apart.
pub(super) async fn ensure_company(
    state: &AppState,
    company: &crate::domain::CompanyId,
) -> Result<crate::pool::Ensured, ApiError> {
    let ensured = state.pool.ensure(company).await?;
    if let Some(token) = &ensured.token {
        state.auth.tokens().insert(token, company);
    }
    Ok(ensured)
}

/// List every session with its state (admin only).
#[utoipa::path(
    get, path = "/v1/sessions", tag = "sessions",
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<AppState>, _admin: AdminAccess) -> Json<SessionList> {
    let mut sessions: Vec<SessionView> = state.pool.list().into_iter().map(Into::into).collect();
    sessions.sort_by(|a, b| a.company.cmp(&b.company));
    Json(SessionList { sessions })
}

/// A session's status.
#[utoipa::path(
    get, path = "/v1/sessions/{company}", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    responses(
        (status = 200, body = SessionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<AppState>,
    access: CompanyAccess,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(session(&state, &access)?.status().into()))
}

/// Link by phone number: returns the 8-character code to type on the phone.
/// A new request replaces a code still outstanding (the earlier code stops
/// working); requests closer than 10 s apart are refused.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/pair-code", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    request_body = PairCodeRequest,
    responses(
        (status = 200, body = PairCodeResponse),
        (status = 400, description = "`invalid_phone`, `invalid_json`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`invalid_state`: already linked", body = ErrorBody),
        (status = 429, description = "`rate_limited`: a code was requested less than 10 s ago (`Retry-After` says when to ask again)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn pair_code(
    State(state): State<AppState>,
    access: CompanyAccess,
    ApiJson(body): ApiJson<PairCodeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let phone = PhoneNumber::parse(&body.phone)?;
    let handle = session(&state, &access)?;
    let code = handle.pair_code(phone).await?;
    Ok((no_store(), Json(PairCodeResponse { code })))
}

/// Reconnect now: take the number back after `replaced`, or retry at once
/// instead of waiting for the backoff.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/reconnect", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    responses(
        (status = 202, description = "Reconnecting; follow the status or the event stream", body = SessionView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reconnect(
    State(state): State<AppState>,
    access: CompanyAccess,
) -> Result<impl IntoResponse, ApiError> {
    let status = session(&state, &access)?.reconnect().await?;
    Ok((StatusCode::ACCEPTED, Json(SessionView::from(status))))
}

/// Unlink the device on WhatsApp and wipe its credentials; the company and
/// its token stay (the next ensure shows a fresh QR).
#[utoipa::path(
    post, path = "/v1/sessions/{company}/logout", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    responses(
        (status = 200, body = SessionView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    access: CompanyAccess,
) -> Result<Json<SessionView>, ApiError> {
    let handle = session(&state, &access)?;
    handle.logout().await?;
    Ok(Json(handle.status().into()))
}

/// Delete the company: unlink on WhatsApp, stop the session, remove its
/// credentials and registry record. Reports each step.
#[utoipa::path(
    delete, path = "/v1/sessions/{company}", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    responses(
        (status = 200, body = DeleteResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    access: CompanyAccess,
) -> Result<Json<DeleteResponse>, ApiError> {
    Ok(Json(delete_company(&state, &access).await?))
}

/// Deletes the company, reporting each step (the API's `DELETE` and the
/// console); its tokens are forgotten.
pub(super) async fn delete_company(
    state: &AppState,
    access: &CompanyAccess,
) -> Result<DeleteResponse, ApiError> {
    let report = state.pool.delete(&access.company).await?;
    state.auth.tokens().remove_company(&access.company);
    Ok(DeleteResponse::from_report(report))
}
