//! The Baileys side, through `benches/baileys/harness.mjs` (one Node process,
//! one Baileys socket per tenant; see its README). Every harness command
//! prints exactly one `READY {json}`, `RESULT {json}` or `FAILED {json}` line
//! on stdout; `READY` processes idle until `SIGTERM`.
//!
//! Every measurement is its own step: a step that fails (the harness
//! crashed, printed `FAILED`, timed out) is recorded as `{"error": …}` in its
//! place and the phase goes on with the next one, so one bad step never
//! empties the other rows. Tenants that fail inside a step are in its
//! `failed` count (the harness never drops them).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Map, Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::fake::Fake;
use crate::procs::{self, Proc};
use crate::scenarios;

pub struct Harness {
    script: PathBuf,
    ws: String,
    admin: String,
    log: PathBuf,
    /// Node options put before the script (the V8 heap limit).
    node_flags: Vec<String>,
}

impl Harness {
    /// The harness, if its dependencies are installed (`npm ci` in
    /// `benches/baileys`).
    pub fn find(ws: String, admin: String, log: &Path, node_flags: Vec<String>) -> Option<Harness> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baileys");
        let script = dir.join("harness.mjs");
        (script.exists() && dir.join("node_modules/baileys").exists()).then(|| Harness {
            script,
            ws,
            admin,
            log: log.to_path_buf(),
            node_flags,
        })
    }

    /// Starts `command args…` pinned to the gateway's CPU (never while a
    /// gateway runs).
    pub fn start(&self, command: &str, args: &[String]) -> anyhow::Result<(Proc, Lines)> {
        let mut all = self.node_flags.clone();
        all.extend([
            self.script.display().to_string(),
            command.to_owned(),
            "--ws".to_owned(),
            self.ws.clone(),
            "--admin".to_owned(),
            self.admin.clone(),
        ]);
        all.extend_from_slice(args);
        let mut proc = procs::spawn_pinned(
            "baileys",
            Some(crate::gateway::GATEWAY_CPU),
            Path::new("node"),
            &all,
            &[],
            procs::Stdout::Piped,
            &self.log,
        )?;
        let stdout = proc.child.stdout.take().context("piped stdout")?;
        Ok((proc, tokio::io::BufReader::new(stdout).lines()))
    }

    /// Starts `command` and waits (up to `limit`) for its result line.
    pub async fn run(
        &self,
        command: &str,
        args: &[String],
        limit: Duration,
    ) -> anyhow::Result<(Proc, Value)> {
        let (proc, mut lines) = self.start(command, args)?;
        let value = result_line(&mut lines, limit).await?;
        Ok((proc, value))
    }

    /// A command that prints `RESULT` and exits.
    pub async fn result(
        &self,
        command: &str,
        args: &[String],
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let (mut proc, value) = self.run(command, args, limit).await?;
        let _ = tokio::time::timeout(Duration::from_secs(30), proc.child.wait()).await;
        Ok(value)
    }
}

pub type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Waits for the `READY`/`RESULT` line; a `FAILED` line is an error.
pub async fn result_line(lines: &mut Lines, limit: Duration) -> anyhow::Result<Value> {
    let line = tokio::time::timeout(limit, async {
        while let Some(line) = lines.next_line().await? {
            if ["READY ", "RESULT ", "FAILED "]
                .iter()
                .any(|t| line.starts_with(t))
            {
                return Ok::<_, anyhow::Error>(line);
            }
        }
        anyhow::bail!("the harness exited without a result line (its stderr is in baileys.log)")
    })
    .await
    .with_context(|| format!("no harness result within {limit:?}"))??;
    let (tag, json) = line.split_once(' ').unwrap_or((&line, "null"));
    let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    anyhow::ensure!(tag != "FAILED", "the harness failed: {value}");
    Ok(value)
}

/// `["--flag", "value", …]` from pairs.
pub fn args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
        .collect()
}

/// A step's value, or `{"error": …}` in its place (logged), so the phase
/// goes on.
fn step(name: &str, result: anyhow::Result<Value>) -> Value {
    result.unwrap_or_else(|e| {
        eprintln!("  baileys {name} failed: {e:#}");
        json!({"error": format!("{e:#}")})
    })
}

/// The first phone of a link step that linked at least one tenant.
fn linked_base(point: &Value) -> Option<u64> {
    let opened = point["linked"].as_u64().unwrap_or(0);
    point["base_phone"].as_u64().filter(|_| opened > 0)
}

/// The Baileys side of one suite run: the harness, the fake and the plan.
struct Side<'a> {
    h: Harness,
    fake: &'a Fake,
    plan: &'a crate::Plan,
    /// Each pairing run gets its own block of phone numbers, so no fake
    /// account accumulates companion devices across runs.
    block: u64,
}

