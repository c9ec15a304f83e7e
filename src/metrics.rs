//! Prometheus metrics: the process-wide recorder (the `metrics` facade with
//! `metrics-exporter-prometheus`), the names wagate records, and the text
//! exposition that `GET /metrics` (in `http`) serves.
//!
//! This module takes plain names (state codes, reason codes, route templates):
//! it knows no pool or HTTP type, so every layer may record into it.
//!
//! # Invariants
//!
//! - One recorder per process, installed on first use ([`handle`]); every
//!   [`crate::app::App`] in the process (the end-to-end tests start several)
//!   shares it, so counters are process totals.
//! - Labels have a bounded set of values: states and reason codes are stable
//!   snake_case codes, routes are axum's *matched* route templates (never the
//!   raw path, which carries company ids). A `company` label is added only
//!   when [`set_per_company_labels`] enabled it (config
//!   `--metrics-per-company`), because one series per company multiplies the
//!   series count by the number of tenants.
//! - Nothing recorded here carries a secret, a phone number or a message body.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::CompanyId;

/// Sessions by state (gauge, set at each scrape from the pool).
pub const SESSIONS: &str = "wagate_sessions";
/// State transitions by target state and reason code (counter).
pub const TRANSITIONS: &str = "wagate_session_transitions_total";
/// Automatic reconnect attempts (counter).
pub const RECONNECT_ATTEMPTS: &str = "wagate_reconnect_attempts_total";
/// Round trip of the watchdog's keepalive pings, seconds (histogram).
pub const KEEPALIVE_RTT: &str = "wagate_keepalive_rtt_seconds";
/// Watchdog keepalive pings by outcome (`ok`, `timeout`, `error`) (counter).
pub const KEEPALIVE_PINGS: &str = "wagate_keepalive_pings_total";
/// Messages sent by the gateway (counter).
pub const MESSAGES_SENT: &str = "wagate_messages_sent_total";
/// Messages received by the sessions' clients (counter).
pub const MESSAGES_RECEIVED: &str = "wagate_messages_received_total";
/// Webhook delivery attempts by outcome (`delivered`, `retry`, `dead`) (counter).
pub const WEBHOOK_DELIVERIES: &str = "wagate_webhook_deliveries_total";
/// Webhook deliveries queued in the dispatcher (gauge).
pub const OUTBOX_DEPTH: &str = "wagate_webhook_outbox_depth";
/// Duration of the outbox's group commits (one transaction and one flush for
/// every commit waiting: the inbound durability point), seconds (histogram).
pub const OUTBOX_FLUSH: &str = "wagate_outbox_flush_seconds";
/// Commits made durable by one group commit (histogram).
pub const OUTBOX_FLUSH_BATCH: &str = "wagate_outbox_flush_batch_size";
/// HTTP requests by route template, method and status (counter).
pub const HTTP_REQUESTS: &str = "wagate_http_requests_total";
/// HTTP request latency by route template, seconds (histogram).
pub const HTTP_DURATION: &str = "wagate_http_request_duration_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static PER_COMPANY: AtomicBool = AtomicBool::new(false);

/// The process's Prometheus recorder, installed on first call.
///
/// If another global recorder was installed first (an embedding program),
/// wagate renders from its own recorder, which then stays empty: metrics are
/// an observation aid and must never stop the gateway.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Bucket lists are constants and non-empty, so these cannot fail;
        // a failure would only cost the histograms their buckets.
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(OUTBOX_FLUSH.to_owned()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                    ],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(OUTBOX_FLUSH_BATCH.to_owned()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// Enables (or disables) the `company` label on per-session series.
pub fn set_per_company_labels(enabled: bool) {
    PER_COMPANY.store(enabled, Ordering::Relaxed);
}

fn describe() {
    metrics::describe_gauge!(SESSIONS, "Sessions by state.");
    metrics::describe_counter!(
        TRANSITIONS,
        "Session state transitions by target state and reason."
    );
    metrics::describe_counter!(RECONNECT_ATTEMPTS, "Automatic reconnect attempts.");
    metrics::describe_histogram!(
        KEEPALIVE_RTT,
        metrics::Unit::Seconds,
        "Watchdog keepalive round trip."
    );
    metrics::describe_counter!(KEEPALIVE_PINGS, "Watchdog keepalive pings by outcome.");
    metrics::describe_counter!(MESSAGES_SENT, "Messages sent through the API.");
    metrics::describe_counter!(
        MESSAGES_RECEIVED,
        "Messages received and decrypted by the sessions."
    );
    metrics::describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts by outcome.");
    metrics::describe_gauge!(OUTBOX_DEPTH, "Webhook deliveries queued in the dispatcher.");
    metrics::describe_histogram!(
        OUTBOX_FLUSH,
        metrics::Unit::Seconds,
        "Group commits of the outbox: one transaction and one flush for every commit waiting."
    );
    metrics::describe_histogram!(
        OUTBOX_FLUSH_BATCH,
        "Commits made durable by one group commit of the outbox."
    );
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status.");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by route."
    );
}

