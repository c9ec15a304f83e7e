//! Building one company's whatsapp-rust client.
//!
//! Owns every knob wagate turns on `whatsapp_rust::Bot`: transport URL,
//! version override, push name, the event forwarder, the (future) inbound
//! durability hook, the HTTP client and the cache sizes. The session actor
//! (`crate::pool::actor`) owns the built client and decides when it runs.
//!
//! Invariants:
//! - The client's own auto-reconnect is **off** (`enable_auto_reconnect =
//!   false`): every run of the client is exactly one connection, and the actor
//!   decides whether and when the next one happens (DESIGN.md invariant 3).
//! - Events are forwarded inline (a raw `EventHandler`, not the spawned
//!   closure delivery), so they reach the actor in dispatch order and before
//!   the run loop that produced them returns.
//! - Nothing here logs QR codes, pair codes, phone numbers or bodies.

use std::sync::Arc;

use wacore::store::traits::Backend;
use wacore::types::events::{Event, EventHandler};
use whatsapp_rust::bot::{Bot, BotBuilderError};
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::{Client, InboundDurabilityHook, RawNodeLease, TokioRuntime};

use crate::domain::CompanyId;

/// Supplies the inbound durability hook of each company's client (a later
/// issue plugs the outbox in here). `None` in [`ClientOptions`] = no hook: the
/// client acks messages as soon as they are decrypted.
pub trait InboundHookFactory: Send + Sync {
    /// The hook for `company`'s client.
    fn hook_for(&self, company: &CompanyId) -> Arc<dyn InboundDurabilityHook>;
}

/// What every company's client is built with.
#[derive(Clone)]
pub struct ClientOptions {
    /// WebSocket endpoint; `None` = WhatsApp's own (`wss://web.whatsapp.com/ws/chat`).
    pub url: Option<String>,
    /// WhatsApp Web version to announce; `None` = fetch the current one from
    /// `web.whatsapp.com` at each connect (through `http_client`).
    pub version: Option<(u32, u32, u32)>,
    /// The device's display name. Non-empty also keeps whatsapp-rust off its
    /// 10 s "bootstrap" wait on every reconnect.
    pub push_name: String,
    /// Where inbound messages are made durable before they are acknowledged (none: the client acks on its own).
    pub inbound_hook: Option<Arc<dyn InboundHookFactory>>,
    /// HTTP client for version fetches and media; `None` = [`default_http_client`]
    /// (built per client: pass a shared one when building many clients).
    pub http_client: Option<Arc<dyn HttpClient>>,
    /// Sizes of the client's in-memory caches.
    pub cache: crate::wa::cache::WaCacheOptions,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("version", &self.version)
            .field("push_name", &self.push_name)
            .field("inbound_hook", &self.inbound_hook.is_some())
            .field("http_client", &self.http_client.is_some())
            .field("cache", &self.cache)
            .finish()
    }
}

/// Receives the client's events. Called inline on the client's dispatch path:
/// it must not block (forward into a channel).
pub type EventSink = Arc<dyn Fn(Arc<Event>) + Send + Sync>;

struct ForwardEvents(EventSink);

impl EventHandler for ForwardEvents {
    fn handle_event(&self, event: Arc<Event>) {
        (self.0)(event);
    }
}

/// Delegates to a shared hook (the builder wants an owned `impl Hook`).
struct SharedHook(Arc<dyn InboundDurabilityHook>);

#[async_trait::async_trait]
impl InboundDurabilityHook for SharedHook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[whatsapp_rust::types::durability_hook::InboundMessage],
    ) -> anyhow::Result<()> {
        self.0.on_messages(client, batch).await
    }
}

/// whatsapp-rust's HTTP needs (fetching WhatsApp Web's current version when
/// none is configured; media later) served by `reqwest` (rustls, bounded time
/// per request). One instance is shared by every company of a pool, so
/// connections to `web.whatsapp.com` are pooled.
#[derive(Debug, Clone)]
pub struct ReqwestHttpClient(reqwest::Client);

impl ReqwestHttpClient {
    /// Per-request bound; whatsapp-rust also bounds the version fetch (20 s).
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// A client with its own connection pool and the default TLS roots.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self(
            reqwest::Client::builder().timeout(Self::TIMEOUT).build()?,
        ))
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestHttpClient {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
        let mut builder = self.0.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = builder.send().await?;
        let status_code = response.status().as_u16();
        let body = response.bytes().await?.to_vec();
        Ok(HttpResponse { status_code, body })
    }

    fn supports_upload_streaming(&self) -> bool {
        true
    }

    /// Streams `body` in [`UPLOAD_CHUNK`]-byte chunks through a channel of
    /// [`UPLOAD_CHUNKS_IN_FLIGHT`] chunks: at most that much of an upload is
    /// in memory at once, whatever the file size. Runs on a blocking thread
    /// (whatsapp-rust calls it from one), reading there and sending on the
    /// runtime.
    fn execute_upload(
        &self,
        request: HttpRequest,
        mut body: wacore::net::UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        use std::io::Read as _;
        let runtime = tokio::runtime::Handle::try_current()?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
        let (chunks, stream) =
            tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(UPLOAD_CHUNKS_IN_FLIGHT);
        let mut builder = self
            .0
            .request(method, &request.url)
            .header(reqwest::header::CONTENT_LENGTH, content_length)
            .body(reqwest::Body::wrap_stream(
                tokio_stream::wrappers::ReceiverStream::new(stream),
            ));
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let sending = runtime.spawn(async move {
            let response = builder.send().await?;
            let status_code = response.status().as_u16();
            let body = response.bytes().await?.to_vec();
            anyhow::Ok(HttpResponse { status_code, body })
        });
        let mut buffer = vec![0u8; UPLOAD_CHUNK];
        loop {
            match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buffer[..n]);
                    // The request ended early (refused, failed): stop reading.
                    if chunks.blocking_send(Ok(chunk)).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    let _ = chunks.blocking_send(Err(error));
                    break;
                }
            }
        }
        drop(chunks);
        runtime.block_on(sending)?
    }
}

