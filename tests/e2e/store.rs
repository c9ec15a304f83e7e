//! The sled store under the real whatsapp-rust client, against the fake
//! WhatsApp server: credentials and Signal sessions survive reopening the
//! store from disk, companies sharing one database never see each other's
//! data, and wiping one company leaves the others connected and working.
//!
//! These tests drive whatsapp-rust's `Bot` directly on `Store::backend` (no
//! session pool), so they pin down the store's contract on its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use wacore::store::traits::{Backend, DeviceStore as _};
use whatsapp_rust::prelude::*;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::wacore::net::{HttpClient, HttpRequest, HttpResponse};

use fakewa::FakeServer;
use wagate::domain::CompanyId;
use wagate::store::Store;

const T: Duration = Duration::from_secs(30);

/// Fails every HTTP request: tests never reach the internet.
struct NoHttp;

#[async_trait::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, _request: HttpRequest) -> anyhow::Result<HttpResponse> {
        anyhow::bail!("HTTP is disabled in tests")
    }
}

/// A whatsapp-rust client running on one company's keyspace, with its events
/// recorded so the test can wait on them.
struct StoreClient {
    handle: Option<BotHandle>,
    client: Arc<Client>,
    events: Arc<Mutex<Vec<Arc<Event>>>>,
    changed: watch::Receiver<u64>,
}

impl StoreClient {
    async fn start(srv: &FakeServer, backend: Arc<dyn Backend>) -> Self {
        let events: Arc<Mutex<Vec<Arc<Event>>>> = Arc::default();
        let (tx, changed) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let sink = events.clone();
        let bot = Bot::builder()
            .with_backend_arc(backend)
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(srv.ws_url()))
            .with_http_client(NoHttp)
            .with_runtime(TokioRuntime)
            .with_version((2, 3000, 1))
            .with_push_name("wagate-store-e2e")
            .skip_history_sync()
            .on_event(move |event, _client| {
                let (sink, tx) = (sink.clone(), tx.clone());
                async move {
                    sink.lock().push(event);
                    tx.send_modify(|n| *n += 1);
                }
            })
            .build()
            .await
            .expect("bot builds");
        let client = bot.client();
        let handle = bot.spawn();
        Self {
            handle: Some(handle),
            client,
            events,
            changed,
        }
    }

    /// Waits for a recorded event matching `pick` (earlier events count).
    async fn wait_for<R>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<R>) -> R {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            self.changed.borrow_and_update();
            if let Some(found) = self.events.lock().iter().find_map(|e| pick(e)) {
                return found;
            }
            if tokio::time::timeout_at(deadline, self.changed.changed())
                .await
                .is_err()
            {
                panic!("timed out waiting for {what}; events: {:?}", self.names());
            }
        }
    }

    fn names(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .map(|e| format!("{e:?}").chars().take(60).collect())
            .collect()
    }

    fn saw(&self, pred: impl Fn(&Event) -> bool) -> bool {
        self.events.lock().iter().any(|e| pred(e))
    }

    async fn qr(&mut self) -> String {
        self.wait_for("a QR code", |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await
    }

    async fn connected(&mut self) {
        self.wait_for("Connected", |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await
    }

    /// Waits for an inbound text message; returns its sender's user part.
    async fn received(&mut self, text: &str) -> String {
        self.wait_for(&format!("inbound {text:?}"), |e| match e {
            Event::Messages(batch) => batch.messages.iter().find_map(|m| {
                (m.message.conversation.as_deref() == Some(text))
                    .then(|| m.info.source.sender.user.to_string())
            }),
            _ => None,
        })
        .await
    }

    /// Sends `text` to `to` and waits until the fake contact decrypted it.
    async fn send_and_check(&self, srv: &FakeServer, to: &str, text: &str) {
        self.client
            .send_text(Jid::pn(to), text)
            .await
            .expect("send");
        srv.wait_for_sent_message(|m| m.text == text, T)
            .await
            .expect("the contact decrypts the message");
    }

    /// Disconnects without logging out: the credentials stay in the store.
    async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(T, handle.shutdown())
                .await
                .expect("client shuts down");
        }
    }
}

