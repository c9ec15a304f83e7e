//! The `wagate` release binary as its own process (built by cargo with the
//! `test-server` feature, so it accepts the fake server's certificate chain),
//! and the API calls the suite makes to it.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use test_support::api::Api;
use test_support::gateway::{ADMIN_KEY, WA_VERSION};
use test_support::webhook;

use crate::procs::{self, Proc};

/// CPU the gateway (and later the Baileys harness) runs on.
pub const GATEWAY_CPU: usize = 1;

pub struct Gateway {
    pub proc: Proc,
    pub api: Api,
    pub started: Instant,
}

/// The gateway binary: cargo's build of this tree, or `CAP_WAGATE_BIN` (to
/// compare builds, e.g. allocators, with the same suite binary).
fn binary() -> std::path::PathBuf {
    std::env::var_os("CAP_WAGATE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_wagate").into())
}

impl Gateway {
    /// Starts wagate over `data_dir` against the fake at `ws_url`, with
    /// `extra` environment variables (settings), and waits until it answers
    /// `/healthz` (stored sessions restore in the background from there on).
    pub async fn start_with_env(
        data_dir: &Path,
        ws_url: &str,
        log: &Path,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Gateway> {
        let port = procs::free_port()?;
        let (major, minor, patch) = WA_VERSION;
        let args: Vec<String> = [
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
            "--wa-url",
            ws_url,
            "--wa-version",
            &format!("{major}.{minor}.{patch}"),
            "--data-dir",
            &data_dir.display().to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let started = Instant::now();
        let mut env = vec![
            ("WAGATE_ADMIN_KEY", ADMIN_KEY.to_owned()),
            // One info line per session transition is a lot at 10,000.
            (
                "RUST_LOG",
                std::env::var("CAP_WAGATE_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
            // Every idle session pings after 20 s of silence (checked
            // every 5 s), so a hold of a minute sees each one's
            // keepalive round trip at least twice.
            ("WAGATE_WATCHDOG_INTERVAL_MS", "5000".to_owned()),
            ("WAGATE_WATCHDOG_IDLE_MS", "20000".to_owned()),
            // Media to the fake's plain-HTTP media host (loopback only;
            // a `test-server` build's switch: src/wa/plain_loopback.rs).
            ("WAGATE_TEST_PLAIN_LOOPBACK_HTTP", "1".to_owned()),
            // The webhook sink is on loopback.
            ("WAGATE_ALLOW_PRIVATE_URLS", "true".to_owned()),
            // The send phases measure the gateway, not its rate limit.
            ("WAGATE_SEND_RATE_PER_MINUTE", "1000000".to_owned()),
            ("WAGATE_SEND_BURST", "1000000".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        let proc = procs::spawn_pinned(
            "wagate",
            Some(GATEWAY_CPU),
            &binary(),
            &args,
            &env,
            procs::Stdout::File(log.to_path_buf()),
            log,
        )?;
        let api = Api::new(format!("http://127.0.0.1:{port}"), Some(ADMIN_KEY));
        let gateway = Gateway { proc, api, started };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = gateway
                .api
                .request(Method::GET, "/healthz")
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(gateway);
            }
            anyhow::ensure!(Instant::now() < deadline, "wagate did not come up");
            // Polled: this gateway logs warnings only, to a file, so there is
            // no "serving" line to wait on (see test_support::process).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates `company`, has the fake phone `phone` scan its QR code, and
    /// waits (on the company's event stream) until it is `connected`.
    pub async fn link(
        &self,
        fake: &crate::fake::Fake,
        company: &str,
        phone: &str,
    ) -> anyhow::Result<()> {
        self.api.ensure(company).await;
        let mut events = self.api.events(company).await;
        let qr = events.next_qr().await;
        fake.scan_qr(phone, &qr).await?;
        events.wait_for_state("connected").await;
        Ok(())
    }

    /// Points `company`'s webhook at `url` (message events only), signed with
    /// the receiver's [`webhook::SECRET`].
    pub async fn set_webhook(&self, company: &str, url: &str) -> anyhow::Result<()> {
        let (status, body) = self
            .api
            .call(
                Method::PUT,
                &format!("/v1/sessions/{company}/webhook"),
                Some(
                    json!({"url": url, "secret": webhook::SECRET, "events": ["message.received"]}),
                ),
            )
            .await;
        anyhow::ensure!(status == StatusCode::OK, "webhook: {status} {body}");
        Ok(())
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = self
            .api
            .request(Method::GET, "/metrics")
            .send()
            .await?
            .text()
            .await?;
        Ok(Metrics(text))
    }
}

/// A Prometheus text exposition, read by metric name and label.
pub struct Metrics(pub String);

impl Metrics {
    /// Sum of every sample of `name` whose labels contain `label` (e.g.
    /// `outcome="ok"`; empty = all).
    pub fn sum(&self, name: &str, label: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, labels) = match series.split_once('{') {
                    Some((m, labels)) => (m, labels),
                    None => (series, ""),
                };
                (metric == name && labels.contains(label))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }

    /// The bucket bound under which `q` (0–1) of a histogram's observations
    /// fall (all label sets merged): an upper bound of that quantile.
    pub fn histogram_quantile(&self, name: &str, q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for line in self.0.lines().filter(|l| l.starts_with(&bucket)) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Some(le) = series
                .split("le=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
            else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = value.parse().ok()?;
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += count,
                None => buckets.push((le, count)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        buckets
            .iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(le, _)| *le)
    }
}
