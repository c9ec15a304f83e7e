//! The webhook service against a real HTTP receiver on `127.0.0.1:0`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;

use super::group_commit::{PendingCommit, commit_group};
use super::*;
use crate::store::outbox::DedupKey;
use tokio::sync::oneshot;

const SECRET: &[u8] = b"test-secret";
const WAIT: Duration = Duration::from_secs(30);

/// What the receiver got: `(event id, body)` of each 2xx-answered request,
/// and whether every request carried a valid signature.
#[derive(Default)]
struct Received {
    accepted: Vec<(String, Value)>,
    requests: usize,
    bad_signatures: usize,
}

#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Received>>,
    /// Requests still to be failed with `fail_status`.
    fail_remaining: Arc<AtomicUsize>,
    fail_status: Arc<AtomicU16>,
    changed: watch::Sender<usize>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver {
            received: Arc::default(),
            fail_remaining: Arc::default(),
            fail_status: Arc::new(AtomicU16::new(500)),
            changed: watch::Sender::new(0),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn fail(&self, count: usize, status: u16) {
        self.fail_status.store(status, Ordering::SeqCst);
        self.fail_remaining.store(count, Ordering::SeqCst);
    }

    /// Waits until `pred` holds for what was received.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Received) -> bool) {
        let mut rx = self.changed.subscribe();
        let waited = tokio::time::timeout(WAIT, rx.wait_for(|_| pred(&self.received.lock()))).await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
    }

    fn distinct_ids(&self) -> usize {
        let received = self.received.lock();
        let mut ids: Vec<&str> = received
            .accepted
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verified = sign::verify_headers(SECRET, &headers, &body);
    let valid = verified.is_ok();
    let id = verified.unwrap_or_else(|id| id);
    let failing = receiver
        .fail_remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = {
        let mut received = receiver.received.lock();
        received.requests += 1;
        if !valid {
            received.bad_signatures += 1;
        }
        if failing {
            StatusCode::from_u16(receiver.fail_status.load(Ordering::SeqCst)).unwrap()
        } else {
            let json: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                json["id"],
                id.as_str(),
                "the id header names the body's event"
            );
            received.accepted.push((id, json));
            StatusCode::OK
        }
    };
    receiver.changed.send_modify(|n| *n += 1);
    status
}

fn company() -> CompanyId {
    CompanyId::parse("acme").unwrap()
}

/// The receivers here are on loopback: allowed, as `--allow-private-urls` does.
const LOOPBACK: Guard = Guard::new(true);

fn options() -> WebhookOptions {
    WebhookOptions {
        webhook_backoff_ms: 5,
        webhook_backoff_max_ms: 50,
        webhook_max_attempts: 100,
        webhook_concurrency: 4,
        webhook_timeout_ms: 5_000,
        ..WebhookOptions::default()
    }
}

/// A store with company `acme` whose webhook points at `url`.
fn store_with_webhook(url: &str) -> Store {
    let store = Store::open_temporary().unwrap();
    store
        .put_company(&pb::CompanyRecord {
            company_id: "acme".into(),
            webhook_url: url.into(),
            webhook_secret: SECRET.to_vec(),
            ..Default::default()
        })
        .unwrap();
    store
}

/// Message `n` of `chat` (its text is `n`, so order can be checked).
fn message(chat: &str, n: usize) -> NewEvent {
    let message_id = format!("3EB0{n:08}");
    NewEvent {
        dedup: DedupKey::Message {
            chat: chat.into(),
            sender: chat.into(),
            message_id: message_id.clone(),
        },
        event: pb::WebhookEvent {
            id: event::message_event_id(&company(), chat, chat, &message_id),
            company_id: "acme".into(),
            r#type: event::MESSAGE_RECEIVED.into(),
            timestamp_ms: 1_700_000_000_000 + n as i64,
            payload: Some(pb::webhook_event::Payload::Message(pb::InboundMessage {
                company_id: "acme".into(),
                message_id,
                chat: chat.into(),
                sender: chat.into(),
                kind: "text".into(),
                text: n.to_string(),
                ..Default::default()
            })),
        },
        lane: chat.into(),
    }
}

/// The texts received per chat, in arrival order.
fn texts_per_chat(received: &Received) -> HashMap<String, Vec<usize>> {
    let mut per_chat: HashMap<String, Vec<usize>> = HashMap::new();
    for (_, json) in &received.accepted {
        let chat = json["data"]["chat"].as_str().unwrap().to_owned();
        per_chat
            .entry(chat)
            .or_default()
            .push(json["data"]["text"].as_str().unwrap().parse().unwrap());
    }
    per_chat
}

