//! Pairing links over HTTP: `POST /v1/sessions/{company}/pairing-links`
//! issues a link and `DELETE` on the same path revokes every link issued so
//! far (API credentials required), and the link's page lives under
//! `/pair/{token}` (no API key: the signed token is the capability).
//!
//! | route | what |
//! |---|---|
//! | `GET /pair/{token}` | the page (HTML) |
//! | `GET /pair/{token}/events` | its live updates (SSE: `state`, `qr`, `expired`) |
//! | `POST /pair/{token}/start` | a new linking attempt (after logged out / QR codes expired) |
//! | `POST /pair/{token}/pair-code` | form `phone=…`: the 8-character pair code (JSON with `Accept: application/json`, else an HTML page) |
//! | `GET /assets/pairing/pair.{css,js}` | the page's stylesheet and script |
//! | `POST /pair/{token}/sandbox-scan` | sandbox mode only: the "simulate scan" button ([`sandbox_routes`]) |
//!
//! # Invariants
//!
//! - Every `/pair/{token}` request is checked by [`PairAccess`] before its
//!   handler runs: signature, expiry, and that the company still exists as
//!   the one the link was made for. A refusal is a human page (410 expired,
//!   403 invalid, 404 company gone, 503 unavailable), never JSON to a
//!   browser, never a stack trace; the page's own `fetch` calls (which send
//!   `Accept: application/json`) get the same words as JSON.
//! - Opening the page has no side effect (link previews fetch it); the
//!   session is started (like `POST /v1/sessions/{company}` does: `ensure`)
//!   only when the page's script opens the event stream, asks for a new
//!   attempt, or asks for a pair code.
//! - The event stream ends after the page is done (connected, company
//!   deleted, link expired) and at shutdown (the browser then reconnects).
//! - Tokens, QR codes, pair codes and phone numbers are never logged; pages
//!   carrying them are `Cache-Control: no-store` and `Referrer-Policy:
//!   no-referrer`, under a Content-Security-Policy that allows only this
//!   gateway's own script and stylesheet.

mod access;
mod feed;
mod html;
mod links;
#[cfg(feature = "sandbox")]
mod sandbox_scan;
#[cfg(test)]
mod tests;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::pairing::page;

use access::ensure_session;
pub use access::{Audience, PageRefusal, PairAccess, Refused};
pub(in crate::http) use feed::json_event;
use feed::{__path_events, events};
/// The pairing page's headers, which the console's pages share.
pub(in crate::http) use html::page_headers;
use html::{__path_pair_code, __path_pairing_page, __path_start, pair_code, pairing_page, start};
pub(in crate::http) use links::issue_link;
use links::{__path_create_link, __path_revoke_links, create_link, revoke_links};
#[cfg(feature = "sandbox")]
use sandbox_scan::{__path_sandbox_scan, sandbox_scan};

/// The routes of this module (the API one documented in OpenAPI).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_link, revoke_links))
        .routes(routes!(pairing_page))
        .routes(routes!(events))
        .routes(routes!(start))
        .routes(routes!(pair_code))
        .route("/pair", get(missing_token))
        .route("/pair/", get(missing_token))
        .route(page::CSS_PATH, get(stylesheet))
        .route(page::JS_PATH, get(script))
}

/// The page's sandbox route (`super::router` adds it in sandbox mode only).
#[cfg(feature = "sandbox")]
pub fn sandbox_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sandbox_scan))
}

/// `GET /pair` and `/pair/`: a link cut before its token (copied short from a
/// message) gets the invalid-link page, not the API's JSON 404.
pub(super) async fn missing_token(headers: HeaderMap) -> Refused {
    Refused {
        refusal: PageRefusal::Invalid("missing"),
        audience: Audience::of(&headers),
    }
}

/// `GET /assets/pairing/pair.css`.
pub(super) async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", page::CSS)
}

/// `GET /assets/pairing/pair.js`.
pub(super) async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", page::JS)
}

pub(in crate::http) fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidate: a new gateway version may change them.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
}
