//! Operations: `/metrics` (parsed with a Prometheus text-format parser),
//! `/readyz`, and the liveness watchdog against a fake server that stops
//! answering keepalive pings of a connected session, or stops sending it
//! anything while its socket stays open.
//!
//! The watchdog runs with timings of about a second (config flags), so a
//! dead connection is detected in seconds; every wait is on an event (the
//! session's event stream) with the harness's generous limit, except
//! readiness and the keepalive round trip, which only `/readyz` and the
//! status body show (polled, same limit).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use test_support::api::Api;
use test_support::fake::start_fake;
use test_support::gateway::{TestApp, spawn_app_with};
use test_support::wait;

/// A gateway (and its own fake) with a fast watchdog: check every 200 ms,
/// ping after 1 s idle, 1 s ping deadline; `max_failures` unanswered pings →
/// `keepalive_timeout`; nothing received for `stall_ms` → `stalled`.
async fn spawn_fast(max_failures: u32, stall_ms: u64) -> TestApp {
    spawn_app_with(start_fake().await, |config| {
        config.ops.watchdog_interval_ms = 200;
        config.ops.watchdog_idle_ms = 1_000;
        config.ops.watchdog_ping_timeout_ms = 1_000;
        config.ops.watchdog_max_failures = max_failures;
        config.ops.watchdog_stall_ms = stall_ms;
    })
    .await
}

/// `GET /metrics` (without a credential), parsed.
pub(crate) async fn scrape(api: &Api) -> (String, prometheus_parse::Scrape) {
    let (status, text) = api.with_key(None).get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics is valid Prometheus text format");
    (text, scrape)
}

/// The sum of `metric`'s samples (counter or gauge) with these labels.
pub(crate) fn counter(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Ready once restore finished; `/metrics` parses and has the HTTP and
/// session series, without company ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_readyz_follows_restore() {
    let app = spawn_fast(2, 600_000).await;
    // Restore runs in the background: readyz is 503 until it finished, then
    // 200. Polled: readiness is only observable on `/readyz` itself.
    let unauthenticated = app.api.with_key(None);
    wait::poll("readyz to be 200", Duration::from_millis(10), || async {
        let (status, _) = unauthenticated.get_text("/readyz").await;
        if status == StatusCode::OK {
            return Some(());
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        None
    })
    .await;
    app.api.ensure("metrics-co").await;
    let (_, _) = app.api.get("/v1/sessions/metrics-co").await;
    let (text, scrape) = scrape(&app.api).await;
    // The route label is the matched template, never the raw path.
    assert!(
        counter(
            &scrape,
            "wagate_http_requests_total",
            &[("method", "GET"), ("status", "200")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/sessions/{company}",method="GET",status="200""#),
        "{text}"
    );
    assert!(
        counter(
            &scrape,
            "wagate_session_transitions_total",
            &[("to", "connecting")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "wagate_sessions" && s.labels.get("state") == Some("connected"))
    );
    assert!(
        !text.contains("metrics-co"),
        "no per-company label by default"
    );
    app.stop().await;
}

/// The fake stops answering pings of a connected session: the watchdog
/// moves it to `reconnecting` (`keepalive_timeout`), it comes back by itself,
/// and `/metrics` shows the transition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_keepalives_reconnect_with_keepalive_timeout() {
    let app = spawn_fast(2, 600_000).await;
    let fake = &app.fake;
    app.api.link_by_qr(fake, "watchdog-ka", "15550007001").await;
    let mut events = app.api.events("watchdog-ka").await;
    fake.set_device_ping_replies("15550007001", false)
        .expect("the device exists");
    let reconnecting = events.wait_for_state("reconnecting").await;
    assert_eq!(
        reconnecting["reason"], "keepalive_timeout",
        "{reconnecting}"
    );
    fake.set_device_ping_replies("15550007001", true)
        .expect("the device exists");
    let connected = events.wait_for_state("connected").await;
    assert_eq!(connected["reason"], "reconnected", "{connected}");

    let status: Value = app.api.status("watchdog-ka").await;
    assert!(status["reconnects_24h"].as_u64() >= Some(1), "{status}");
    let (text, scrape) = scrape(&app.api).await;
    assert!(
        counter(
            &scrape,
            "wagate_session_transitions_total",
            &[("to", "reconnecting"), ("reason", "keepalive_timeout")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        counter(
            &scrape,
            "wagate_keepalive_pings_total",
            &[("outcome", "timeout")]
        ) >= 2.0,
        "{text}"
    );
    assert!(
        counter(&scrape, "wagate_reconnect_attempts_total", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        fake.max_concurrent_connections("15550007001") <= 1,
        "never two sockets"
    );
    app.stop().await;
}

/// A session whose socket stays open but silently stops delivering anything
/// (the fake mutes the device: no messages, no pongs, no IQ results) is
/// detected by the stall detector even when pings are not judged
/// (`max_failures` high), and recovers by itself once the server delivers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_detected_as_stalled() {
    let app = spawn_fast(100, 3_000).await;
    let fake = &app.fake;
    app.api
        .link_by_qr(fake, "watchdog-stall", "15550007002")
        .await;
    let mut events = app.api.events("watchdog-stall").await;
    fake.set_device_muted("15550007002", true)
        .expect("the device exists");
    let reconnecting = events.wait_for_state("reconnecting").await;
    assert_eq!(reconnecting["reason"], "stalled", "{reconnecting}");
    assert!(
        fake.max_concurrent_connections("15550007002") <= 1,
        "the stalled socket is closed before a new one opens"
    );
    fake.set_device_muted("15550007002", false)
        .expect("the device exists");
    events.wait_for_state("connected").await;
    // Answered pings on the healthy connection report a round trip. Polled:
    // the round trip is a field of the status, and updating it is no
    // transition (no event carries it).
    wait::poll("a keepalive RTT", Duration::from_millis(200), || async {
        let status = app.api.status("watchdog-stall").await;
        status["keepalive_rtt_ms"].is_u64().then_some(())
    })
    .await;
    app.stop().await;
}
