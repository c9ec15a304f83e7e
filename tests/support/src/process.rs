//! The real `wagate` binary as a child process ([`GatewayProcess`]), for
//! restarts that must survive a `SIGKILL`.
//!
//! Its start is awaited on its own JSON log lines (read from stderr), never
//! polled. The binary's path comes from the caller: cargo sets
//! `CARGO_BIN_EXE_wagate` only when compiling wagate's own tests and benches,
//! so they pass `env!("CARGO_BIN_EXE_wagate")`.

use std::path::Path;
use std::process::Stdio;

use fakewa::FakeServer;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::watch;

use crate::api::Api;
use crate::gateway::{ADMIN_KEY, WA_VERSION};
use crate::wait::{WAIT, watch_until};

/// The `wagate` binary, run as a child process (killed when dropped).
pub struct GatewayProcess {
    /// The API with the admin key.
    pub api: Api,
    child: tokio::process::Child,
    logs: watch::Receiver<Vec<Value>>,
}

impl GatewayProcess {
    /// Starts the binary at `bin` against `fake` over `data_dir`, on a free
    /// loopback port, and waits until it restored its stored sessions (read
    /// from its JSON log, not polled).
    pub async fn start(bin: impl AsRef<Path>, fake: &FakeServer, data_dir: &Path) -> Self {
        Self::start_with(bin, fake, data_dir, |_| {}).await
    }

    /// [`GatewayProcess::start`] with the command changed by `adjust` first
    /// (e.g. another environment). [`GatewayProcess::api`] uses [`ADMIN_KEY`]
    /// still; a test that removes it sets its own.
    pub async fn start_with(
        bin: impl AsRef<Path>,
        fake: &FakeServer,
        data_dir: &Path,
        adjust: impl FnOnce(&mut tokio::process::Command),
    ) -> Self {
        let mut command = Self::command(bin, fake, data_dir);
        adjust(&mut command);
        Self::spawn(command).await
    }

    /// Starts the binary at `bin` as `wagate --sandbox` (its own fake
    /// WhatsApp, on loopback) in the working directory `dir`, so its default
    /// data directory is `dir/sessions-sandbox`; waits like
    /// [`GatewayProcess::start`].
    pub async fn start_sandbox(bin: impl AsRef<Path>, dir: &Path) -> Self {
        let mut command = Self::base_command(bin);
        command.arg("--sandbox").current_dir(dir);
        Self::spawn(command).await
    }

    /// Spawns `command` (stderr piped: JSON log lines) and waits until the
    /// gateway serves and has restored its sessions.
    async fn spawn(mut command: tokio::process::Command) -> Self {
        let mut child = command.spawn().expect("start the wagate binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, logs) = watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let entry = serde_json::from_str(&line).unwrap_or(Value::String(line));
                tx.send_modify(|logs| logs.push(entry));
            }
        });
        let mut process = Self {
            api: Api::new(String::new(), Some(ADMIN_KEY)),
            child,
            logs,
        };
        let serving = process.wait_for_log("serving the HTTP API").await;
        let addr = serving["listen.addr"]
            .as_str()
            .expect("the bound address in the log line")
            .to_owned();
        process.api = Api::new(format!("http://{addr}"), Some(ADMIN_KEY));
        process.wait_for_log("ready").await;
        process
    }

    /// The command [`GatewayProcess::start`] runs: the binary at `bin`
    /// against `fake` over `data_dir` on a free loopback port, with
    /// [`ADMIN_KEY`], JSON logs on a piped stderr, stdout to nowhere.
    pub fn command(
        bin: impl AsRef<Path>,
        fake: &FakeServer,
        data_dir: &Path,
    ) -> tokio::process::Command {
        let (major, minor, patch) = WA_VERSION;
        let mut command = Self::base_command(bin);
        command
            .args([
                "--shutdown-timeout",
                "5",
                // Webhook receivers are on loopback.
                "--allow-private-urls",
                // Tests send bursts from one company.
                "--send-rate-per-minute",
                "1000000",
                "--send-burst",
                "1000000",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--wa-url", &fake.ws_url()])
            // By environment, so a test can remove it (and resolve the
            // version instead: `--wa-version-url`).
            .env("WAGATE_WA_VERSION", format!("{major}.{minor}.{patch}"));
        command
    }

    /// The binary at `bin` on a free loopback port with [`ADMIN_KEY`] (by
    /// environment, so a test can remove it), JSON logs on a piped stderr,
    /// stdout to nowhere, killed when dropped.
    fn base_command(bin: impl AsRef<Path>) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(bin.as_ref());
        command
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("WAGATE_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn,wagate=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Waits (at most [`WAIT`]) for a JSON log line whose message is
    /// `message`; returns it.
    pub async fn wait_for_log(&mut self, message: &str) -> Value {
        let find = |logs: &Vec<Value>| logs.iter().find(|l| l["message"] == message).cloned();
        watch_until(&mut self.logs, WAIT, |logs| find(logs).is_some())
            .await
            .and_then(|logs| find(&logs))
            .unwrap_or_else(|| {
                panic!(
                    "no log line {message:?} within the time limit; got {:?}",
                    self.logs.borrow()
                )
            })
    }

    /// Every log line so far, as text.
    pub fn log_text(&self) -> String {
        self.logs
            .borrow()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `SIGKILL`: no shutdown code runs.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("send SIGKILL");
        let status = self.child.wait().await.expect("reap the child");
        assert!(!status.success(), "killed, not exited: {status}");
    }
}
