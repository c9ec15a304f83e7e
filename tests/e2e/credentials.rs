//! Credentials end to end: rotating a company's token; revoking a company's
//! pairing links; the admin key generated, shown privately, rotated and
//! replaced by a configured one; the data directory that holds them kept
//! private.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use test_support::api::{Api, Events};
use test_support::fake::start_fake;
use test_support::gateway::{ADMIN_KEY, init_logging, spawn_app};
use test_support::process::GatewayProcess;
use wagate::pairing::strings::EN;

use crate::WAGATE;

/// A new pairing link of `company` (201 expected); returns its token.
async fn link_token(api: &Api, company: &str) -> String {
    let (status, body) = api
        .post(&format!("/v1/sessions/{company}/pairing-links"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// `GET /pair/{token}`: the status and the HTML.
async fn page(api: &Api, token: &str) -> (StatusCode, String) {
    let response = reqwest::get(format!("{}/pair/{token}", api.base))
        .await
        .expect("the gateway answers");
    (response.status(), response.text().await.expect("a body"))
}

/// The page's live feed, open.
async fn page_feed(api: &Api, token: &str) -> Events {
    let response = reqwest::get(format!("{}/pair/{token}/events", api.base))
        .await
        .expect("open the page's event stream");
    assert_eq!(response.status(), StatusCode::OK);
    Events::from_response(response)
}

/// Waits for the page's `state` event with `state`; returns its data.
async fn wait_for_page_state(feed: &mut Events, state: &str) -> Value {
    loop {
        let (name, data) = feed.next().await;
        if name == "state" && data["state"] == state {
            return data;
        }
    }
}

/// Revoking a company's links: its earlier links get the invalid-link page
/// (and their open feeds end), a new link works, another company's links
/// are untouched; the company's own token may revoke, another's may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_pairing_links_are_refused_and_new_ones_work() {
    let app = spawn_app().await;
    let api = &app.api;
    let acme_token = api.ensure("acme").await["token"]
        .as_str()
        .expect("a new company's token")
        .to_owned();
    let globex_token = api.ensure("globex").await["token"]
        .as_str()
        .expect("a new company's token")
        .to_owned();
    let old = link_token(api, "acme").await;
    let globex = link_token(api, "globex").await;
    let mut old_feed = page_feed(api, &old).await;
    let mut globex_feed = page_feed(api, &globex).await;
    assert_eq!(page(api, &old).await.0, StatusCode::OK);

    // Who may: the admin or the company's own token; 204, no body.
    let revoke = |api: Api, company: &'static str| async move {
        api.delete(&format!("/v1/sessions/{company}/pairing-links"))
            .await
    };
    let (status, body) = revoke(api.with_key(Some(&globex_token)), "acme").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, _) = revoke(api.with_key(None), "acme").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = revoke(api.clone(), "initech").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("unknown_company"))
    );
    assert_eq!(
        page(api, &old).await.0,
        StatusCode::OK,
        "refused calls revoke nothing"
    );
    let (status, body) = revoke(api.with_key(Some(&acme_token)), "acme").await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));

    // The open feed of the revoked link is told, and ends.
    let view = wait_for_page_state(&mut old_feed, "revoked").await;
    assert_eq!(view["done"], true, "{view}");
    assert!(old_feed.ends().await, "nothing follows the revocation");

    // The revoked link: the invalid-link page, and its API refuses too.
    let (status, html) = page(api, &old).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains(EN.invalid_title), "{html}");
    let response = reqwest::Client::new()
        .post(format!("{}/pair/{old}/start", api.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "link_invalid");
    let response = reqwest::get(format!("{}/pair/{old}/events", api.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // A new link works; the other company's link and feed are untouched.
    let new = link_token(api, "acme").await;
    assert_eq!(page(api, &new).await.0, StatusCode::OK);
    wait_for_page_state(&mut page_feed(api, &new).await, "waiting_for_scan").await;
    assert_eq!(page(api, &globex).await.0, StatusCode::OK);
    let (status, _) = api.delete("/v1/sessions/globex").await;
    assert_eq!(status, StatusCode::OK);
    let view = wait_for_page_state(&mut globex_feed, "deleted").await;
    assert_eq!(
        view["state"], "deleted",
        "the other company's feed lived on until its own end"
    );
    app.stop().await;
}

/// The binary without a configured admin key, stdout not a terminal: the
/// generated key goes to `admin-key` in the data directory (0600), the log
/// says where but not what; `POST /v1/admin/key` rotates it without a restart
/// (the old key is refused at once, the new one survives a restart); once a
/// key is configured, the generated one is refused and rotation is 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_admin_key_is_written_privately_and_rotates() {
    init_logging();
    let fake = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let unconfigured = |command: &mut tokio::process::Command| {
        command.env_remove("WAGATE_ADMIN_KEY");
    };

    let first = GatewayProcess::start_with(WAGATE, &fake, dir.path(), unconfigured).await;
    let file = dir.path().join(wagate::app::ADMIN_KEY_FILE);
    let generated = std::fs::read_to_string(&file)
        .expect("the generated key is in the data directory")
        .trim()
        .to_owned();
    assert!(generated.starts_with("wga_"), "{generated}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the owner may read the key");
    let logs = first.log_text();
    assert!(logs.contains(&file.display().to_string()), "{logs}");
    assert!(!logs.contains(&generated), "the key is never logged");

    let admin = first.api.with_key(Some(&generated));
    assert_eq!(admin.get("/v1/sessions").await.0, StatusCode::OK);
    assert_eq!(
        first.api.get("/v1/sessions").await.0,
        StatusCode::UNAUTHORIZED,
        "no other key works"
    );
    let token = admin.ensure("acme").await["token"]
        .as_str()
        .expect("a company token")
        .to_owned();
    let (status, body) = admin
        .with_key(Some(&token))
        .post("/v1/admin/key", None)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );

    // Rotation: the new key once, the old one refused from now on.
    let response = admin
        .request(reqwest::Method::POST, "/v1/admin/key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let rotated = body["key"].as_str().expect("the new key").to_owned();
    assert_ne!(rotated, generated);
    assert_eq!(admin.get("/v1/sessions").await.0, StatusCode::UNAUTHORIZED);
    let admin = admin.with_key(Some(&rotated));
    assert_eq!(admin.get("/v1/sessions").await.0, StatusCode::OK);
    assert!(!first.log_text().contains(&rotated), "never logged");
    first.kill().await;

    // The rotated key's hash is what is stored: it survives a restart, and
    // no new key is generated.
    let second = GatewayProcess::start_with(WAGATE, &fake, dir.path(), unconfigured).await;
    let admin = second.api.with_key(Some(&rotated));
    assert_eq!(admin.get("/v1/sessions").await.0, StatusCode::OK);
    assert_eq!(
        admin.with_key(Some(&generated)).get("/v1/sessions").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(!second.log_text().contains("generated an admin API key"));
    second.kill().await;

    // A configured key: the generated one stops working, rotation is 409.
    let third = GatewayProcess::start(WAGATE, &fake, dir.path()).await;
    assert_eq!(
        third
            .api
            .with_key(Some(&rotated))
            .get("/v1/sessions")
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "the stale generated hash was cleared"
    );
    let (status, body) = third.api.post("/v1/admin/key", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("admin_key_configured"))
    );
    assert_eq!(third.api.get("/v1/sessions").await.0, StatusCode::OK);
    assert!(ADMIN_KEY.len() >= wagate::config::MIN_ADMIN_KEY_LEN);
    third.kill().await;
}

/// A rotated company token: its predecessor gets 401 `invalid_credentials`
/// at once, on every route of the company (rotating again included); the
/// new token works; another company's token and the admin key are
/// untouched, and a rotation by the admin ends the company's own rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_company_tokens_predecessor_gets_401_at_once() {
    let app = spawn_app().await;
    let api = &app.api;
    let token_of = |body: Value| body["token"].as_str().expect("a token").to_owned();
    let first = token_of(api.ensure("acme").await);
    let globex = token_of(api.ensure("globex").await);
    let as_first = api.with_key(Some(&first));
    assert_eq!(as_first.get("/v1/sessions/acme").await.0, StatusCode::OK);

    // The company rotates its own token.
    let (status, body) = as_first.post("/v1/sessions/acme/token", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = token_of(body);
    assert_ne!(second, first);
    for path in ["/v1/sessions/acme", "/v1/sessions/acme/webhook"] {
        let (status, body) = as_first.get(path).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::UNAUTHORIZED, &json!("invalid_credentials")),
            "{path}: the old token is refused at once"
        );
    }
    let (status, _) = as_first.post("/v1/sessions/acme/token", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old token cannot rotate"
    );
    let as_second = api.with_key(Some(&second));
    assert_eq!(as_second.get("/v1/sessions/acme").await.0, StatusCode::OK);
    assert_eq!(
        as_second.get("/v1/sessions/acme/webhook").await.0,
        StatusCode::OK
    );
    let as_globex = api.with_key(Some(&globex));
    assert_eq!(as_globex.get("/v1/sessions/globex").await.0, StatusCode::OK);
    assert_eq!(api.get("/v1/sessions/acme").await.0, StatusCode::OK);

    // The admin rotates it: the company's current token ends too.
    let (status, body) = api.post("/v1/sessions/acme/token", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let third = token_of(body);
    assert_eq!(
        as_second.get("/v1/sessions/acme").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.with_key(Some(&third)).get("/v1/sessions/acme").await.0,
        StatusCode::OK
    );
    app.stop().await;
}

