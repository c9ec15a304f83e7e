//! Inbound messages end to end: fake contacts → fake WhatsApp → gateway
//! (durability hook, outbox) → signed webhooks → a real receiver.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use test_support::fake::start_fake;
use test_support::gateway::{init_logging, spawn_app};
use test_support::process::GatewayProcess;
use test_support::webhook::{Log, Receiver, SECRET};

use crate::{WAGATE, ops};

const OWN_PHONE: &str = "15550001111";
/// The limit of waits on bulk traffic (hundreds of messages through a debug
/// build on a busy machine), instead of [`test_support::WAIT`]; the only
/// longer bound in the suite.
const BULK_WAIT: Duration = Duration::from_secs(180);

/// Per chat, the message numbers (text `"{n}"`) in first-arrival order.
fn numbers_per_chat(log: &Log) -> HashMap<String, Vec<usize>> {
    let mut seen = HashSet::new();
    let mut per_chat: HashMap<String, Vec<usize>> = HashMap::new();
    for hook in log
        .accepted
        .iter()
        .filter(|h| h.body["type"] == "message.received")
    {
        if !seen.insert(hook.id.clone()) {
            continue; // a repeat of an event already seen (allowed: same id)
        }
        let data = &hook.body["data"];
        let n = data["text"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("a numbered text");
        per_chat
            .entry(data["chat"].as_str().expect("a chat").to_owned())
            .or_default()
            .push(n);
    }
    per_chat
}

/// Asserts every event id maps to one message and every message to one id.
fn assert_one_id_per_message(log: &Log) {
    let mut id_of: HashMap<(String, String), String> = HashMap::new();
    for hook in log
        .accepted
        .iter()
        .filter(|h| h.body["type"] == "message.received")
    {
        let data = &hook.body["data"];
        let message = (
            data["chat"].as_str().unwrap_or_default().to_owned(),
            data["text"].as_str().unwrap_or_default().to_owned(),
        );
        let id = id_of
            .entry(message.clone())
            .or_insert_with(|| hook.id.clone());
        assert_eq!(
            id, &hook.id,
            "message {message:?} arrived under two event ids"
        );
    }
}

/// `contacts` fake contacts each send `per_contact` numbered texts, in order.
async fn send_from_contacts(fake: &Arc<fakewa::FakeServer>, contacts: usize, per_contact: usize) {
    let mut sends = tokio::task::JoinSet::new();
    for c in 0..contacts {
        let fake = fake.clone();
        sends.spawn(async move {
            let from = format!("1555000{:04}", 2000 + c);
            for n in 0..per_contact {
                fake.contact_send_text(&from, OWN_PHONE, &n.to_string())
                    .await
                    .expect("the contact sends");
            }
        });
    }
    sends.join_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_reach_a_recovering_receiver_once_each_in_order_signed() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.api.link_by_qr(&app.fake, "acme", OWN_PHONE).await;
    receiver.subscribe(&app.api, "acme", None).await;
    receiver.fail_for(Duration::from_secs(3));

    let (contacts, per_contact) = (4, 250);
    send_from_contacts(&app.fake, contacts, per_contact).await;
    receiver
        .wait_for_within("1000 message events", BULK_WAIT, |log| {
            log.message_ids().len() >= contacts * per_contact
        })
        .await;

    let log = receiver.log();
    assert_eq!(log.message_ids().len(), 1000);
    assert!(
        log.refused > 0,
        "the receiver refused some deliveries first"
    );
    assert_eq!(log.bad_signatures, 0);
    assert_one_id_per_message(&log);
    let per_chat = numbers_per_chat(&log);
    assert_eq!(per_chat.len(), contacts);
    for (chat, numbers) in per_chat {
        assert_eq!(
            numbers,
            (0..per_contact).collect::<Vec<_>>(),
            "order in {chat}"
        );
    }
    let sample = log
        .accepted
        .iter()
        .find(|h| h.body["type"] == "message.received")
        .expect("a message");
    assert_eq!(sample.body["company"], "acme");
    assert!(
        sample.body["data"]["sender_phone"]
            .as_str()
            .is_some_and(|p| p.starts_with("1555000")),
        "{}",
        sample.body
    );

    // The delivery log shows them (newest first, limited).
    let (status, deliveries) = app
        .api
        .get("/v1/sessions/acme/deliveries?state=delivered&limit=5")
        .await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    assert_eq!(deliveries["delivered"].as_array().map(Vec::len), Some(5));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_api_validates_retries_500s_and_replays() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.api.link_by_qr(&app.fake, "acme", OWN_PHONE).await;
    let put = |body: Value| {
        app.api
            .call(Method::PUT, "/v1/sessions/acme/webhook", Some(body))
    };
    let (status, body) = put(json!({"url": "ftp://example.com/"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_webhook_url"))
    );
    let (status, body) = put(json!({"url": "https://u:p@example.com/"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_webhook_url"))
    );
    let (status, body) = put(json!({"url": receiver.url, "events": ["nope"]})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_event_type"))
    );
    // Only messages: no session.status events in this test's counts.
    let (status, body) =
        put(json!({"url": receiver.url, "secret": SECRET, "events": ["message.received"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 500s are retried: the receiver fails until it has refused once, then recovers.
    receiver.fail_for(Duration::from_secs(3600));
    app.fake
        .contact_send_text("15550002000", OWN_PHONE, "0")
        .await
        .expect("send");
    receiver.wait_for("a refusal", |log| log.refused >= 1).await;
    // `/metrics` shows the failed attempt and the queued delivery (process
    // totals: other tests' gateways add to them, never subtract).
    let (text, metrics) = ops::scrape(&app.api).await;
    assert!(
        ops::counter(
            &metrics,
            "wagate_webhook_deliveries_total",
            &[("outcome", "retry")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        ops::counter(&metrics, "wagate_webhook_outbox_depth", &[]) >= 1.0,
        "{text}"
    );
    // The inbound message was made durable by a group flush.
    for histogram in [
        "wagate_outbox_flush_seconds",
        "wagate_outbox_flush_batch_size",
    ] {
        assert!(
            metrics.samples.iter().any(|s| s.metric == histogram
                && matches!(s.value, prometheus_parse::Value::Histogram(_))),
            "{histogram}: {text}"
        );
    }
    receiver.recover();
    receiver
        .wait_for("the message", |log| log.message_ids().len() == 1)
        .await;
    let (text, metrics) = ops::scrape(&app.api).await;
    assert!(
        ops::counter(
            &metrics,
            "wagate_webhook_deliveries_total",
            &[("outcome", "delivered")]
        ) >= 1.0,
        "{text}"
    );

    // Retry of something that is not a dead letter.
    let (status, body) = app
        .api
        .post("/v1/sessions/acme/deliveries/999-company/retry", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_delivery"))
    );

    // Replay: the same event again, same id.
    let (status, body) = app
        .api
        .post(
            "/v1/sessions/acme/webhook/replay",
            Some(json!({"since_ms": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["queued"], 1);
    receiver
        .wait_for("the replay", |log| log.accepted.len() == 2)
        .await;
    {
        let log = receiver.log();
        assert_eq!(log.accepted[0].id, log.accepted[1].id);
    }
    let (status, body) = app.api.get("/v1/sessions/acme/deliveries").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["dead"].as_array().is_some_and(Vec::is_empty), "{body}");

    // A test event: signed, past the webhook's event filter, in the delivery log.
    let (status, body) = app.api.post("/v1/sessions/acme/webhook/test", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let test_id = body["event_id"].as_str().expect("event_id").to_owned();
    receiver
        .wait_for("the test event", |log| log.accepted.len() == 3)
        .await;
    {
        let log = receiver.log();
        let hook = &log.accepted[2];
        assert_eq!(hook.id, test_id);
        assert_eq!(hook.body["type"], "webhook.test", "{}", hook.body);
        assert_eq!(hook.body["data"]["test"], true, "{}", hook.body);
        assert_eq!(log.bad_signatures, 0);
    }
    // The receiver has it before the gateway records its answer: the
    // delivery log says `delivered` a moment later.
    app.api
        .wait_for_delivery("acme", "delivered", |d| d["event_id"] == test_id.as_str())
        .await;
    // Without a webhook there is nothing to test; a company that does not exist is unknown.
    let (status, body) = app.api.post("/v1/sessions/other", None).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = app.api.post("/v1/sessions/other/webhook/test", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_webhook"))
    );
    let (status, body) = app.api.post("/v1/sessions/ghost/webhook/test", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_traffic_loses_no_message_and_keeps_event_ids() {
    init_logging();
    let fake = start_fake().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let receiver = Receiver::start().await;
    let gateway = GatewayProcess::start(WAGATE, &fake, dir.path()).await;
    gateway.api.link_by_qr(&fake, "acme", OWN_PHONE).await;
    receiver.subscribe(&gateway.api, "acme", None).await;

    let (contacts, per_contact) = (2, 200);
    let sending = {
        let fake = fake.clone();
        tokio::spawn(async move { send_from_contacts(&fake, contacts, per_contact).await })
    };
    receiver
        .wait_for_within("some traffic", BULK_WAIT, |log| {
            log.message_ids().len() >= 50
        })
        .await;
    gateway.kill().await;
    sending
        .await
        .expect("the contacts finish sending (queued while the gateway is down)");

    let _restarted = GatewayProcess::start(WAGATE, &fake, dir.path()).await;
    receiver
        .wait_for_within("every message after the restart", BULK_WAIT, |log| {
            log.message_ids().len() >= contacts * per_contact
        })
        .await;
    let log = receiver.log();
    assert_eq!(
        log.message_ids().len(),
        contacts * per_contact,
        "none missing, no new ids"
    );
    assert_one_id_per_message(&log);
    assert_eq!(log.bad_signatures, 0);
    for (chat, numbers) in numbers_per_chat(&log) {
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..per_contact).collect::<Vec<_>>(),
            "every message of {chat}"
        );
    }
}

/// The SSE stream carries the same `message.received` events a webhook
/// receiver gets (same event id), for consumers that prefer pulling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_inbound_messages() {
    let app = spawn_app().await;
    let api = &app.api;
    api.link_by_qr(&app.fake, "acme", OWN_PHONE).await;
    let mut events = api.events("acme").await;

    app.fake
        .contact_send_text("15550003333", OWN_PHONE, "hello over sse")
        .await
        .expect("the contact sends");
    let message = loop {
        let (name, data) = events.next().await;
        if name == "message.received" {
            break data;
        }
    };
    assert_eq!(message["type"], "message.received", "{message}");
    assert_eq!(message["company"], "acme", "{message}");
    assert_eq!(message["data"]["sender_phone"], "15550003333", "{message}");
    assert_eq!(message["data"]["text"], "hello over sse", "{message}");
    assert!(
        message["id"].as_str().is_some_and(|id| !id.is_empty()),
        "a stable event id: {message}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whatsapp_redelivers_is_one_event() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.api.link_by_qr(&app.fake, "acme", OWN_PHONE).await;
    receiver
        .subscribe(&app.api, "acme", Some(&["message.received"]))
        .await;
    let contact = "15550002000";
    let id = app
        .fake
        .contact_send_text(contact, OWN_PHONE, "0")
        .await
        .expect("send");
    receiver
        .wait_for("the message", |log| log.message_ids().len() == 1)
        .await;
    // WhatsApp delivers the same message id again, three times (each copy
    // decrypts: the client itself does not deduplicate).
    for _ in 0..3 {
        app.fake.redeliver(&id).await.expect("a known message id");
    }
    // A later message in the same chat: once it has arrived, the copies
    // before it have been through the pipeline (order is kept per chat).
    app.fake
        .contact_send_text(contact, OWN_PHONE, "1")
        .await
        .expect("send");
    receiver
        .wait_for("the later message", |log| log.message_ids().len() == 2)
        .await;
    let log = receiver.log();
    let messages: Vec<_> = log
        .accepted
        .iter()
        .filter(|h| h.body["type"] == "message.received")
        .collect();
    assert_eq!(messages.len(), 2, "one event per message id: {messages:?}");
    assert_eq!(messages[0].body["data"]["message_id"], id.as_str());
    assert_eq!(
        numbers_per_chat(&log).into_values().collect::<Vec<_>>(),
        [vec![0, 1]]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_change_from_the_first_is_a_webhook_event() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.api.ensure("acme").await;
    receiver
        .subscribe(&app.api, "acme", Some(&["session.status"]))
        .await;
    let mut events = app.api.events("acme").await;
    let qr = events.next_qr().await;
    app.fake
        .scan_qr_as(OWN_PHONE, &qr)
        .await
        .expect("the fake phone scans the QR code");
    receiver
        .wait_for("connected", |log| {
            log.accepted
                .iter()
                .any(|h| h.body["data"]["to"] == "connected")
        })
        .await;
    let states: Vec<String> = receiver
        .log()
        .accepted
        .iter()
        .map(|h| {
            assert_eq!(h.body["type"], "session.status", "{}", h.body);
            format!(
                "{}→{}",
                h.body["data"]["from"].as_str().unwrap_or(""),
                h.body["data"]["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    // The session may have entered `pairing` before the webhook was set,
    // or just after (then that event is delivered too).
    let states: Vec<String> = states
        .into_iter()
        .skip_while(|s| s.ends_with("→pairing"))
        .collect();
    // Pairing → connecting (the 515 after the scan) → connected, nothing
    // missed in between, nothing twice.
    assert_eq!(
        states,
        ["pairing→connecting", "connecting→connected"],
        "{states:?}"
    );
    app.stop().await;
}
