//! The fake WhatsApp server as its own process (this bench binary re-run with
//! `--serve-fake`: the same `fakewa` library the `fakewa` binary serves), and
//! the admin API calls the suite makes to it.
//!
//! The process lives for the whole suite: it keeps the linked accounts in
//! memory, so gateways restarted over a copied data directory log back in.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::procs::{self, Proc};

/// `--serve-fake`: serve until stdin closes (the orchestrator exits or drops us).
pub fn serve() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = fakewa::FakeServer::start(fakewa::Config {
            // A transcript of every stanza would grow without bound.
            record_stanzas: false,
            ..fakewa::Config::default()
        })
        .await?;
        println!("{}", server.addr());
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while stdin.next_line().await?.is_some() {}
        drop(server);
        Ok(())
    })
}

/// The running fake server.
pub struct Fake {
    pub proc: Proc,
    pub addr: String,
    http: reqwest::Client,
}

impl Fake {
    pub async fn start(cpu: Option<usize>, log: &Path) -> anyhow::Result<Fake> {
        let exe = std::env::current_exe()?;
        let mut proc = procs::spawn_pinned(
            "fakewa",
            cpu,
            &exe,
            &["--serve-fake".to_owned()],
            &[("RUST_LOG", "warn".to_owned())],
            procs::Stdout::Piped,
            log,
        )?;
        let stdout = proc.child.stdout.take().context("piped stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the fake server did not start")??
            .context("the fake server printed no address")?;
        Ok(Fake {
            proc,
            addr,
            http: reqwest::Client::new(),
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The phone `phone` scans `qr` (200 once the client finished pairing).
    pub async fn scan_qr(&self, phone: &str, qr: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!(
                "{}/admin/mock-phone/scan-qr?phone={phone}",
                self.admin_url()
            ))
            .body(qr.to_owned())
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "scan-qr: {status} {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// Fake contact `from` sends `text` to the linked account `to`.
    pub async fn contact_text(&self, from: &str, to: &str, text: &str) -> anyhow::Result<()> {
        self.contact_message(from, json!({"to": to, "text": text}))
            .await
    }

    /// Fake contact `from` sends `text` to the linked account `to` from its
    /// LID, naming its phone number (`sender_pn`): the client learns the
    /// contact's LID↔phone mapping.
    pub async fn contact_text_from_lid(
        &self,
        from: &str,
        to: &str,
        text: &str,
    ) -> anyhow::Result<()> {
        self.contact_message(
            from,
            json!({"to": to, "text": text, "as_lid": true, "sender_pn": true}),
        )
        .await
    }

    /// `POST /admin/contacts/{from}/messages` with `body`.
    async fn contact_message(&self, from: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!(
                "{}/admin/contacts/{from}/messages",
                self.admin_url()
            ))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "contact message: {}",
            response.status()
        );
        Ok(())
    }

    /// Fake contact `from` sends the image `file` (JPEG) to the linked
    /// account `to`; the message id.
    pub async fn contact_image(&self, from: &str, to: &str, file: &[u8]) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!(
                "{}/admin/contacts/{from}/messages",
                self.admin_url()
            ))
            .json(&json!({
                "to": to,
                "kind": "image",
                "mime_type": "image/jpeg",
                "base64": crate::media::base64(file),
            }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "contact image: {}",
            response.status()
        );
        let answer: Value = response.json().await?;
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .context("no id in the fake's answer")
    }

    /// The SHA-256 (hex) of every image the linked account `from` sent and
    /// a contact decrypted and checked, in the fake's order.
    pub async fn images_from(&self, from: &str) -> anyhow::Result<Vec<String>> {
        let rows: Vec<Value> = self
            .http
            .get(format!("{}/admin/messages", self.admin_url()))
            .send()
            .await?
            .json()
            .await?;
        Ok(rows
            .iter()
            .filter(|m| m["from"] == from && m["kind"] == "image")
            .map(|m| m["media_sha256"].as_str().unwrap_or("unchecked").to_owned())
            .collect())
    }

    /// Live logged-in connections per device JID.
    pub async fn connections(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let rows: Vec<Value> = self
            .http
            .get(format!("{}/admin/connections", self.admin_url()))
            .send()
            .await?
            .json()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r["jid"].as_str().unwrap_or_default().to_owned(),
                    r["connections"].as_u64().unwrap_or(0),
                )
            })
            .collect())
    }

    /// How many devices of `phones` (all devices when `None`) have a live,
    /// logged-in connection.
    pub async fn live(&self, phones: Option<&HashSet<String>>) -> anyhow::Result<usize> {
        Ok(self
            .connections()
            .await?
            .iter()
            .filter(|(jid, live)| {
                *live > 0
                    && phones.is_none_or(|p| {
                        p.contains(jid.split([':', '@']).next().unwrap_or_default())
                    })
            })
            .count())
    }

    /// Waits until `live(phones)` satisfies `done` (polled every 100 ms);
    /// returns the last count.
    pub async fn wait_live(
        &self,
        phones: Option<&HashSet<String>>,
        limit: Duration,
        done: impl Fn(usize) -> bool,
    ) -> anyhow::Result<usize> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let live = self.live(phones).await?;
            if done(live) || tokio::time::Instant::now() >= deadline {
                return Ok(live);
            }
            // Polled: the fake is another process, its admin API has no wait.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
