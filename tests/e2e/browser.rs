//! Headless Chromium for the browser tests (the pairing page's and the
//! console's): chromedriver on a free port, a fresh profile, waits for
//! elements, screenshots, QR codes read from them.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
//! Without them [`Browser::start`] prints a loud notice and returns `None`,
//! unless `WAGATE_REQUIRE_BROWSER` is set (CI sets it): then it panics.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use test_support::WAIT;

/// How long a browser test waits for something to appear on the page.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// Waits until an element matching `css` exists on the page.
pub async fn wait_for(page: &Client, css: &str) -> fantoccini::elements::Element {
    page.wait()
        .at_most(PAGE_WAIT)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("`{css}` did not appear on the page: {err}"))
}

/// Writes to stderr past libtest's capture (which only catches `print!` and
/// `eprint!`), so the line shows in a normal `cargo test` run.
pub fn uncaptured(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `$CARGO_TARGET_TMPDIR/{name}`, created.
pub fn screenshot_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// Writes `png` as `{dir}/{name}.png`.
pub fn save(dir: &Path, name: &str, png: &[u8]) {
    std::fs::write(dir.join(format!("{name}.png")), png).expect("save a screenshot");
}

/// Headless Chromium behind `chromedriver`, with a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (after a loud notice) when Chromium or chromedriver is missing
    /// and `WAGATE_REQUIRE_BROWSER` is not set.
    pub async fn start() -> Option<Self> {
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let driver = find_program(&["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let message = "chromium and chromedriver are needed for the browser tests \
                           (apt-get install -y chromium chromium-driver)";
            if std::env::var_os("WAGATE_REQUIRE_BROWSER").is_some() {
                panic!("WAGATE_REQUIRE_BROWSER is set: {message}");
            }
            let bar = "!".repeat(78);
            uncaptured(&format!("\n{bar}\nSKIPPED: {message}\n{bar}\n"));
            return None;
        };

        // A free port for chromedriver; it reports readiness on stdout.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Its own process group, which the Chromium it starts joins: dropping
        // the `Browser` ends them all, also when a test fails half-way.
        let mut child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("started successfully") {
                    return true;
                }
            }
            false
        };
        assert!(
            tokio::time::timeout(WAIT, ready).await.unwrap_or(false),
            "chromedriver did not start"
        );
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let profile = tempfile::tempdir().expect("a browser profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--disable-crash-reporter",
                    "--disable-breakpad",
                    // A phone-sized window: the page must work there.
                    "--window-size=412,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session in headless Chromium");
        Some(Self {
            client,
            driver: child,
            _profile: profile,
        })
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            // The whole group: chromedriver and the browser it started.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The first of `names` found on `PATH`.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The text of the QR code in a PNG screenshot.
pub fn decode_qr(png: &[u8]) -> String {
    let image = image::load_from_memory(png)
        .expect("a PNG screenshot")
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the screenshot");
    let (_, content) = grids[0].decode().expect("a readable QR code");
    content
}
