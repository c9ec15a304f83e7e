//! The WhatsApp Web version: resolved once per process from a version URL
//! (the fake's `GET /sw.js`), cached in the store, used by every session;
//! the cached or compiled-in version when the URL is unreachable; an explicit
//! `--wa-version` wins; an `outdated` failure refreshes it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fakewa::{DEFAULT_REVISION, FakeServer, StreamErrorKind};
use reqwest::StatusCode;
use test_support::fake::start_fake;
use test_support::gateway::{init_logging, reopen, spawn_app_with};
use test_support::process::GatewayProcess;
use test_support::wait::poll;
use wagate::wa::version::{COMPILED_IN, SETTING, show};

const PHONES: [&str; 3] = ["15550003001", "15550003002", "15550003003"];

fn version_url(fake: &FakeServer) -> String {
    format!("{}/sw.js", fake.http_url())
}

/// A loopback URL nothing listens on (the port was just released).
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/sw.js")
}

/// The `wagate` binary over `dir` (restarts need a process: the store's
/// file lock goes with it), resolving its version from `url`.
async fn start(fake: &FakeServer, dir: &Path, url: String) -> GatewayProcess {
    GatewayProcess::start_with(crate::WAGATE, fake, dir, |command| {
        command
            .env_remove("WAGATE_WA_VERSION")
            .arg("--wa-version-url")
            .arg(url);
    })
    .await
}

fn logins_with(fake: &FakeServer, version: &str) -> usize {
    fake.web_version().logins.get(version).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_and_a_restore_fetch_the_version_once() {
    init_logging();
    let fake = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let served = format!("2.3000.{DEFAULT_REVISION}");

    let first = start(&fake, dir.path(), version_url(&fake)).await;
    for (i, phone) in PHONES.iter().enumerate() {
        first.api.link_by_qr(&fake, &format!("co-{i}"), phone).await;
    }
    for i in 0..5 {
        first.api.ensure(&format!("pairing-{i}")).await;
        first
            .api
            .wait_for_state(&format!("pairing-{i}"), "pairing")
            .await;
    }
    let report = fake.web_version();
    assert_eq!(report.fetches, 1, "one fetch for the process: {report:?}");
    assert_eq!(
        report.logins.keys().collect::<Vec<_>>(),
        [&served],
        "every connection announced the fetched version: {report:?}"
    );
    first.kill().await;

    // A restore of every linked session reads the cached version.
    let second = start(&fake, dir.path(), version_url(&fake)).await;
    for i in 0..PHONES.len() {
        second
            .api
            .wait_for_state(&format!("co-{i}"), "connected")
            .await;
    }
    assert_eq!(fake.web_version().fetches, 1, "the restart used the cache");
    second.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_source_falls_back_to_the_cached_version() {
    init_logging();
    let fake = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    fake.set_web_revision(555);
    let first = start(&fake, dir.path(), version_url(&fake)).await;
    first.api.link_by_qr(&fake, "acme", PHONES[0]).await;
    first.kill().await;
    let cached_logins = logins_with(&fake, "2.3000.555");
    assert!(cached_logins > 0);

    // The cached version is a day old (so the start tries the source), the
    // source is unreachable, and WhatsApp has moved on meanwhile.
    let store = reopen(dir.path()).await;
    store.put_setting(SETTING, b"2.3000.555@1").unwrap();
    drop(store);
    fake.set_web_revision(999);
    let second = start(&fake, dir.path(), unreachable_url()).await;
    second.api.wait_for_state("acme", "connected").await;
    assert!(
        second
            .log_text()
            .contains("fetching the WhatsApp Web version failed; using the last fetched one"),
        "a warning names the fallback: {}",
        second.log_text()
    );
    assert!(logins_with(&fake, "2.3000.555") > cached_logins);
    assert_eq!(logins_with(&fake, "2.3000.999"), 0);
    assert_eq!(
        fake.web_version().fetches,
        1,
        "only the first start fetched"
    );
    second.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_cached_and_an_unreachable_source_use_the_compiled_in_version() {
    let fake = start_fake().await;
    let url = unreachable_url();
    let app = spawn_app_with(fake.clone(), |config| {
        config.wa_version = None;
        config.wa_version_url = Some(url);
    })
    .await;
    app.api.ensure("acme").await;
    app.api.wait_for_state("acme", "pairing").await;
    assert!(
        logins_with(&fake, &show(COMPILED_IN)) > 0,
        "{:?}",
        fake.web_version()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_version_wins() {
    let fake = start_fake().await;
    let url = version_url(&fake);
    let app = spawn_app_with(fake.clone(), |config| {
        config.wa_version = Some((2, 3000, 4242));
        config.wa_version_url = Some(url);
    })
    .await;
    app.api.ensure("acme").await;
    app.api.wait_for_state("acme", "pairing").await;
    let report = fake.web_version();
    assert_eq!(report.fetches, 0, "{report:?}");
    assert_eq!(report.logins.keys().collect::<Vec<_>>(), ["2.3000.4242"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outdated_client_refreshes_the_version() {
    let fake: Arc<FakeServer> = start_fake().await;
    let url = version_url(&fake);
    let app = spawn_app_with(fake.clone(), |config| {
        config.wa_version = None;
        config.wa_version_url = Some(url);
    })
    .await;
    app.api.link_by_qr(&fake, "acme", PHONES[0]).await;
    assert_eq!(fake.web_version().fetches, 1);

    fake.set_web_revision(2000);
    let mut events = app.api.events("acme").await;
    fake.inject_stream_error(PHONES[0], StreamErrorKind::Outdated)
        .await
        .unwrap();
    events.wait_for_state("outdated").await;
    // The refresh runs in the background; nothing signals its end.
    poll("the version refresh", Duration::from_millis(20), || async {
        (fake.web_version().fetches == 2).then_some(())
    })
    .await;

    let (status, body) = app.api.post("/v1/sessions/acme/reconnect", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    events.wait_for_state("connected").await;
    assert!(
        logins_with(&fake, "2.3000.2000") > 0,
        "{:?}",
        fake.web_version()
    );
    app.stop().await;
}
