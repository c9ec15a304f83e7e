//! Capacity and speed suite (issue 8): wagate measured beside Baileys on the
//! same fake WhatsApp server, in one run.
//!
//! `cargo bench --bench capacity --features test-server`
//!
//! Processes (each pinned with `taskset` on a 2-core machine):
//! - the fake WhatsApp server (this binary re-run with `--serve-fake`), CPU 0;
//! - this orchestrator and the webhook sink, CPU 0;
//! - `wagate` (the release binary, `test-server` feature), CPU 1;
//! - the Baileys harness (`benches/baileys/harness.mjs`), CPU 1, only while
//!   no gateway runs — the two never share the core or the fake.
//!
//! Phases (`CAP_PHASES`, default `qr,restore,ladder,baileys`):
//! - `qr`: create → QR latency, 50 sequential creates and a burst of 200, on a
//!   fresh gateway per run;
//! - `restore`: link `CAP_RESTORE_N` companies, `SIGKILL`, then per run copy
//!   that data directory, start wagate on it and time until the fake has seen
//!   50/90/100 % of them logged in (and the gateway's CPU seconds); on each
//!   restored gateway, the send latency at `CAP_RATES` (open loop) plus a
//!   probe of higher rates for the maximum sustainable one, and the inbound
//!   throughput to the webhook sink; then (when `baileys` runs too) the same
//!   link, `SIGKILL` and `CAP_RUNS` restores at `CAP_BAILEYS_RESTORE_N`, the
//!   size the Baileys side can pair in reasonable time, for the ratio;
//! - `ladder`: one gateway linked up to each of `CAP_SIZES` in turn, `RssAnon`
//!   sampled at each size and fitted by least squares (marginal KiB per
//!   linked, connected, idle session), a health check at each size (every
//!   session connected, all logged in at the fake, no failed keepalive, no
//!   reconnect), a hold of `CAP_HOLD_S` at the largest size, then `SIGKILL`
//!   and one restore of the whole ladder;
//! - `media` (not in the default list; `CAP_PHASES=media`): 100 images of
//!   5 MiB sent through the API and 20 downloaded from it, MiB/s and the
//!   gateway's peak memory growth (`media.rs`);
//! - `contacts` (not in the default list; `CAP_PHASES=contacts`): one linked
//!   session hearing from `CAP_CONTACTS` (50,000) distinct contacts, each
//!   from its LID with its phone number, `RssAnon` every `CAP_CONTACTS_STEP`
//!   (5,000), with whatsapp-rust's cache sizes and with wagate's
//!   (`contacts.rs`);
//! - `baileys`: the same through the harness (`baileys.rs`) — RssAnon as
//!   linked with memory auth at each of `CAP_BAILEYS_SIZES` and with file
//!   auth at each of `CAP_BAILEYS_FILE_SIZES`; `CAP_BAILEYS_RESTORE_N`
//!   file-auth tenants (linked `CAP_BAILEYS_FILE_BATCH` per process)
//!   `SIGTERM`ed and restored in one process `CAP_RUNS` times, and the
//!   restored RssAnon per session; create → QR,
//!   send latency and inbound rate, `CAP_RUNS` times. Each step that fails
//!   is recorded in its place and the phase goes on.
//!
//! Writes `benches/results/latest.json` (`CAP_OUT`) and prints the markdown
//! tables of `BENCHMARKS.md` and each phase's duration. Other knobs:
//! `CAP_RUNS` (5), `CAP_HOLD_S`, `CAP_LINK_CONCURRENCY`, `CAP_RATE_SECONDS`,
//! `CAP_PROBE_RATES`, `CAP_INBOUND_MESSAGES`, `CAP_QR_SINGLE`,
//! `CAP_QR_BURST`, `CAP_BAILEYS_SIZES` (100,300,1000), `CAP_BAILEYS_FILE_SIZES`
//! (50,100), `CAP_BAILEYS_FILE_BATCH` (100), `CAP_BAILEYS_RESTORE_N`
//! (300), `CAP_BAILEYS_FILE_CONCURRENCY` (10), `CAP_BAILEYS_TIMEOUT_S`,
//! `CAP_BAILEYS_INBOUND_RATE`, `CAP_NODE_HEAP_MIB` (16384: Node's default
//! heap limit of ≈4 GiB is what pairing 300 file-auth tenants ran out of),
//! `CAP_WORK` (scratch directory, emptied first).
//!
//! Under `cargo test --benches` (no `--bench` argument) it only prints how to
//! run it: the suite takes minutes and needs release builds.