/// Harness deadline for every tenant to open (late ones count as failed).
fn open_timeout(plan: &crate::Plan) -> Duration {
    Duration::from_secs(plan.baileys_timeout_s)
}

impl Side<'_> {
    fn base_phone(&mut self) -> u64 {
        self.block += 1;
        15_556_000_000 + self.block * 20_000
    }

    /// Until the fake has no live connection left (no gateway runs in this
    /// phase, so every connection is Baileys'), at most a minute. Leftovers
    /// are only logged: restores count their own phones, not all.
    async fn idle(&self) {
        match self
            .fake
            .wait_live(None, Duration::from_secs(60), |n| n == 0)
            .await
        {
            Ok(0) => {}
            Ok(left) => eprintln!("  baileys: {left} connections still live after 60 s"),
            Err(e) => eprintln!("  baileys: the fake's connections unreadable: {e:#}"),
        }
    }

    /// Stops a `READY` process (`SIGTERM`: sockets ended without logout,
    /// saved state flushed) and waits until the fake has seen it go.
    async fn stop(&self, proc: Proc) {
        proc.terminate(Duration::from_secs(60)).await;
        self.idle().await;
    }

    /// `link` of `n` fresh tenants with `auth` (file auth into `dir`),
    /// indices `first…` with phones `base_phone + index`: RssAnon of the idle
    /// process with all of them linked.
    async fn link(
        &self,
        auth: &str,
        dir: Option<&Path>,
        first: usize,
        n: usize,
        base_phone: u64,
    ) -> anyhow::Result<Value> {
        let mut a = args(&[
            ("n", n.to_string()),
            ("first", first.to_string()),
            ("auth", auth.to_owned()),
            ("base-phone", base_phone.to_string()),
            ("settle", "3".into()),
            ("timeout", self.plan.baileys_timeout_s.to_string()),
        ]);
        if let Some(dir) = dir {
            a.extend(args(&[
                ("dir", dir.display().to_string()),
                (
                    "concurrency",
                    self.plan.baileys_file_link_concurrency.to_string(),
                ),
            ]));
        }
        let started = Instant::now();
        let limit = open_timeout(self.plan) + Duration::from_secs(120);
        let (proc, ready) = self.h.run("link", &a, limit).await?;
        let link_s = started.elapsed().as_secs_f64();
        let rss = scenarios::settled_rss_kib(proc.pid, Duration::from_secs(2)).await;
        let live = self.fake.live(None).await;
        self.stop(proc).await;
        let live = live?;
        eprintln!(
            "  baileys link {auth} {n}: RssAnon {rss} KiB, live {live}, {link_s:.0} s, {ready}"
        );
        Ok(json!({
            "n": n,
            "auth": auth,
            "rss_anon_kib": rss,
            "live_at_fake": live,
            // Opened, of `n` (x of the RssAnon fit).
            "linked": ready["open"],
            "failed": ready["failed"],
            "link_s": link_s,
            "first": first,
            "base_phone": base_phone,
            "ready": ready,
        }))
    }

    /// `n` file-auth tenants linked into `dir` by one harness process per
    /// `batch` of them (one phone block): Baileys on Node 20 pairs ever more
    /// slowly as a process holds more sockets (each socket's
    /// `AsyncLocalStorage` adds work to every promise of the process, and
    /// file auth makes thousands of promises per pairing), so one process
    /// pairing 300 at once takes tens of minutes and falls into keepalive
    /// timeouts. The restore then starts all `n` in one process.
    async fn link_batched(&mut self, dir: &Path, n: usize, batch: usize) -> anyhow::Result<Value> {
        let base = self.base_phone();
        let mut batches = Vec::new();
        let (mut linked, mut failed) = (0, 0);
        for first in (0..n).step_by(batch.max(1)) {
            let size = batch.min(n - first);
            let point = step(
                &format!("link file {first}..{}", first + size),
                self.link("file", Some(dir), first, size, base).await,
            );
            linked += point["linked"].as_u64().unwrap_or(0);
            failed += point["failed"].as_u64().unwrap_or(size as u64);
            batches.push(point);
        }
        Ok(json!({
            "n": n,
            "auth": "file",
            "linked": linked,
            "failed": failed,
            "base_phone": base,
            "batch": batch,
            "batches": batches,
        }))
    }

    /// One `restore` of tenants `0..n` from `dir` (linked from `base_phone`
    /// on), timed from the spawn of Node until the fake has seen them logged
    /// in (as wagate's restore), then RssAnon once settled. `n = 0` measures
    /// the process with Baileys loaded and no tenant.
    async fn restore(&self, dir: &Path, base_phone: u64, n: usize) -> anyhow::Result<Value> {
        let phones: HashSet<String> = (0..n as u64)
            .map(|i| (base_phone + i).to_string())
            .collect();
        let a = args(&[
            ("n", n.to_string()),
            ("dir", dir.display().to_string()),
            ("timeout", self.plan.baileys_timeout_s.to_string()),
        ]);
        let limit = open_timeout(self.plan) + Duration::from_secs(60);
        let started = Instant::now();
        let (proc, mut lines) = self.h.start("restore", &a)?;
        // READY comes once every tenant opened or failed: then the watch
        // polls once more and ends, whether or not all N made it.
        let stop = AtomicBool::new(false);
        let ready = async {
            let ready = result_line(&mut lines, limit).await;
            stop.store(true, Ordering::Release);
            ready
        };
        let (seen, ready) = tokio::join!(
            scenarios::watch_restore_until(
                self.fake,
                Some(&phones),
                n,
                started,
                proc.pid,
                limit,
                &stop
            ),
            ready,
        );
        let (seen, ready) = match (seen, ready) {
            (Ok(seen), Ok(ready)) => (seen, ready),
            (seen, ready) => {
                proc.kill().await;
                self.idle().await;
                anyhow::bail!(
                    "restore of {n}: {}",
                    [seen.err(), ready.err()]
                        .into_iter()
                        .flatten()
                        .map(|e| format!("{e:#}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        };
        let rss = scenarios::settled_rss_kib(proc.pid, Duration::from_secs(2)).await;
        self.stop(proc).await;
        eprintln!("  baileys restore {n}: {seen:?}, RssAnon {rss} KiB, {ready}");
        Ok(json!({
            "n": n,
            "fake": seen,
            "open": ready["open"],
            "failed": ready["failed"],
            "rss_anon_kib": rss,
            "ready": ready,
        }))
    }

    /// Tenants for `send`/`inbound`: the first `n` of the file-auth restore
    /// directory (restored sessions with a persistent store, as wagate's),
    /// or `n` freshly paired in memory when there is none.
    fn tenants(&mut self, n: usize, restore_dir: Option<&Path>) -> Vec<(&'static str, String)> {
        match restore_dir {
            Some(dir) => vec![("n", n.to_string()), ("dir", dir.display().to_string())],
            None => vec![
                ("n", n.to_string()),
                ("base-phone", self.base_phone().to_string()),
            ],
        }
    }

    /// A `RESULT` command (`create_to_qr`, `send`, `inbound`), then idle.
    async fn result(&self, command: &str, a: &[String]) -> anyhow::Result<Value> {
        let limit = open_timeout(self.plan) + Duration::from_secs(120);
        let r = self.h.result(command, a, limit).await;
        self.idle().await;
        r
    }
}

/// The Baileys measurements (see the module docs of `main`), into
/// `suite.raw["baileys"]`. No gateway runs meanwhile: every live connection
/// at the fake is Baileys'.
pub async fn phase(suite: &mut crate::Suite) -> anyhow::Result<()> {
    let plan = suite.plan.clone();
    let node_flags = vec![format!("--max-old-space-size={}", plan.node_heap_mib)];
    let Some(h) = Harness::find(
        suite.fake.ws_url(),
        suite.fake.admin_url(),
        &suite.log("baileys"),
        node_flags.clone(),
    ) else {
        eprintln!(
            "  baileys: harness or node_modules missing (npm ci in benches/baileys); skipped"
        );
        suite.raw.insert(
            "baileys".into(),
            json!({"skipped": "harness not installed"}),
        );
        return Ok(());
    };
    let mut side = Side {
        h,
        fake: &suite.fake,
        plan: &plan,
        block: 0,
    };
    let mut out = Map::new();
    out.insert("node_flags".into(), json!(node_flags));
    let mut seconds = Map::new();
    let timed = Instant::now();

    // Memory as linked, per auth profile and size, one process each.
    // File-auth directories that linked are kept (with their first phone)
    // for the restored-memory points.
    let mut file_dirs: Vec<(usize, PathBuf, u64)> = Vec::new();
    let mut restore_link = None;
    for (auth, sizes) in [
        ("memory", &plan.baileys_sizes),
        ("file", &plan.baileys_file_sizes),
    ] {
        let mut points = Vec::new();
        for &n in sizes {
            let dir = plan.work.join(format!("baileys-{auth}-{n}"));
            let file_dir = (auth == "file").then_some(dir.as_path());
            let base = side.base_phone();
            let point = step(
                &format!("link {auth} {n}"),
                side.link(auth, file_dir, 0, n, base).await,
            );
            if let (true, Some(base)) = (auth == "file", linked_base(&point)) {
                if n == plan.baileys_restore_n {
                    restore_link = Some((dir.clone(), base, point.clone()));
                }
                file_dirs.push((n, dir, base));
            }
            points.push(point);
        }
        out.insert(format!("rss_{auth}"), Value::Array(points));
    }
    // The file-auth tenants to restore: those of a memory point of that
    // size, else linked for this in batches.
    if restore_link.is_none() && plan.baileys_restore_n > 0 {
        let dir = plan.work.join("baileys-restore");
        let n = plan.baileys_restore_n;
        let point = step(
            &format!("link file {n} for restore"),
            side.link_batched(&dir, n, plan.baileys_file_batch).await,
        );
        if let Some(base) = linked_base(&point) {
            restore_link = Some((dir, base, point.clone()));
        }
        out.insert("restore_link".into(), point);
    }
    seconds.insert("link".into(), json!(timed.elapsed().as_secs_f64()));

    // Restore after SIGTERM, CAP_RUNS times, and the restored memory.
    let timed = Instant::now();
    let restore_dir = restore_link.as_ref().map(|(dir, _, _)| dir.clone());
    let mut restore = json!({
        "n": plan.baileys_restore_n,
        "linked": restore_link.as_ref().map(|(_, _, p)| p.clone()),
    });
    if let Some((dir, base, _)) = &restore_link {
        let mut runs = Vec::new();
        for run in 0..plan.runs {
            runs.push(step(
                &format!("restore run {run}"),
                side.restore(dir, *base, plan.baileys_restore_n).await,
            ));
        }
        restore["runs"] = Value::Array(runs);
        // Points for the restored RssAnon per session: Node with Baileys
        // loaded and no tenant, and one restore of each other file-auth size
        // (the restore runs above give the point at N).
        let mut points = vec![step("restore 0", side.restore(dir, *base, 0).await)];
        for (n, other, other_base) in &file_dirs {
            if *n != plan.baileys_restore_n && *n > 0 {
                points.push(step(
                    &format!("restore {n}"),
                    side.restore(other, *other_base, *n).await,
                ));
            }
        }
        restore["rss_points"] = Value::Array(points);
    } else {
        restore["error"] = json!("no file-auth tenants were linked to restore");
    }
    out.insert("restore".into(), restore);
    seconds.insert("restore".into(), json!(timed.elapsed().as_secs_f64()));

    // create → QR, send and inbound, CAP_RUNS times each.
    let timed = Instant::now();
    let (mut singles, mut bursts, mut sends, mut inbounds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let send_from_restored = restore_dir.is_some();
    for run in 0..plan.runs {
        let a = args(&[("n", plan.qr_single.to_string())]);
        let r = step("create_to_qr single", side.result("create_to_qr", &a).await);
        eprintln!("  baileys create_to_qr single run {run}: {r}");
        singles.push(r);
        let mut a = args(&[("n", plan.qr_burst.to_string())]);
        a.push("--burst".into());
        let r = step("create_to_qr burst", side.result("create_to_qr", &a).await);
        eprintln!("  baileys create_to_qr burst run {run}: {r}");
        bursts.push(r);
        for rate in &plan.rates {
            let mut pairs = side.tenants(10, restore_dir.as_deref());
            pairs.extend([
                ("rate", rate.to_string()),
                ("duration", plan.rate_seconds.to_string()),
            ]);
            let r = step(
                &format!("send at {rate}"),
                side.result("send", &args(&pairs)).await,
            );
            eprintln!("  baileys send run {run} at {rate}: {r}");
            // The rate of a failed step, so the report can still file it.
            sends.push(match r {
                Value::Object(mut m) => {
                    m.entry("rate").or_insert(json!(rate));
                    Value::Object(m)
                }
                other => other,
            });
        }
        let mut pairs = side.tenants(1, restore_dir.as_deref());
        pairs.extend([
            ("rate", plan.baileys_inbound_rate.to_string()),
            ("duration", plan.rate_seconds.to_string()),
        ]);
        let r = step("inbound", side.result("inbound", &args(&pairs)).await);
        eprintln!("  baileys inbound run {run}: {r}");
        inbounds.push(r);
    }
    out.insert("create_to_qr_single".into(), Value::Array(singles));
    out.insert("create_to_qr_burst".into(), Value::Array(bursts));
    out.insert("send".into(), Value::Array(sends));
    out.insert("inbound".into(), Value::Array(inbounds));
    out.insert(
        "send_tenants".into(),
        json!(if send_from_restored {
            "the first 10 (send) / 1 (inbound) tenants of the file-auth restore directory, restored"
        } else {
            "10 (send) / 1 (inbound) tenants freshly paired with memory auth"
        }),
    );
    seconds.insert(
        "qr_send_inbound".into(),
        json!(timed.elapsed().as_secs_f64()),
    );
    eprintln!("  baileys step seconds: {}", Value::Object(seconds.clone()));
    out.insert("seconds".into(), Value::Object(seconds));
    suite.raw.insert("baileys".into(), Value::Object(out));
    Ok(())
}
