//! `GET /healthz` (the process answers) and `GET /readyz` (sessions were
//! restored after start and shutdown has not begun). No credentials: they
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
}

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Readiness: 503 `not_ready` until every stored session was restored, and
/// again once shutdown begins.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "`not_ready`", body = ErrorBody))
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.lifecycle.is_ready() { Ok(Json(Health { status: "ready".into() })) } else { Err(ApiError::NotReady) }
}
