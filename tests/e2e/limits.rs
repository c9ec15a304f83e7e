//! The HTTP server's limits against hostile clients: slow headers, slow
//! bodies, too many open event streams per company and per pairing link, and
//! event streams' bounded lifetimes.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use test_support::fake::start_fake;
use test_support::gateway::spawn_app_with;
use test_support::wait::WAIT;

/// The `host:port` of a test gateway's API.
fn authority(base: &str) -> &str {
    base.trim_start_matches("http://")
}

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_disconnected() {
    let app = spawn_app_with(start_fake().await, |c| c.http.header_timeout_ms = 500).await;
    let mut tcp = TcpStream::connect(authority(&app.api.base)).await.unwrap();
    let started = tokio::time::Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: 0123456789abcdefghijklmnopqrstuvwxyz\r\n\r\n";
    let mut closed = false;
    // One byte every 100 ms (the slow client itself; the wait for the
    // server's answer is the read below): the headers would take ~8 s.
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(100));
    for byte in request {
        interval.tick().await;
        if tcp.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        // The server answers a timeout (408) or just closes; either way the
        // connection ends long before the request could have been served.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await;
        closed = !String::from_utf8_lossy(&rest).contains("200 OK");
    }
    assert!(closed, "the slow client was cut off");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "cut off near the 500 ms header timeout, not after the whole request ({:?})",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_times_out_with_the_envelope() {
    let app = spawn_app_with(start_fake().await, |c| c.http.request_timeout_s = 1).await;
    app.api.ensure("acme").await;
    let mut tcp = TcpStream::connect(authority(&app.api.base)).await.unwrap();
    let head = format!(
        "POST /v1/sessions/acme/messages HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\":",
        test_support::gateway::ADMIN_KEY
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains("request_timeout") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "answered within the wait");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn event_streams_are_capped_per_company_and_per_pairing_link() {
    let app = spawn_app_with(start_fake().await, |c| c.http.streams_per_link = 2).await;
    app.api.ensure("acme").await;
    app.api.ensure("globex").await;

    let open = |company: &'static str| {
        let api = app.api.clone();
        async move {
            api.request(
                reqwest::Method::GET,
                &format!("/v1/sessions/{company}/events"),
            )
            .send()
            .await
            .unwrap()
        }
    };
    let mut streams = Vec::new();
    for _ in 0..32 {
        let response = open("acme").await;
        assert_eq!(response.status(), StatusCode::OK);
        streams.push(response);
    }
    let refused = open("acme").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "the 33rd");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    assert_eq!(
        open("globex").await.status(),
        StatusCode::OK,
        "other companies are not affected"
    );

    // A closed stream gives its place back: `StreamSlots`' unit test (the
    // server notices a closed stream only at its next write).

    // A pairing link's live feeds, capped at 2 here.
    let (status, link) = app.api.post("/v1/sessions/acme/pairing-links", None).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = format!("{}/events", link["url"].as_str().unwrap());
    let client = reqwest::Client::new();
    let mut feeds = Vec::new();
    for _ in 0..2 {
        let feed = client.get(&url).send().await.unwrap();
        assert_eq!(feed.status(), StatusCode::OK);
        feeds.push(feed);
    }
    let refused = client
        .get(&url)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");

    drop(feeds);
    drop(streams);
    app.stop().await;
}

#[tokio::test]
async fn failed_authentication_slows_down_its_address_only() {
    let app = spawn_app_with(start_fake().await, |_| {}).await;
    app.api.ensure("acme").await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let (guesser, neighbour) = (from("127.0.0.1"), from("127.0.0.2"));
    let url = format!("{}/v1/sessions/acme", app.api.base);
    let get =
        |client: &reqwest::Client, key: &str| client.get(&url).bearer_auth(key.to_owned()).send();

    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(
            get(&guesser, &format!("wrong-guess-{i}"))
                .await
                .unwrap()
                .status(),
        );
    }
    assert!(
        statuses[..11]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[11],
        StatusCode::TOO_MANY_REQUESTS,
        "blocked after the free failures"
    );

    // Blocked: even the right key is not looked at until the wait is over.
    let blocked = get(&guesser, test_support::gateway::ADMIN_KEY)
        .await
        .unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers().contains_key("retry-after"));
    let body: serde_json::Value = blocked.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // Another address is not affected.
    let other = get(&neighbour, test_support::gateway::ADMIN_KEY)
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    app.stop().await;
}

/// Reads an event stream's whole body: `Some` once the server ended it,
/// `None` if it was still open after `within`.
async fn body_if_ended(response: reqwest::Response, within: Duration) -> Option<String> {
    tokio::time::timeout(within, response.text())
        .await
        .ok()
        .map(|text| text.expect("a stream body"))
}

#[tokio::test]
async fn an_event_stream_ends_after_the_lifetime_its_client_asked_for() {
    let app = spawn_app_with(start_fake().await, |_| {}).await;
    app.api.ensure("acme").await;
    let open = |query: &'static str| {
        app.api
            .request(
                reqwest::Method::GET,
                &format!("/v1/sessions/acme/events{query}"),
            )
            .send()
    };

    let started = tokio::time::Instant::now();
    let response = open("?max_duration_s=1").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_if_ended(response, WAIT)
        .await
        .expect("the stream ended");
    assert!(body.contains("event: session.status"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before its time"
    );

    for refused in [
        "?max_duration_s=0",
        "?max_duration_s=86401",
        "?max_duration_s=soon",
    ] {
        let response = open(refused).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{refused}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_query", "{refused}");
    }

    // Without it, and without the operator's limit: open as before.
    let response = open("").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_if_ended(response, Duration::from_secs(2)).await,
        None,
        "an unbounded stream is still open"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_operators_stream_lifetime_ends_every_event_stream() {
    let app = spawn_app_with(start_fake().await, |c| {
        c.http.stream_max_duration_s = Some(1);
    })
    .await;
    app.api.ensure("acme").await;

    for query in ["", "?max_duration_s=3600"] {
        let response = app
            .api
            .request(
                reqwest::Method::GET,
                &format!("/v1/sessions/acme/events{query}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = body_if_ended(response, WAIT)
            .await
            .expect("the stream ended");
        assert!(body.contains("event: session.status"), "{query}: {body}");
    }

    // The pairing page's feed ends too, without an `expired` (the link is
    // still good: the page's EventSource reconnects).
    let (status, link) = app.api.post("/v1/sessions/acme/pairing-links", None).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let url = format!("{}/events", link["url"].as_str().unwrap());
    let feed = reqwest::get(&url).await.unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    let body = body_if_ended(feed, WAIT).await.expect("the feed ended");
    assert!(body.contains("event: state"), "{body}");
    assert!(!body.contains("event: expired"), "{body}");
    app.stop().await;
}
