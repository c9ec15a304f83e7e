//! Credentials at rest (issue 16), with the `wagate` binary: with
//! `WAGATE_STORE_KEY`, neither the device's private keys, nor a webhook
//! secret, nor the pairing-link key appear in clear in the data directory's
//! files, and the directory opens only with that key; without a key the same
//! search finds them (so the search itself works).

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use fakewa::FakeServer;
use test_support::WAIT;
use test_support::fake::start_fake;
use test_support::gateway::{company, init_logging};
use test_support::process::GatewayProcess;
use test_support::wait;
use wagate::store::{Store, StoreKey};

use crate::WAGATE;

const KEY: &str = "6b0e1f7c93a24d58b1c6e07f2a9d3c4b5e6f708192a3b4c5d6e7f8091a2b3c4d";
const WRONG_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const OWN: &str = "15550001111";
const WEBHOOK_SECRET: &str = "e2e-webhook-secret-5f1c2a9b7d3e";

/// One secret and the forms it may take in the files.
struct Secret {
    what: &'static str,
    forms: Vec<Vec<u8>>,
}

/// Starts the binary over `dir` (with `key`, if any), links `acme`, gives it
/// a webhook with [`WEBHOOK_SECRET`], then kills it (`SIGKILL`: only what is
/// on disk counts). Returns the secrets the directory now holds, read back
/// in this process through the store.
async fn link_and_read_secrets(fake: &FakeServer, dir: &Path, key: Option<&str>) -> Vec<Secret> {
    let gateway = GatewayProcess::start_with(WAGATE, fake, dir, |command| {
        if let Some(key) = key {
            command.env("WAGATE_STORE_KEY", key);
        }
    })
    .await;
    gateway.api.link_by_qr(fake, "acme", OWN).await;
    let (status, body) = gateway
        .api
        .call(
            Method::PUT,
            "/v1/sessions/acme/webhook",
            Some(json!({"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    gateway.kill().await;

    let key = key.map(|key| StoreKey::parse(key).expect("a valid key"));
    let store = open(dir, key.as_ref()).await;
    let device = store
        .device_row(&company("acme"))
        .expect("read the device row")
        .expect("acme has credentials");
    let device: Value = serde_json::from_slice(&device).expect("the device row is JSON");
    let mut secrets = ["noise_key", "identity_key", "signed_pre_key"]
        .into_iter()
        .map(|name| private_key(&device, name))
        .collect::<Vec<_>>();
    let pairing_key = store
        .get_setting(wagate::pairing::SIGNING_KEY_SETTING)
        .expect("read the settings")
        .expect("the pairing-link key exists");
    secrets.push(Secret {
        what: "the pairing-link key",
        forms: vec![pairing_key],
    });
    secrets.push(Secret {
        what: "the webhook secret",
        forms: vec![WEBHOOK_SECRET.as_bytes().to_vec()],
    });
    secrets
}

/// The private half of the device's key pair `name`: its bytes, and the JSON
/// the device row holds them as (`[12,34,...`).
fn private_key(device: &Value, name: &'static str) -> Secret {
    let numbers = device[name].as_array().expect("a key pair as bytes");
    let private: Vec<u8> = numbers[..32]
        .iter()
        .map(|n| n.as_u64().expect("a byte") as u8)
        .collect();
    let numbers: Vec<String> = private.iter().map(u8::to_string).collect();
    let json = format!("[{},", numbers.join(","));
    Secret {
        what: name,
        forms: vec![private, json.into_bytes()],
    }
}

/// Opens the store in `dir` once the killed gateway's lock is gone.
async fn open(dir: &Path, key: Option<&StoreKey>) -> Store {
    wait::poll("the store to open", Duration::from_millis(20), || async {
        Store::open_with_key(dir, wagate::store::DEFAULT_CACHE_MIB << 20, key).ok()
    })
    .await
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list the data directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push((
                path.display().to_string(),
                std::fs::read(&path).expect("read"),
            ));
        }
    }
    found
}

/// The secrets found in clear in some file of `dir`, by name.
fn in_clear(dir: &Path, secrets: &[Secret]) -> Vec<&'static str> {
    let files = files(dir);
    assert!(!files.is_empty());
    secrets
        .iter()
        .filter(|secret| {
            secret.forms.iter().any(|form| {
                files
                    .iter()
                    .any(|(_, bytes)| bytes.windows(form.len()).any(|w| w == form.as_slice()))
            })
        })
        .map(|secret| secret.what)
        .collect()
}

/// Runs the binary over `dir` with `key` and expects it to refuse to start;
/// returns what it printed.
async fn refused_start(fake: &FakeServer, dir: &Path, key: Option<&str>) -> String {
    let mut command = GatewayProcess::command(WAGATE, fake, dir);
    if let Some(key) = key {
        command.env("WAGATE_STORE_KEY", key);
    }
    let output = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("the gateway exits within the time limit")
        .expect("run the wagate binary");
    assert!(!output.status.success(), "it must not start");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_key_the_credentials_are_in_the_files_in_clear() {
    init_logging();
    let fake = start_fake().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let secrets = link_and_read_secrets(&fake, dir.path(), None).await;
    assert_eq!(
        in_clear(dir.path(), &secrets),
        [
            "noise_key",
            "identity_key",
            "signed_pre_key",
            "the pairing-link key",
            "the webhook secret"
        ],
        "README says these are stored in clear without a key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_store_key_no_credential_is_in_the_files_and_only_that_key_opens_them() {
    init_logging();
    let fake = start_fake().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let secrets = link_and_read_secrets(&fake, dir.path(), Some(KEY)).await;
    assert_eq!(in_clear(dir.path(), &secrets), Vec::<&str>::new());

    let refused = refused_start(&fake, dir.path(), Some(WRONG_KEY)).await;
    assert!(
        refused.contains("not the key this data directory was sealed with"),
        "{refused}"
    );
    assert!(!refused.contains(WRONG_KEY), "the key is never printed");
    let refused = refused_start(&fake, dir.path(), None).await;
    assert!(refused.contains("sealed with a store key"), "{refused}");

    // With its key, the directory restores the session without a QR code.
    let logins = fake.login_count(OWN);
    let restarted = GatewayProcess::start_with(WAGATE, &fake, dir.path(), |command| {
        command.env("WAGATE_STORE_KEY", KEY);
    })
    .await;
    restarted.api.wait_for_state("acme", "connected").await;
    assert_eq!(fake.login_count(OWN), logins + 1, "a login, not a pairing");
    let (_, webhook) = restarted.api.get("/v1/sessions/acme/webhook").await;
    assert_eq!(webhook["url"], "http://127.0.0.1:9/hook", "{webhook}");
}
