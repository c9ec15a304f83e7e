//! The fake WhatsApp server ([`start_fake`]), what tests read from it
//! ([`pairing_connections`], its admin API over [`http`]), and a real,
//! unmodified whatsapp-rust client ([`TestClient`]) pointed at it, with every
//! event recorded so tests can wait on them.
//!
//! Client setup follows protocol spec §0: `with_version` (no sw.js fetch), a
//! stub HTTP client that always errors (nothing leaves the box), a push name
//! (no 10 s bootstrap wait on reconnects), and a credential store whose `Arc`
//! can be reused to simulate a process restart with stored credentials (an
//! `InMemoryBackend` from [`new_backend`], or a company's keyspace of
//! wagate's sled store).

use std::sync::Arc;
use std::time::Duration;

use fakewa::FakeServer;
use parking_lot::Mutex;
use tokio::sync::watch;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::*;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::wacore::net::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::wacore::store::InMemoryBackend;

use crate::wait::WAIT;

/// Starts a fake WhatsApp server with its default configuration.
pub async fn start_fake() -> Arc<FakeServer> {
    Arc::new(
        FakeServer::start(fakewa::Config::default())
            .await
            .expect("start the fake WhatsApp server"),
    )
}

/// Distinct connections on which the fake offered pairing (a `pair-device`
/// IQ): each is one socket a client opened without credentials.
pub fn pairing_connections(fake: &FakeServer) -> usize {
    let mut conns: Vec<u64> = fake
        .stanzas()
        .iter()
        .filter(|s| {
            s.direction == fakewa::Direction::ToClient
                && s.node.get_optional_child("pair-device").is_some()
        })
        .map(|s| s.conn)
        .collect();
    conns.sort_unstable();
    conns.dedup();
    conns.len()
}

/// Fails every HTTP request: tests never reach the internet.
struct NoHttp;

#[async_trait::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, _request: HttpRequest) -> anyhow::Result<HttpResponse> {
        anyhow::bail!("HTTP is disabled in tests")
    }
}

/// Reaches the fake's media host only: `https://127.0.0.1:PORT/…` (the
/// host the fake announces in `media_conn`) is requested as plain
/// `http://127.0.0.1:PORT/…`; any other host is refused.
pub struct LoopbackHttp;

#[async_trait::async_trait]
impl HttpClient for LoopbackHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let rest = request
            .url
            .strip_prefix("https://")
            .or_else(|| request.url.strip_prefix("http://"))
            .ok_or_else(|| anyhow::anyhow!("unsupported URL {}", request.url))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !(host.starts_with("127.0.0.1:") || host.starts_with("localhost:")) {
            anyhow::bail!("HTTP to {host} is disabled in tests");
        }
        let body = request.body.clone().unwrap_or_default();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
            request.method,
            if path.is_empty() { "/" } else { path },
            body.len()
        );
        for (k, v) in &request.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("no HTTP header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut body = raw[split + 4..].to_vec();
        let status_code = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no HTTP status line"))?;
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body)?;
        }
        Ok(HttpResponse { status_code, body })
    }

    fn supports_upload_streaming(&self) -> bool {
        true
    }

    /// Streaming upload (whatsapp-rust's `upload_stream`): reads the body
    /// (test files are small) and sends it like [`HttpClient::execute`].
    /// Called on a blocking thread, as whatsapp-rust does.
    fn execute_upload(
        &self,
        request: HttpRequest,
        mut body: whatsapp_rust::wacore::net::UploadBody,
        _content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut body, &mut bytes)?;
        tokio::runtime::Handle::try_current()?.block_on(self.execute(request.with_body(bytes)))
    }
}

/// [`NoHttp`], or [`LoopbackHttp`] when `loopback`.
struct TestHttp {
    loopback: bool,
}

#[async_trait::async_trait]
impl HttpClient for TestHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        if self.loopback {
            LoopbackHttp.execute(request).await
        } else {
            NoHttp.execute(request).await
        }
    }
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow::anyhow!("bad chunk"))?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(
            data.get(..size)
                .ok_or_else(|| anyhow::anyhow!("short chunk"))?,
        );
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// A fresh, empty credential store.
pub fn new_backend() -> Arc<dyn Backend> {
    Arc::new(InMemoryBackend::new())
}

/// Options for [`TestClient::start`].
#[derive(Default, Clone)]
pub struct ClientOptions {
    /// Link by pair code for this phone number (with the code below).
    pub pair_code: Option<(String, String)>,
    /// One-time prekeys per upload (whatsapp-rust's default is 812).
    pub prekey_count: Option<usize>,
    /// Use [`LoopbackHttp`] (media up/downloads reach the fake) instead of
    /// refusing all HTTP.
    pub loopback_http: bool,
}

