//! A webhook receiver on `127.0.0.1:0` ([`Receiver`]), the one the e2e tests
//! and the benches point gateways at.
//!
//! It verifies every request's signature against [`SECRET`] (counting the
//! bad ones), can refuse deliveries with 500 for a while
//! ([`Receiver::fail_for`]) to exercise retries, keeps every accepted
//! delivery with its event id, and records when each distinct message text
//! first arrived (the benches' latency and throughput figures).
//!
//! Waiting is on the receiver's own change notification
//! ([`Receiver::wait_for`]), never polled. What it saw is read as a
//! [`Log`], cloned out ([`Receiver::log`]) or under its lock
//! ([`Receiver::with_log`]), so no lock is held across an await.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;
use wagate::webhook::sign;

use crate::api::Api;
use crate::wait::{WAIT, watch_until};

/// The signing secret gateways are given for the receiver
/// ([`Receiver::subscribe`] sets it).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One accepted webhook request.
#[derive(Clone, Debug)]
pub struct Hook {
    /// The event id (`webhook-id` header).
    pub id: String,
    /// The JSON body.
    pub body: Value,
}

/// What the receiver saw.
#[derive(Default, Clone, Debug)]
pub struct Log {
    /// Accepted requests (answered 204), in arrival order, repeats included.
    pub accepted: Vec<Hook>,
    /// Requests refused with 500 (see [`Receiver::fail_for`]).
    pub refused: usize,
    /// Requests whose signature did not verify against [`SECRET`].
    pub bad_signatures: usize,
    /// Requests whose body was not JSON (answered 400).
    pub malformed: usize,
    /// When each distinct message text (`data.text`) was first accepted.
    pub first_arrival: HashMap<String, Instant>,
}

impl Log {
    /// Event ids of the accepted `message.received` events.
    pub fn message_ids(&self) -> HashSet<String> {
        self.accepted
            .iter()
            .filter(|h| h.body["type"] == "message.received")
            .map(|h| h.id.clone())
            .collect()
    }

    /// When the last distinct message text first arrived.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.first_arrival.values().max().copied()
    }
}

/// A running webhook receiver (cheap to clone; clones share the log).
#[derive(Clone)]
pub struct Receiver {
    /// The URL to give the gateway (`http://127.0.0.1:port/hook`).
    pub url: String,
    log: Arc<Mutex<Log>>,
    fail_until: Arc<Mutex<Option<Instant>>>,
    changed: watch::Sender<()>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port; it serves until the
    /// runtime ends.
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0").await
    }

    /// [`Receiver::start`] on another loopback address (e.g. `[::1]:0`).
    pub async fn start_on(bind: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .expect("bind the webhook receiver");
        let receiver = Receiver {
            url: format!(
                "http://{}/hook",
                listener.local_addr().expect("the receiver's address")
            ),
            log: Arc::default(),
            fail_until: Arc::default(),
            changed: watch::Sender::new(()),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// Points `company`'s webhook at this receiver with [`SECRET`], for every
    /// event type or only `events`; checks the answer (200, the URL stored,
    /// the secret never echoed).
    pub async fn subscribe(&self, api: &Api, company: &str, events: Option<&[&str]>) {
        let mut body = json!({"url": self.url, "secret": SECRET});
        if let Some(events) = events {
            body["events"] = json!(events);
        }
        let (status, body) = api
            .call(
                Method::PUT,
                &format!("/v1/sessions/{company}/webhook"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["url"], self.url.as_str());
        assert!(
            body.get("secret").is_none(),
            "a given secret is never echoed"
        );
    }

    /// Answers 500 to every request for `duration` from now.
    pub fn fail_for(&self, duration: Duration) {
        *self.fail_until.lock() = Some(Instant::now() + duration);
    }

    /// Stops refusing requests at once.
    pub fn recover(&self) {
        *self.fail_until.lock() = None;
    }

    /// A copy of what the receiver saw so far.
    pub fn log(&self) -> Log {
        self.log.lock().clone()
    }

    /// Reads what the receiver saw under its lock (no copy; keep `read`
    /// short, it blocks deliveries).
    pub fn with_log<R>(&self, read: impl FnOnce(&Log) -> R) -> R {
        read(&self.log.lock())
    }

    /// Forgets everything received (between bench runs).
    pub fn clear(&self) {
        *self.log.lock() = Log::default();
        self.changed.send_replace(());
    }

    /// Waits until what the receiver saw satisfies `pred`; panics, naming
    /// `what`, after [`WAIT`].
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Log) -> bool) {
        self.wait_for_within(what, WAIT, pred).await;
    }

    /// [`Receiver::wait_for`] with another limit, for bulk traffic.
    pub async fn wait_for_within(&self, what: &str, limit: Duration, pred: impl Fn(&Log) -> bool) {
        if !self.wait_until(limit, pred).await {
            let log = self.log.lock();
            panic!(
                "timed out after {limit:?} waiting for {what}: {} accepted ({} distinct message ids), {} refused",
                log.accepted.len(),
                log.message_ids().len(),
                log.refused
            );
        }
    }

    /// Waits until what the receiver saw satisfies `pred`, for at most
    /// `limit`; false on timeout (benches record a partial result).
    pub async fn wait_until(&self, limit: Duration, pred: impl Fn(&Log) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        watch_until(&mut rx, limit, |_| pred(&self.log.lock()))
            .await
            .is_some()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let key = sign::parse_secret(SECRET).expect("a valid secret");
    let verified = sign::verify_headers(&key, &headers, &body);
    let valid = verified.is_ok();
    let id = verified.unwrap_or_else(|id| id);
    let failing = receiver.fail_until.lock().is_some_and(|until| now < until);
    let status = {
        let mut log = receiver.log.lock();
        if !valid {
            log.bad_signatures += 1;
        }
        if failing {
            log.refused += 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(body) => {
                    if let Some(text) = body["data"]["text"].as_str() {
                        log.first_arrival.entry(text.to_owned()).or_insert(now);
                    }
                    log.accepted.push(Hook { id, body });
                    StatusCode::NO_CONTENT
                }
                Err(_) => {
                    log.malformed += 1;
                    StatusCode::BAD_REQUEST
                }
            }
        }
    };
    receiver.changed.send_replace(());
    status
}
