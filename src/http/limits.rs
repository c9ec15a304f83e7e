//! The HTTP layer's limits against hostile or broken clients: how long a
//! request may take, how many connections are served, how many event streams
//! one company (or one pairing link) may hold open.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use parking_lot::Mutex;

use super::error::ApiError;

/// HTTP server limits (`--http-*` flags).
#[derive(Clone, Debug, clap::Args)]
pub struct HttpLimits {
    /// A connection must send a request's headers within this time, or it is
    /// closed (slow-header attacks), in milliseconds.
    #[arg(long = "http-header-timeout-ms", env = "WAGATE_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_timeout_ms: u64,

    /// Longest time a request may take, body included, before it is answered
    /// 503 `request_timeout`, in seconds. Event streams are not bounded (their
    /// answer starts at once).
    #[arg(long = "http-request-timeout-s", env = "WAGATE_HTTP_REQUEST_TIMEOUT_S", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub request_timeout_s: u64,

    /// Connections served at once; beyond, new ones wait in the kernel's
    /// backlog until one closes.
    #[arg(long = "http-max-connections", env = "WAGATE_HTTP_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = parse_positive)]
    pub max_connections: usize,

    /// Event streams (`GET …/events`) one company may hold open; the next
    /// gets 429 `too_many_streams`.
    #[arg(long = "http-streams-per-company", env = "WAGATE_HTTP_STREAMS_PER_COMPANY", default_value_t = 32, value_parser = parse_positive)]
    pub streams_per_company: usize,

    /// Live feeds one pairing link may hold open (its page in a few tabs);
    /// the next gets 429.
    #[arg(long = "http-streams-per-link", env = "WAGATE_HTTP_STREAMS_PER_LINK", default_value_t = 8, value_parser = parse_positive)]
    pub streams_per_link: usize,

    /// Longest life of an event stream (`GET /v1/sessions/{company}/events`
    /// and the pairing page's feed), in seconds: it then ends cleanly and its
    /// client reconnects (a browser's EventSource does so by itself), so a
    /// proxy that cuts long responses never cuts one mid-event. A client may
    /// ask for less (`?max_duration_s=`). Unset: a stream lasts until its
    /// company is deleted or the gateway stops.
    #[arg(long = "http-stream-max-duration-s", env = "WAGATE_HTTP_STREAM_MAX_DURATION_S", value_parser = clap::value_parser!(u64).range(1..=MAX_STREAM_DURATION_S))]
    pub stream_max_duration_s: Option<u64>,

    /// Failed authentications one address may make before each further one
    /// blocks it for a growing time (429 `rate_limited`).
    #[arg(long = "http-auth-free-failures", env = "WAGATE_HTTP_AUTH_FREE_FAILURES", default_value_t = super::auth_backoff::FREE_FAILURES)]
    pub auth_free_failures: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_ms: 10_000,
            request_timeout_s: 120,
            max_connections: 10_000,
            streams_per_company: 32,
            streams_per_link: 8,
            stream_max_duration_s: None,
            auth_free_failures: super::auth_backoff::FREE_FAILURES,
        }
    }
}

impl HttpLimits {
    /// The header-read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_s)
    }

    /// The longest life of an event stream, if bounded.
    pub fn stream_max_duration(&self) -> Option<Duration> {
        self.stream_max_duration_s.map(Duration::from_secs)
    }
}

/// The longest life an event stream may be given, by its client
/// (`?max_duration_s=`) or the operator (`--http-stream-max-duration-s`):
/// a day, far beyond any proxy's idle or response limit.
pub const MAX_STREAM_DURATION_S: u64 = 86_400;