/// Every directory under `dir` (itself included) with a mode other than
/// 0700, and every file with a mode other than 0600.
fn not_private(dir: &Path) -> Vec<String> {
    let mut loose = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("the entry's metadata");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            if mode != 0o700 {
                loose.push(format!("{} {mode:o}", path.display()));
            }
            for entry in std::fs::read_dir(&path).expect("the directory") {
                pending.push(entry.expect("an entry").path());
            }
        } else if meta.is_file() && mode != 0o600 {
            loose.push(format!("{} {mode:o}", path.display()));
        }
    }
    loose
}

const LOOSE_WARNING: &str = "the data directory holds credentials and was readable by others; made it private (directories 0700, files 0600)";

/// The binary creates its data directory 0700 with its files 0600 (a
/// company written, so the database has content); a data directory found
/// readable by others (a backup restored with other permissions) is
/// tightened at start, with a warning, before anything is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private_and_a_looser_one_is_tightened_with_a_warning() {
    init_logging();
    let fake = start_fake().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("sessions");

    let first = GatewayProcess::start(WAGATE, &fake, &dir).await;
    first.api.ensure("acme").await;
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files > 0, "the database has files");
    assert_eq!(not_private(&dir), Vec::<String>::new());
    assert!(
        !first.log_text().contains(LOOSE_WARNING),
        "nothing to tighten in a directory the gateway created"
    );
    first.kill().await;

    // Loosened as a careless restore would: the directory and its files
    // readable by everyone.
    let world_readable = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    world_readable(&dir, 0o755);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        world_readable(&path, if path.is_dir() { 0o755 } else { 0o644 });
    }
    assert!(!not_private(&dir).is_empty());

    let mut second = GatewayProcess::start(WAGATE, &fake, &dir).await;
    let warning = second.wait_for_log(LOOSE_WARNING).await;
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(not_private(&dir), Vec::<String>::new());
    let (status, body) = second.api.get("/v1/sessions/acme").await;
    assert_eq!(status, StatusCode::OK, "the data survived: {body}");
    second.kill().await;
}