/// Bytes read from an upload's source per chunk.
const UPLOAD_CHUNK: usize = 64 * 1024;
/// Chunks queued between the reading thread and the HTTP request.
const UPLOAD_CHUNKS_IN_FLIGHT: usize = 4;

/// An HTTP client whose every request fails: the fallback when no real one
/// can be built. With a `version` configured, whatsapp-rust then works
/// without HTTP (wagate does not use media yet).
#[derive(Debug, Default, Clone, Copy)]
pub struct UnavailableHttpClient;

/// The default HTTP client: [`ReqwestHttpClient`], or
/// [`UnavailableHttpClient`] if it cannot be built (logged).
pub fn default_http_client() -> Arc<dyn HttpClient> {
    match ReqwestHttpClient::new() {
        Ok(client) => Arc::new(client),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; set the WhatsApp version explicitly");
            Arc::new(UnavailableHttpClient)
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for UnavailableHttpClient {
    async fn execute(&self, _request: HttpRequest) -> anyhow::Result<HttpResponse> {
        Err(anyhow::anyhow!("no HTTP client configured in wagate"))
    }
}

/// One-time prekeys generated and uploaded per batch (WhatsApp asks for more
/// when fewer than 5 are left). whatsapp-rust defaults to WhatsApp Web's 812;
/// whatsmeow uploads 50. A gateway holds thousands of sessions, and each
/// batch is stored and kept in memory: 812 prekeys cost ≈ 250 KiB of store
/// writes per pairing and leave a 40 KiB frame buffer in every session's
/// sender task (measured with heaptrack; see BENCHMARKS.md).
pub const PRE_KEY_BATCH: usize = 50;

/// A built, not yet started client.
pub struct BuiltBot {
    /// The whatsapp-rust bot, ready to run.
    pub bot: Bot,
    /// Keeps raw `stream:error` stanzas flowing to the sink (whatsapp-rust
    /// emits no event of its own for 503/429). Drop it with the client.
    pub raw_nodes: RawNodeLease,
}

/// Build (but do not start) a company's client on `backend`, with its own
/// auto-reconnect disabled and every event handed to `sink` (raw stanzas
/// included: filter them in the sink).
pub async fn build_bot(
    options: &ClientOptions,
    company: &CompanyId,
    backend: Arc<dyn Backend>,
    sink: EventSink,
) -> Result<BuiltBot, BotBuilderError> {
    let transport = match &options.url {
        Some(url) => TokioWebSocketTransportFactory::new().with_url(url.clone()),
        None => TokioWebSocketTransportFactory::new(),
    };
    let http: Arc<dyn HttpClient> = options
        .http_client
        .clone()
        .unwrap_or_else(default_http_client);
    let mut builder = Bot::builder()
        .with_backend_arc(backend)
        .with_transport_factory(transport)
        .with_http_client(SharedHttp(http))
        .with_runtime(TokioRuntime)
        .with_event_handler(ForwardEvents(sink))
        .with_cache_config(options.cache.cache_config())
        // History sync downloads media over HTTP and floods events wagate does
        // not use.
        .skip_history_sync()
        .with_wanted_pre_key_count(PRE_KEY_BATCH);
    if !options.push_name.is_empty() {
        builder = builder.with_push_name(options.push_name.clone());
    }
    if let Some(version) = options.version {
        builder = builder.with_version(version);
    }
    if let Some(factory) = &options.inbound_hook {
        builder = builder.with_inbound_durability_hook(SharedHook(factory.hook_for(company)));
    }
    let bot = builder.build().await?;
    let client = bot.client();
    client
        .enable_auto_reconnect
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let raw_nodes = client.acquire_raw_node_forwarding();
    Ok(BuiltBot { bot, raw_nodes })
}

/// Delegates to a shared HTTP client (the builder wants an owned `impl HttpClient`).
struct SharedHttp(Arc<dyn HttpClient>);

#[async_trait::async_trait]
impl HttpClient for SharedHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.0.execute(request).await
    }

    fn supports_upload_streaming(&self) -> bool {
        self.0.supports_upload_streaming()
    }

    fn execute_upload(
        &self,
        request: HttpRequest,
        body: wacore::net::UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        self.0.execute_upload(request, body, content_length)
    }
}
