//! Who may call an endpoint: extractors that authenticate a request through
//! [`crate::auth::Authenticator`] and reject with the API's envelope
//! (`AuthError` is mapped to [`ApiError`] in `error.rs`). An address that
//! failed too often is refused before its credentials are looked at
//! ([`super::auth_backoff`]).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::auth::AuthError;
use crate::domain::CompanyId;

/// Extractor for admin-only endpoints.
#[derive(Debug)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = admit(state, parts)?;
        let checked = state.auth.admin(&parts.headers);
        count_failure(state, peer, checked.as_ref().err());
        checked?;
        Ok(Self)
    }
}

/// Extractor for endpoints under `/v1/sessions/{company}`: the validated
/// company id, once the caller is the admin or that company's own token.
#[derive(Debug)]
pub struct CompanyAccess {
    pub company: CompanyId,
    /// Whether the caller is the admin (not the company's token).
    pub admin: bool,
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
        let peer = admit(state, parts)?;
        let checked = state.auth.company(&parts.headers, raw);
        count_failure(state, peer, checked.as_ref().err());
        let (company, caller) = checked?;
        Ok(Self {
            company,
            admin: matches!(caller, crate::auth::Caller::Admin),
        })
    }
}

/// The request's address, unless it is blocked for failing too often.
fn admit(state: &AppState, parts: &Parts) -> Result<Option<IpAddr>, ApiError> {
    let peer = super::server::peer_of(&parts.extensions).map(|addr| addr.ip());
    if let Some(retry_after) = peer.and_then(|ip| state.auth_backoff.blocked_for(ip)) {
        return Err(ApiError::AuthThrottled { retry_after });
    }
    Ok(peer)
}

/// A wrong key or token (a guess) counts against its address; a missing one
/// or a malformed company id does not.
fn count_failure(state: &AppState, peer: Option<IpAddr>, error: Option<&AuthError>) {
    if let (Some(peer), Some(AuthError::InvalidCredentials | AuthError::Forbidden)) = (peer, error)
    {
        state.auth_backoff.failed(peer);
    }
}