mod baileys;
mod contacts;
mod fake;
mod gateway;
mod media;
mod procs;
mod report;
mod scenarios;
mod stats;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use fake::Fake;
use gateway::Gateway;
use scenarios::SendRun;
use test_support::webhook::Receiver;

/// What to measure, from `CAP_*` environment variables.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub phases: Vec<String>,
    pub runs: usize,
    pub sizes: Vec<usize>,
    pub restore_n: usize,
    pub hold_s: u64,
    pub link_concurrency: usize,
    pub rates: Vec<f64>,
    pub probe_rates: Vec<f64>,
    pub rate_seconds: f64,
    pub inbound_messages: usize,
    pub inbound_contacts: usize,
    pub qr_single: usize,
    pub qr_burst: usize,
    /// Sizes of the Baileys memory-auth `link` points (one process each).
    pub baileys_sizes: Vec<usize>,
    /// Sizes of the Baileys file-auth `link` points (one process each; see
    /// `baileys_file_batch` for why they stay small).
    pub baileys_file_sizes: Vec<usize>,
    /// File-auth tenants one harness process pairs when linking the
    /// restore's `baileys_restore_n` (Baileys on Node 20 pairs ever more
    /// slowly as one process holds more sockets).
    pub baileys_file_batch: usize,
    /// N of the restore compared with Baileys (both sides restore this many).
    pub baileys_restore_n: usize,
    /// Tenants pairing at once in a file-auth `link` (Baileys' file store
    /// writes 818 files per pairing on one event loop; see the harness README).
    pub baileys_file_link_concurrency: usize,
    /// Harness deadline for every tenant to open, seconds.
    pub baileys_timeout_s: u64,
    /// Offered rate of the Baileys inbound run, msg/s.
    pub baileys_inbound_rate: f64,
    /// V8 old-space limit of the harness (`node --max-old-space-size`), MiB.
    pub node_heap_mib: u64,
    pub work: PathBuf,
    pub out: PathBuf,
}

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Plan {
    fn from_env() -> Plan {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Plan {
            phases: env_list("CAP_PHASES", "qr,restore,ladder,baileys"),
            runs: env_num("CAP_RUNS", 5usize).max(1),
            sizes: env_list("CAP_SIZES", "100,1000,5000,10000"),
            restore_n: env_num("CAP_RESTORE_N", 1000),
            hold_s: env_num("CAP_HOLD_S", 60),
            link_concurrency: env_num("CAP_LINK_CONCURRENCY", 16usize).max(1),
            rates: env_list("CAP_RATES", "50,200,500"),
            probe_rates: env_list("CAP_PROBE_RATES", "1000,1500,2000,3000"),
            rate_seconds: env_num("CAP_RATE_SECONDS", 5.0),
            inbound_messages: env_num("CAP_INBOUND_MESSAGES", 4000),
            inbound_contacts: env_num("CAP_INBOUND_CONTACTS", 8usize).max(1),
            qr_single: env_num("CAP_QR_SINGLE", 50usize).max(1),
            qr_burst: env_num("CAP_QR_BURST", 200usize).max(1),
            baileys_sizes: env_list("CAP_BAILEYS_SIZES", "100,300,1000"),
            baileys_file_sizes: env_list("CAP_BAILEYS_FILE_SIZES", "50,100"),
            baileys_file_batch: env_num("CAP_BAILEYS_FILE_BATCH", 100usize).max(1),
            baileys_restore_n: env_num("CAP_BAILEYS_RESTORE_N", 300),
            baileys_file_link_concurrency: env_num("CAP_BAILEYS_FILE_CONCURRENCY", 10usize).max(1),
            baileys_timeout_s: env_num("CAP_BAILEYS_TIMEOUT_S", 900),
            baileys_inbound_rate: env_num("CAP_BAILEYS_INBOUND_RATE", 1000.0),
            node_heap_mib: env_num("CAP_NODE_HEAP_MIB", 16384),
            work: std::env::var_os("CAP_WORK")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("wagate-capacity")),
            out: std::env::var_os("CAP_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|| manifest.join("benches/results/latest.json")),
        }
    }
}

