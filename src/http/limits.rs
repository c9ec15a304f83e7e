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
