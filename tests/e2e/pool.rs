//! The session pool against the fake WhatsApp server, driven through its Rust
//! API (no HTTP): one session per company under concurrency, QR and pair-code
//! linking, the stream-error policy, restore after a restart, delete (and
//! who is told of it), and sending with idempotency keys.
//!
//! Waiting is on the sessions' own status channel, never on fixed sleeps —
//! except two places where time itself is what is tested: after `replaced`,
//! the test watches a window many times longer than the configured backoff
//! and asserts no login occurred; and a second pair code is asked for after
//! exactly the `retry_after` the refusal gave.

use std::time::Duration;

use fakewa::{FakeServer, StreamErrorKind};
use test_support::WAIT;
use test_support::fake::start_fake;
use test_support::gateway::{WA_VERSION, company, reopen};
use test_support::wait::watch_until;
use wagate::domain::PhoneNumber;
use wagate::pool::{
    BackoffConfig, PoolError, RemovalListener, SessionHandle, SessionPool, SessionState,
    SessionStatus, StepOutcome, WaConfig,
};
use wagate::store::Store;

/// A fake contact (server-held Signal identity).
const CONTACT: &str = "15550002222";

/// The test [`test_support::gateway::wa_config`] with fast retries, so that
/// "no reconnect" windows are meaningful.
fn wa_config(fake: &FakeServer) -> WaConfig {
    WaConfig {
        backoff: BackoffConfig {
            base: Duration::from_millis(50),
            max: Duration::from_millis(400),
            jitter: 0.2,
            stable_after: Duration::from_secs(30),
        },
        stop_timeout: Duration::from_secs(5),
        op_timeout: Duration::from_secs(20),
        ..test_support::gateway::wa_config(fake)
    }
}

fn pool_on(store: Store, fake: &FakeServer) -> SessionPool {
    SessionPool::new(store, wa_config(fake))
}

/// Waits until the session's status satisfies `pred`; panics with the last
/// status after [`WAIT`].
async fn wait_status(
    handle: &SessionHandle,
    what: &str,
    pred: impl Fn(&SessionStatus) -> bool,
) -> SessionStatus {
    let mut rx = handle.watch_status();
    watch_until(&mut rx, WAIT, pred).await.unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; last status: {:?}",
            handle.status()
        )
    })
}

async fn wait_state(handle: &SessionHandle, state: SessionState) -> SessionStatus {
    wait_status(handle, state.as_str(), |s| s.state == state).await
}

/// Waits for a QR code (a fresh one if `not` is given).
async fn wait_qr(handle: &SessionHandle, not: Option<&str>) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut rx = handle.watch_status();
    loop {
        if let Some(qr) = handle.current_qr()
            && Some(qr.code.as_str()) != not
        {
            return qr.code;
        }
        let mut events = handle.subscribe();
        if let Some(qr) = handle.current_qr()
            && Some(qr.code.as_str()) != not
        {
            return qr.code;
        }
        tokio::select! {
            _ = events.recv() => {}
            _ = rx.changed() => {}
            () = tokio::time::sleep_until(deadline) => panic!("no QR code; status: {:?}", handle.status()),
        }
    }
}

/// Ensures `id`, scans its QR, waits for `connected`.
async fn link_by_qr(
    pool: &SessionPool,
    fake: &FakeServer,
    id: &str,
) -> (SessionHandle, fakewa::Linked) {
    let handle = pool.ensure(&company(id)).await.expect("ensure").handle;
    let qr = wait_qr(&handle, None).await;
    let linked = fake.scan_qr(&qr).await.expect("the phone scans the QR");
    wait_state(&handle, SessionState::Connected).await;
    (handle, linked)
}

fn reasons(status: &SessionStatus) -> Vec<(String, String)> {
    status
        .recent_transitions
        .iter()
        .map(|t| (t.to.as_str().to_owned(), t.reason.clone()))
        .collect()
}

