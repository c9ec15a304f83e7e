//! End-to-end tests: the real whatsapp-rust client against the fake server.

mod harness;

use std::time::{Duration, Instant};

use fakewa::{Config, FakeServer, HandshakePattern, StreamErrorKind};
use harness::{ClientOptions, TestClient, new_backend};
use whatsapp_rust::prelude::*;

const T: Duration = Duration::from_secs(15);

async fn server() -> FakeServer {
    FakeServer::start(Config::default())
        .await
        .expect("fake starts")
}

/// Starts a fresh client and links it by QR; returns it once Connected.
async fn paired(srv: &FakeServer) -> (TestClient, fakewa::Linked) {
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("QR scan links");
    c.connected(T).await;
    (c, linked)
}

#[tokio::test]
async fn qr_pairing_reaches_connected_quickly() {
    let srv = server().await;
    let mut c = TestClient::start(&srv.ws_url(), new_backend(), ClientOptions::default()).await;
    let qr = c.qr().await;
    let started = Instant::now();
    let linked = srv.scan_qr(&qr).await.expect("QR scan links");
    c.connected(T).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "pairing took {elapsed:?}");
    assert!(linked.phone.starts_with("1555000"));
    assert_eq!(
        c.client.pn().map(|j| j.to_string()),
        Some(linked.jid.clone()),
        "client stored the JID the phone linked"
    );
    assert_eq!(srv.connection_count(&linked.phone), 1);
    assert_eq!(srv.max_concurrent_connections(&linked.phone), 1);
}

/// Waits for `LoggedOut`; returns its `on_connect` flag.
async fn logged_out(c: &mut TestClient) -> bool {
    c.wait_for("LoggedOut", T, |e| match e {
        Event::LoggedOut(l) => Some(l.on_connect),
        _ => None,
    })
    .await
}

/// Gives a client that should stay down time to (wrongly) reconnect.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn stream_error_503_reconnects_with_ik() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    assert_eq!(srv.login_count(&linked.phone), 1);
    c.clear_events();
    srv.inject_stream_error(&linked.jid, StreamErrorKind::Code503)
        .await
        .expect("injected");
    c.connected(T).await;
    assert_eq!(srv.login_count(&linked.phone), 2);
    assert_eq!(srv.handshakes().last(), Some(&HandshakePattern::Ik));
    assert_eq!(srv.connection_count(&linked.phone), 1);
    assert_eq!(srv.max_concurrent_connections(&linked.phone), 1);
}

#[tokio::test]
async fn restarted_client_logs_in_with_stored_credentials() {
    let srv = server().await;
    let (c, linked) = paired(&srv).await;
    let backend = c.stop().await;
    srv.wait_for_connection_count(&linked.phone, 0, T)
        .await
        .expect("old connection closed");
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    c.connected(T).await;
    assert_eq!(
        c.count(|e| matches!(e, Event::PairingQrCode(_))),
        0,
        "no pairing"
    );
    assert_eq!(srv.login_count(&linked.phone), 2);
    assert_eq!(srv.handshakes().last(), Some(&HandshakePattern::Ik));
    assert_eq!(srv.linked_devices().len(), 1);
}

#[tokio::test]
async fn replaced_stops_the_client_without_reconnecting() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    srv.inject_stream_error(&linked.phone, StreamErrorKind::Replaced)
        .await
        .expect("injected");
    c.wait_for("StreamReplaced", T, |e| {
        matches!(e, Event::StreamReplaced(_)).then_some(())
    })
    .await;
    settle().await;
    assert_eq!(
        srv.login_count(&linked.phone),
        1,
        "no reconnect after replaced"
    );
    assert_eq!(srv.connection_count(&linked.phone), 0);
    assert!(
        !srv.is_removed(&linked.phone),
        "replaced keeps the device linked"
    );
}

#[tokio::test]
async fn stream_error_401_logs_out_and_blocks_the_next_login() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    srv.inject_stream_error(&linked.jid, StreamErrorKind::Code401)
        .await
        .expect("injected");
    assert!(!logged_out(&mut c).await, "401 arrives on a live stream");
    assert!(srv.is_removed(&linked.jid));
    settle().await;
    assert_eq!(srv.login_count(&linked.phone), 1, "no reconnect after 401");
    // The stored credentials are refused from now on.
    let backend = c.stop().await;
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    assert!(
        logged_out(&mut c).await,
        "next login fails with <failure 401>"
    );
}

#[tokio::test]
async fn device_removed_logs_out() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    srv.remove_device(&linked.phone).await.expect("removed");
    assert!(!logged_out(&mut c).await);
    assert!(srv.is_removed(&linked.phone));
    settle().await;
    assert_eq!(srv.login_count(&linked.phone), 1);
}

#[tokio::test]
async fn logout_unlinks_and_the_next_login_fails_with_401() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    c.client.logout().await;
    logged_out(&mut c).await;
    srv.wait_for_connection_count(&linked.phone, 0, T)
        .await
        .expect("connection closed after logout");
    assert!(srv.is_removed(&linked.jid));
    let backend = c.stop().await;
    let mut c = TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await;
    assert!(logged_out(&mut c).await, "<failure reason=401> on connect");
    assert_eq!(srv.login_count(&linked.phone), 1);
}

#[tokio::test]
async fn stream_error_515_reconnects_at_once() {
    let srv = server().await;
    let (mut c, linked) = paired(&srv).await;
    c.clear_events();
    srv.inject_stream_error(&linked.jid, StreamErrorKind::Code515)
        .await
        .expect("injected");
    c.connected(T).await;
    assert_eq!(srv.login_count(&linked.phone), 2);
    assert_eq!(srv.max_concurrent_connections(&linked.phone), 1);
}