/// What the suite shares between phases.
pub struct Suite {
    pub plan: Plan,
    pub fake: Fake,
    /// The webhook receiver the inbound runs deliver to.
    pub sink: Receiver,
    /// Everything measured, keyed by phase (becomes `latest.json`'s `raw`).
    pub raw: serde_json::Map<String, Value>,
}

impl Suite {
    fn log(&self, name: &str) -> PathBuf {
        self.plan.work.join(format!("{name}.log"))
    }

    async fn gateway(&self, dir: &str) -> anyhow::Result<Gateway> {
        self.gateway_with_env(dir, &[]).await
    }

    /// [`Suite::gateway`] with `env` added to its environment (settings).
    async fn gateway_with_env(&self, dir: &str, env: &[(&str, String)]) -> anyhow::Result<Gateway> {
        Gateway::start_with_env(
            &self.plan.work.join(dir),
            &self.fake.ws_url(),
            &self.log("wagate"),
            env,
        )
        .await
    }

    /// `SIGKILL` the gateway and wait until the fake has seen every one of
    /// its sessions go.
    async fn kill(&self, gw: Gateway, phones: &HashSet<String>) -> anyhow::Result<()> {
        gw.proc.kill().await;
        self.fake
            .wait_live(Some(phones), Duration::from_secs(60), |n| n == 0)
            .await?;
        Ok(())
    }

    /// Create → QR on a fresh gateway per run.
    async fn phase_qr(&mut self) -> anyhow::Result<()> {
        let mut runs = Vec::new();
        for run in 0..self.plan.runs {
            let dir = format!("qr-{run}");
            let gw = self.gateway(&dir).await?;
            let result =
                scenarios::create_to_qr_run(&gw.api, run, self.plan.qr_single, self.plan.qr_burst)
                    .await;
            eprintln!("  qr run {run}: {result}");
            runs.push(result);
            gw.proc.kill().await;
            let _ = std::fs::remove_dir_all(self.plan.work.join(dir));
        }
        self.raw.insert("create_to_qr".into(), Value::Array(runs));
        Ok(())
    }

