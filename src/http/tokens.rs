//! Rotating credentials: `POST /v1/sessions/{company}/token` (a company's API
//! token) and `POST /v1/admin/key` (a generated admin key). The new secret is
//! returned once; the old one stops working at once.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::access::{AdminAccess, CompanyAccess};
use super::error::{ApiError, ErrorBody};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rotate_token))
        .routes(routes!(rotate_admin_key))
}

/// Answer of a token rotation.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RotatedToken {
    /// The company's new API token, shown only in this answer (only its hash
    /// is stored). Every earlier token of the company is refused from now on.
    pub token: String,
}

/// Redacted: the token is a secret.
impl std::fmt::Debug for RotatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotatedToken(<redacted>)")
    }
}

/// Rotate the company's API token (admin key or the company's current token).
#[utoipa::path(
    post, path = "/v1/sessions/{company}/token", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    responses(
        (status = 200, description = "The new token, shown once; the old one is refused from now on", body = RotatedToken),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_token(
    State(state): State<AppState>,
    access: CompanyAccess,
) -> Result<Json<RotatedToken>, ApiError> {
    let token = state
        .auth
        .rotate_token(&access.company)?
        .ok_or(ApiError::UnknownCompany)?;
    tracing::info!(company.id = %access.company, "company token rotated");
    Ok(Json(RotatedToken { token }))
}

/// Answer of an admin key rotation.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RotatedAdminKey {
    /// The new admin key, shown only in this answer (only its hash is
    /// stored). The previous admin key is refused from now on.
    pub key: String,
}

/// Redacted: the key is a secret.
impl std::fmt::Debug for RotatedAdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotatedAdminKey(<redacted>)")
    }
}

/// Rotate the admin key (admin only), without a restart: a new key is
/// generated, its hash replaces the stored one, and the old key is refused
/// from now on. Only a generated key rotates here; a key configured with
/// `--admin-key` / `WAGATE_ADMIN_KEY` is rotated by changing the
/// configuration (409 `admin_key_configured`).
#[utoipa::path(
    post, path = "/v1/admin/key", tag = "admin",
    responses(
        (status = 200, description = "The new admin key, shown once; the old one is refused from now on", body = RotatedAdminKey),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "`admin_key_configured`: the key comes from the configuration", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rotate_admin_key(
    State(state): State<AppState>,
    _admin: AdminAccess,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let key = state.auth.rotate_admin_key()?;
    tracing::warn!("admin key rotated: the previous admin key no longer works");
    Ok((super::no_store(), Json(RotatedAdminKey { key })))
}