#[tokio::test]
async fn fifty_concurrent_ensures_make_one_session_and_one_connection() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let acme = company("acme");
    let mut pool_events = pool.subscribe();

    let ensures = (0..50).map(|_| {
        let pool = pool.clone();
        let acme = acme.clone();
        tokio::spawn(async move { pool.ensure(&acme).await })
    });
    let mut results = Vec::new();
    for task in ensures {
        results.push(task.await.unwrap().expect("ensure"));
    }
    let created: Vec<_> = results.iter().filter(|e| e.created).collect();
    assert_eq!(created.len(), 1, "exactly one ensure creates the company");
    let token = created[0]
        .token
        .clone()
        .expect("the creating ensure returns the token");
    assert!(
        results
            .iter()
            .filter(|e| !e.created)
            .all(|e| e.token.is_none())
    );
    let record = pool
        .store()
        .get_company(&acme)
        .unwrap()
        .expect("registry record");
    assert_eq!(
        record.token_hash,
        wagate::token::hash_token(&token).to_vec(),
        "only the hash is stored"
    );
    assert_eq!(pool.list().len(), 1);

    let handle = pool.get(&acme).expect("session");
    let qr = wait_qr(&handle, None).await;
    let linked = fake.scan_qr(&qr).await.expect("scan");
    wait_state(&handle, SessionState::Connected).await;

    // More ensures on a live session change nothing.
    for _ in 0..10 {
        assert!(!pool.ensure(&acme).await.unwrap().created);
    }
    assert_eq!(handle.status().state, SessionState::Connected);
    assert_eq!(fake.connection_count(&linked.phone), 1);
    assert_eq!(
        fake.max_concurrent_connections(&linked.phone),
        1,
        "never two sockets for one number"
    );
    assert_eq!(fake.login_count(&linked.phone), 1);

    // The pool-wide stream saw the whole life of the session, from creation.
    let mut states = Vec::new();
    while let Ok(wagate::pool::PoolEvent { company, event }) = pool_events.try_recv() {
        assert_eq!(company, acme);
        if let wagate::pool::SessionEvent::StatusChanged(s) = event {
            states.push(s.state);
        }
    }
    use SessionState::*;
    assert_eq!(states, [Connecting, Pairing, Connecting, Connected]);
}

