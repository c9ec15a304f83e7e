//! A gateway in this process ([`spawn_app`], [`TestApp`]) over a temporary
//! data directory, and what tests build one from: the configuration
//! ([`config`], [`wa_config`]), company ids ([`company`]), reopening a store
//! from disk ([`reopen`]).
//!
//! [`spawn_app`] runs the binary's own wiring ([`wagate::app::App`]) on
//! `127.0.0.1:0` against a fake WhatsApp server; the `wagate` binary itself
//! is in [`crate::process`].

use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use fakewa::FakeServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wagate::app::App;
use wagate::config::{Config, LogFormat};
use wagate::domain::CompanyId;
use wagate::pool::WaConfig;
use wagate::store::Store;

use crate::api::Api;
use crate::fake::start_fake;
use crate::wait::{self, WAIT};

/// The admin key every test gateway is started with.
pub const ADMIN_KEY: &str = "e2e-admin-key-0123456789abcdefghij";
/// A fixed client version, so nothing fetches WhatsApp's web site.
pub const WA_VERSION: (u32, u32, u32) = (2, 3000, 1_023_456_789);
/// The device name test gateways announce.
const PUSH_NAME: &str = "wagate-e2e";

/// Test logs (`RUST_LOG` to change), captured per test by libtest. Only the
/// first call in a process installs the subscriber.
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

/// A company id that is known to be valid.
pub fn company(id: &str) -> CompanyId {
    CompanyId::parse(id).expect("a valid company id")
}

/// The gateway's configuration for a test: loopback, port 0, the fake's URL,
/// [`ADMIN_KEY`], [`WA_VERSION`], and `--allow-private-urls` (every webhook
/// receiver and media server of the tests is on loopback; the refusals are
/// tested by turning it off).
pub fn config(fake: &FakeServer, data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        data_dir: data_dir.to_path_buf(),
        store_cache_mib: wagate::store::DEFAULT_CACHE_MIB,
        idempotency_ttl_hours: 24,
        admin_key: Some(ADMIN_KEY.to_owned()),
        store_key: None,
        store_key_file: None,
        public_url: None,
        log_format: LogFormat::Pretty,
        wa_url: Some(fake.ws_url()),
        wa_version: Some(WA_VERSION),
        wa_version_url: None,
        push_name: PUSH_NAME.to_owned(),
        shutdown_timeout: 5,
        allow_private_urls: true,
        webhooks: Default::default(),
        ops: Default::default(),
        pairing: Default::default(),
        http: Default::default(),
        media: Default::default(),
        // Tests send bursts from one company; the limit itself is tested
        // with a tiny budget of its own.
        sends: wagate::http::send_rate::SendRateOptions {
            send_rate_per_minute: 1_000_000,
            send_burst: 1_000_000,
        },
        wa_cache: Default::default(),
        sandbox: false,
    }
}

/// The session pool's configuration for a test that drives the pool without
/// HTTP: the fake's URL and [`WA_VERSION`], the rest default.
pub fn wa_config(fake: &FakeServer) -> WaConfig {
    WaConfig {
        url: Some(fake.ws_url()),
        version: wagate::wa::version::WaVersion::fixed(WA_VERSION),
        push_name: PUSH_NAME.to_owned(),
        ..WaConfig::default()
    }
}

/// Opens the sled database in `dir`, waiting for the previous holder (a
/// stopped gateway's or client's last background tasks) to release its file
/// lock.
pub async fn reopen(dir: &Path) -> Store {
    // sled's file lock is released only when the last clone of the old
    // handle drops, and nothing signals that: poll, bounded.
    wait::poll("the store to reopen", Duration::from_millis(20), || async {
        match Store::open(dir) {
            Ok(store) => Some(store),
            Err(error) => {
                tracing::debug!(%error, "store still held; retrying");
                None
            }
        }
    })
    .await
}

/// A gateway running in this process.
pub struct TestApp {
    /// The API with the admin key.
    pub api: Api,
    /// The fake WhatsApp server it talks to.
    pub fake: Arc<FakeServer>,
    /// Its store (the same database the gateway uses).
    pub store: Store,
    /// Its session pool (what the API drives), for what HTTP does not show.
    pub pool: wagate::pool::SessionPool,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Starts a fake WhatsApp server and a gateway over a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(start_fake().await, |_| {}).await
}

/// Starts a gateway against `fake` over a fresh data directory, with the
/// test [`config`] changed by `configure` (e.g. fast watchdog timings).
pub async fn spawn_app_with(fake: Arc<FakeServer>, configure: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_options(fake, configure, wagate::app::BuildOptions::default()).await
}

/// [`spawn_app_with`] on `runtime`: the gateway's tasks, and every task they
/// spawn, run on that runtime's threads and not on the caller's, so that a
/// benchmark can tell the gateway's CPU time from the fake's.
pub async fn spawn_app_on(
    runtime: &tokio::runtime::Handle,
    fake: Arc<FakeServer>,
    configure: impl FnOnce(&mut Config) + Send + 'static,
) -> TestApp {
    runtime
        .spawn(spawn_app_with(fake, configure))
        .await
        .expect("the gateway starts")
}

/// Starts a gateway whose whatsapp-rust HTTP client reaches the fake's media
/// host ([`crate::fake::LoopbackHttp`]: `https://127.0.0.1:PORT` as plain
/// HTTP, loopback only), for media sends.
pub async fn spawn_media_app(
    fake: Arc<FakeServer>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let options = wagate::app::BuildOptions {
        wa_http_client: Some(Arc::new(crate::fake::LoopbackHttp)),
        ..Default::default()
    };
    spawn_app_with_options(fake, configure, options).await
}

/// [`spawn_app_with`] with the gateway's code-only build options.
pub async fn spawn_app_with_options(
    fake: Arc<FakeServer>,
    configure: impl FnOnce(&mut Config),
    options: wagate::app::BuildOptions,
) -> TestApp {
    init_logging();
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let mut config = config(&fake, dir.path());
    configure(&mut config);
    let store = Store::open_with_key(
        &config.data_dir,
        config.store_cache_mib << 20,
        config.store_key().expect("the store key").as_ref(),
    )
    .expect("open the store");
    let (app, generated) = App::build_with(&config, store, options)
        .await
        .expect("build the gateway");
    assert!(generated.is_none(), "the admin key is configured");
    let api = Api::new(format!("http://{}", app.local_addr()), Some(ADMIN_KEY));
    let store = app.store().clone();
    let pool = app.pool().clone();
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
        _dir: dir,
    }
}

impl TestApp {
    /// Graceful shutdown; panics unless it is clean and within [`WAIT`].
    pub async fn stop(mut self) {
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
    }
}