/// A running client plus its recorded events.
pub struct TestClient {
    /// The running bot (`None` once stopped).
    pub handle: Option<BotHandle>,
    /// The whatsapp-rust client, to send with.
    pub client: Arc<Client>,
    /// Its credential store, to start it again after [`TestClient::stop`].
    pub backend: Arc<dyn Backend>,
    events: Arc<Mutex<Vec<Arc<Event>>>>,
    changed: watch::Receiver<u64>,
}

impl TestClient {
    /// Builds and spawns a client against `ws_url` on `backend`.
    pub async fn start(ws_url: &str, backend: Arc<dyn Backend>, options: ClientOptions) -> Self {
        let events: Arc<Mutex<Vec<Arc<Event>>>> = Arc::default();
        let (tx, changed) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let sink = events.clone();
        let mut builder = Bot::builder()
            .with_backend_arc(backend.clone())
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(ws_url))
            .with_http_client(TestHttp {
                loopback: options.loopback_http,
            })
            .with_runtime(TokioRuntime)
            .with_version((2, 3000, 1))
            .with_push_name("Test User")
            .skip_history_sync()
            .on_event(move |event, _client| {
                let sink = sink.clone();
                let tx = tx.clone();
                async move {
                    sink.lock().push(event);
                    tx.send_modify(|v| *v += 1);
                }
            });
        if let Some(count) = options.prekey_count {
            builder = builder.with_wanted_pre_key_count(count);
        }
        if let Some((phone, code)) = options.pair_code {
            builder = builder.with_pair_code(PairCodeOptions {
                phone_number: phone,
                custom_code: Some(code),
                ..Default::default()
            });
        }
        let bot = builder.build().await.expect("bot builds");
        let client = bot.client();
        let handle = bot.spawn();
        Self {
            handle: Some(handle),
            client,
            backend,
            events,
            changed,
        }
    }

    /// Waits for an event matching `pick` (events before the call count too).
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.changed.borrow_and_update();
            if let Some(found) = self.events.lock().iter().find_map(|e| pick(e)) {
                return found;
            }
            match tokio::time::timeout_at(deadline, self.changed.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!(
                    "timed out after {timeout:?} waiting for {what}; events: {:?}",
                    self.event_names()
                ),
            }
        }
    }

    /// Waits until `n` recorded events match `pred` (events before the call
    /// count too).
    pub async fn wait_for_count(
        &mut self,
        what: &str,
        timeout: Duration,
        n: usize,
        pred: impl Fn(&Event) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.changed.borrow_and_update();
            if self.count(&pred) >= n {
                return;
            }
            match tokio::time::timeout_at(deadline, self.changed.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!(
                    "timed out after {timeout:?} waiting for {n} × {what}; got {}",
                    self.count(&pred)
                ),
            }
        }
    }

    /// Number of recorded events matching `pred`.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.lock().iter().filter(|e| pred(e)).count()
    }

    /// Forgets recorded events (so the next wait sees only new ones).
    pub fn clear_events(&self) {
        self.events.lock().clear();
    }

    /// Variant names of the recorded events, for failure messages.
    pub fn event_names(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect()
    }

    /// The first QR string the client displayed.
    pub async fn qr(&mut self) -> String {
        self.wait_for("a QR code", WAIT, |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for `Event::Connected`.
    pub async fn connected(&mut self, timeout: Duration) {
        self.wait_for("Connected", timeout, |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await
    }

    /// Waits for an inbound message with this text; returns the sender JID.
    pub async fn message_text(&mut self, text: &str, timeout: Duration) -> Jid {
        self.wait_for("an inbound message", timeout, |e| match e {
            Event::Messages(batch) => batch.messages.iter().find_map(|m| {
                (m.message.conversation.as_deref() == Some(text))
                    .then(|| m.info.source.sender.clone())
            }),
            _ => None,
        })
        .await
    }

    /// Sends `text` to the fake contact `to`; returns the message once the
    /// contact decrypted it.
    pub async fn send_and_decrypt(
        &self,
        srv: &FakeServer,
        to: &str,
        text: &str,
        timeout: Duration,
    ) -> fakewa::SentMessage {
        self.client
            .send_text(Jid::pn(to), text)
            .await
            .expect("sent");
        srv.wait_for_sent_message(|m| m.text == text, timeout)
            .await
            .expect("the contact decrypted it")
    }

    /// Stops the client without logging out (credentials stay in the backend).
    pub async fn stop(mut self) -> Arc<dyn Backend> {
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(WAIT, handle.shutdown())
                .await
                .expect("client shuts down");
        }
        self.backend.clone()
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Minimal HTTP/1.1 request (one per connection) to the fake's admin API at
/// `addr`: `(status, body)`.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
