//! The wagate measurements: linking, restore after `SIGKILL`, send latency
//! at open-loop rates, inbound throughput to the webhook, create → QR.
//! Each returns plain figures; `main` repeats them and builds the report.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use test_support::api::Api;
use test_support::webhook::Receiver;

use crate::fake::Fake;
use crate::gateway::Gateway;
use crate::stats::percentile;

/// Company id and fictitious phone number (`1555P` + 6 digits) of the
/// `i`-th tenant of a series; `prefix` is one digit, so series never share a
/// phone.
pub fn tenant(series: &str, prefix: u64, i: usize) -> (String, String) {
    (
        format!("{series}{i}"),
        (15_550_000_000 + prefix * 1_000_000 + i as u64).to_string(),
    )
}

/// Links tenants `range` of `series`, `concurrency` at a time.
pub async fn link_range(
    gw: &Gateway,
    fake: &Fake,
    series: &str,
    prefix: u64,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let failures: Vec<anyhow::Error> = futures_util::stream::iter(range)
        .map(|i| async move {
            let (company, phone) = tenant(series, prefix, i);
            gw.link(fake, &company, &phone).await
        })
        .buffer_unordered(concurrency)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    match failures.first() {
        None => Ok(()),
        Some(e) => anyhow::bail!("{} links failed, first: {e:#}", failures.len()),
    }
}

pub fn phones(prefix: u64, n: usize) -> HashSet<String> {
    (0..n).map(|i| tenant("", prefix, i).1).collect()
}

/// `RssAnon` once the process is quiet: the median of three samples a second
/// apart, after `settle`.
pub async fn settled_rss_kib(pid: u32, settle: Duration) -> u64 {
    tokio::time::sleep(settle).await;
    let mut samples = Vec::new();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        samples.push(crate::procs::rss_anon_kib(pid));
    }
    samples.sort_unstable();
    samples[1]
}

/// Time from process start until 50 / 90 / 100 % of `phones` are logged in
/// at the fake, and CPU seconds of the process at 100 %.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restore {
    pub n: usize,
    pub t50_s: f64,
    pub t90_s: f64,
    pub t100_s: f64,
    pub cpu_s: f64,
    /// Logged in when the time limit ran out (= n when complete).
    pub live: usize,
}

/// Watches the fake until every device of `phones` is logged in (or `limit`).
pub async fn watch_restore(
    fake: &Fake,
    phones: Option<&HashSet<String>>,
    n: usize,
    started: Instant,
    pid: u32,
    limit: Duration,
) -> anyhow::Result<Restore> {
    watch_restore_until(
        fake,
        phones,
        n,
        started,
        pid,
        limit,
        &AtomicBool::new(false),
    )
    .await
}

/// [`watch_restore`] that also ends when `stop` is set: the client has
/// reported that some tenants failed, so 100 % will never come and waiting
/// out `limit` would only stall the suite (`t100_s` stays NaN, `live` says
/// how many made it).
pub async fn watch_restore_until(
    fake: &Fake,
    phones: Option<&HashSet<String>>,
    n: usize,
    started: Instant,
    pid: u32,
    limit: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<Restore> {
    let (mut t50, mut t90, mut t100) = (f64::NAN, f64::NAN, f64::NAN);
    let mut live = 0;
    let mut cpu_s = f64::NAN;
    while started.elapsed() < limit {
        // Read before polling, so the last poll after a stop still counts.
        let stopping = stop.load(Ordering::Acquire);
        live = fake.live(phones).await?;
        let t = started.elapsed().as_secs_f64();
        if t50.is_nan() && live * 2 >= n {
            t50 = t;
        }
        if t90.is_nan() && live * 10 >= n * 9 {
            t90 = t;
        }
        if live >= n {
            t100 = t;
            cpu_s = crate::procs::cpu_seconds(pid);
            break;
        }
        if stopping {
            break;
        }
        // Sampled, not awaited: the fake is another process and reports
        // logins only through its admin API; 50 ms is the figures' resolution.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Restore {
        n,
        t50_s: t50,
        t90_s: t90,
        t100_s: t100,
        cpu_s,
        live,
    })
}

/// One open-loop send run at `rate` msg/s.
#[derive(Debug, Clone, Serialize)]
pub struct SendRun {
    pub rate: f64,
    pub sent: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Completions per second over the run (first due time → last answer).
    pub achieved_rate: f64,
}

impl SendRun {
    /// Kept up: no errors, ≥ 95 % of the offered rate completed, p99 ≤ 100 ms.
    pub fn sustained(&self) -> bool {
        self.errors == 0 && self.achieved_rate >= 0.95 * self.rate && self.p99_ms <= 100.0
    }
}

/// Recipients of the send benchmark (fake contacts).
const RECIPIENTS: usize = 20;

fn recipient(j: usize) -> String {
    (15_559_100_000 + j as u64).to_string()
}

