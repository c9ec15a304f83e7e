//! The `media` phase (issues 14 and 15): media through a gateway process.
//!
//! Per run, on a fresh gateway with one linked company (its whatsapp-rust
//! HTTP client reaches the fake's plain-HTTP media host through
//! `WAGATE_TEST_PLAIN_LOOPBACK_HTTP`, a `test-server`-only switch; the upload
//! and download code is the release one):
//! - **send**: `CAP_MEDIA_SENDS` images of `CAP_MEDIA_MIB` MiB each, posted as
//!   `multipart/form-data` to `POST /v1/sessions/{company}/messages`,
//!   `CAP_MEDIA_CONCURRENCY` at a time. MiB/s = bytes / (first request →
//!   last answer); the gateway's `RssAnon` is sampled every 10 ms and its
//!   peak growth over the idle baseline compared with the bytes in flight
//!   (goal: under 3×). Every file is checked at the fake: one image per
//!   send, with the SHA-256 of what was posted.
//! - **download**: a contact sends `CAP_MEDIA_DOWNLOADS` images of the same
//!   size (encrypted and uploaded by the fake like a phone does); once each
//!   one's `message.received` reached the webhook sink, all are fetched through
//!   `GET /v1/sessions/{company}/messages/{id}/media`, the same concurrency
//!   at a time, each body's SHA-256 checked; MiB/s as above.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::Suite;
use crate::gateway::Gateway;
use crate::scenarios;

const COMPANY: &str = "media0";
const OWN_PHONE: &str = "15557770001";
const CONTACT: &str = "15557770002";

/// What the phase measures, from `CAP_MEDIA_*`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MediaPlan {
    pub sends: usize,
    pub downloads: usize,
    pub mib: usize,
    pub concurrency: usize,
}

impl MediaPlan {
    pub fn from_env() -> MediaPlan {
        MediaPlan {
            sends: crate::env_num("CAP_MEDIA_SENDS", 100),
            downloads: crate::env_num("CAP_MEDIA_DOWNLOADS", 20),
            mib: crate::env_num("CAP_MEDIA_MIB", 5),
            concurrency: crate::env_num("CAP_MEDIA_CONCURRENCY", 4),
        }
    }
}

