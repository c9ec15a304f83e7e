//! Who may call an endpoint: extractors that authenticate a request through
//! [`crate::auth::Authenticator`] and reject with the API's envelope
//! (`AuthError` is mapped to [`ApiError`] in `error.rs`).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::domain::CompanyId;

/// Extractor for admin-only endpoints.
#[derive(Debug)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.auth.admin(&parts.headers)?;
        Ok(Self)
    }
}

/// Extractor for endpoints under `/v1/sessions/{company}`: the validated
/// company id, once the caller is the admin or that company's own token.
#[derive(Debug)]
pub struct CompanyAccess {
    pub company: CompanyId,
}

impl FromRequestParts<AppState> for CompanyAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let raw = params
            .get("company")
            .map(String::as_str)
            .unwrap_or_default();
        let (company, _caller) = state.auth.company(&parts.headers, raw)?;
        Ok(Self { company })
    }
}