impl Drop for StoreClient {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

fn company(id: &str) -> CompanyId {
    CompanyId::parse(id).unwrap()
}

async fn fake() -> FakeServer {
    FakeServer::start(fakewa::Config::default())
        .await
        .expect("fake server starts")
}

/// Pairs a fresh client for `company` by QR; returns it connected, with its phone.
async fn pair(srv: &FakeServer, store: &Store, company: &CompanyId) -> (StoreClient, String) {
    let mut client = StoreClient::start(srv, wagate::wa::SledBackend::open(store, company)).await;
    let qr = client.qr().await;
    let linked = srv.scan_qr(&qr).await.expect("the phone scans the QR");
    client.connected().await;
    (client, linked.phone)
}

/// Opens the store at `dir`, waiting (bounded) for the previous handle's last
/// clone to be released by the stopped client's background tasks.
async fn reopen(dir: &Path) -> Store {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            // sled's file lock is released only when the last clone of the
            // old handle drops, and nothing signals that: poll, bounded.
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%error, "store still held; retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("store does not reopen: {error}"),
        }
    }
}

#[tokio::test]
async fn a_paired_client_reconnects_from_the_reopened_store_without_a_qr() {
    let srv = fake().await;
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
        client.received("before restart").await;
        client
            .send_and_check(&srv, "15550002222", "reply before restart")
            .await;
        client.stop().await;
        store.flush().await.unwrap();
        phone
    };
    srv.wait_for_connection_count(&phone, 0, T)
        .await
        .expect("the old connection is gone");

    // Everything in memory is gone; only the files remain.
    let store = reopen(dir.path()).await;
    assert!(wagate::wa::is_linked(&store, &acme).unwrap());
    assert_eq!(
        store.companies_with_credentials().unwrap(),
        std::slice::from_ref(&acme)
    );
    let mut client = StoreClient::start(&srv, wagate::wa::SledBackend::open(&store, &acme)).await;
    client.connected().await;
    assert!(
        !client.saw(|e| matches!(e, Event::PairingQrCode(_))),
        "stored credentials need no QR"
    );
    assert_eq!(srv.login_count(&phone), 2);

    // The contact continues its existing session (a plain `msg`, not a new
    // `pkmsg`): decrypting it needs the ratchet state read back from disk.
    srv.contact_send_text("15550002222", &phone, "after restart")
        .await
        .unwrap();
    client.received("after restart").await;
    client
        .send_and_check(&srv, "15550002222", "reply after restart")
        .await;
    assert!(!client.saw(|e| matches!(e, Event::UndecryptableMessage(_))));
    client.stop().await;
}

#[tokio::test]
async fn companies_in_one_database_are_isolated_and_a_wipe_touches_only_its_company() {
    let srv = fake().await;
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
    client_a.received("for a only").await;
    srv.contact_send_text("15550004444", &phone_b, "for b only")
        .await
        .unwrap();
    client_b.received("for b only").await;
    assert!(!client_b.saw(|e| format!("{e:?}").contains("for a only")));
    assert!(!client_a.saw(|e| format!("{e:?}").contains("for b only")));
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
    client_b.received("b still works").await;
    client_b
        .send_and_check(&srv, "15550004444", "b replies after the wipe")
        .await;
    assert_eq!(srv.connection_count(&phone_b), 1);

    // A starts over: a fresh device shows a QR instead of logging in.
    let mut client_a = StoreClient::start(&srv, wagate::wa::SledBackend::open(&store, &a)).await;
    client_a.qr().await;
    assert_eq!(
        srv.login_count(&phone_a),
        1,
        "A's wiped credentials never log in again"
    );
    client_a.stop().await;
    client_b.stop().await;
}
