//! WhatsApp Web's client version, resolved once per process and shared by
//! every company's client.
//!
//! whatsapp-rust on its own fetches `web.whatsapp.com/sw.js` per *device*
//! (cached for 24 h in each device's record): a restore of 10,000 devices
//! would fetch it 10,000 times. Here one [`WaVersion`] resolves it for the
//! whole process and every client is built with it as an explicit override
//! (so whatsapp-rust never fetches).
//!
//! - At start ([`WaVersion::resolve`]): the version cached in the store's
//!   settings is used as it is when it was fetched less than
//!   [`REFRESH_EVERY`] ago; otherwise it is fetched once, bounded by
//!   [`FETCH_TIMEOUT`]. A failed fetch falls back to the cached version, or to
//!   [`COMPILED_IN`] when nothing is cached, with a warning.
//! - In the background ([`WaVersion::spawn_refresher`]): fetched again when
//!   the cached one turns [`REFRESH_EVERY`] old, retried after
//!   [`RETRY_AFTER_FAILURE`] when a fetch fails, and at once when a session is
//!   told its client is outdated ([`WaVersion::request_refresh`]); triggers
//!   that arrive together (many sessions outdated at once) make one fetch.
//! - An explicit `--wa-version` ([`WaVersion::fixed`]) wins: nothing is
//!   fetched or cached.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::Notify;
use whatsapp_rust::http::{HttpClient, HttpRequest};

use crate::store::Store;

/// `MAJOR.MINOR.PATCH`, as whatsapp-rust takes it.
pub type Version = (u32, u32, u32);

/// The version used when none was ever fetched and the fetch fails: the one
/// whatsapp-rust 0.7 ships as its device default (`wacore::store::Device`).
pub const COMPILED_IN: Version = (2, 3000, 1_042_742_319);

/// Where WhatsApp Web publishes its current version (the service worker
/// script carries `client_revision`); the same URL whatsapp-rust uses.
pub const DEFAULT_SOURCE_URL: &str = "https://web.whatsapp.com/sw.js";

/// How long a fetched version is trusted before it is fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How long after a failed fetch the next is tried.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(3600);

/// Bound of one fetch (the start waits for it when nothing fresh is cached).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Least time between two fetches triggered by outdated sessions.
const MIN_TRIGGERED_SPACING: Duration = Duration::from_secs(30);

/// The store setting holding `"MAJOR.MINOR.PATCH@FETCHED_AT_MS"`.
pub const SETTING: &str = "wa_web_version";

/// The process-wide WhatsApp Web version (cheap to clone; clones share it).
#[derive(Clone)]
pub struct WaVersion {
    inner: Arc<Inner>,
}

struct Inner {
    current: RwLock<Version>,
    /// `None` for a fixed version (nothing to fetch).
    source: Option<Source>,
    /// A session was told its client is outdated.
    refresh: Notify,
}

struct Source {
    store: Store,
    http: Arc<dyn HttpClient>,
    url: String,
    /// When the current version was fetched (ms since the epoch; 0 = never).
    fetched_at_ms: RwLock<i64>,
}

impl std::fmt::Debug for WaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaVersion")
            .field("current", &self.current())
            .field("fetched", &self.inner.source.is_some())
            .finish()
    }
}

impl Default for WaVersion {
    /// [`COMPILED_IN`], never fetched.
    fn default() -> Self {
        Self::fixed(COMPILED_IN)
    }
}