    /// Links tenants `0..n` of `series` on a fresh gateway over `dir`, then
    /// `SIGKILL`s it: the data directory later restores are copied from.
    /// Also the gateway's RssAnon before any session and once linked.
    async fn link_and_kill(
        &self,
        dir: &str,
        series: &str,
        prefix: u64,
        n: usize,
    ) -> anyhow::Result<Value> {
        let phones = scenarios::phones(prefix, n);
        let gw = self.gateway(dir).await?;
        let baseline = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(2)).await;
        let started = Instant::now();
        scenarios::link_range(
            &gw,
            &self.fake,
            series,
            prefix,
            0..n,
            self.plan.link_concurrency,
        )
        .await?;
        let link_s = started.elapsed().as_secs_f64();
        self.fake
            .wait_live(Some(&phones), Duration::from_secs(60), |l| l >= n)
            .await?;
        let rss_linked = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(3)).await;
        eprintln!("  linked {n} in {link_s:.1} s, RssAnon {rss_linked} KiB (empty {baseline} KiB)");
        self.kill(gw, &phones).await?;
        Ok(json!({
            "n": n,
            "link_s": link_s,
            "rss_anon_kib_linked": rss_linked,
            "baseline_rss_anon_kib": baseline,
        }))
    }

    /// Copies the `linked` data directory to `dir`, starts wagate on it and
    /// times the restore of its `n` sessions (`phones`) at the fake; the
    /// gateway is left running for the caller.
    async fn restore_copy(
        &self,
        linked: &str,
        dir: &str,
        phones: &HashSet<String>,
        n: usize,
    ) -> anyhow::Result<(Gateway, Value)> {
        procs::copy_dir(&self.plan.work.join(linked), &self.plan.work.join(dir))?;
        let gw = self.gateway(dir).await?;
        let restore = scenarios::watch_restore(
            &self.fake,
            Some(phones),
            n,
            gw.started,
            gw.proc.pid,
            Duration::from_secs(300),
        )
        .await?;
        let rss = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(2)).await;
        eprintln!("  restore {n}, {dir}: {restore:?}, RssAnon {rss} KiB");
        Ok((gw, json!({"restore": restore, "rss_anon_kib": rss})))
    }

    /// Restore of `restore_n` after `SIGKILL`, with send and inbound runs on
    /// each restored gateway; then the restore at Baileys' N.
    async fn phase_restore(&mut self) -> anyhow::Result<()> {
        let n = self.plan.restore_n;
        let phones = scenarios::phones(3, n);
        let linked = self.link_and_kill("restore-linked", "r", 3, n).await?;

        let companies: Vec<String> = (0..n.min(10))
            .map(|i| scenarios::tenant("r", 3, i).0)
            .collect();
        let inbound_phone = scenarios::tenant("r", 3, 0).1;
        let (mut restores, mut sends, mut inbounds) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..self.plan.runs {
            let dir = format!("restore-{run}");
            let (gw, restore) = self
                .restore_copy("restore-linked", &dir, &phones, n)
                .await?;
            restores.push(restore);

            let failed_warmups = scenarios::warm_up_sends(&gw.api, &companies).await;
            let mut run_sends: Vec<SendRun> = Vec::new();
            for rate in &self.plan.rates {
                let r =
                    scenarios::open_loop_sends(&gw.api, &companies, *rate, self.plan.rate_seconds)
                        .await;
                eprintln!("    send {r:?}");
                run_sends.push(r);
            }
            let mut max_sustained = self
                .plan
                .rates
                .iter()
                .zip(&run_sends)
                .filter(|(_, r)| r.sustained())
                .map(|(rate, _)| *rate)
                .fold(0.0, f64::max);
            for rate in &self.plan.probe_rates {
                let r =
                    scenarios::open_loop_sends(&gw.api, &companies, *rate, self.plan.rate_seconds)
                        .await;
                eprintln!("    probe {r:?}");
                let ok = r.sustained();
                run_sends.push(r);
                if !ok {
                    break;
                }
                max_sustained = max_sustained.max(*rate);
            }
            sends.push(json!({"failed_warmups": failed_warmups, "runs": run_sends, "max_sustained_rate": max_sustained}));

            gw.set_webhook(&companies[0], &self.sink.url).await?;
            let per_contact = self.plan.inbound_messages / self.plan.inbound_contacts;
            let inbound = scenarios::inbound(
                &self.fake,
                &self.sink,
                &inbound_phone,
                &format!("in{run}"),
                self.plan.inbound_contacts,
                per_contact,
            )
            .await?;
            eprintln!("    inbound {inbound:?}");
            inbounds.push(inbound);
            self.kill(gw, &phones).await?;
            let _ = std::fs::remove_dir_all(self.plan.work.join(dir));
        }
        let mut restore = linked;
        restore["runs"] = Value::Array(restores);
        self.raw.insert("restore".into(), restore);
        self.raw.insert("send".into(), Value::Array(sends));
        self.raw
            .insert("inbound".into(), serde_json::to_value(inbounds)?);

        // The same N as Baileys' restore, for the ratio (the runs above
        // serve when the sizes match).
        let bn = self.plan.baileys_restore_n;
        if self.plan.phases.iter().any(|p| p == "baileys") && bn > 0 && bn != n {
            let result = self.restore_at(bn).await;
            let value = result.unwrap_or_else(|e| {
                eprintln!("  restore of {bn} failed: {e:#}");
                json!({"n": bn, "error": format!("{e:#}")})
            });
            self.raw.insert("restore_at_baileys_n".into(), value);
        }
        Ok(())
    }

    /// Link `n` on a fresh gateway, `SIGKILL`, then `CAP_RUNS` restores from
    /// copies (times and CPU-seconds only).
    async fn restore_at(&self, n: usize) -> anyhow::Result<Value> {
        let phones = scenarios::phones(4, n);
        let mut value = self.link_and_kill("restore-b-linked", "rb", 4, n).await?;
        let mut runs = Vec::new();
        for run in 0..self.plan.runs {
            let dir = format!("restore-b-{run}");
            let (gw, restore) = self
                .restore_copy("restore-b-linked", &dir, &phones, n)
                .await?;
            runs.push(restore);
            self.kill(gw, &phones).await?;
            let _ = std::fs::remove_dir_all(self.plan.work.join(dir));
        }
        value["runs"] = Value::Array(runs);
        Ok(value)
    }

    /// Link up to each size on one gateway; RSS, health; hold; restore all.
    async fn phase_ladder(&mut self) -> anyhow::Result<()> {
        let max = self.plan.sizes.iter().copied().max().unwrap_or(0);
        let all_phones = scenarios::phones(2, max);
        let gw = self.gateway("ladder").await?;
        let baseline = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(2)).await;
        let mut points = Vec::new();
        let mut linked = 0;
        let mut last = gw.metrics().await?;
        let mut max_healthy = 0;
        let started = Instant::now();
        for &size in &self.plan.sizes {
            let linking = Instant::now();
            let result = scenarios::link_range(
                &gw,
                &self.fake,
                "l",
                2,
                linked..size,
                self.plan.link_concurrency,
            )
            .await;
            let link_s = linking.elapsed().as_secs_f64();
            if let Err(e) = &result {
                eprintln!("  ladder: linking up to {size} failed: {e:#}");
            }
            linked = size;
            let phones = scenarios::phones(2, size);
            let live = self
                .fake
                .wait_live(Some(&phones), Duration::from_secs(120), |l| l >= size)
                .await?;
            let rss = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(5)).await;
            let metrics = gw.metrics().await?;
            let health = report::health(&last, &metrics, size, live);
            eprintln!("  ladder {size}: RssAnon {rss} KiB (linked in {link_s:.1} s), {health}");
            let healthy = result.is_ok() && health["healthy"] == true;
            points
                .push(json!({"n": size, "rss_anon_kib": rss, "link_s": link_s, "health": health}));
            last = metrics;
            if !healthy {
                break;
            }
            max_healthy = size;
        }
        let link_total_s = started.elapsed().as_secs_f64();
        // The hold: keepalives of every session, answered in time, for a while.
        let mut hold = Value::Null;
        if max_healthy == max && self.plan.hold_s > 0 {
            tokio::time::sleep(Duration::from_secs(self.plan.hold_s)).await;
            let live = self.fake.live(Some(&all_phones)).await?;
            let metrics = gw.metrics().await?;
            hold = report::health(&last, &metrics, max, live);
            hold["seconds"] = json!(self.plan.hold_s);
            hold["rss_anon_kib"] = json!(gw.proc.rss_anon_kib());
            eprintln!("  hold at {max}: {hold}");
            if hold["healthy"] != true {
                max_healthy = points
                    .iter()
                    .rev()
                    .nth(1)
                    .and_then(|p| p["n"].as_u64())
                    .unwrap_or(0) as usize;
            }
        }
        self.kill(gw, &all_phones).await?;
        // One restore of everything the ladder linked.
        let gw = self.gateway("ladder").await?;
        let restore = scenarios::watch_restore(
            &self.fake,
            Some(&scenarios::phones(2, linked)),
            linked,
            gw.started,
            gw.proc.pid,
            Duration::from_secs(600),
        )
        .await?;
        // The same sessions restored: memory without pairing's leftovers.
        let restored_rss = scenarios::settled_rss_kib(gw.proc.pid, Duration::from_secs(5)).await;
        eprintln!("  ladder restore: {restore:?}, RssAnon {restored_rss} KiB");
        self.kill(gw, &all_phones).await?;
        self.raw.insert(
            "ladder".into(),
            json!({
                "baseline_rss_anon_kib": baseline,
                "points": points,
                "max_healthy_sessions": max_healthy,
                "link_total_s": link_total_s,
                "hold": hold,
                "restore": restore,
                "restored_rss_anon_kib": restored_rss,
            }),
        );
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve-fake") {
        return fake::serve();
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("capacity: run with `cargo bench --bench capacity --features test-server`");
        return Ok(());
    }
    let plan = Plan::from_env();
    procs::pin_self(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(plan))
}

