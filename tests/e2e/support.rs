//! The end-to-end harness: a fake WhatsApp server ([`fakewa::FakeServer`]),
//! the gateway on `127.0.0.1:0` over a temporary data directory, and an HTTP
//! client holding the admin key.
//!
//! [`spawn_app`] runs the gateway in-process through [`wagate::app::App`] (the
//! binary's own wiring); [`GatewayProcess`] runs the real `wagate` binary as a
//! child process, for restarts that must survive a `SIGKILL`.
//!
//! Waiting is event-driven: session states and QR codes are awaited on the
//! API's own Server-Sent Events stream ([`Events`]), the child's startup on its
//! JSON log lines. Fixed sleeps are not used.

#![allow(dead_code)] // each test module uses a different part of the harness

use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use fakewa::FakeServer;
use wagate::app::App;
use wagate::config::{Config, LogFormat};
use wagate::pool::SessionPool;
use wagate::store::Store;

/// The admin key every harness gateway is started with.
pub const ADMIN_KEY: &str = "e2e-admin-key-0123456789";
/// A fixed client version, so nothing fetches WhatsApp's web site.
pub const WA_VERSION: (u32, u32, u32) = (2, 3000, 1_023_456_789);
/// Upper bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(60);

/// Test logs (`RUST_LOG` to change), captured per test by libtest.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,wagate=info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Starts a fake WhatsApp server with its default configuration.
pub async fn start_fake() -> Arc<FakeServer> {
    Arc::new(
        FakeServer::start(fakewa::Config::default())
            .await
            .expect("start the fake WhatsApp server"),
    )
}

/// The gateway's configuration for a test: loopback, port 0, the fake's URL.
pub fn config(fake: &FakeServer, data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        data_dir: data_dir.to_path_buf(),
        store_cache_mib: wagate::store::DEFAULT_CACHE_MIB,
        idempotency_ttl_hours: 24,
        admin_key: Some(ADMIN_KEY.to_owned()),
        public_url: None,
        log_format: LogFormat::Pretty,
        wa_url: Some(fake.ws_url()),
        wa_version: Some(WA_VERSION),
        push_name: "wagate-e2e".to_owned(),
        shutdown_timeout: 5,
        webhooks: Default::default(),
        ops: Default::default(),
        pairing: Default::default(),
    }
}