/// One send per (company, recipient) pair, so the measured sends reuse
/// established Signal sessions (the first message to a contact also fetches
/// its devices and prekeys).
pub async fn warm_up_sends(api: &Api, companies: &[String]) -> usize {
    let pairs: Vec<(String, String)> = companies
        .iter()
        .flat_map(|c| (0..RECIPIENTS).map(move |j| (c.clone(), recipient(j))))
        .collect();
    futures_util::stream::iter(pairs)
        .map(|(c, to)| async move { send(api, &c, &to, "warm-up").await.is_ok() })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await
}

async fn send(api: &Api, company: &str, to: &str, text: &str) -> anyhow::Result<()> {
    let response = api
        .request(
            reqwest::Method::POST,
            &format!("/v1/sessions/{company}/messages"),
        )
        .json(&json!({"to": to, "text": text}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "{}", response.status());
    Ok(())
}

/// Sends at `rate` msg/s for `seconds`, open loop: request `k` is due at
/// `t0 + k / rate` whatever earlier ones do, and its latency counts from that
/// due time (no coordinated omission). Requests rotate over `companies` and
/// the recipients.
pub async fn open_loop_sends(api: &Api, companies: &[String], rate: f64, seconds: f64) -> SendRun {
    let total = (rate * seconds).round() as usize;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        let due = t0 + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due).await;
        let api = api.clone();
        let company = companies[k % companies.len()].clone();
        let to = recipient((k / companies.len()) % RECIPIENTS);
        tasks.spawn(async move {
            let ok = send(&api, &company, &to, &format!("bench {k}"))
                .await
                .is_ok();
            (due.elapsed(), ok, tokio::time::Instant::now())
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    let mut last = t0;
    while let Some(done) = tasks.join_next().await {
        let Ok((latency, ok, at)) = done else {
            errors += 1;
            continue;
        };
        last = last.max(at);
        if ok {
            latencies.push(latency.as_secs_f64() * 1000.0);
        } else {
            errors += 1;
        }
    }
    let span = last.saturating_duration_since(t0).as_secs_f64().max(1e-9);
    SendRun {
        rate,
        sent: total,
        errors,
        p50_ms: percentile(&mut latencies, 50.0),
        p99_ms: percentile(&mut latencies, 99.0),
        max_ms: latencies.iter().copied().fold(f64::NAN, f64::max),
        achieved_rate: (total - errors) as f64 / span,
    }
}

/// One inbound run: `contacts` fake contacts each send `per_contact` texts
/// (one after the other, so every chat stays ordered) to the linked phone;
/// msg/s = texts / (first send → last webhook ack at the sink).
#[derive(Debug, Clone, Serialize)]
pub struct InboundRun {
    pub messages: usize,
    pub contacts: usize,
    pub msgs_per_s: f64,
    /// How fast the fake accepted the contacts' texts.
    pub offered_per_s: f64,
    pub complete: bool,
}

pub async fn inbound(
    fake: &Fake,
    sink: &Receiver,
    phone: &str,
    tag: &str,
    contacts: usize,
    per_contact: usize,
) -> anyhow::Result<InboundRun> {
    sink.clear();
    let total = contacts * per_contact;
    let started = Instant::now();
    let sends = (0..contacts).map(|c| async move {
        let from = (15_559_200_000 + c as u64).to_string();
        for i in 0..per_contact {
            fake.contact_text(&from, phone, &format!("{tag}-{c}-{i}"))
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    });
    for result in futures_util::future::join_all(sends).await {
        result?;
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    let complete = sink
        .wait_until(Duration::from_secs(300), |log| {
            log.first_arrival.len() >= total
        })
        .await;
    let (last, received) = sink.with_log(|log| (log.last_arrival(), log.first_arrival.len()));
    let last = last.unwrap_or_else(Instant::now);
    Ok(InboundRun {
        messages: total,
        contacts,
        msgs_per_s: received as f64 / last.duration_since(started).as_secs_f64(),
        offered_per_s: offered,
        complete,
    })
}

/// Create → first QR on the company's event stream.
pub async fn create_to_qr(api: &Api, company: &str) -> f64 {
    let started = Instant::now();
    api.ensure(company).await;
    let mut events = api.events(company).await;
    events.next_qr().await;
    started.elapsed().as_secs_f64() * 1000.0
}

/// Create → QR: `single` sequential companies, then `burst` at once.
pub async fn create_to_qr_run(api: &Api, run: usize, single: usize, burst: usize) -> Value {
    create_to_qr(api, &format!("warm{run}")).await;
    let mut singles = Vec::with_capacity(single);
    for i in 0..single {
        singles.push(create_to_qr(api, &format!("s{run}x{i}")).await);
    }
    let started = Instant::now();
    let names: Vec<String> = (0..burst).map(|i| format!("b{run}x{i}")).collect();
    let api = Arc::new(api.clone());
    let mut bursts = futures_util::future::join_all(names.iter().map(|c| {
        let api = api.clone();
        async move { create_to_qr(&api, c).await }
    }))
    .await;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    json!({
        "single_p50_ms": percentile(&mut singles, 50.0),
        "single_p99_ms": percentile(&mut singles, 99.0),
        "burst_p50_ms": percentile(&mut bursts, 50.0),
        "burst_p99_ms": percentile(&mut bursts, 99.0),
        "burst_last_ms": wall_ms,
    })
}