impl WaVersion {
    /// A version that is used as it is (`--wa-version`): never fetched.
    pub fn fixed(version: Version) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: RwLock::new(version),
                source: None,
                refresh: Notify::new(),
            }),
        }
    }

    /// Resolves the version at start: the store's cached one when fresh, else
    /// one fetch from `url` through `http` (falling back to the cached or the
    /// compiled-in version, with a warning).
    pub async fn resolve(store: Store, http: Arc<dyn HttpClient>, url: String) -> Self {
        let cached = read_cached(&store);
        let (current, fetched_at_ms) = cached.unwrap_or((COMPILED_IN, 0));
        let version = Self {
            inner: Arc::new(Inner {
                current: RwLock::new(current),
                source: Some(Source {
                    store,
                    http,
                    url,
                    fetched_at_ms: RwLock::new(fetched_at_ms),
                }),
                refresh: Notify::new(),
            }),
        };
        let age = crate::domain::now_ms().saturating_sub(fetched_at_ms);
        if cached.is_some() && u128::from(age.unsigned_abs()) < REFRESH_EVERY.as_millis() {
            tracing::info!(wa.version = %show(current), "using the cached WhatsApp Web version");
        } else {
            version.refresh_now().await;
        }
        version
    }

    /// The version every client is built with now.
    pub fn current(&self) -> Version {
        *self.inner.current.read()
    }

    /// Asks the background refresher to fetch the version now (a session was
    /// told its client is outdated). Requests made together coalesce.
    pub fn request_refresh(&self) {
        self.inner.refresh.notify_one();
    }

    /// Fetches once; on success the version is used and cached, on failure
    /// the current one stays (warned). Returns whether the fetch succeeded.
    async fn refresh_now(&self) -> bool {
        let Some(source) = &self.inner.source else {
            return true;
        };
        match tokio::time::timeout(FETCH_TIMEOUT, fetch(&*source.http, &source.url)).await {
            Ok(Ok(version)) => {
                let now = crate::domain::now_ms();
                *self.inner.current.write() = version;
                *source.fetched_at_ms.write() = now;
                let value = format!("{}@{now}", show(version));
                if let Err(error) = source.store.put_setting(SETTING, value.as_bytes()) {
                    tracing::warn!(%error, "caching the WhatsApp Web version failed");
                }
                tracing::info!(wa.version = %show(version), "fetched the WhatsApp Web version");
                true
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(error)) => format!("{error:#}"),
                    _ => format!("no answer within {FETCH_TIMEOUT:?}"),
                };
                let fallback = if *source.fetched_at_ms.read() == 0 {
                    "the compiled-in one"
                } else {
                    "the last fetched one"
                };
                tracing::warn!(
                    %error,
                    wa.version = %show(self.current()),
                    "fetching the WhatsApp Web version failed; using {fallback}"
                );
                false
            }
        }
    }

    /// Keeps the version fresh until the returned task is aborted: a fetch
    /// when the current one turns [`REFRESH_EVERY`] old (or
    /// [`RETRY_AFTER_FAILURE`] after a failed fetch), and one when
    /// [`request_refresh`](Self::request_refresh) is called. `None` for a
    /// fixed version.
    pub fn spawn_refresher(&self) -> Option<tokio::task::JoinHandle<()>> {
        let source = self.inner.source.as_ref()?;
        let this = self.clone();
        let mut last_ok = *source.fetched_at_ms.read() != 0;
        Some(tokio::spawn(async move {
            loop {
                let wait = if last_ok {
                    this.until_stale()
                } else {
                    RETRY_AFTER_FAILURE
                };
                let triggered = tokio::select! {
                    () = tokio::time::sleep(wait) => false,
                    () = this.inner.refresh.notified() => true,
                };
                last_ok = this.refresh_now().await;
                if triggered {
                    // Outdated sessions that were told so during this fetch
                    // are served by it: one fetch for a storm of them.
                    tokio::time::sleep(MIN_TRIGGERED_SPACING).await;
                }
            }
        }))
    }

    /// Time left until the current version is [`REFRESH_EVERY`] old.
    fn until_stale(&self) -> Duration {
        let fetched = self
            .inner
            .source
            .as_ref()
            .map_or(0, |s| *s.fetched_at_ms.read());
        let age = u64::try_from(crate::domain::now_ms().saturating_sub(fetched)).unwrap_or(0);
        REFRESH_EVERY.saturating_sub(Duration::from_millis(age))
    }
}

/// `MAJOR.MINOR.PATCH`.
pub fn show((major, minor, patch): Version) -> String {
    format!("{major}.{minor}.{patch}")
}

/// Parses `MAJOR.MINOR.PATCH`.
pub fn parse(raw: &str) -> Option<Version> {
    let mut parts = raw.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => Some((major, minor, patch)),
        _ => None,
    }
}

/// The cached version and when it was fetched; `None` when absent or
/// unreadable (then it is fetched again).
fn read_cached(store: &Store) -> Option<(Version, i64)> {
    let raw = match store.get_setting(SETTING) {
        Ok(raw) => raw?,
        Err(error) => {
            tracing::warn!(%error, "reading the cached WhatsApp Web version failed");
            return None;
        }
    };
    let text = String::from_utf8(raw).ok()?;
    let (version, fetched_at) = text.split_once('@')?;
    Some((parse(version)?, fetched_at.parse().ok()?))
}