/// An HTTP client for the gateway at `base`, authenticating with `key`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: String, key: Option<&str>) -> Self {
        Self {
            base,
            key: key.map(str::to_owned),
            http: reqwest::Client::new(),
        }
    }

    /// The same gateway with another credential (`None`: no header).
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self {
            base: self.base.clone(),
            key: key.map(str::to_owned),
            http: self.http.clone(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends a request and returns the status and the JSON body (`Null` when
    /// the body is empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        send(builder).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(Method::POST, path, body).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// `POST /v1/sessions/{company}`, expecting 200 or 201.
    pub async fn ensure(&self, company: &str) -> Value {
        let (status, body) = self.post(&format!("/v1/sessions/{company}"), None).await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "ensure {company}: {status} {body}"
        );
        body
    }

    pub async fn status(&self, company: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/sessions/{company}")).await;
        assert_eq!(status, StatusCode::OK, "status of {company}: {body}");
        body
    }

    /// Sends a text; returns the status and body.
    pub async fn send_text(
        &self,
        company: &str,
        to: &str,
        text: &str,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut builder = self
            .request(Method::POST, &format!("/v1/sessions/{company}/messages"))
            .json(&json!({"to": to, "text": text}));
        if let Some(key) = key {
            builder = builder.header("Idempotency-Key", key);
        }
        send(builder).await
    }

    /// Opens the company's event stream.
    pub async fn events(&self, company: &str) -> Events {
        let response = self
            .request(Method::GET, &format!("/v1/sessions/{company}/events"))
            .send()
            .await
            .expect("open the event stream");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "event stream of {company}"
        );
        Events {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// Waits (on the event stream) until `company` is in `state`; returns the
    /// status. Fails at once if the session lands in a state it cannot leave
    /// by itself.
    pub async fn wait_for_state(&self, company: &str, state: &str) -> Value {
        let mut events = self.events(company).await;
        events.wait_for_state(state).await
    }

    /// Ensures `company`, scans its QR as the phone `phone`, and waits until
    /// it is `connected`. Returns the ensure answer (with the token if the
    /// company was new).
    pub async fn link_by_qr(&self, fake: &FakeServer, company: &str, phone: &str) -> Value {
        let ensured = self.ensure(company).await;
        let mut events = self.events(company).await;
        let qr = events.next_qr().await;
        fake.scan_qr_as(phone, &qr)
            .await
            .expect("the fake phone scans the QR code");
        let status = events.wait_for_state("connected").await;
        assert_eq!(status["phone"], phone, "{status}");
        ensured
    }
}

async fn send(builder: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = builder.send().await.expect("the gateway answers");
    let status = response.status();
    let bytes = response.bytes().await.expect("read the body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A Server-Sent Events stream of one session, parsed into `(event, data)`.
pub struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    /// The events of any Server-Sent Events response (e.g. the pairing page's).
    pub fn from_response(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event: its name and its JSON data.
    pub async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() && name == "message" {
                    continue; // keep-alive comment
                }
                return (
                    name,
                    serde_json::from_str(&data).unwrap_or(Value::String(data)),
                );
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event within the time limit")
                .expect("the event stream is still open")
                .expect("read the event stream");
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Whether the server ends the stream within the time limit (events
    /// still arriving are skipped).
    pub async fn ends(&mut self) -> bool {
        let drain = async {
            while let Some(chunk) = self.body.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        };
        tokio::time::timeout(WAIT, drain).await.is_ok()
    }

    /// Waits for a `session.status` event with `state`; returns its data.
    pub async fn wait_for_state(&mut self, state: &str) -> Value {
        loop {
            let (name, data) = self.next().await;
            if name != "session.status" {
                continue;
            }
            if data["state"] == state {
                return data;
            }
            let terminal = ["logged_out", "banned", "outdated", "stopped", "replaced"];
            let now = data["state"].as_str().unwrap_or_default();
            assert!(
                !terminal.contains(&now) || terminal.contains(&state),
                "waiting for `{state}`, the session went `{now}`: {data}"
            );
        }
    }

    /// Waits for a `session.qr` event; returns the QR code.
    pub async fn next_qr(&mut self) -> String {
        loop {
            let (name, data) = self.next().await;
            if name == "session.qr" {
                return data["code"].as_str().expect("a QR code").to_owned();
            }
        }
    }
}

/// A gateway running in this process.
pub struct TestApp {
    pub api: Api,
    pub fake: Arc<FakeServer>,
    pub store: Store,
    pub pool: SessionPool,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    dir: Arc<tempfile::TempDir>,
}

/// Starts a fake WhatsApp server and a gateway over a fresh data directory.
pub async fn spawn_app() -> TestApp {
    let fake = start_fake().await;
    let dir = Arc::new(tempfile::tempdir().expect("a temporary data directory"));
    spawn_app_on(fake, dir).await
}

/// Starts a gateway against `fake` over the data directory `dir` (reuse both
/// to simulate a restart).
pub async fn spawn_app_on(fake: Arc<FakeServer>, dir: Arc<tempfile::TempDir>) -> TestApp {
    init_logging();
    let config = config(&fake, dir.path());
    let (app, generated) = App::build(&config).await.expect("build the gateway");
    assert!(generated.is_none(), "the admin key is configured");
    let api = Api::new(format!("http://{}", app.local_addr()), Some(ADMIN_KEY));
    let (store, pool) = (app.store().clone(), app.pool().clone());
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stop.await;
    }));
    TestApp {
        api,
        fake,
        store,
        pool,
        shutdown: Some(shutdown),
        task: Some(task),
        dir,
    }
}

impl TestApp {
    /// Graceful shutdown; returns the data directory for a restart.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the gateway stops within the time limit")
                .expect("the gateway task")
                .expect("a clean shutdown");
        }
        self.dir.clone()
    }

    pub fn admin(&self) -> &Api {
        &self.api
    }
}

/// The real `wagate` binary, run as a child process.
pub struct GatewayProcess {
    pub api: Api,
    child: tokio::process::Child,
    logs: watch::Receiver<Vec<Value>>,
}

impl GatewayProcess {
    /// Starts `wagate` against `fake` over `data_dir`, on a free loopback
    /// port, and waits until it restored its stored sessions (read from its
    /// JSON log, not polled).
    pub async fn start(fake: &FakeServer, data_dir: &Path) -> Self {
        let (major, minor, patch) = WA_VERSION;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--shutdown-timeout",
                "5",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--wa-url",
                &fake.ws_url(),
                "--wa-version",
                &format!("{major}.{minor}.{patch}"),
            ])
            .env("WAGATE_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn,wagate=info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the wagate binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, logs) = watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let entry = serde_json::from_str(&line).unwrap_or(Value::String(line));
                tx.send_modify(|logs| logs.push(entry));
            }
        });
        let mut process = Self {
            api: Api::new(String::new(), Some(ADMIN_KEY)),
            child,
            logs,
        };
        let serving = process.wait_for_log("serving the HTTP API").await;
        let addr = serving["listen.addr"]
            .as_str()
            .expect("the bound address in the log line")
            .to_owned();
        process.api = Api::new(format!("http://{addr}"), Some(ADMIN_KEY));
        process.wait_for_log("ready").await;
        process
    }

    /// Waits for a JSON log line whose message is `message`.
    pub async fn wait_for_log(&mut self, message: &str) -> Value {
        let find = |logs: &Vec<Value>| logs.iter().find(|l| l["message"] == message).cloned();
        let found =
            match tokio::time::timeout(WAIT, self.logs.wait_for(|logs| find(logs).is_some())).await
            {
                Ok(Ok(logs)) => find(&logs),
                _ => None,
            };
        found.unwrap_or_else(|| {
            panic!(
                "no log line {message:?} within the time limit; got {:?}",
                self.logs.borrow()
            )
        })
    }

    /// Every log line so far, as text.
    pub fn log_text(&self) -> String {
        self.logs
            .borrow()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `SIGKILL`: no shutdown code runs.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("send SIGKILL");
        let status = self.child.wait().await.expect("reap the child");
        assert!(!status.success(), "killed, not exited: {status}");
    }
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
