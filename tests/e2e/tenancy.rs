//! One tenant's limits (issue 16, "Sending"): the per-company send rate
//! limit (429 `rate_limited` with `Retry-After`, nothing sent), and webhook
//! replay and retry that a company token can aim only at its own webhook,
//! one replay at a time.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use test_support::fake::start_fake;
use test_support::gateway::spawn_app_with;
use test_support::webhook::{Receiver, SECRET};

const PHONE: &str = "15550001111";
const BOB: &str = "15550002222";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_beyond_the_company_budget_get_429_with_retry_after_and_send_nothing() {
    let app = spawn_app_with(start_fake().await, |c| {
        c.sends.send_rate_per_minute = 1;
        c.sends.send_burst = 2;
    })
    .await;
    app.api.link_by_qr(&app.fake, "acme", PHONE).await;
    let (status, first) = app.api.send_text("acme", BOB, "one", Some("k-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, body) = app.api.send_text("acme", BOB, "two", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let response = app
        .api
        .request(Method::POST, "/v1/sessions/acme/messages")
        .json(&json!({"to": BOB, "text": "three"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // A reaction is a send too.
    let (status, body) = app
        .api
        .post(
            &format!(
                "/v1/sessions/acme/messages/{}/reaction",
                first["message_id"].as_str().unwrap()
            ),
            Some(json!({"chat": BOB, "emoji": "👍"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Bad input is refused for itself, not counted.
    let (status, body) = app.api.send_text("acme", "not a phone", "x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // An idempotent replay sends nothing, so it needs no budget.
    let (status, again) = app.api.send_text("acme", BOB, "one", Some("k-1")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["message_id"], first["message_id"]);

    let texts: Vec<String> = app
        .fake
        .sent_messages()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert!(
        !texts.iter().any(|t| t == "three"),
        "the refused send never reached WhatsApp: {texts:?}"
    );
    app.stop().await;
}

/// Event counts per target in the company's delivery log.
async fn rows(app: &test_support::gateway::TestApp) -> Vec<Value> {
    let (_, body) = app
        .api
        .get("/v1/sessions/acme/deliveries?limit=10000")
        .await;
    ["queued", "delivered", "dead"]
        .iter()
        .flat_map(|state| body[state].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The event ids of `rows` delivered to `target` (`"global"` or `"company"`),
/// or to any target when `None`.
fn event_ids(rows: &[Value], target: Option<&str>) -> std::collections::HashSet<String> {
    rows.iter()
        .filter(|d| target.is_none_or(|t| d["target"] == t))
        .filter_map(|d| d["event_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_token_cannot_replay_or_retry_into_the_global_webhook() {
    let global = Receiver::start().await;
    let own = Receiver::start().await;
    // Every failed attempt is final: the global webhook's deliveries die.
    global.fail_for(Duration::from_secs(3600));
    let app = spawn_app_with(start_fake().await, |c| {
        c.webhooks.global_url = Some(global.url.clone());
        c.webhooks.global_secret = Some(SECRET.to_owned());
        c.webhooks.webhook_max_attempts = 1;
    })
    .await;
    let created = app.api.ensure("acme").await;
    let token = created["token"]
        .as_str()
        .expect("the company token")
        .to_owned();
    let tenant = app.api.with_key(Some(&token));
    own.subscribe(&app.api, "acme", None).await;
    global
        .wait_for("a refused global delivery", |log| log.refused >= 1)
        .await;
    let dead = app
        .api
        .wait_for_delivery("acme", "dead", |d| d["target"] == "global")
        .await;
    let id = dead["id"].as_str().unwrap().to_owned();

    // The tenant: its retry of the global dead letter is unknown to it, its
    // replay queues nothing for the global webhook.
    let (status, body) = tenant
        .post(&format!("/v1/sessions/acme/deliveries/{id}/retry"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "unknown_delivery");
    let before = rows(&app).await;
    let (known, global_before) = (event_ids(&before, None), event_ids(&before, Some("global")));
    let (status, body) = tenant
        .post("/v1/sessions/acme/webhook/replay", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let queued = body["queued"].as_u64().unwrap() as usize;
    assert!(queued >= 1, "{body}");
    own.wait_for("the replayed events", |log| log.accepted.len() >= queued)
        .await;
    // The session keeps emitting new events (QR rotations) to the global
    // webhook meanwhile; what must not appear is a global delivery of an
    // event that existed before the replay (a replayed one).
    // event that existed before the replay (a replayed one), or a new
    // attempt at a global dead letter.
    let after = rows(&app).await;
    let replayed_to_global: Vec<String> = event_ids(&after, Some("global"))
        .into_iter()
        .filter(|e| known.contains(e) && !global_before.contains(e))
        .collect();
    assert!(
        replayed_to_global.is_empty(),
        "the tenant's replay queued global deliveries: {replayed_to_global:?}"
    );
    let shape = |d: &Value| (d["id"].clone(), d["state"].clone(), d["attempts"].clone());
    // Dead letters are final unless retried: the ones dead before the
    // replay are dead still, with no new attempt (queued ones may die
    // meanwhile on their own).
    let dead_before: std::collections::HashSet<String> = before
        .iter()
        .filter(|d| d["target"] == "global" && d["state"] == "dead")
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect();
    let global_shapes = |rows: &[Value]| -> std::collections::HashSet<String> {
        rows.iter()
            .filter(|d| dead_before.contains(d["id"].as_str().unwrap_or_default()))
            .map(|d| format!("{:?}", shape(d)))
            .collect()
    };
    assert_eq!(
        global_shapes(&after),
        global_shapes(&before),
        "the global dead letters from before the replay are untouched"
    );

    // The admin reaches the global webhook.
    global.recover();
    let (status, body) = app
        .api
        .post(&format!("/v1/sessions/acme/deliveries/{id}/retry"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    global
        .wait_for("the retried global delivery", |log| {
            !log.accepted.is_empty()
        })
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replay_waits_until_the_first_one_is_delivered() {
    let own = Receiver::start().await;
    let app = spawn_app_with(start_fake().await, |c| {
        c.webhooks.webhook_backoff_ms = 100;
        c.webhooks.webhook_backoff_max_ms = 200;
    })
    .await;
    app.api.ensure("acme").await;
    own.subscribe(&app.api, "acme", None).await;
    own.fail_for(Duration::from_secs(3600));
    let replay = || {
        app.api
            .post("/v1/sessions/acme/webhook/replay", Some(json!({})))
    };
    let (status, body) = replay().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    own.wait_for("a refused replay delivery", |log| log.refused >= 1)
        .await;
    let (status, body) = replay().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "replay_in_progress");

    own.recover();
    test_support::wait::poll(
        "the replay is delivered",
        Duration::from_millis(50),
        || async {
            let (status, body) = replay().await;
            (status == StatusCode::ACCEPTED).then_some(body)
        },
    )
    .await;
    app.stop().await;
}
