//! `GET /metrics` and the middleware that records every HTTP request, on top
//! of [`crate::metrics`] (which owns the names and the recorder).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::pool::SessionState;

/// Middleware: counts every request by matched route template (never the raw
/// path, which carries company ids), method and status, and times it.
/// Unmatched requests count as route `unmatched`.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    crate::metrics::http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`: the Prometheus text exposition format (0.0.4). No
/// credentials, like the health endpoints: it carries counts only.
pub async fn render(State(state): State<AppState>) -> Response {
    let mut counts = [0u64; SessionState::ALL.len()];
    for status in state.pool.list() {
        if let Some(i) = SessionState::ALL.iter().position(|s| *s == status.state) {
            counts[i] += 1;
        }
    }
    let by_state = SessionState::ALL.iter().map(|s| s.as_str()).zip(counts);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::exposition(by_state),
    )
        .into_response()
}