#[tokio::test]
async fn qr_scan_connects_with_the_phone_number() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let handle = pool.ensure(&company("acme")).await.unwrap().handle;

    let pairing = wait_state(&handle, SessionState::Pairing).await;
    assert_eq!(pairing.reason, "qr_issued");
    let qr = wait_qr(&handle, None).await;
    assert!(handle.current_qr().unwrap().expires_at_ms > pairing.since_ms);
    let linked = fake.scan_qr(&qr).await.unwrap();

    let status = wait_state(&handle, SessionState::Connected).await;
    assert_eq!(status.reason, "qr_scanned");
    assert_eq!(status.phone.as_deref(), Some(linked.phone.as_str()));
    assert_eq!(status.jid.as_deref(), Some(linked.jid.as_str()));
    assert_eq!(status.lid.as_deref(), Some(linked.lid.as_str()));
    assert!(status.connected_since_ms.is_some());
    assert!(handle.current_qr().is_none(), "no QR once linked");
    assert!(wagate::wa::is_linked(pool.store(), &company("acme")).unwrap());
    let trail = reasons(&status);
    assert_eq!(
        trail,
        [
            ("connecting", "created"),
            ("pairing", "qr_issued"),
            ("connecting", "paired"),
            ("connected", "qr_scanned")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // Transitions are persisted.
    let stored = pool
        .store()
        .recent_transitions(&company("acme"), 10)
        .unwrap();
    assert_eq!(stored.last().map(|t| t.reason.as_str()), Some("qr_scanned"));
}

#[tokio::test]
async fn pair_code_links_the_number() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let handle = pool.ensure(&company("acme")).await.unwrap().handle;
    let phone = "15550007777";

    let code = handle
        .pair_code(PhoneNumber::parse(phone).unwrap())
        .await
        .expect("pair code");
    assert_eq!(
        code.chars().filter(char::is_ascii_alphanumeric).count(),
        8,
        "8-character code"
    );
    let linked = fake
        .enter_pair_code(phone, &code)
        .await
        .expect("the phone enters the code");
    assert_eq!(linked.phone, phone);

    let status = wait_state(&handle, SessionState::Connected).await;
    assert_eq!(status.reason, "pair_code_linked");
    assert_eq!(status.phone.as_deref(), Some(phone));

    // Linked: another pair code is refused and changes nothing.
    let err = handle
        .pair_code(PhoneNumber::parse(phone).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_state");
    assert_eq!(handle.status().state, SessionState::Connected);
}

/// Asking again for a code (lost page, mistyped number) gives a new code that
/// works; asking again within the interval is refused with how long to wait.
#[tokio::test]
async fn a_new_pair_code_replaces_the_outstanding_one_once_per_interval() {
    let fake = start_fake().await;
    // Longer than a debug build takes to issue a code (PBKDF2).
    let interval = Duration::from_secs(4);
    let wa = WaConfig {
        pair_code_interval: interval,
        ..wa_config(&fake)
    };
    let pool = SessionPool::new(Store::open_temporary().unwrap(), wa);
    let handle = pool.ensure(&company("acme")).await.unwrap().handle;
    let phone = PhoneNumber::parse("15550007778").unwrap();

    // Both requests are sent at once: the actor takes them in order, so the
    // second comes within the interval however long the first code takes to
    // issue (PBKDF2 in a debug build on a loaded machine can take seconds).
    let (first, second_too_soon) = tokio::join!(
        handle.pair_code(phone.clone()),
        handle.pair_code(phone.clone())
    );
    let first = first.expect("first code");
    let err = second_too_soon.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    let PoolError::TooSoon { retry_after } = err else {
        unreachable!()
    };
    assert!(retry_after <= interval, "{retry_after:?}");

    // A deliberate sleep: the refusal's `retry_after` is the thing under
    // test (waiting that long must be enough), and no event marks its end.
    tokio::time::sleep(retry_after).await;
    // whatsapp-rust alone refuses a second code while the first is valid
    // (about 3 minutes); the gateway withdraws the first one instead.
    let second = handle.pair_code(phone.clone()).await.expect("a new code");
    assert_ne!(first, second);
    fake.enter_pair_code("15550007778", &second)
        .await
        .expect("the phone enters the new code");
    let status = wait_state(&handle, SessionState::Connected).await;
    assert_eq!(status.reason, "pair_code_linked");
}

#[tokio::test]
async fn replaced_is_not_retried_until_an_explicit_reconnect() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let (handle, linked) = link_by_qr(&pool, &fake, "acme").await;
    assert_eq!(fake.login_count(&linked.phone), 1);

    fake.inject_stream_error(&linked.jid, StreamErrorKind::Replaced)
        .await
        .unwrap();
    let status = wait_state(&handle, SessionState::Replaced).await;
    assert_eq!(status.reason, "stream_replaced");

    // 2 s is 40× the configured base backoff and 5× its cap: a scheduled
    // reconnect would have logged in several times by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.login_count(&linked.phone),
        1,
        "no reconnect attempt after replaced"
    );
    assert_eq!(fake.connection_count(&linked.phone), 0);
    assert_eq!(handle.status().state, SessionState::Replaced);
    // An ensure does not take the number back either.
    pool.ensure(&company("acme")).await.unwrap();
    assert_eq!(handle.status().state, SessionState::Replaced);
    assert!(
        wagate::wa::is_linked(pool.store(), &company("acme")).unwrap(),
        "credentials kept"
    );

    let after = handle.reconnect().await.unwrap();
    assert_eq!(after.reason, "reconnect_requested");
    let status = wait_state(&handle, SessionState::Connected).await;
    assert_eq!(
        status.jid.as_deref(),
        Some(linked.jid.as_str()),
        "same device"
    );
    assert_eq!(fake.login_count(&linked.phone), 2);
    assert_eq!(fake.max_concurrent_connections(&linked.phone), 1);
}