/// `len` bytes that do not compress, different for each `seed`, starting
/// with a JPEG signature (the gateway takes the declared type; the bytes
/// only have to be a file).
fn image(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    while bytes.len() < len {
        // xorshift64: cheap, and enough to defeat any compression.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Samples `pid`'s `RssAnon` every 10 ms until stopped; the peak.
struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    fn start(pid: u32) -> PeakRss {
        let (stop, peak) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let task = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(crate::procs::rss_anon_kib(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        PeakRss { stop, peak, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// One media phase run on a fresh gateway.
async fn run_once(suite: &Suite, run: usize, plan: &MediaPlan) -> anyhow::Result<Value> {
    let dir = format!("media-{run}");
    let gw = suite.gateway(&dir).await?;
    gw.link(&suite.fake, COMPANY, OWN_PHONE).await?;
    gw.set_webhook(COMPANY, &suite.sink.url).await?;
    let baseline = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(2)).await;
    let send = sends(suite, &gw, run, plan, baseline).await?;
    let rss_after_sends = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(2)).await;
    let download = downloads(suite, &gw, run, plan, rss_after_sends).await?;
    gw.proc.kill().await;
    let _ = std::fs::remove_dir_all(suite.plan.work.join(dir));
    Ok(json!({
        "baseline_rss_anon_kib": baseline,
        "send": send,
        "download": download,
    }))
}

async fn sends(
    suite: &Suite,
    gw: &Gateway,
    run: usize,
    plan: &MediaPlan,
    baseline_kib: u64,
) -> anyhow::Result<Value> {
    let len = plan.mib << 20;
    let before = suite.fake.images_from(OWN_PHONE).await?.len();
    let peak = PeakRss::start(gw.proc.pid);
    let started = Instant::now();
    let mut expected = Vec::new();
    let mut in_flight = futures_util::stream::iter(0..plan.sends)
        .map(|i| {
            let file = image((run * 100_000 + i) as u64, len);
            let sha = hex_sha256(&file);
            let (content_type, body) = test_support::api::multipart(
                &[
                    ("to", CONTACT),
                    ("type", "image"),
                    ("mime_type", "image/jpeg"),
                ],
                &file,
                "image/jpeg",
                "photo.jpg",
            );
            drop(file);
            let request = gw
                .api
                .request(Method::POST, &format!("/v1/sessions/{COMPANY}/messages"))
                .header("content-type", content_type)
                .body(body);
            async move {
                let response = request.send().await?;
                let status = response.status();
                let answer = response.text().await.unwrap_or_default();
                anyhow::ensure!(status == StatusCode::CREATED, "send: {status} {answer}");
                anyhow::Ok(sha)
            }
        })
        .buffer_unordered(plan.concurrency);
    while let Some(sent) = in_flight.next().await {
        expected.push(sent?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let peak_kib = peak.finish().await;
    // The fake's contact decrypts after the server's ack: wait for all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received: Vec<String> = loop {
        let all = suite.fake.images_from(OWN_PHONE).await?;
        if all.len() >= before + plan.sends || Instant::now() >= deadline {
            break all[before..].to_vec();
        }
        // Polled: the fake is another process, its admin API has no wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    received.sort_unstable();
    expected.sort_unstable();
    anyhow::ensure!(
        received == expected,
        "the fake's contact got {} images, {} of them as sent",
        received.len(),
        received.iter().filter(|s| expected.contains(s)).count()
    );
    let in_flight_kib = (plan.concurrency * len / 1024) as u64;
    let growth = peak_kib.saturating_sub(baseline_kib);
    let result = json!({
        "files": plan.sends,
        "mib_each": plan.mib,
        "concurrency": plan.concurrency,
        "seconds": elapsed,
        "mib_per_s": (plan.sends * plan.mib) as f64 / elapsed,
        "peak_rss_anon_kib": peak_kib,
        "rss_growth_kib": growth,
        "in_flight_kib": in_flight_kib,
        "growth_per_in_flight": growth as f64 / in_flight_kib as f64,
    });
    eprintln!("  media send run {run}: {result}");
    Ok(result)
}

async fn downloads(
    suite: &Suite,
    gw: &Gateway,
    run: usize,
    plan: &MediaPlan,
    baseline_kib: u64,
) -> anyhow::Result<Value> {
    let len = plan.mib << 20;
    let mut files = Vec::new();
    for i in 0..plan.downloads {
        let file = image((run * 100_000 + 50_000 + i) as u64, len);
        let id = suite.fake.contact_image(CONTACT, OWN_PHONE, &file).await?;
        files.push((id, hex_sha256(&file)));
    }
    // Each is fetchable once its event is committed: wait for all of them
    // at the suite's webhook sink.
    let ids: std::collections::HashSet<String> = files.iter().map(|(id, _)| id.clone()).collect();
    let arrived = suite
        .sink
        .wait_until(Duration::from_secs(120), |log| {
            let seen: std::collections::HashSet<&str> = log
                .accepted
                .iter()
                .filter_map(|h| h.body["data"]["message_id"].as_str())
                .filter(|id| ids.contains(*id))
                .collect();
            seen.len() == ids.len()
        })
        .await;
    anyhow::ensure!(arrived, "not every inbound image reached the webhook");
    let peak = PeakRss::start(gw.proc.pid);
    let started = Instant::now();
    let mut fetches = futures_util::stream::iter(files.iter().cloned())
        .map(|(id, sha)| {
            let request = gw.api.request(
                Method::GET,
                &format!("/v1/sessions/{COMPANY}/messages/{id}/media"),
            );
            async move {
                let response = request.send().await?;
                let status = response.status();
                anyhow::ensure!(status == StatusCode::OK, "media {id}: {status}");
                let mut hasher = Sha256::new();
                let mut body = response.bytes_stream();
                while let Some(chunk) = body.next().await {
                    hasher.update(&chunk?);
                }
                let got = hex(&hasher.finalize());
                anyhow::ensure!(got == sha, "media {id}: wrong bytes");
                anyhow::Ok(())
            }
        })
        .buffer_unordered(plan.concurrency);
    while let Some(done) = fetches.next().await {
        done?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let peak_kib = peak.finish().await;
    let result = json!({
        "files": plan.downloads,
        "mib_each": plan.mib,
        "concurrency": plan.concurrency,
        "seconds": elapsed,
        "mib_per_s": (plan.downloads * plan.mib) as f64 / elapsed,
        "rss_growth_kib": peak_kib.saturating_sub(baseline_kib),
    });
    eprintln!("  media download run {run}: {result}");
    Ok(result)
}

/// The phase: `CAP_RUNS` runs, each on a fresh gateway.
pub async fn phase(suite: &mut Suite) -> anyhow::Result<()> {
    let plan = MediaPlan::from_env();
    let mut runs = Vec::new();
    for run in 0..suite.plan.runs {
        runs.push(run_once(suite, run, &plan).await?);
    }
    suite
        .raw
        .insert("media".into(), json!({"plan": plan, "runs": runs}));
    Ok(())
}

/// Encodes `bytes` for the fake's admin API.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
