//! `GET /healthz` (the process answers) and `GET /readyz` (the store is open,
//! sessions were restored after start, the webhook dispatcher runs, and
//! shutdown has not begun). No credentials: they
//! reveal nothing but liveness.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};

/// Answer of the health endpoints.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` (healthz) or `ready` (readyz).
    #[schema(example = "ok")]
    pub status: String,
    /// `true` when the gateway runs in sandbox mode (`wagate --sandbox`:
    /// a simulated WhatsApp, no real messages); absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
}

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        sandbox: state.is_sandbox(),
    })
}

/// Readiness: 503 `not_ready` until every stored session was restored, when
/// the webhook dispatcher has stopped, and once shutdown begins. (The store is
/// opened before the server starts, so serving implies it is open.)
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "`not_ready`", body = ErrorBody))
)]
pub async fn readyz(
    State(state): State<AppState>,
    webhooks: Option<axum::Extension<crate::webhook::Webhooks>>,
) -> Result<Json<Health>, ApiError> {
    // Routers built without the webhook service (router tests) have nothing to check.
    let dispatching = webhooks.is_none_or(|w| w.dispatcher_running());
    if state.lifecycle.is_ready() && dispatching {
        Ok(Json(Health {
            status: "ready".into(),
            sandbox: state.is_sandbox(),
        }))
    } else {
        Err(ApiError::NotReady)
    }
}
