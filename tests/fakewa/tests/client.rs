//! End-to-end tests: the real whatsapp-rust client against the fake server.

mod harness;

use std::time::{Duration, Instant};

use fakewa::{Config, FakeServer};
use harness::{ClientOptions, TestClient, new_backend};

const T: Duration = Duration::from_secs(15);

async fn server() -> FakeServer {
    FakeServer::start(Config::default())
        .await
        .expect("fake starts")
}

/// Starts a fresh client and links it by QR; returns it once Connected.
#[allow(dead_code)]
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
