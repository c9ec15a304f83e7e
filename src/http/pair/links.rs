//! Issuing pairing links: `POST /v1/sessions/{company}/pairing-links` (API
//! credentials required) answers a signed, expiring link to the page.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{InvalidInput, now_ms};
use crate::http::access::CompanyAccess;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::{AppState, no_store};
use crate::pairing::{PairingError, fingerprint, page_path};

/// Body of `POST /v1/sessions/{company}/pairing-links` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePairingLinkRequest {
    /// Lifetime of the link in seconds (60 to the configured maximum);
    /// default: the configured default (15 minutes).
    #[schema(example = 900)]
    #[serde(default, deserialize_with = "crate::http::extract::integer")]
    pub ttl_seconds: Option<u64>,
}

/// A pairing link, for the company's staff to open.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PairingLinkView {
    /// The page's full URL. Whoever has it can link a phone to this company
    /// until it expires: send it only to the company's own staff.
    #[schema(example = "https://wa.example.com/pair/AQAAAZ…Zm9v.c2ln…")]
    pub url: String,
    /// The token (the URL's last path segment).
    pub token: String,
    /// When the link stops working (RFC 3339, UTC).
    #[schema(example = "2026-01-01T12:15:00Z")]
    pub expires_at: String,
    /// The same instant in unix ms, like the API's other timestamps.
    pub expires_at_ms: i64,
}

crate::domain::redacted_debug!(PairingLinkView {
    expires_at,
    expires_at_ms
});

/// Issue a pairing link: a signed URL to a web page showing the company's
/// live QR code (and a pair-code form), valid for one company and a limited
/// time. It is not an API credential.
#[utoipa::path(
    post, path = "/v1/sessions/{company}/pairing-links", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    request_body(content = Option<CreatePairingLinkRequest>, description = "Optional; `{}` or no body for the default lifetime"),
    responses(
        (status = 201, description = "The link", body = PairingLinkView),
        (status = 400, description = "`invalid_ttl`, `invalid_json`, `missing_host`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
        (status = 422, description = "`invalid_body`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_link(
    State(state): State<AppState>,
    access: CompanyAccess,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request = parse_optional_json::<CreatePairingLinkRequest>(&body)?;
    let view = issue_link(&state, &access, request.ttl_seconds, &headers)?;
    Ok((StatusCode::CREATED, no_store(), Json(view)))
}

/// Issues a pairing link for the company (the API and the console);
/// `ttl_seconds` `None` is the default lifetime.
pub(in crate::http) fn issue_link(
    state: &AppState,
    access: &CompanyAccess,
    ttl_seconds: Option<u64>,
    headers: &HeaderMap,
) -> Result<PairingLinkView, ApiError> {
    let ttl = state.pairing.ttl(ttl_seconds).map_err(|err| {
        ApiError::InvalidInput(InvalidInput {
            code: "invalid_ttl",
            message: err.to_string(),
        })
    })?;
    let base = public_base(state.pairing.public_url(), headers)?;
    let record = state
        .pool
        .store()
        .get_company(&access.company)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::UnknownCompany)?;
    let link = state
        .pairing
        .issue(&record, &access.company, ttl, now_ms())
        .map_err(|err: PairingError| ApiError::internal(err))?;
    tracing::info!(
        company.id = %access.company,
        link.fingerprint = %fingerprint(&link.token),
        link.ttl_s = ttl.as_secs(),
        "pairing link issued"
    );
    let view = PairingLinkView {
        url: format!("{base}{}", page_path(&link.token)),
        expires_at: rfc3339(link.expires_at_ms),
        expires_at_ms: link.expires_at_ms,
        token: link.token,
    };
    Ok(view)
}

/// Revoke every outstanding pairing link of the company: links issued
/// before this call are refused from now on (their open pages are told and
/// stop); links issued after it work. Other companies' links are untouched.
#[utoipa::path(
    delete, path = "/v1/sessions/{company}/pairing-links", tag = "sessions",
    params(("company" = String, Path, description = "Company id")),
    responses(
        (status = 204, description = "Every link issued so far is revoked"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`unknown_company`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke_links(
    State(state): State<AppState>,
    access: CompanyAccess,
) -> Result<StatusCode, ApiError> {
    let generation = state
        .pairing
        .revoke(state.pool.store(), &access.company)
        .map_err(ApiError::internal)?
        .ok_or(ApiError::UnknownCompany)?;
    tracing::info!(company.id = %access.company, links.generation = generation, "pairing links revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// An optional JSON body: empty (or only whitespace) is `T::default()`.
pub(super) fn parse_optional_json<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|err| {
        let (status, code) = if err.is_data() {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
        } else {
            (StatusCode::BAD_REQUEST, "invalid_json")
        };
        ApiError::Malformed {
            status,
            code,
            message: err.to_string(),
        }
    })?;
    // `null` is "no body", as the document's nullable body says.
    if value.is_null() {
        return Ok(T::default());
    }
    super::super::extract::from_object(value)
}

/// The base of links: the configured public URL, else `http://` and the
/// `Host` the request was sent to (behind a TLS proxy, configure
/// `--public-url`).
pub(super) fn public_base(
    configured: Option<&str>,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    if let Some(url) = configured {
        return Ok(url.to_owned());
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plausible_host(h));
    match host {
        Some(host) => Ok(format!("http://{host}")),
        None => Err(ApiError::InvalidInput(InvalidInput {
            code: "missing_host",
            message: "the request has no usable Host header; configure --public-url".to_owned(),
        })),
    }
}

/// `host[:port]`, a bracketed IPv6 literal included; nothing that could
/// smuggle a path, credentials or markup into a link.
pub(super) fn is_plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// Unix ms as RFC 3339 UTC, to the second.
pub(super) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
