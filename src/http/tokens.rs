//! `POST /v1/sessions/{company}/token`: rotate a company's API token. The new
//! token is returned once; the old one stops working at once.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::access::CompanyAccess;
use super::error::{ApiError, ErrorBody};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rotate_token))
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
