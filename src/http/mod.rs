//! The HTTP API (v1, DESIGN.md "HTTP API"): one file per resource, the error
//! envelope in [`error`], and [`router`] assembling them, so tests drive the
//! whole API with `oneshot` and no socket.
//!
//! # Invariants
//!
//! - Every handler validates all of its input (credentials, company id, body,
//!   headers) in extractors before it touches the pool, so a refused request
//!   changes nothing (DESIGN.md invariant 6).
//! - Every response that is not a success is the JSON envelope of
//!   [`error::ApiError`], including unknown routes, wrong methods, malformed
//!   JSON and over-large bodies. The exceptions answer people with HTML
//!   pages: the pairing page under `/pair/` (`pair`), the operator console
//!   under `/console` (`console`) and the rendered API docs under `/docs`
//!   (`docs`); the last two are not in `/openapi.json`.
//! - Request bodies are capped at [`MAX_BODY_BYTES`].
//! - Responses carrying a secret (a company token, a QR code, a pair code) are
//!   marked `Cache-Control: no-store`; handlers never log them.

mod access;
pub mod auth_backoff;
mod console;
mod docs;
pub mod error;
mod event_schemas;
mod events;
mod extract;
mod health;
pub mod limits;
mod media;
mod message_status;
mod messages;
pub use messages::options::MediaOptions;
mod metrics;
pub mod openapi;
mod openapi_contract;
mod openapi_inputs;
#[cfg(test)]
mod openapi_lint;
mod openapi_send;
mod pair;
mod qr;
#[cfg(feature = "sandbox")]
mod sandbox;
pub mod send_rate;
pub mod server;
mod sessions;
mod tokens;
mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::pool::SessionPool;

/// The largest request body accepted (bytes). A text message of the maximum
/// length in multi-byte characters still fits.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The session pool every route acts on.
    pub pool: SessionPool,
    /// Checks the admin key and company tokens.
    pub auth: Arc<Authenticator>,
    /// Readiness and shutdown signals.
    pub lifecycle: Lifecycle,
    /// Signs and checks pairing links (`pair`).
    pub pairing: Arc<crate::pairing::PairingLinks>,
    /// Open event streams per company (`GET …/events`).
    pub company_streams: Arc<limits::StreamSlots>,
    /// Open live feeds per pairing link.
    pub link_streams: Arc<limits::StreamSlots>,
    /// Longest time one request may take (`--http-request-timeout-s`).
    pub request_timeout: std::time::Duration,
    /// Longest life of an event stream (`--http-stream-max-duration-s`).
    pub stream_max_duration: Option<std::time::Duration>,
    /// Failed authentications per address.
    pub auth_backoff: Arc<auth_backoff::AuthBackoff>,
    /// Media size limit and URL fetching (`messages`).
    pub media: Arc<MediaOptions>,
    /// The outbound address guard for media URLs (`--allow-private-urls`).
    pub outbound: crate::outbound::Guard,
    /// Every company's send budget (`send_rate`).
    pub send_rate: Arc<send_rate::SendRate>,
    /// The in-process fake WhatsApp of `wagate --sandbox` (`sandbox`):
    /// `Some` adds `/v1/sandbox/…` and the sandbox marks (health, pairing page).
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<Arc<crate::sandbox::Sandbox>>,
}

impl AppState {
    /// Whether this gateway runs on the sandbox's simulated WhatsApp.
    #[cfg(feature = "sandbox")]
    pub fn is_sandbox(&self) -> bool {
        self.sandbox.is_some()
    }

    /// Whether this gateway runs on the sandbox's simulated WhatsApp: never
    /// in a build without the `sandbox` feature.
    #[cfg(not(feature = "sandbox"))]
    pub fn is_sandbox(&self) -> bool {
        false
    }
}

/// The process's phase as the HTTP layer sees it: ready once sessions were
/// restored (`/readyz`), stopping once shutdown began (open event streams end).
#[derive(Clone)]
pub struct Lifecycle {
    ready: Arc<AtomicBool>,
    stopping: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            ready: Arc::new(AtomicBool::new(false)),
            stopping: watch::Sender::new(false),
        }
    }
}

impl Lifecycle {
    /// Sessions were restored: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether stored sessions are restored and the webhook dispatcher runs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Shutdown began: event streams end so the HTTP server can drain.
    pub fn begin_stopping(&self) {
        self.ready.store(false, Ordering::Release);
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Lifecycle::begin_stopping`] was called.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only waits.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        // Err only if the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}

/// The whole HTTP surface: `/v1/…`, `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let request_timeout = state.request_timeout;
    let api = documented_routes();
    // Documented in `/openapi.json` only where they exist.
    #[cfg(feature = "sandbox")]
    let api = if state.is_sandbox() {
        api.merge(sandbox::routes()).merge(pair::sandbox_routes())
    } else {
        api
    };
    let (api, openapi) = api.split_for_parts();
    let ttl_range_s = state.pairing.ttl_range_s();
    api.merge(openapi::router(&openapi, ttl_range_s))
        // People's pages, not the JSON API: outside `/openapi.json`.
        .merge(console::router(&state))
        .merge(docs::router())
        .route("/metrics", axum::routing::get(metrics::render))
        // Route layer: runs after routing, so the matched route template (not
        // the raw path with its company id) labels the request.
        .route_layer(axum::middleware::from_fn(metrics::track_http))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            limits::request_timeout,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Every route the OpenAPI document describes, with the document.
fn documented_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    openapi::api_router()
        .merge(webhooks::routes())
        .merge(pair::routes())
        .merge(tokens::routes())
}

/// `Cache-Control: no-store`, for responses that carry a secret.
fn no_store() -> [(axum::http::HeaderName, HeaderValue); 1] {
    [(CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

#[cfg(test)]
mod tests;