async fn logged_out_by(kind: StreamErrorKind, reason: &str) {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let acme = company("acme");
    let (handle, linked) = link_by_qr(&pool, &fake, "acme").await;

    fake.inject_stream_error(&linked.jid, kind).await.unwrap();
    let status = wait_state(&handle, SessionState::LoggedOut).await;
    assert_eq!(status.reason, reason);
    assert_eq!(status.phone, None);
    assert!(!wagate::wa::is_linked(pool.store(), &acme).unwrap());
    assert!(
        !pool
            .store()
            .companies_with_credentials()
            .unwrap()
            .contains(&acme),
        "credentials gone from the store"
    );
    assert!(
        pool.store().get_company(&acme).unwrap().is_some(),
        "the company stays"
    );

    // The next ensure pairs afresh.
    let ensured = pool.ensure(&acme).await.unwrap();
    assert!(!ensured.created);
    let qr = wait_qr(&handle, None).await;
    assert_eq!(handle.status().state, SessionState::Pairing);
    let relinked = fake.scan_qr(&qr).await.unwrap();
    let status = wait_state(&handle, SessionState::Connected).await;
    assert_eq!(status.jid.as_deref(), Some(relinked.jid.as_str()));
}

#[tokio::test]
async fn stream_error_401_logs_out_and_wipes_credentials() {
    logged_out_by(StreamErrorKind::Code401, "stream_error_401").await;
}

#[tokio::test]
async fn device_removed_logs_out_and_wipes_credentials() {
    logged_out_by(StreamErrorKind::DeviceRemoved, "device_removed").await;
}

#[tokio::test]
async fn service_unavailable_reconnects_the_same_device_without_a_qr() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let (handle, linked) = link_by_qr(&pool, &fake, "acme").await;
    let mut events = handle.subscribe();

    fake.inject_stream_error(&linked.jid, StreamErrorKind::Code503)
        .await
        .unwrap();
    let status = wait_status(&handle, "reconnected", |s| {
        s.state == SessionState::Connected && s.reason == "reconnected"
    })
    .await;
    assert_eq!(
        status.jid.as_deref(),
        Some(linked.jid.as_str()),
        "same device"
    );
    assert_eq!(status.reconnect_count, 1);
    assert_eq!(fake.login_count(&linked.phone), 2);
    assert_eq!(fake.max_concurrent_connections(&linked.phone), 1);

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, wagate::pool::SessionEvent::QrRotated(_))),
        "no QR during a reconnect"
    );
    let went_through_reconnecting = seen.iter().any(|e| {
        matches!(e, wagate::pool::SessionEvent::StatusChanged(s) if s.state == SessionState::Reconnecting && s.reason == "stream_error_503")
    });
    assert!(
        went_through_reconnecting,
        "reconnecting with reason stream_error_503: {seen:?}"
    );
}

