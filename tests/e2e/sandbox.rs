//! Sandbox mode (issue 21): the `wagate` binary started as a user would,
//! `wagate --sandbox`, and driven over HTTP only — the README's "Try it
//! without a phone" walk-through, the pairing page's "simulate scan" button,
//! and the sandbox API's refusals. (The tests' `wagate` is a sandbox build:
//! the `wagate` entry of the root `[dev-dependencies]` turns the feature on
//! for test builds only.)

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::WAIT;
use test_support::api::Api;
use test_support::gateway::ADMIN_KEY;
use test_support::process::GatewayProcess;
use test_support::wait::poll;
use test_support::webhook::{Receiver, SECRET};

use crate::WAGATE;

const CONTACT: &str = "15550002222";

/// `company`'s pairing link: its URL and token.
async fn pairing_link(api: &Api, company: &str) -> (String, String) {
    let (status, link) = api
        .post(&format!("/v1/sessions/{company}/pairing-links"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let token = link["token"].as_str().expect("the link's token").to_owned();
    (
        link["url"].as_str().expect("the link's URL").to_owned(),
        token,
    )
}

/// The README's walk-through: create a company → pairing link (a sandbox
/// page) → simulated scan → connected → send → the contact received it →
/// the contact replies → a signed webhook marked `sandbox` → the contact
/// reads → a `message.status` `read` event. Then WhatsApp drops the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_through_runs_on_the_sandbox_binary() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start_sandbox(WAGATE, dir.path()).await;
    let api = &gateway.api;
    assert!(
        dir.path().join("sessions-sandbox").is_dir() && !dir.path().join("sessions").exists(),
        "the sandbox keeps its own data directory"
    );
    // Logged before "ready", which the start waited for.
    assert!(gateway.log_text().contains("SANDBOX MODE"), "said loudly");
    let (status, health) = api.get("/healthz").await;
    assert_eq!((status, &health["sandbox"]), (StatusCode::OK, &json!(true)));

    // Create the company, and a webhook to an integrator's receiver.
    let created = api.ensure("acme").await;
    assert_eq!(created["created"], true, "{created}");
    let hooks = Receiver::start().await;
    hooks.subscribe(api, "acme", None).await;

    // The pairing page says sandbox and offers the simulated scan.
    let (url, _) = pairing_link(api, "acme").await;
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Sandbox mode.") && page.contains("Simulate scan"));

    // Simulate the scan (the API's way; the page's button is the next test).
    let mut events = api.events("acme").await;
    let (status, linked) = api.post("/v1/sandbox/sessions/acme/scan", None).await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    let phone = linked["phone"].as_str().expect("the simulated number");
    let connected = events.wait_for_state("connected").await;
    assert_eq!(connected["phone"], phone, "{connected}");

    // Send; the contact received it.
    let (status, sent) = api.send_text("acme", CONTACT, "hello sandbox", None).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let sent_id = sent["message_id"]
        .as_str()
        .expect("a message id")
        .to_owned();
    // The fake records a message once its contact decrypted it; nothing
    // signals that over HTTP, so this polls the sandbox API.
    let received = poll("the contact received it", WAIT / 100, || async {
        let (status, body) = api.get("/v1/sandbox/messages?company=acme").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["messages"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["id"] == sent_id.as_str()).cloned())
    })
    .await;
    assert_eq!(
        (&received["to"], &received["text"], &received["kind"]),
        (&json!(CONTACT), &json!("hello sandbox"), &json!("text"))
    );

    // The contact replies: a signed webhook, marked sandbox.
    let (status, reply) = api
        .post(
            &format!("/v1/sandbox/contacts/{CONTACT}/messages"),
            Some(json!({"company": "acme", "text": "hi from the sandbox"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    hooks
        .wait_for("the reply's webhook", |log| {
            log.accepted
                .iter()
                .any(|h| h.body["data"]["text"] == "hi from the sandbox")
        })
        .await;
    let log = hooks.log();
    assert_eq!(
        log.bad_signatures, 0,
        "every webhook is signed with the secret"
    );
    let hook = log
        .accepted
        .iter()
        .find(|h| h.body["data"]["text"] == "hi from the sandbox")
        .unwrap();
    assert_eq!(hook.body["type"], "message.received");
    assert_eq!(hook.body["data"]["message_id"], reply["id"]);
    assert_eq!(hook.body["data"]["sender_phone"], CONTACT);
    assert!(
        log.accepted.iter().all(|h| h.body["sandbox"] == true),
        "every event body says sandbox: {:?}",
        log.accepted
    );

    // The contact reads the gateway's message: `message.status` read.
    let (status, body) = api
        .post(
            &format!("/v1/sandbox/contacts/{CONTACT}/receipts"),
            Some(json!({"message_ids": [sent_id], "type": "read"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    hooks
        .wait_for("the read status", |log| {
            log.accepted.iter().any(|h| {
                h.body["type"] == "message.status"
                    && h.body["data"]["message_id"] == sent_id.as_str()
                    && h.body["data"]["status"] == "read"
            })
        })
        .await;

    // WhatsApp drops the device: another client took the number.
    let (status, body) = api
        .post(
            "/v1/sandbox/sessions/acme/disconnect",
            Some(json!({"reason": "replaced"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    events.wait_for_state("replaced").await;

    // Invariant 7 holds in sandbox mode too.
    let logs = gateway.log_text();
    for secret in [
        ADMIN_KEY,
        CONTACT,
        phone,
        "hello sandbox",
        "hi from the sandbox",
        SECRET,
    ] {
        assert!(!logs.contains(secret), "the log leaks {secret:?}:\n{logs}");
    }
}

/// The pairing page's "simulate scan" button is a plain form: posting it
/// links the company and sends the browser back to the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pairing_pages_button_simulates_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start_sandbox(WAGATE, dir.path()).await;
    let api = &gateway.api;
    api.ensure("shop").await;
    let (url, token) = pairing_link(api, "shop").await;
    let mut events = api.events("shop").await;

    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser
        .post(format!("{url}/sandbox-scan"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        answer.headers()["location"],
        format!("/pair/{token}").as_str()
    );
    events.wait_for_state("connected").await;

    // Nothing left to scan: the page's script gets the API's code.
    let again = browser
        .post(format!("{url}/sandbox-scan"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_qr", "{body}");
}

/// The sandbox API is admin-only, documented, and refuses bad input with
/// stable codes; a gateway without `--sandbox` has none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_api_is_documented_admin_only_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = GatewayProcess::start_sandbox(WAGATE, dir.path()).await;
    let api = &gateway.api;
    let created = api.ensure("acme").await;
    let company_token = created["token"].as_str().unwrap();

    let (_, doc) = api.get("/openapi.json").await;
    for path in [
        "/v1/sandbox/sessions/{company}/scan",
        "/v1/sandbox/sessions/{company}/pair-code",
        "/v1/sandbox/sessions/{company}/disconnect",
        "/v1/sandbox/contacts/{phone}/messages",
        "/v1/sandbox/contacts/{phone}/receipts",
        "/v1/sandbox/messages",
        "/pair/{token}/sandbox-scan",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }

    let as_company = api.with_key(Some(company_token));
    let (status, body) = as_company
        .post("/v1/sandbox/sessions/acme/scan", None)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );

    let refusals = [
        (
            "/v1/sandbox/sessions/nobody/scan",
            None,
            StatusCode::NOT_FOUND,
            "unknown_company",
        ),
        (
            "/v1/sandbox/sessions/acme/scan?phone=12",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_phone",
        ),
        (
            "/v1/sandbox/sessions/acme/disconnect",
            Some(json!({"reason": "replaced"})),
            StatusCode::CONFLICT,
            "not_linked",
        ),
        (
            "/v1/sandbox/sessions/acme/disconnect",
            Some(json!({"reason": "gremlins"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/v1/sandbox/contacts/not-a-phone/messages",
            Some(json!({"company": "acme", "text": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid_phone",
        ),
        (
            "/v1/sandbox/contacts/15550002222/messages",
            Some(json!({"company": "acme", "text": "x"})),
            StatusCode::CONFLICT,
            "not_linked",
        ),
        (
            "/v1/sandbox/contacts/15550002222/receipts",
            Some(json!({"message_ids": ["NOPE"], "type": "read"})),
            StatusCode::BAD_REQUEST,
            "sandbox_invalid_input",
        ),
        (
            "/v1/sandbox/sessions/acme/pair-code",
            Some(json!({"phone": "15550001234", "code": "ABCD1234"})),
            StatusCode::CONFLICT,
            "sandbox_no_pending_pairing",
        ),
    ];
    for (path, body, want_status, want_code) in refusals {
        let (status, answer) = api.call(Method::POST, path, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{path}: {answer}"
        );
    }

    // The pair-code way: the company asks a code for a number, the
    // simulated phone of that number enters it.
    let mut events = api.events("acme").await;
    let (status, code) = api
        .post(
            "/v1/sessions/acme/pair-code",
            Some(json!({"phone": "15550001234"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{code}");
    let (status, linked) = api
        .post(
            "/v1/sandbox/sessions/acme/pair-code",
            Some(json!({"phone": "15550001234", "code": code["code"]})),
        )
        .await;
    assert_eq!(
        (status, &linked["phone"]),
        (StatusCode::OK, &json!("15550001234")),
        "{linked}"
    );
    events.wait_for_state("connected").await;

    // The phone unlinks the device: logged out, credentials wiped.
    let (status, body) = api
        .post(
            "/v1/sandbox/sessions/acme/disconnect",
            Some(json!({"reason": "device_removed"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    events.wait_for_state("logged_out").await;
}

/// A gateway not started with `--sandbox` has no sandbox: no routes, no
/// documentation of them, no marks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_sandbox_mode_has_none_of_it() {
    let app = test_support::gateway::spawn_app().await;
    let api = &app.api;
    let (status, health) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(health.get("sandbox").is_none(), "{health}");
    let (status, body) = api.post("/v1/sandbox/sessions/acme/scan", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (_, doc) = api.get("/openapi.json").await;
    let paths = doc["paths"].as_object().expect("documented paths");
    assert!(
        !paths.keys().any(|path| path.contains("sandbox")),
        "{:?}",
        paths.keys()
    );
}
