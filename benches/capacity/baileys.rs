//! The Baileys side, through `benches/baileys/harness.mjs` (one Node process,
//! one Baileys socket per tenant; see its README). Every harness command
//! prints exactly one `READY {json}`, `RESULT {json}` or `FAILED {json}` line
//! on stdout; `READY` processes idle until `SIGTERM`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::procs::{self, Proc};

pub struct Harness {
    script: PathBuf,
    ws: String,
    admin: String,
    log: PathBuf,
}

impl Harness {
    /// The harness, if its dependencies are installed (`npm ci` in
    /// `benches/baileys`).
    pub fn find(ws: String, admin: String, log: &Path) -> Option<Harness> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/baileys");
        let script = dir.join("harness.mjs");
        (script.exists() && dir.join("node_modules/baileys").exists()).then(|| Harness {
            script,
            ws,
            admin,
            log: log.to_path_buf(),
        })
    }

    /// Starts `command args…` pinned to the gateway's CPU (never while a
    /// gateway runs).
    pub fn start(&self, command: &str, args: &[String]) -> anyhow::Result<(Proc, Lines)> {
        let mut all = vec![
            self.script.display().to_string(),
            command.to_owned(),
            "--ws".to_owned(),
            self.ws.clone(),
            "--admin".to_owned(),
            self.admin.clone(),
        ];
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
        anyhow::bail!("the harness exited without a result line")
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

/// The Baileys measurements (see the module docs of `main`), into
/// `suite.raw["baileys"]`. No gateway runs meanwhile: every live connection
/// at the fake is Baileys'.
pub async fn phase(suite: &mut crate::Suite) -> anyhow::Result<()> {
    let Some(h) = Harness::find(
        suite.fake.ws_url(),
        suite.fake.admin_url(),
        &suite.log("baileys"),
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
    let plan = suite.plan.clone();
    let fake = &suite.fake;
    let mut out = serde_json::Map::new();
    // Each harness run links fresh accounts: its own block of phone numbers.
    let mut block = 0u64;
    let mut base_phone = || {
        block += 1;
        (15_556_000_000 + block * 20_000).to_string()
    };
    let idle = async || {
        fake.wait_live(None, Duration::from_secs(60), |n| n == 0)
            .await
    };

    let mut restore_dir = None;
    for auth in ["memory", "file"] {
        let mut points = Vec::new();
        for &n in &plan.baileys_sizes {
            let dir = plan.work.join(format!("baileys-{auth}-{n}"));
            let mut a = args(&[
                ("n", n.to_string()),
                ("auth", auth.to_owned()),
                ("base-phone", base_phone()),
                ("settle", "3".into()),
            ]);
            if auth == "file" {
                a.extend(args(&[("dir", dir.display().to_string())]));
            }
            let (proc, ready) = h.run("link", &a, Duration::from_secs(1800)).await?;
            let rss = crate::scenarios::settled_rss_kib(proc.pid, Duration::from_secs(2)).await;
            let live = fake.live(None).await?;
            eprintln!("  baileys link {auth} {n}: RssAnon {rss} KiB, live {live}, {ready}");
            points.push(json!({"n": n, "rss_anon_kib": rss, "live_at_fake": live, "ready": ready}));
            proc.terminate(Duration::from_secs(60)).await;
            idle().await?;
            if auth == "file" && n == plan.restore_n {
                restore_dir = Some(dir);
            }
        }
        out.insert(format!("rss_{auth}"), Value::Array(points));
    }
    let restore_dir = match restore_dir {
        Some(dir) => dir,
        None => {
            let dir = plan.work.join("baileys-restore");
            let a = args(&[
                ("n", plan.restore_n.to_string()),
                ("auth", "file".into()),
                ("dir", dir.display().to_string()),
                ("base-phone", base_phone()),
            ]);
            let (proc, ready) = h.run("link", &a, Duration::from_secs(1800)).await?;
            eprintln!("  baileys linked {} for restore: {ready}", plan.restore_n);
            proc.terminate(Duration::from_secs(60)).await;
            idle().await?;
            dir
        }
    };
    let mut restores = Vec::new();
    for run in 0..plan.runs {
        let a = args(&[
            ("n", plan.restore_n.to_string()),
            ("dir", restore_dir.display().to_string()),
        ]);
        let started = std::time::Instant::now();
        let (proc, mut lines) = h.start("restore", &a)?;
        let (seen, ready) = tokio::join!(
            crate::scenarios::watch_restore(
                fake,
                None,
                plan.restore_n,
                started,
                proc.pid,
                Duration::from_secs(600)
            ),
            result_line(&mut lines, Duration::from_secs(600)),
        );
        let (seen, ready) = (seen?, ready?);
        eprintln!("  baileys restore run {run}: {seen:?}, {ready}");
        restores.push(json!({"fake": seen, "ready": ready}));
        proc.terminate(Duration::from_secs(60)).await;
        idle().await?;
    }
    out.insert("restore".into(), Value::Array(restores));

    let (mut singles, mut bursts, mut sends, mut inbounds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..plan.runs {
        let limit = Duration::from_secs(600);
        singles.push(
            h.result(
                "create_to_qr",
                &args(&[("n", plan.qr_single.to_string())]),
                limit,
            )
            .await?,
        );
        let mut a = args(&[("n", plan.qr_burst.to_string())]);
        a.push("--burst".into());
        bursts.push(h.result("create_to_qr", &a, limit).await?);
        for rate in &plan.rates {
            let a = args(&[
                ("rate", rate.to_string()),
                ("duration", plan.rate_seconds.to_string()),
                ("n", "10".into()),
                ("base-phone", base_phone()),
            ]);
            let r = h.result("send", &a, limit).await?;
            eprintln!("  baileys send run {run} at {rate}: {r}");
            sends.push(r);
        }
        let a = args(&[
            ("rate", "1000".into()),
            ("duration", plan.rate_seconds.to_string()),
            ("n", "1".into()),
            ("base-phone", base_phone()),
        ]);
        let r = h.result("inbound", &a, limit).await?;
        eprintln!("  baileys inbound run {run}: {r}");
        inbounds.push(r);
        idle().await?;
    }
    out.insert("create_to_qr_single".into(), Value::Array(singles));
    out.insert("create_to_qr_burst".into(), Value::Array(bursts));
    out.insert("send".into(), Value::Array(sends));
    out.insert("inbound".into(), Value::Array(inbounds));
    suite.raw.insert("baileys".into(), Value::Object(out));
    Ok(())
}
