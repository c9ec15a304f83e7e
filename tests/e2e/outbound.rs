//! Outbound requests (issue 16): webhook URLs on loopback — `127.0.0.1`,
//! `[::1]`, `[::ffff:127.0.0.1]` and `localhost` — are refused by default
//! (400 `invalid_webhook_url`, nothing stored) and delivered to with
//! `--allow-private-urls`; a receiver's endless answer body still counts as
//! delivered, at once. (Media URLs: `messaging.rs`; every other address
//! range: the guard's unit tests, which open no socket.)

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use test_support::fake::start_fake;
use test_support::gateway::{TestApp, spawn_app_with};
use test_support::webhook::{Receiver, SECRET};

/// The loopback spellings of a receiver listening on `v4` (127.0.0.1:port)
/// and `v6` ([::1]:port).
fn loopback_urls(v4: &Receiver, v6: &Receiver) -> Vec<String> {
    let port = |r: &Receiver| {
        let url = url::Url::parse(&r.url).expect("the receiver's URL");
        url.port().expect("a port")
    };
    let (p4, p6) = (port(v4), port(v6));
    vec![
        format!("http://127.0.0.1:{p4}"),
        format!("http://[::1]:{p6}"),
        format!("http://[::ffff:127.0.0.1]:{p4}"),
        format!("http://localhost:{p4}"),
    ]
}

async fn put_webhook(app: &TestApp, company: &str, url: &str) -> (StatusCode, Value) {
    app.api
        .call(
            Method::PUT,
            &format!("/v1/sessions/{company}/webhook"),
            Some(json!({"url": url, "secret": SECRET})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_webhook_urls_are_refused_by_default_and_delivered_to_when_allowed() {
    let v4 = Receiver::start().await;
    let v6 = Receiver::start_on("[::1]:0").await;

    let strict = spawn_app_with(start_fake().await, |c| c.allow_private_urls = false).await;
    strict.api.ensure("acme").await;
    for url in loopback_urls(&v4, &v6) {
        let (status, body) = put_webhook(&strict, "acme", &format!("{url}/hook")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_webhook_url", "{url}");
        let (_, webhook) = strict.api.get("/v1/sessions/acme/webhook").await;
        assert_eq!(webhook["url"], Value::Null, "{url}: nothing stored");
    }
    strict.stop().await;

    // Allowed: each spelling reaches its receiver (a replay of the company's
    // stored session.status events).
    let open = spawn_app_with(start_fake().await, |c| c.allow_private_urls = true).await;
    for (n, url) in loopback_urls(&v4, &v6).into_iter().enumerate() {
        let company = format!("c{n}");
        open.api.ensure(&company).await;
        let (status, body) = put_webhook(&open, &company, &format!("{url}/hook")).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        let receiver = if url.contains("[::1]") { &v6 } else { &v4 };
        let (status, body) = open
            .api
            .post(
                &format!("/v1/sessions/{company}/webhook/replay"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        receiver
            .wait_for(&format!("an event of {company} through {url}"), |log| {
                log.accepted
                    .iter()
                    .any(|h| h.body["company"] == company.as_str())
            })
            .await;
    }
    open.stop().await;
}

/// A receiver that answers 200 and then streams an endless body.
async fn endless_receiver() -> (String, tokio::sync::watch::Receiver<usize>) {
    use axum::body::Body;
    let (hits, hits_rx) = tokio::sync::watch::channel(0usize);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            hits.send_modify(|n| *n += 1);
            async {
                let chunk = axum::body::Bytes::from(vec![b'x'; 16 * 1024]);
                let endless = futures_util::stream::repeat_with(move || {
                    Ok::<_, std::io::Error>(chunk.clone())
                });
                (StatusCode::OK, Body::from_stream(endless))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, hits_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_body_is_not_read_and_the_delivery_counts_at_once() {
    let (url, mut hits) = endless_receiver().await;
    // Reading the whole body would end in this timeout, every attempt.
    let app = spawn_app_with(start_fake().await, |c| {
        c.webhooks.webhook_timeout_ms = 5_000;
    })
    .await;
    app.api.ensure("acme").await;
    let (status, body) = put_webhook(&app, "acme", &url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let started = Instant::now();
    let (status, body) = app
        .api
        .post(
            "/v1/sessions/acme/webhook/replay",
            Some(json!({"limit": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    tokio::time::timeout(test_support::WAIT, hits.wait_for(|n| *n >= 1))
        .await
        .expect("the receiver is called")
        .expect("the receiver runs");
    // The dispatcher records outcomes without notifying anyone: poll.
    let delivered = app
        .api
        .wait_for_delivery("acme", "delivered", |_| true)
        .await;
    assert_eq!(delivered["attempts"], 1, "{delivered}");
    assert_eq!(delivered["last_status"], 200, "{delivered}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "delivered before the request timeout: {:?}",
        started.elapsed()
    );
    app.stop().await;
}