async fn run(plan: Plan) -> anyhow::Result<()> {
    if plan.work.exists() {
        std::fs::remove_dir_all(&plan.work)?;
    }
    std::fs::create_dir_all(&plan.work)?;
    let load_before = procs::load_average();
    let started = Instant::now();
    let date = test_support::bench::utc_now();
    let fake = Fake::start(Some(0), &plan.work.join("fakewa.log")).await?;
    let sink = Receiver::start().await;
    let mut suite = Suite {
        plan: plan.clone(),
        fake,
        sink,
        raw: serde_json::Map::new(),
    };
    eprintln!("capacity suite: {plan:?}");
    let mut timings = serde_json::Map::new();
    for phase in plan.phases.clone() {
        let t = Instant::now();
        eprintln!("== {phase} ==");
        let result = match phase.as_str() {
            "qr" => suite.phase_qr().await,
            "restore" => suite.phase_restore().await,
            "ladder" => suite.phase_ladder().await,
            "media" => media::phase(&mut suite).await,
            "contacts" => contacts::phase(&mut suite).await,
            "baileys" => baileys::phase(&mut suite).await,
            other => Err(anyhow::anyhow!("unknown phase {other}")),
        };
        if let Err(e) = result {
            eprintln!("phase {phase} failed: {e:#}");
            suite
                .raw
                .insert(format!("{phase}_error"), json!(format!("{e:#}")));
        }
        let took = t.elapsed().as_secs_f64();
        eprintln!("== {phase} took {took:.0} s ({:.1} min) ==", took / 60.0);
        timings.insert(phase, json!(took));
        // Written after every phase, so an interrupted suite keeps what it
        // measured.
        let meta = json!({
            "date": date,
            "machine": report::machine(),
            "load_average_before": load_before,
            "load_average_after": procs::load_average(),
            "suite_seconds": started.elapsed().as_secs_f64(),
            "phase_seconds": timings,
            "fake_rss_anon_kib_at_end": suite.fake.proc.rss_anon_kib(),
            "plan": plan,
            "command": "cargo bench --bench capacity --features test-server",
        });
        let mut doc = report::build(meta, &suite.raw);
        keep_other_benches_keys(&plan.out, &mut doc);
        if let Some(parent) = plan.out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&plan.out, serde_json::to_string_pretty(&doc)? + "\n")?;
        std::fs::write(plan.work.join("summary.md"), report::markdown(&doc))?;
        if timings.len() == plan.phases.len() {
            println!("{}", report::markdown(&doc));
        }
    }
    eprintln!("wrote {}", plan.out.display());
    Ok(())
}

/// Keys of `latest.json` that other benches write (`benches/inbound.rs`):
/// carried over from the file being replaced.
const OTHER_BENCHES_KEYS: [&str; 2] = ["gateway_cpu_us_per_inbound_msg", "inbound_bench"];

fn keep_other_benches_keys(out: &std::path::Path, doc: &mut Value) {
    let Some(old) = std::fs::read_to_string(out)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
    else {
        return;
    };
    for key in OTHER_BENCHES_KEYS {
        if let (Some(value), Some(doc)) = (old.get(key), doc.as_object_mut()) {
            doc.entry(key).or_insert_with(|| value.clone());
        }
    }
}