#[tokio::test]
async fn restart_on_the_same_data_dir_restores_every_linked_company_without_a_qr() {
    let fake = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let ghost = company("ghost");
    let mut linked = Vec::new();
    let hooli_phone;
    {
        let pool = pool_on(Store::open(dir.path()).unwrap(), &fake);
        for id in ["acme", "globex"] {
            let (_, l) = link_by_qr(&pool, &fake, id).await;
            linked.push((id, l));
        }
        // A linked company whose number another client took: a restart must
        // not take it back either.
        let (hooli, hooli_linked) = link_by_qr(&pool, &fake, "hooli").await;
        fake.inject_stream_error(&hooli_linked.jid, StreamErrorKind::Replaced)
            .await
            .unwrap();
        wait_state(&hooli, SessionState::Replaced).await;
        hooli_phone = hooli_linked.phone;
        // A registered company that never linked stays idle after the restart.
        let record = wagate::pb::CompanyRecord {
            company_id: "initech".into(),
            ..Default::default()
        };
        assert!(pool.store().insert_company_if_absent(&record).unwrap());
        // Credentials without a registry record (e.g. a crash mid-delete).
        use wacore::store::traits::DeviceStore as _;
        let mut device = wacore::store::Device::new();
        device.pn = Some("15550009999:3@s.whatsapp.net".parse().unwrap());
        wagate::wa::SledBackend::open(pool.store(), &ghost)
            .save(&device)
            .await
            .unwrap();
        pool.shutdown(Duration::from_secs(10)).await;
        for (_, l) in &linked {
            fake.wait_for_connection_count(&l.phone, 0, WAIT)
                .await
                .expect("shutdown disconnects");
            assert!(!fake.is_removed(&l.jid), "shutdown never logs out");
        }
    }

    let store = reopen(dir.path()).await;
    assert!(store.companies_with_credentials().unwrap().contains(&ghost));
    let pool = pool_on(store, &fake);
    let report = pool.restore().await;
    assert_eq!(report.started, ["acme", "globex"]);
    assert_eq!(report.idle, ["initech"]);
    assert_eq!(report.held, ["hooli"]);
    assert_eq!(report.orphaned_credentials_removed, ["ghost"]);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(
        !pool
            .store()
            .companies_with_credentials()
            .unwrap()
            .contains(&ghost)
    );

    for (id, l) in &linked {
        let handle = pool.get(&company(id)).expect("restored session");
        let status = wait_state(&handle, SessionState::Connected).await;
        assert_eq!(status.reason, "restored");
        assert_eq!(status.jid.as_deref(), Some(l.jid.as_str()));
        assert_eq!(fake.login_count(&l.phone), 2);
        assert_eq!(fake.max_concurrent_connections(&l.phone), 1);
        // History survives the restart.
        assert!(
            status
                .recent_transitions
                .iter()
                .any(|t| t.reason == "qr_scanned")
        );
    }
    let hooli = pool.get(&company("hooli")).unwrap().status();
    assert_eq!(
        (hooli.state, hooli.reason.as_str()),
        (SessionState::Replaced, "stream_replaced")
    );
    assert_eq!(
        fake.login_count(&hooli_phone),
        1,
        "a replaced number is not taken back by a restart"
    );
    assert_eq!(
        pool.get(&company("initech")).unwrap().status().state,
        SessionState::Stopped
    );
    assert!(
        pool.get(&company("initech"))
            .unwrap()
            .current_qr()
            .is_none()
    );
}

/// Each `company_removed` call: the company, and whether its registry
/// record was still there when the listener was told.
struct Removals {
    store: Store,
    seen: std::sync::Mutex<Vec<(String, bool)>>,
}

impl RemovalListener for Removals {
    fn company_removed(&self, company: &wagate::domain::CompanyId) {
        let present = self.store.get_company(company).unwrap().is_some();
        let mut seen = self.seen.lock().unwrap();
        seen.push((company.to_string(), present));
    }
}

#[tokio::test]
async fn delete_unlinks_on_whatsapp_and_leaves_nothing_in_the_store() {
    let fake = start_fake().await;
    let store = Store::open_temporary().unwrap();
    let removals = std::sync::Arc::new(Removals {
        store: store.clone(),
        seen: Default::default(),
    });
    let config = WaConfig {
        removal_listener: Some(removals.clone()),
        ..wa_config(&fake)
    };
    let pool = SessionPool::new(store, config);
    let acme = company("acme");
    let (handle, linked) = link_by_qr(&pool, &fake, "acme").await;
    handle
        .send_text(
            PhoneNumber::parse(CONTACT).unwrap(),
            "before delete".into(),
            Some("k".into()),
        )
        .await
        .unwrap();

    let report = pool.delete(&acme).await.expect("delete");
    assert_eq!(report.logout, StepOutcome::Done);
    assert_eq!(report.credentials, StepOutcome::Done);
    assert_eq!(report.registry, StepOutcome::Done);
    assert!(
        fake.is_removed(&linked.jid),
        "the fake saw the device removed"
    );
    fake.wait_for_connection_count(&linked.phone, 0, WAIT)
        .await
        .expect("the socket is closed");

    let store = pool.store();
    assert!(pool.get(&acme).is_none());
    assert!(pool.list().is_empty());
    assert_eq!(store.get_company(&acme).unwrap(), None);
    assert!(!wagate::wa::is_linked(store, &acme).unwrap());
    assert!(!store.companies_with_credentials().unwrap().contains(&acme));
    assert!(store.recent_transitions(&acme, 100).unwrap().is_empty());
    assert_eq!(store.idempotent_message_id(&acme, "k").unwrap(), None);
    assert!(handle.is_closed(), "the actor stopped");
    assert_eq!(
        *removals.seen.lock().unwrap(),
        vec![("acme".to_owned(), false)],
        "the listener is told once, after the registry record is gone"
    );

    assert_eq!(
        pool.delete(&acme).await.unwrap_err().code(),
        "unknown_company"
    );
}

