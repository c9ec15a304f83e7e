//! Sandbox mode (`wagate --sandbox`, cargo feature `sandbox`, issue 21): the
//! fake WhatsApp server (the `fakewa` crate, `tests/fakewa`) runs in this
//! process on loopback, and the gateway's sessions connect to it instead of
//! WhatsApp. Its simulated phone and contacts are driven through
//! `/v1/sandbox/…` (`crate::http::sandbox`).
//!
//! This module owns the fake's lifetime and what the rest of the gateway
//! needs to reach it (its WebSocket URL, its version document, an HTTP
//! client for its plain-HTTP media host). The simulation itself is the
//! fake's own typed API ([`Sandbox::fake`]): nothing of it is written again
//! here.
//!
//! # Invariants
//!
//! - Only a binary built with the `sandbox` feature has this module; a
//!   default build has neither the fake nor whatsapp-rust's certificate-chain
//!   skip (`.ci/run` checks it with `cargo tree`).
//! - A sandbox never runs on a data directory a real gateway used
//!   ([`claim_data_dir`]): restoring real companies against the fake would
//!   have their links refused, and their credentials wiped (`logged_out`).
//! - Everything the fake serves is bound to `127.0.0.1`: the sandbox never
//!   listens beyond loopback, and its media client reaches loopback hosts
//!   only ([`crate::wa::plain_loopback`]).

use std::sync::Arc;

use anyhow::Context as _;
use fakewa::FakeServer;

use crate::store::Store;

/// The store setting that marks a data directory as a sandbox's.
const MARK_SETTING: &str = "sandbox.data_dir";

/// Claims the opened data directory for the sandbox: refused when it holds
/// companies and is not a sandbox's already (a real gateway's directory,
/// given with `--data-dir`); marked as a sandbox's otherwise.
pub fn claim_data_dir(store: &Store) -> anyhow::Result<()> {
    if store.get_setting(MARK_SETTING)?.is_some() {
        return Ok(());
    }
    let companies = store.list_companies()?.len();
    anyhow::ensure!(
        companies == 0,
        "--sandbox: this data directory holds {companies} companies of a gateway that was not in \
         sandbox mode; the simulated WhatsApp would unlink them. Use a directory of its own \
         (the default, sessions-sandbox, or another --data-dir)"
    );
    store.put_setting(MARK_SETTING, b"1")?;
    Ok(())
}

/// The in-process fake WhatsApp server of a sandbox gateway. The fake keeps
/// its accounts in memory: after a restart, the links stored in the sandbox's
/// data directory are refused (`logged_out`), and companies pair again.
#[derive(Debug)]
pub struct Sandbox {
    fake: FakeServer,
}

impl Sandbox {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> anyhow::Result<Arc<Self>> {
        let config = fakewa::Config {
            // Its default address is `127.0.0.1:0`. No stanza transcript: a
            // sandbox runs for hours, and only the fake's own tests read it.
            record_stanzas: false,
            ..fakewa::Config::default()
        };
        let fake = FakeServer::start(config)
            .await
            .context("starting the sandbox's fake WhatsApp server")?;
        Ok(Arc::new(Self { fake }))
    }

    /// The fake server: its phone, its contacts and what they received.
    pub fn fake(&self) -> &FakeServer {
        &self.fake
    }

    /// The WebSocket endpoint sessions connect to (`--wa-url`).
    pub fn ws_url(&self) -> String {
        self.fake.ws_url()
    }

    /// The fake's WhatsApp Web version document (`--wa-version-url`), so
    /// the sandbox never asks `web.whatsapp.com`.
    pub fn version_url(&self) -> String {
        format!("{}/sw.js", self.fake.http_url())
    }

    /// whatsapp-rust's HTTP client for the fake's media host, which is
    /// announced as `https://127.0.0.1:PORT` but speaks plain HTTP.
    pub fn http_client() -> anyhow::Result<Arc<dyn whatsapp_rust::http::HttpClient>> {
        crate::wa::plain_loopback::client()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn a_real_gateways_data_dir_is_refused_and_a_sandboxs_kept() {
        let store = Store::open_temporary().unwrap();
        claim_data_dir(&store).expect("an empty directory becomes the sandbox's");
        let acme = pb::CompanyRecord {
            company_id: "acme".into(),
            ..Default::default()
        };
        store.put_company(&acme).unwrap();
        claim_data_dir(&store).expect("the sandbox's own companies are welcome");

        let real = Store::open_temporary().unwrap();
        real.put_company(&acme).unwrap();
        let refused = claim_data_dir(&real).unwrap_err().to_string();
        assert!(refused.contains("not in sandbox mode"), "{refused}");
        assert!(
            real.get_setting(MARK_SETTING).unwrap().is_none(),
            "not claimed"
        );
    }
}