/// One GET of the version document, parsed the way whatsapp-rust parses
/// WhatsApp's `sw.js` (`client_revision`).
async fn fetch(http: &dyn HttpClient, url: &str) -> anyhow::Result<Version> {
    // WhatsApp answers the service worker only to what looks like a browser.
    let request = HttpRequest::get(url)
        .with_header("sec-fetch-site", "none")
        .with_header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        );
    let response = http.execute(request).await?;
    if !(200..300).contains(&response.status_code) {
        anyhow::bail!("the version document answered {}", response.status_code);
    }
    let body = String::from_utf8_lossy(&response.body);
    wacore::version::parse_sw_js(&body)
        .ok_or_else(|| anyhow::anyhow!("no client_revision in the version document"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use whatsapp_rust::http::HttpResponse;

    use super::*;

    /// Answers every request with `body` (or fails when `None`), counting.
    struct Served {
        body: Option<&'static str>,
        fetches: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl HttpClient for Served {
        async fn execute(&self, _request: HttpRequest) -> anyhow::Result<HttpResponse> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            match self.body {
                Some(body) => Ok(HttpResponse {
                    status_code: 200,
                    body: body.as_bytes().to_vec(),
                }),
                None => anyhow::bail!("unreachable"),
            }
        }
    }

    fn served(body: Option<&'static str>) -> Arc<Served> {
        Arc::new(Served {
            body,
            fetches: AtomicUsize::new(0),
        })
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn fetches_once_then_the_cache_serves_a_restart() {
        let (_dir, store) = store();
        let http = served(Some(r#"{"client_revision":1234}"#));
        let version = WaVersion::resolve(store.clone(), http.clone(), "u".into()).await;
        assert_eq!(version.current(), (2, 3000, 1234));
        let again = WaVersion::resolve(store, http.clone(), "u".into()).await;
        assert_eq!(again.current(), (2, 3000, 1234));
        assert_eq!(
            http.fetches.load(Ordering::SeqCst),
            1,
            "the second start reads the cache"
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_keeps_a_stale_cached_version() {
        let (_dir, store) = store();
        store.put_setting(SETTING, b"2.3000.77@1").unwrap();
        let http = served(None);
        let version = WaVersion::resolve(store.clone(), http.clone(), "u".into()).await;
        assert_eq!(http.fetches.load(Ordering::SeqCst), 1, "stale: fetched");
        assert_eq!(version.current(), (2, 3000, 77));
        assert_eq!(
            store.get_setting(SETTING).unwrap().as_deref(),
            Some(&b"2.3000.77@1"[..]),
            "a failure changes nothing"
        );
    }

    #[tokio::test]
    async fn nothing_cached_and_no_source_is_the_compiled_in_version() {
        let (_dir, store) = store();
        store.put_setting(SETTING, b"garbage").unwrap();
        let version = WaVersion::resolve(store, served(None), "u".into()).await;
        assert_eq!(version.current(), COMPILED_IN);
    }

    #[tokio::test(start_paused = true)]
    async fn outdated_triggers_make_one_fetch_and_the_day_makes_another() {
        let (_dir, store) = store();
        let http = served(Some("client_revision:5"));
        let version = WaVersion::resolve(store, http.clone(), "u".into()).await;
        let refresher = version.spawn_refresher().unwrap();
        for _ in 0..100 {
            version.request_refresh();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            http.fetches.load(Ordering::SeqCst),
            2,
            "start + one for the storm"
        );
        tokio::time::sleep(REFRESH_EVERY + Duration::from_secs(60)).await;
        assert_eq!(http.fetches.load(Ordering::SeqCst), 3, "the daily refresh");
        refresher.abort();
    }

    #[test]
    fn a_fixed_version_never_fetches() {
        let version = WaVersion::fixed((2, 1, 3));
        assert!(version.spawn_refresher().is_none());
        assert_eq!(version.current(), (2, 1, 3));
        assert_eq!(parse(&show((2, 1, 3))), Some((2, 1, 3)));
        assert_eq!(parse("2.1"), None);
    }
}