#[tokio::test]
async fn sent_text_reaches_the_contact_once_per_idempotency_key() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let (handle, linked) = link_by_qr(&pool, &fake, "acme").await;
    let to = PhoneNumber::parse(CONTACT).unwrap();

    let first = handle
        .send_text(to.clone(), "hello bob".into(), Some("order-42".into()))
        .await
        .expect("send");
    assert!(!first.duplicate);
    let got = fake
        .wait_for_sent_message(|m| m.id == first.message_id, WAIT)
        .await
        .expect("the contact decrypts the message");
    assert_eq!(got.text, "hello bob");
    assert_eq!(got.from, linked.phone);
    assert_eq!(got.to, CONTACT);

    // Retries with the same key, sequential and concurrent: one message.
    let again = handle
        .send_text(to.clone(), "hello bob".into(), Some("order-42".into()))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message_id, first.message_id);
    let concurrent: Vec<_> = (0..5)
        .map(|_| {
            let handle = handle.clone();
            let to = to.clone();
            tokio::spawn(async move {
                handle
                    .send_text(to, "second".into(), Some("order-43".into()))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in concurrent {
        ids.push(task.await.unwrap().expect("send").message_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one message id for one key");
    fake.wait_for_sent_message(|m| m.id == ids[0], WAIT)
        .await
        .unwrap();

    // Without a key every call sends.
    let plain = handle
        .send_text(to.clone(), "no key".into(), None)
        .await
        .unwrap();
    fake.wait_for_sent_message(|m| m.id == plain.message_id, WAIT)
        .await
        .unwrap();

    let count = |text: &str| {
        fake.sent_messages()
            .iter()
            .filter(|m| m.text == text)
            .count()
    };
    assert_eq!(count("hello bob"), 1);
    assert_eq!(count("second"), 1);
    assert_eq!(count("no key"), 1);
}

#[tokio::test]
async fn sending_while_not_connected_is_refused_and_changes_nothing() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let acme = company("acme");
    let handle = pool.ensure(&acme).await.unwrap().handle;
    let before = wait_state(&handle, SessionState::Pairing).await;

    let err = handle
        .send_text(
            PhoneNumber::parse(CONTACT).unwrap(),
            "hi".into(),
            Some("k1".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_connected");
    assert!(err.to_string().contains("pairing"), "{err}");
    assert_eq!(
        pool.store().idempotent_message_id(&acme, "k1").unwrap(),
        None,
        "key not consumed"
    );
    let after = handle.status();
    assert_eq!(
        (after.state, &after.reason, after.since_ms),
        (before.state, &before.reason, before.since_ms)
    );
    assert!(fake.sent_messages().is_empty());
}

#[tokio::test]
async fn logout_unlinks_and_keeps_the_company() {
    let fake = start_fake().await;
    let pool = pool_on(Store::open_temporary().unwrap(), &fake);
    let acme = company("acme");
    let (handle, linked) = link_by_qr(&pool, &fake, "acme").await;

    handle.logout().await.expect("logout");
    let status = handle.status();
    assert_eq!(
        (status.state, status.reason.as_str()),
        (SessionState::LoggedOut, "logout_requested")
    );
    assert!(fake.is_removed(&linked.jid));
    assert!(!wagate::wa::is_linked(pool.store(), &acme).unwrap());
    assert!(pool.store().get_company(&acme).unwrap().is_some());
    let err = handle
        .send_text(PhoneNumber::parse(CONTACT).unwrap(), "x".into(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_connected");
}

#[tokio::test]
async fn an_unreachable_server_means_reconnecting_with_growing_delays() {
    // A port nobody listens on: bind, note the address, close.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let wa = WaConfig {
        url: Some(format!("ws://{addr}/ws/chat")),
        version: wagate::wa::version::WaVersion::fixed(WA_VERSION),
        backoff: BackoffConfig {
            base: Duration::from_millis(20),
            max: Duration::from_millis(160),
            jitter: 0.0,
            stable_after: Duration::from_secs(30),
        },
        ..WaConfig::default()
    };
    let pool = SessionPool::new(Store::open_temporary().unwrap(), wa);
    let handle = pool.ensure(&company("acme")).await.unwrap().handle;

    let started = tokio::time::Instant::now();
    let status = wait_status(&handle, "five retries", |s| s.reconnect_count >= 5).await;
    assert_eq!(status.state, SessionState::Reconnecting);
    assert_eq!(status.reason, "connect_failed");
    // 20 + 40 + 80 + 160 ms at least before the fifth retry starts.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(handle.current_qr().is_none());
    let err = handle
        .send_text(PhoneNumber::parse(CONTACT).unwrap(), "x".into(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_connected");

    // An explicit reconnect retries at once; shutdown stops the loop.
    handle.reconnect().await.unwrap();
    pool.shutdown(Duration::from_secs(5)).await;
    assert_eq!(handle.status().state, SessionState::Stopped);
    assert_eq!(
        pool.ensure(&company("acme")).await.unwrap_err().code(),
        "session_gone"
    );
}

#[tokio::test]
async fn stream_restart_515_reconnects_at_once_without_backoff() {
    let fake = start_fake().await;
    let mut wa = wa_config(&fake);
    // A backoff this long would fail the test if 515 went through it.
    wa.backoff.base = Duration::from_secs(60);
    wa.backoff.max = Duration::from_secs(60);
    let pool = SessionPool::new(Store::open_temporary().unwrap(), wa);
    let (handle, linked) = link_by_qr(&pool, &fake, "acme").await;
    let mut events = handle.subscribe();

    fake.inject_stream_error(&linked.jid, StreamErrorKind::Code515)
        .await
        .unwrap();
    wait_status(&handle, "logged in again", |_| {
        fake.login_count(&linked.phone) == 2
    })
    .await;
    let status = wait_state(&handle, SessionState::Connected).await;
    assert_eq!(status.jid.as_deref(), Some(linked.jid.as_str()));
    assert_eq!(fake.max_concurrent_connections(&linked.phone), 1);
    let mut trail = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let wagate::pool::SessionEvent::StatusChanged(s) = event {
            trail.push((s.state, s.reason.clone()));
        }
    }
    assert_eq!(
        trail,
        [
            (SessionState::Connecting, "stream_error_515".to_owned()),
            (SessionState::Connected, "logged_in".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_restore_connects_at_most_its_concurrency_at_once() {
    let fake = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let ids = ["r1", "r2", "r3", "r4"];
    {
        let pool = pool_on(Store::open(dir.path()).unwrap(), &fake);
        for id in ids {
            link_by_qr(&pool, &fake, id).await;
        }
        pool.shutdown(Duration::from_secs(10)).await;
    }
    let config = WaConfig {
        restore_concurrency: 1,
        ..wa_config(&fake)
    };
    let pool = SessionPool::new(reopen(dir.path()).await, config);
    let mut events = pool.subscribe();
    let report = pool.restore().await;
    assert_eq!(report.started, ids);
    // One slot: each session is logged in before the next one connects, so
    // when the restore returns all of them are connected...
    for id in ids {
        let status = pool.get(&company(id)).unwrap().status();
        assert_eq!(status.state, SessionState::Connected, "{id}");
    }
    // ... and no two were ever connecting at once (without the bound, all
    // four start connecting together).
    let (mut connecting, mut most) = (std::collections::HashSet::new(), 0);
    while let Ok(event) = events.try_recv() {
        if let wagate::pool::SessionEvent::StatusChanged(status) = event.event {
            if status.state == SessionState::Connecting {
                connecting.insert(event.company);
            } else {
                connecting.remove(&event.company);
            }
            most = most.max(connecting.len());
        }
    }
    assert_eq!(most, 1);
}
