//! Fetching a media `url` for a send: the shared outbound guard
//! ([`crate::outbound`]) on the URL, on every redirect (at most
//! [`MAX_REDIRECTS`]) and on every address its host resolves to; a timeout
//! on the whole fetch (`--media-url-timeout`); the size limit checked on
//! `Content-Length` and again while the body streams into the [`Spool`].
//!
//! Refusals: 422 `media_url_refused` (scheme, credentials, a private,
//! loopback, link-local or other non-public address unless
//! `--allow-private-urls`), 413
//! `media_too_large`, 502 `media_url_failed` (not 2xx, unreachable, too
//! slow, too many redirects).

use std::time::Duration;

use axum::http::StatusCode;

use super::super::error::ApiError;
use super::media::{Spool, too_large};
use super::options::MediaOptions;
use crate::outbound::Guard;

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;

fn refused(message: &str) -> ApiError {
    ApiError::refused(
        StatusCode::UNPROCESSABLE_ENTITY,
        "media_url_refused",
        format!("the media URL is refused: {message}"),
    )
}

fn failed(message: String) -> ApiError {
    ApiError::refused(StatusCode::BAD_GATEWAY, "media_url_failed", message)
}

/// Fetches `raw` into a new spool of at most `limit` bytes; returns it and
/// the response's `Content-Type`.
pub(super) async fn fetch(
    guard: Guard,
    options: &MediaOptions,
    raw: &str,
    limit: u64,
) -> Result<(Spool, Option<String>), ApiError> {
    let url = guard.check_url(raw).map_err(|r| refused(r.0))?;
    let client = client(guard, Duration::from_secs(options.media_url_timeout))
        .map_err(ApiError::internal)?;
    let timeout = Duration::from_secs(options.media_url_timeout);
    tokio::time::timeout(timeout, async move {
        let mut response = client.get(url).send().await.map_err(classify)?;
        if !response.status().is_success() {
            return Err(failed(format!(
                "fetching the media URL answered HTTP {}",
                response.status().as_u16()
            )));
        }
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(too_large(limit));
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut spool = Spool::new(limit).await?;
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            spool.write(&chunk).await?;
        }
        Ok((spool, mime))
    })
    .await
    .map_err(|_| failed("fetching the media URL timed out".to_owned()))?
}

/// A client that re-checks every redirect and, when private addresses are
/// refused, every resolved address.
fn client(guard: Guard, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        match guard.check_parsed(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    });
    guard
        .client_builder()
        .connect_timeout(timeout)
        .redirect(policy)
        .build()
}

/// A failed fetch: refused by the guard (a redirect or a resolved address)
/// or failed on the way.
fn classify(error: reqwest::Error) -> ApiError {
    if let Some(refusal) = crate::outbound::refusal_in(&error) {
        return refused(refusal.0);
    }
    if error.is_redirect() {
        return failed("fetching the media URL followed too many redirects".to_owned());
    }
    failed("fetching the media URL failed".to_owned())
}
