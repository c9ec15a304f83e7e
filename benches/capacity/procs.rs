//! The suite's child processes (fake server, gateway, Baileys harness), each
//! pinned to a CPU with `taskset`, and what `/proc` says about them.
//!
//! Memory is `RssAnon` (anonymous resident pages: heap, stacks, anonymous
//! maps), not `VmRSS`: file-backed pages (the binary, sled's mmapped files)
//! are shared and reclaimable and would blur the per-session cost.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;

/// A child process; killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: &'static str,
    pub pid: u32,
    pub child: tokio::process::Child,
}

/// How a child's stdout is handled.
pub enum Stdout {
    /// Read by the caller (`child.stdout`).
    Piped,
    /// Appended to a log file.
    File(std::path::PathBuf),
}

/// Starts `program args…` pinned to `cpu` (`taskset -c`, which execs the
/// program, so the pid is the program's own), stderr appended to `log`.
pub fn spawn_pinned(
    name: &'static str,
    cpu: Option<usize>,
    program: &Path,
    args: &[String],
    envs: &[(&str, String)],
    stdout: Stdout,
    log: &Path,
) -> anyhow::Result<Proc> {
    let mut command = match cpu.filter(|_| has_taskset()) {
        Some(cpu) => {
            let mut c = tokio::process::Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => tokio::process::Command::new(program),
    };
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    command
        .stdin(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    match stdout {
        Stdout::Piped => command.stdout(Stdio::piped()),
        Stdout::File(path) => command.stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?,
        )),
    };
    let child = command
        .spawn()
        .with_context(|| format!("starting {name} ({})", program.display()))?;
    let pid = child.id().context("the child has no pid")?;
    Ok(Proc { name, pid, child })
}

impl Proc {
    /// `SIGKILL` and reap: no shutdown code runs (the restore scenario).
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// `SIGTERM`, then `SIGKILL` if it has not exited after `grace`.
    pub async fn terminate(mut self, grace: Duration) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }

    pub fn rss_anon_kib(&self) -> u64 {
        rss_anon_kib(self.pid)
    }

    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid)
    }
}

/// `taskset` is installed and pinning is not turned off (`CAP_PIN=0`).
fn has_taskset() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var("CAP_PIN").map_or(true, |v| v != "0")
            && std::process::Command::new("taskset")
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// Pins this process (the orchestrator and the webhook sink) to `cpu`.
pub fn pin_self(cpu: usize) {
    if has_taskset() {
        let _ = std::process::Command::new("taskset")
            .args([
                "-a",
                "-cp",
                &cpu.to_string(),
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status();
    }
}

/// One `KiB` field of `/proc/<pid>/status` (0 when unreadable).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

/// User + system CPU time of the process so far (`/proc/<pid>/stat` fields
/// 14 and 15, in clock ticks).
pub fn cpu_seconds(pid: u32) -> f64 {
    test_support::bench::stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Copies a directory tree (a data directory snapshot).
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()?;
    anyhow::ensure!(status.success(), "cp -a {} failed", from.display());
    Ok(())
}
