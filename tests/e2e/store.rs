//! The sled store under the real whatsapp-rust client, against the fake
//! WhatsApp server: credentials and Signal sessions survive reopening the
//! store from disk, companies sharing one database never see each other's
//! data, and wiping one company leaves the others connected and working.
//!
//! These tests drive whatsapp-rust's `Bot` directly on `wagate::wa::SledBackend` (no
//! session pool), so they pin down the store's contract on its own.

use std::sync::Arc;

use wacore::store::traits::{Backend, DeviceStore as _};
use whatsapp_rust::prelude::*;

use fakewa::FakeServer;
use test_support::WAIT;
use test_support::fake::{ClientOptions, TestClient, start_fake};
use test_support::gateway::{company, reopen};
use wagate::domain::CompanyId;
use wagate::store::Store;

/// A whatsapp-rust client on one company's keyspace of the store.
async fn start_client(srv: &FakeServer, backend: Arc<dyn Backend>) -> TestClient {
    TestClient::start(&srv.ws_url(), backend, ClientOptions::default()).await
}

/// Pairs a fresh client for `company` by QR; returns it connected, with its phone.
async fn pair(srv: &FakeServer, store: &Store, company: &CompanyId) -> (TestClient, String) {
    let mut client = start_client(srv, wagate::wa::SledBackend::open(store, company)).await;
    let qr = client.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("the phone scans the QR");
    client.connected(WAIT).await;
    (client, linked.phone)
}

#[tokio::test]
async fn a_paired_client_reconnects_from_the_reopened_store_without_a_qr() {
    let srv = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let acme = company("acme");
    let phone = {
        let store = Store::open(dir.path()).unwrap();
        let (mut client, phone) = pair(&srv, &store, &acme).await;
        assert!(
            wagate::wa::is_linked(&store, &acme).unwrap(),
            "pairing credentials are stored"
        );
        // Establish Signal sessions both ways.
        srv.contact_send_text("15550002222", &phone, "before restart")
            .await
            .unwrap();
        client.message_text("before restart", WAIT).await;
        client
            .send_and_decrypt(&srv, "15550002222", "reply before restart", WAIT)
            .await;
        client.stop().await;
        store.flush().await.unwrap();
        phone
    };
    srv.wait_for_connection_count(&phone, 0, WAIT)
        .await
        .expect("the old connection is gone");

    // Everything in memory is gone; only the files remain.
    let store = reopen(dir.path()).await;
    assert!(wagate::wa::is_linked(&store, &acme).unwrap());
    assert_eq!(
        store.companies_with_credentials().unwrap(),
        std::slice::from_ref(&acme)
    );
    let mut client = start_client(&srv, wagate::wa::SledBackend::open(&store, &acme)).await;
    client.connected(WAIT).await;
    assert_eq!(
        client.count(|e| matches!(e, Event::PairingQrCode(_))),
        0,
        "stored credentials need no QR"
    );
    assert_eq!(srv.login_count(&phone), 2);

    // The contact continues its existing session (a plain `msg`, not a new
    // `pkmsg`): decrypting it needs the ratchet state read back from disk.
    srv.contact_send_text("15550002222", &phone, "after restart")
        .await
        .unwrap();
    client.message_text("after restart", WAIT).await;
    client
        .send_and_decrypt(&srv, "15550002222", "reply after restart", WAIT)
        .await;
    assert_eq!(
        client.count(|e| matches!(e, Event::UndecryptableMessage(_))),
        0
    );
    client.stop().await;
}

#[tokio::test]
async fn companies_in_one_database_are_isolated_and_a_wipe_touches_only_its_company() {
    let srv = start_fake().await;
    let store = Store::open_temporary().unwrap();
    let (a, b) = (company("a"), company("ab"));
    let (mut client_a, phone_a) = pair(&srv, &store, &a).await;
    let (mut client_b, phone_b) = pair(&srv, &store, &b).await;
    assert_ne!(phone_a, phone_b);

    // Each keyspace holds its own account.
    let device_a = wagate::wa::SledBackend::open(&store, &a)
        .load()
        .await
        .unwrap()
        .unwrap();
    let device_b = wagate::wa::SledBackend::open(&store, &b)
        .load()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device_a.pn.unwrap().user.to_string(), phone_a);
    assert_eq!(device_b.pn.unwrap().user.to_string(), phone_b);
    assert_ne!(
        device_a.identity_key.public_key,
        device_b.identity_key.public_key
    );

    // A message to A reaches only A; each talks to its own contacts.
    srv.contact_send_text("15550003333", &phone_a, "for a only")
        .await
        .unwrap();
    client_a.message_text("for a only", WAIT).await;
    srv.contact_send_text("15550004444", &phone_b, "for b only")
        .await
        .unwrap();
    client_b.message_text("for b only", WAIT).await;
    assert_eq!(
        client_b.count(|e| format!("{e:?}").contains("for a only")),
        0
    );
    assert_eq!(
        client_a.count(|e| format!("{e:?}").contains("for b only")),
        0
    );
    // Wipe A (its client stopped first, as the session actor does).
    client_a.stop().await;
    store.wipe_credentials(&a).unwrap();
    assert!(!wagate::wa::is_linked(&store, &a).unwrap());
    assert!(
        !wagate::wa::SledBackend::open(&store, &a)
            .exists()
            .await
            .unwrap(),
        "A's device is gone"
    );
    assert!(wagate::wa::is_linked(&store, &b).unwrap());
    assert_eq!(
        store.companies_with_credentials().unwrap(),
        std::slice::from_ref(&b)
    );

    // B stays connected and working on its existing sessions.
    srv.contact_send_text("15550004444", &phone_b, "b still works")
        .await
        .unwrap();
    client_b.message_text("b still works", WAIT).await;
    client_b
        .send_and_decrypt(&srv, "15550004444", "b replies after the wipe", WAIT)
        .await;
    assert_eq!(srv.connection_count(&phone_b), 1);

    // A starts over: a fresh device shows a QR instead of logging in.
    let mut client_a = start_client(&srv, wagate::wa::SledBackend::open(&store, &a)).await;
    client_a.qr().await;
    assert_eq!(
        srv.login_count(&phone_a),
        1,
        "A's wiped credentials never log in again"
    );
    client_a.stop().await;
    client_b.stop().await;
}