/// Labels of a per-session series: `extra`, plus `company` when enabled.
fn session_labels(company: &CompanyId, extra: &[(&'static str, String)]) -> Vec<metrics::Label> {
    let mut labels: Vec<metrics::Label> = extra
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect();
    if PER_COMPANY.load(Ordering::Relaxed) {
        labels.push(metrics::Label::new("company", company.to_string()));
    }
    labels
}

/// A session changed state.
pub fn transition(company: &CompanyId, from: &str, to: &str, reason: &str) {
    let labels = session_labels(
        company,
        &[
            ("from", from.to_owned()),
            ("to", to.to_owned()),
            ("reason", reason.to_owned()),
        ],
    );
    metrics::counter!(TRANSITIONS, labels).increment(1);
}

/// A session starts an automatic reconnect.
pub fn reconnect_attempt(company: &CompanyId) {
    metrics::counter!(RECONNECT_ATTEMPTS, session_labels(company, &[])).increment(1);
}

/// A watchdog ping finished: `rtt` when answered, else the failure kind.
pub fn keepalive(company: &CompanyId, outcome: Result<Duration, &'static str>) {
    let kind = match outcome {
        Ok(rtt) => {
            metrics::histogram!(KEEPALIVE_RTT, session_labels(company, &[]))
                .record(rtt.as_secs_f64());
            "ok"
        }
        Err(kind) => kind,
    };
    metrics::counter!(
        KEEPALIVE_PINGS,
        session_labels(company, &[("outcome", kind.to_owned())])
    )
    .increment(1);
}

/// Message counters, fed from the client's own statistics (deltas).
pub fn messages(company: &CompanyId, sent: u64, received: u64) {
    if sent > 0 {
        metrics::counter!(MESSAGES_SENT, session_labels(company, &[])).increment(sent);
    }
    if received > 0 {
        metrics::counter!(MESSAGES_RECEIVED, session_labels(company, &[])).increment(received);
    }
}

/// A webhook delivery attempt finished: `delivered`, `retry` or `dead`.
pub fn webhook_delivery(outcome: &'static str) {
    metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// One group commit of the outbox: how long it took and how many commits it covered.
pub fn outbox_flush(took: Duration, commits: usize) {
    metrics::histogram!(OUTBOX_FLUSH).record(took.as_secs_f64());
    metrics::histogram!(OUTBOX_FLUSH_BATCH).record(commits as f64);
}

/// The dispatcher's queue grew (`+1`) or shrank (`-1`).
pub fn outbox_depth_change(delta: f64) {
    metrics::gauge!(OUTBOX_DEPTH).increment(delta);
}

/// An HTTP request finished: counted by matched route template, method and
/// status, and timed.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    metrics::histogram!(HTTP_DURATION, "route" => route.to_owned()).record(took.as_secs_f64());
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// The Prometheus text exposition (format 0.0.4), with `wagate_sessions` set
/// from `sessions_by_state` (every state code with its count, zeros included,
/// so no series goes missing).
pub fn exposition(sessions_by_state: impl IntoIterator<Item = (&'static str, u64)>) -> String {
    for (state, count) in sessions_by_state {
        metrics::gauge!(SESSIONS, "state" => state).set(count as f64);
    }
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_parses_and_carries_transitions_without_company_labels() {
        let company = CompanyId::parse("acme-metrics").unwrap();
        let handle = handle();
        transition(&company, "connected", "reconnecting", "keepalive_timeout");
        keepalive(&company, Ok(Duration::from_millis(12)));
        let text = handle.render();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let sample = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == TRANSITIONS && s.labels.get("reason") == Some("keepalive_timeout")
            })
            .expect("the transition is exported");
        assert_eq!(sample.labels.get("to"), Some("reconnecting"));
        assert!(matches!(sample.value, prometheus_parse::Value::Counter(v) if v >= 1.0));
        assert!(
            scrape
                .samples
                .iter()
                .all(|s| s.labels.get("company").is_none()),
            "no company label by default"
        );
        assert!(!text.contains("acme-metrics"));
    }
}