#[tokio::test]
async fn deliveries_survive_a_failing_receiver_in_order_per_chat_and_signed() {
    let (receiver, url) = Receiver::start().await;
    receiver.fail(40, 500);
    let webhooks = Webhooks::start(store_with_webhook(&url), &options(), LOOPBACK).unwrap();
    let chats = [
        "15550001001@s.whatsapp.net",
        "15550001002@s.whatsapp.net",
        "15550001003@s.whatsapp.net",
    ];
    // Concurrent committers, one per chat, like whatsapp-rust's per-chat processing.
    let mut tasks = Vec::new();
    for chat in chats {
        let webhooks = webhooks.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..60 {
                webhooks
                    .commit(&company(), vec![message(chat, n)])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    receiver
        .wait_for("180 events", |r| r.accepted.len() >= 180)
        .await;
    assert_eq!(receiver.distinct_ids(), 180);
    {
        let received = receiver.received.lock();
        assert_eq!(received.bad_signatures, 0);
        assert!(received.requests >= 220, "the 40 failures were retried");
        for (chat, texts) in texts_per_chat(&received) {
            assert_eq!(texts, (0..60).collect::<Vec<_>>(), "order of {chat}");
        }
    }
    // The receiver answers before the dispatcher records the outcome.
    wait_for_rows(&webhooks, DeliveryState::Delivered, 180).await;
    assert!(
        webhooks
            .deliveries(&company(), DeliveryState::Queued, 10)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_redelivered_message_is_one_event_and_replay_sends_it_again_with_its_id() {
    let (receiver, url) = Receiver::start().await;
    let webhooks = Webhooks::start(store_with_webhook(&url), &options(), LOOPBACK).unwrap();
    let chat = "15550001001@s.whatsapp.net";
    let first = webhooks
        .commit(&company(), vec![message(chat, 1)])
        .await
        .unwrap();
    let again = webhooks
        .commit(&company(), vec![message(chat, 1)])
        .await
        .unwrap();
    assert!(!first[0].duplicate && again[0].duplicate);
    receiver
        .wait_for("the event", |r| !r.accepted.is_empty())
        .await;
    let replayed = webhooks
        .replay(&company(), 0, 100, Reach::CompanyAndGlobal)
        .unwrap();
    assert_eq!(replayed, 1);
    receiver
        .wait_for("the replay", |r| r.accepted.len() == 2)
        .await;
    let received = receiver.received.lock();
    assert_eq!(
        received.accepted[0].0, received.accepted[1].0,
        "a replay keeps the event id"
    );
    assert_eq!(
        received.accepted[0].1, received.accepted[1].1,
        "and the body"
    );
}

#[tokio::test]
async fn concurrent_commits_of_one_message_give_one_event() {
    let store = store_with_webhook("http://127.0.0.1:9/unused");
    let webhooks = Webhooks::start(store.clone(), &options(), LOOPBACK).unwrap();
    // 32 chats commit at once, each message twice (a redelivery racing the
    // first delivery): one event per message, whatever the grouping.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let webhooks = webhooks.clone();
            let chat = format!("155500{:05}@s.whatsapp.net", i % 32);
            tokio::spawn(async move {
                webhooks
                    .commit(&company(), vec![message(&chat, i % 32)])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut new_events = 0;
    for task in tasks {
        let committed = task.await.unwrap();
        new_events += committed.iter().filter(|c| !c.duplicate).count();
    }
    assert_eq!(new_events, 32);
    assert_eq!(store.outbox().unwrap().event_count(&company()), 32);
}

#[tokio::test]
async fn a_burst_of_status_changes_is_recorded_in_order_per_company() {
    let store = Store::open_temporary().unwrap();
    let webhooks = Webhooks::start(store.clone(), &options(), LOOPBACK).unwrap();
    let companies: Vec<CompanyId> = (0..100)
        .map(|i| CompanyId::parse(&format!("c{i}")).unwrap())
        .collect();
    let status = |company: &CompanyId, state, since_ms| PoolEvent {
        company: company.clone(),
        event: SessionEvent::StatusChanged(Arc::new(SessionStatus::new(
            company.as_str(),
            state,
            "test",
            since_ms,
        ))),
    };
    // Interleaved as a restore emits them: connecting for all, then connected.
    let mut batch: Vec<PoolEvent> = companies
        .iter()
        .map(|c| status(c, crate::pool::SessionState::Connecting, 1))
        .collect();
    batch.extend(
        companies
            .iter()
            .map(|c| status(c, crate::pool::SessionState::Connected, 2)),
    );
    webhooks.commit_status_batch(batch).await;
    let outbox = store.outbox().unwrap();
    for company in &companies {
        assert_eq!(outbox.event_count(company), 2, "{company}");
        // Stored in the order they happened: replay walks the events in
        // commit order.
        let keys = outbox
            .replay(company, 0, event::SESSION_STATUS, &[Target::Company], 10)
            .unwrap();
        let states: Vec<String> = keys
            .iter()
            .map(|key| {
                let delivery = outbox.get_queued(key).unwrap().unwrap();
                match outbox
                    .event(company, delivery.event_seq)
                    .unwrap()
                    .unwrap()
                    .payload
                {
                    Some(pb::webhook_event::Payload::Status(change)) => change.to,
                    other => panic!("not a status event: {other:?}"),
                }
            })
            .collect();
        assert_eq!(states, ["connecting", "connected"], "{company}");
    }
}

#[tokio::test]
async fn a_group_commit_failing_for_one_company_still_commits_the_others() {
    let store = Store::open_temporary().unwrap();
    let outbox = store.outbox().unwrap();
    let bad = CompanyId::parse("bad").unwrap();
    let chat = "15550001001@s.whatsapp.net";
    outbox.corrupt_dedup_row(&bad, &message(chat, 1).dedup);
    let pending = |company: &CompanyId| PendingCommit {
        company: company.clone(),
        events: vec![message(chat, 1)],
        targets: vec![Target::Company],
        done: oneshot::channel().0,
    };
    let results = commit_group(&outbox, &[pending(&company()), pending(&bad)]);
    assert!(matches!(&results[0], Ok(c) if !c[0].duplicate));
    assert!(
        matches!(&results[1], Err(WebhookError::Store(StoreError::Corrupt { company, .. })) if company == "bad"),
        "{:?}",
        results[1]
    );
    assert_eq!(outbox.event_count(&company()), 1);
    assert_eq!(outbox.queued().unwrap().len(), 1);
}

#[tokio::test]
async fn refused_and_exhausted_deliveries_become_dead_letters_and_can_be_retried() {
    let (receiver, url) = Receiver::start().await;
    let webhooks = Webhooks::start(
        store_with_webhook(&url),
        &WebhookOptions {
            webhook_max_attempts: 3,
            ..options()
        },
        LOOPBACK,
    )
    .unwrap();
    let chat = "15550001001@s.whatsapp.net";
    // A 4xx other than 429 is final at once.
    receiver.fail(1, 400);
    webhooks
        .commit(&company(), vec![message(chat, 1)])
        .await
        .unwrap();
    // 503 three times: dead after the third attempt.
    receiver.wait_for("the refusal", |r| r.requests == 1).await;
    receiver.fail(3, 503);
    webhooks
        .commit(&company(), vec![message(chat, 2)])
        .await
        .unwrap();
    receiver
        .wait_for("three attempts", |r| r.requests == 4)
        .await;
    let dead = wait_for_rows(&webhooks, DeliveryState::Dead, 2).await;
    let (refused, exhausted) = (&dead[1], &dead[0]);
    assert_eq!(
        (
            refused.1.attempts,
            refused.1.last_status,
            refused.1.last_error.as_str()
        ),
        (1, 400, "http_400")
    );
    assert_eq!((exhausted.1.attempts, exhausted.1.last_status), (3, 503));
    assert!(receiver.received.lock().accepted.is_empty());

    // Retry both (the receiver is healthy now): delivered, in the chat's order.
    for (key, _) in dead.iter().rev() {
        webhooks
            .retry(&company(), &key.public_id(), Reach::CompanyOnly)
            .unwrap();
    }
    receiver
        .wait_for("both events", |r| r.accepted.len() == 2)
        .await;
    assert_eq!(texts_per_chat(&receiver.received.lock())[chat], vec![1, 2]);
    assert!(
        webhooks
            .deliveries(&company(), DeliveryState::Dead, 10)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        webhooks.retry(&company(), &dead[0].0.public_id(), Reach::CompanyOnly),
        Err(WebhookError::UnknownDelivery)
    ));
    assert!(matches!(
        webhooks.retry(&company(), "bogus", Reach::CompanyOnly),
        Err(WebhookError::UnknownDelivery)
    ));
}

async fn wait_for_rows(
    webhooks: &Webhooks,
    state: DeliveryState,
    count: usize,
) -> Vec<(DeliveryKey, pb::OutboxDelivery)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = webhooks.deliveries(&company(), state, 10_000).unwrap();
        if rows.len() >= count {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} {state:?} rows"
        );
        // The dispatcher records outcomes without notifying anyone; poll the store.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn queued_deliveries_survive_a_restart_of_the_service() {
    let (receiver, url) = Receiver::start().await;
    // Everything fails while the first service runs.
    receiver.fail(usize::MAX, 503);
    let store = store_with_webhook(&url);
    let slow = WebhookOptions {
        webhook_backoff_ms: 60_000,
        webhook_backoff_max_ms: 60_000,
        ..options()
    };
    let first = Webhooks::start(store.clone(), &slow, LOOPBACK).unwrap();
    let chat = "15550001001@s.whatsapp.net";
    first
        .commit(&company(), (0..5).map(|n| message(chat, n)).collect())
        .await
        .unwrap();
    receiver
        .wait_for("a first attempt", |r| r.requests >= 1)
        .await;
    drop(first);
    receiver.fail(0, 503);
    // A new service over the same store: the queue is resumed. The lane's
    // head waits for its stored next attempt time, so reset it as an
    // operator would by restarting after the receiver recovered.
    let outbox = store.outbox().unwrap();
    for (key, mut delivery) in outbox.queued().unwrap() {
        delivery.next_attempt_ms = 0;
        outbox
            .finish(&key, &delivery, DeliveryState::Queued)
            .unwrap();
    }
    let second = Webhooks::start(store, &options(), LOOPBACK).unwrap();
    receiver
        .wait_for("all five", |r| r.accepted.len() == 5)
        .await;
    assert_eq!(
        texts_per_chat(&receiver.received.lock())[chat],
        vec![0, 1, 2, 3, 4]
    );
    wait_for_rows(&second, DeliveryState::Delivered, 5).await;
}

#[tokio::test]
async fn setting_a_webhook_validates_and_generates_a_secret_once() {
    let store = Store::open_temporary().unwrap();
    store
        .put_company(&pb::CompanyRecord {
            company_id: "acme".into(),
            ..Default::default()
        })
        .unwrap();
    let webhooks = Webhooks::start(store.clone(), &options(), Guard::default()).unwrap();
    let refused = webhooks.set_webhook(&company(), Some("http://127.0.0.1/hook"), None, &[]);
    assert!(matches!(refused, Err(WebhookError::InvalidUrl(_))));
    let bad_filter = webhooks.set_webhook(
        &company(),
        Some("https://hooks.example.com/"),
        None,
        &["nope".into()],
    );
    assert!(matches!(bad_filter, Err(WebhookError::InvalidEventType(_))));
    let set = webhooks
        .set_webhook(&company(), Some("https://hooks.example.com/"), None, &[])
        .unwrap();
    let secret = set.generated_secret.expect("a generated secret");
    assert!(secret.starts_with("whsec_"));
    let again = webhooks
        .set_webhook(&company(), Some("https://hooks.example.com/v2"), None, &[])
        .unwrap();
    assert!(
        again.generated_secret.is_none(),
        "the existing secret is kept"
    );
    let record = store.get_company(&company()).unwrap().unwrap();
    assert_eq!(sign::display_secret(&record.webhook_secret), secret);
    assert_eq!(
        webhooks.webhook(&company()).unwrap().url.as_str(),
        "https://hooks.example.com/v2"
    );
    let unknown = webhooks.set_webhook(
        &CompanyId::parse("ghost").unwrap(),
        Some("https://x.example/"),
        None,
        &[],
    );
    assert!(matches!(unknown, Err(WebhookError::UnknownCompany)));
}

/// A delete: a lookup between the session's end and the registry row's
/// removal (the `deleted` status event's commit does one) caches the
/// endpoint again; the removal listener, told after the row is gone, drops
/// it, so a company created anew under the same id inherits nothing.
#[tokio::test]
async fn a_deleted_companys_endpoint_is_gone_once_the_removal_is_reported() {
    let store = store_with_webhook("https://hooks.example.com/acme");
    let webhooks = Webhooks::start(store.clone(), &options(), Guard::default()).unwrap();
    assert!(webhooks.webhook(&company()).is_some(), "looked up, cached");
    store.remove_company(&company()).unwrap();
    webhooks.removal_listener().company_removed(&company());
    assert!(webhooks.webhook(&company()).is_none());
    store
        .put_company(&pb::CompanyRecord {
            company_id: "acme".into(),
            ..Default::default()
        })
        .unwrap();
    assert!(webhooks.webhook(&company()).is_none(), "nothing inherited");
}

#[tokio::test]
async fn a_stored_url_the_guard_refuses_is_a_dead_letter_and_nothing_is_sent() {
    // Stored while private addresses were allowed; the gateway now refuses them.
    let (receiver, url) = Receiver::start().await;
    let webhooks = Webhooks::start(store_with_webhook(&url), &options(), Guard::default()).unwrap();
    webhooks
        .commit(&company(), vec![message("15550001001@s.whatsapp.net", 1)])
        .await
        .unwrap();
    let dead = wait_for_rows(&webhooks, DeliveryState::Dead, 1).await;
    assert_eq!(dead[0].1.last_error, dispatcher::URL_REFUSED);
    assert_eq!((dead[0].1.attempts, dead[0].1.last_status), (1, 0));
    assert_eq!(
        receiver.received.lock().requests,
        0,
        "nothing reached the receiver"
    );
}