/// The lifetime a client asks for its event stream (`?max_duration_s=`):
/// 400 `invalid_query` outside 1 to [`MAX_STREAM_DURATION_S`] seconds.
pub fn asked_stream_lifetime(asked_s: Option<u64>) -> Result<Option<Duration>, ApiError> {
    match asked_s {
        None => Ok(None),
        Some(s @ 1..=MAX_STREAM_DURATION_S) => Ok(Some(Duration::from_secs(s))),
        Some(_) => Err(ApiError::refused(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("max_duration_s must be from 1 to {MAX_STREAM_DURATION_S}"),
        )),
    }
}

/// When an event stream opened now ends by time: the sooner of what its
/// client asked for and the operator's `limit`; `None` when neither bounds it.
pub fn stream_deadline(
    asked: Option<Duration>,
    limit: Option<Duration>,
) -> Option<tokio::time::Instant> {
    let lifetime = match (asked, limit) {
        (Some(asked), Some(limit)) => Some(asked.min(limit)),
        (asked, limit) => asked.or(limit),
    };
    lifetime.map(|lifetime| tokio::time::Instant::now() + lifetime)
}

/// Resolves at `deadline`; never when there is none.
///
/// # Cancel safety
/// Cancel-safe: it only waits.
pub async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn parse_positive(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{raw}` is not a positive number")),
    }
}

/// Middleware: a request that takes longer than `limit` is answered 503
/// `request_timeout` (the API's JSON envelope; tower-http's timeout layer
/// would answer with an empty body) and its handler is dropped.
pub async fn request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

/// Open event streams per key (a company, a pairing link), with a cap.
#[derive(Debug)]
pub struct StreamSlots {
    limit: usize,
    // parking_lot: held for a counter update only, never across `.await`.
    open: Mutex<HashMap<String, usize>>,
}

impl StreamSlots {
    /// At most `limit` streams per key.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more stream of `key`, or `None` when `key` holds
    /// `limit` already. The slot is given back when dropped (the stream
    /// ended or its client went away).
    pub fn try_open(self: &Arc<Self>, key: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock();
        let count = open.entry(key.to_owned()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: Arc::clone(self),
            key: key.to_owned(),
        })
    }

    /// Streams of `key` open now.
    pub fn open(&self, key: &str) -> usize {
        self.open.lock().get(key).copied().unwrap_or(0)
    }
}

/// One open stream's place in [`StreamSlots`]; frees it when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    key: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stream_lasts_the_sooner_of_the_asked_and_the_operators_limit() {
        let now = tokio::time::Instant::now();
        let at = |asked, limit: Option<u64>| {
            let asked = asked_stream_lifetime(asked).unwrap();
            stream_deadline(asked, limit.map(Duration::from_secs)).map(|deadline| deadline - now)
        };
        assert_eq!(at(None, None), None, "unbounded, as before");
        assert_eq!(at(Some(30), None), Some(Duration::from_secs(30)));
        assert_eq!(at(None, Some(60)), Some(Duration::from_secs(60)));
        assert_eq!(at(Some(30), Some(60)), Some(Duration::from_secs(30)));
        assert_eq!(at(Some(90), Some(60)), Some(Duration::from_secs(60)));
        assert_eq!(
            at(Some(MAX_STREAM_DURATION_S), None),
            Some(Duration::from_secs(MAX_STREAM_DURATION_S))
        );
        for refused in [0, MAX_STREAM_DURATION_S + 1, u64::MAX] {
            let error = asked_stream_lifetime(Some(refused)).unwrap_err();
            assert_eq!(error.code(), "invalid_query", "{refused}");
        }
    }

    #[test]
    fn slots_are_capped_per_key_and_freed_on_drop() {
        let slots = StreamSlots::new(2);
        let a1 = slots.try_open("acme").unwrap();
        let _a2 = slots.try_open("acme").unwrap();
        assert!(slots.try_open("acme").is_none(), "the third is refused");
        let _g = slots
            .try_open("globex")
            .expect("other keys are not affected");
        drop(a1);
        assert_eq!(slots.open("acme"), 1);
        assert!(slots.try_open("acme").is_some());
        assert_eq!(slots.open("nobody"), 0);
    }
}
