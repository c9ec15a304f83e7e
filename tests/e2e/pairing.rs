//! The pairing page end to end: links issued through the API, the page in a
//! real headless Chromium (driven over WebDriver by `chromedriver`), the QR
//! code read from the rendered page and scanned by the fake phone, the pair
//! code read from the page and typed on the fake phone; the page's event
//! stream through logout and delete; and the link's refusals.
//!
//! The browser test runs headless Chromium through [`crate::browser`] (it
//! skips loudly without it, unless `WAGATE_REQUIRE_BROWSER` is set).
//! Screenshots of each state are saved under `$CARGO_TARGET_TMPDIR/pairing-screenshots/`.

use std::time::Duration;

use fantoccini::{Client, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::{Browser, decode_qr, save, screenshot_dir, uncaptured, wait_for};
use test_support::api::{Api, Events};
use test_support::gateway::{TestApp, spawn_app};
use test_support::wait::poll;
use wagate::domain::CompanyId;
use wagate::pairing::strings::EN;
use wagate::pairing::token::Claims;
use wagate::pairing::{PairingLinks, PairingOptions};

const ACME_PHONE: &str = "15550001111";
const GLOBEX_PHONE: &str = "15550001122";

/// `POST /v1/sessions/{company}/pairing-links` with `api`'s credential.
async fn create_link(api: &Api, company: &str, body: Option<Value>) -> (StatusCode, Value) {
    api.post(&format!("/v1/sessions/{company}/pairing-links"), body)
        .await
}

/// A link to `company`'s page (201 expected); returns `(url, token)`.
async fn link(api: &Api, company: &str) -> (String, String) {
    let (status, body) = create_link(api, company, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["url"].as_str().expect("url").to_owned(),
        body["token"].as_str().expect("token").to_owned(),
    )
}

/// A token for `company` that expired a minute ago, signed with the
/// gateway's own key (read from its store, as a restarted gateway would).
fn expired_token(app: &TestApp, company: &str) -> String {
    token_expiring_in(app, company, -60_000)
}

/// A token for `company` expiring `in_ms` from now (negative: in the past),
/// signed with the gateway's own key. Links cannot be issued for less than a
/// minute through the API; this is how tests see one expire.
fn token_expiring_in(app: &TestApp, company: &str, in_ms: i64) -> String {
    let links = PairingLinks::load(&app.store, &PairingOptions::default(), None).expect("the key");
    let company = CompanyId::parse(company).expect("company id");
    let record = app
        .store
        .get_company(&company)
        .expect("read the registry")
        .expect("the company exists");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    links.sign(&Claims {
        company,
        company_created_ms: record.created_at_ms,
        generation: record.pairing_generation,
        expires_at_ms: now + in_ms,
    })
}

/// `token` with one character of its signature changed.
fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.len() - 2;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// A plain GET of a page (no credential): status, content type and body.
async fn fetch_page(url: &str) -> (StatusCode, String, String) {
    let response = reqwest::get(url).await.expect("the gateway answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("a body"))
}

/// Opens the page's event stream.
async fn page_events(api: &Api, token: &str) -> Events {
    let response = reqwest::get(format!("{}/pair/{token}/events", api.base))
        .await
        .expect("open the page's event stream");
    assert_eq!(response.status(), StatusCode::OK);
    Events::from_response(response)
}

/// Waits for the page's `state` event with `state`; returns its data.
async fn wait_for_page_state(events: &mut Events, state: &str) -> Value {
    loop {
        let (name, data) = events.next().await;
        if name == "state" && data["state"] == state {
            return data;
        }
    }
}

/// Issuing links: who may, lifetimes, the answer's shape; and what a link
/// is not: an API credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_links_are_issued_to_the_company_and_open_nothing_else() {
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

    // The admin: default lifetime, absolute URL on the Host the request used.
    let before = now_ms();
    let response = api
        .request(Method::POST, "/v1/sessions/acme/pairing-links")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["url"], format!("{}/pair/{token}", api.base));
    let expires = body["expires_at_ms"].as_i64().unwrap();
    assert!(
        (before + 899_000..=now_ms() + 900_000).contains(&expires),
        "15 minutes by default: {body}"
    );
    assert!(
        body["expires_at"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );

    // The company's own token may; another company's may not; nobody else.
    let (status, body) = create_link(&api.with_key(Some(&acme_token)), "acme", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = create_link(&api.with_key(Some(&globex_token)), "acme", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, _) = create_link(&api.with_key(None), "acme", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = create_link(api, "initech", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("unknown_company"))
    );

    // Lifetimes: asked for within bounds, refused outside.
    let (status, body) = create_link(api, "acme", Some(json!({"ttl_seconds": 120}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["expires_at_ms"].as_i64().unwrap() <= now_ms() + 120_000);
    for bad in [
        json!({"ttl_seconds": 5}),
        json!({"ttl_seconds": 100_000_000}),
    ] {
        let (status, body) = create_link(api, "acme", Some(bad)).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_ttl"))
        );
    }
    let (status, body) = create_link(api, "acme", Some(json!({"ttl": 60}))).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_body"))
    );

    // The link's token is not an API credential, anywhere under /v1.
    let as_bearer = api.with_key(Some(&token));
    for (method, path) in [
        (Method::GET, "/v1/sessions/acme"),
        (Method::GET, "/v1/sessions/acme/qr"),
        (Method::GET, "/v1/sessions/acme/events"),
        (Method::POST, "/v1/sessions/acme/pairing-links"),
        (Method::POST, "/v1/sessions/acme/logout"),
        (Method::GET, "/v1/sessions"),
    ] {
        let (status, body) = as_bearer.call(method.clone(), path, None).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::UNAUTHORIZED, &json!("invalid_credentials")),
            "{method} {path}"
        );
    }
    assert_eq!(
        api.status("acme").await["state"],
        "pairing",
        "nothing changed"
    );

    // Documented in the OpenAPI document, the page's routes without a bearer.
    let (_, doc) = api.get("/openapi.json").await;
    let issue = &doc["paths"]["/v1/sessions/{company}/pairing-links"]["post"];
    assert!(issue["security"].is_array(), "{issue}");
    let page_doc = &doc["paths"]["/pair/{token}"]["get"];
    assert!(
        page_doc.is_object() && page_doc["security"].is_null(),
        "{page_doc}"
    );

    // The page and its refusals: human HTML pages with distinct statuses.
    let page = |token: &str| format!("{}/pair/{token}", api.base);
    let (status, content_type, html) = fetch_page(&page(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains(EN.title) && html.contains("acme"));
    for (url, expected, words) in [
        (
            page(&expired_token(&app, "acme")),
            StatusCode::GONE,
            EN.expired_title,
        ),
        (
            page(&tampered(&token)),
            StatusCode::FORBIDDEN,
            EN.invalid_title,
        ),
        (page("not-a-token"), StatusCode::FORBIDDEN, EN.invalid_title),
        (page(""), StatusCode::FORBIDDEN, EN.invalid_title),
        (
            format!("{}/pair", api.base),
            StatusCode::FORBIDDEN,
            EN.invalid_title,
        ),
        (
            page(&"A".repeat(5000)),
            StatusCode::FORBIDDEN,
            EN.invalid_title,
        ),
    ] {
        let (status, content_type, html) = fetch_page(&url).await;
        assert_eq!(status, expected, "{html}");
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(html.contains(words), "{html}");
        assert!(serde_json::from_str::<Value>(&html).is_err(), "never JSON");
    }
    let response = reqwest::get(format!("{}/pair/{token}/events", api.base))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    drop(response);
    for (path, content_type) in [
        ("/assets/pairing/pair.css", "text/css"),
        ("/assets/pairing/pair.js", "text/javascript"),
    ] {
        let (status, actual, _) = fetch_page(&format!("{}{path}", api.base)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(actual.starts_with(content_type), "{path}: {actual}");
    }

    // The pair-code form: JSON for the page's script, HTML without it, and a
    // clear answer for a bad number.
    let (_, globex_link) = link(api, "globex").await;
    let form = |accept: &'static str, phone: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/pair/{token}/pair-code", api.base))
            .header("accept", accept)
            .form(&[("phone", phone)])
            .send()
    };
    let response = form("application/json", "not a number").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_phone");
    assert_eq!(body["error"]["message"], EN.error_phone);
    let response = form("text/html", "+1 555").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains(EN.error_phone));
    let response = form("application/json", "+15550001111").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let code = body["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 8, "{body}");
    assert_eq!(body["display"], format!("{}-{}", &code[..4], &code[4..]));
    // Without script (one code per session here: a second request on the
    // same pairing socket is refused upstream).
    let response = reqwest::Client::new()
        .post(format!("{}/pair/{globex_link}/pair-code", api.base))
        .form(&[("phone", "+15550001122")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"pair-code-value\""), "{html}");
    assert!(
        html.contains(&format!("href=\"/pair/{globex_link}\"")),
        "a way back"
    );

    // Deleting the company kills its links, also once the id is reused.
    let (status, _) = api.delete("/v1/sessions/acme").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, html) = fetch_page(&page(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains(EN.unknown_title), "{html}");
    api.ensure("acme").await;
    let (status, _, _) = fetch_page(&page(&token)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a new company of the same id"
    );
    app.stop().await;
}

/// The page's live stream: a session that is already connected (done at
/// once), logged out while the page is open (a new attempt from the page),
/// and deleted while the page is open (done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_stream_follows_the_session_through_logout_and_delete() {
    let app = spawn_app().await;
    let api = &app.api;
    api.link_by_qr(&app.fake, "acme", ACME_PHONE).await;
    let (_, token) = link(api, "acme").await;

    // Already connected when opened: says so, and the stream ends.
    let mut events = page_events(api, &token).await;
    let (name, view) = events.next().await;
    assert_eq!(name, "state");
    assert_eq!(view["state"], "connected", "{view}");
    assert_eq!(view["done"], true);
    assert!(
        view["message"]
            .as_str()
            .unwrap()
            .contains(&format!("+{ACME_PHONE}"))
    );
    assert!(
        events.ends().await,
        "the page stops updating once connected"
    );
    let response = reqwest::Client::new()
        .post(format!("{}/pair/{token}/pair-code", api.base))
        .header("accept", "application/json")
        .form(&[("phone", ACME_PHONE)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], EN.error_already_linked);

    // Logged out while the page is open (here: by the administrator, while
    // a new QR code is shown): the page offers a new attempt, which works.
    let (status, _) = api.post("/v1/sessions/acme/logout", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut events = page_events(api, &token).await;
    // The QR code and the state that shows it, in whichever order they come.
    let (mut view, mut qr) = (Value::Null, Value::Null);
    while view.is_null() || qr.is_null() {
        match events.next().await {
            (name, data) if name == "state" && data["state"] == "waiting_for_scan" => view = data,
            (name, data) if name == "qr" => qr = data,
            _ => {}
        }
    }
    assert_eq!(view["show_qr"], true);
    assert!(qr["svg"].as_str().unwrap().starts_with("<svg"), "{qr}");
    let (status, _) = api.post("/v1/sessions/acme/logout", None).await;
    assert_eq!(status, StatusCode::OK);
    let view = wait_for_page_state(&mut events, "logged_out").await;
    assert_eq!(
        (view["can_restart"].as_bool(), view["done"].as_bool()),
        (Some(true), Some(false))
    );
    let response = reqwest::Client::new()
        .post(format!("{}/pair/{token}/start", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    wait_for_page_state(&mut events, "waiting_for_scan").await;

    // The link expires while the page is open: the page is told, the stream ends.
    let mut expiring = page_events(api, &token_expiring_in(&app, "acme", 1_500)).await;
    loop {
        let (name, _) = expiring.next().await;
        if name == "expired" {
            break;
        }
    }
    assert!(expiring.ends().await, "nothing follows the expiry");

    // Deleted while the page is open: the page is told, the stream ends, the
    // link is dead.
    let (status, _) = api.delete("/v1/sessions/acme").await;
    assert_eq!(status, StatusCode::OK);
    let view = wait_for_page_state(&mut events, "deleted").await;
    assert_eq!(view["done"], true);
    assert!(events.ends().await);
    let (status, _, _) = fetch_page(&format!("{}/pair/{token}", api.base)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// The whole flow in headless Chromium: QR read from the rendered page and
/// scanned; pair code read from the page and typed; expired and tampered
/// links refused. A screenshot of each state is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_page_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let shots = screenshot_dir("pairing-screenshots");
    let app = spawn_app().await;
    let api = &app.api;
    api.ensure("acme").await;
    api.ensure("globex").await;
    let page = &browser.client;

    // QR path.
    let (url, _) = link(api, "acme").await;
    page.goto(&url).await.expect("open the link");
    let qr = wait_for(page, "#qr svg").await;
    // Marks this document: a reload would lose the mark.
    page.execute("window.__pairingTest = 'same document';", vec![])
        .await
        .unwrap();
    assert_eq!(
        wait_for_state(page, "waiting_for_scan").await,
        EN.state_waiting_for_scan
    );
    save(
        &shots,
        "1-waiting-for-scan",
        &page.screenshot().await.unwrap(),
    );
    let png = qr.screenshot().await.expect("a screenshot of the QR code");
    let code = decode_qr(&png);
    assert!(code.starts_with("2@"), "a WhatsApp QR string");
    app.fake
        .scan_qr_as(ACME_PHONE, &code)
        .await
        .expect("the fake phone scans the code read from the page");
    let text = wait_for_state(page, "connected").await;
    assert!(text.contains(&format!("+{ACME_PHONE}")), "{text}");
    let mark = page
        .execute("return window.__pairingTest || null;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, json!("same document"), "no reload happened");
    assert!(
        !page
            .find(Locator::Css("#scan"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    save(&shots, "2-connected", &page.screenshot().await.unwrap());
    assert_eq!(api.status("acme").await["phone"], ACME_PHONE);

    // Pair-code path.
    let (url, token) = link(api, "globex").await;
    page.goto(&url).await.expect("open the link");
    wait_for_state(page, "waiting_for_scan").await;
    let input = page.find(Locator::Css("#phone-input")).await.unwrap();
    let submit = page.find(Locator::Css("#phone-submit")).await.unwrap();
    input.send_keys("12").await.unwrap();
    submit.click().await.unwrap();
    let error = wait_for(page, "#phone-error:not([hidden])").await;
    assert_eq!(error.text().await.unwrap(), EN.error_phone);
    input.clear().await.unwrap();
    input.send_keys("+1 555 000 1122").await.unwrap();
    submit.click().await.unwrap();
    let shown = wait_for(page, "#pair-code:not([hidden]) #pair-code-value").await;
    let display = shown.text().await.unwrap();
    let pair_code: String = display.chars().filter(|c| *c != '-').collect();
    assert_eq!(pair_code.len(), 8, "{display}");
    let focused = page
        .execute("return document.activeElement.id;", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("pair-code"), "focus moves to the code");
    save(&shots, "3-pair-code", &page.screenshot().await.unwrap());
    app.fake
        .enter_pair_code(GLOBEX_PHONE, &pair_code)
        .await
        .expect("the fake phone types the code read from the page");
    let text = wait_for_state(page, "connected").await;
    assert!(text.contains(&format!("+{GLOBEX_PHONE}")), "{text}");

    // Expired and tampered links.
    page.goto(&format!(
        "{}/pair/{}",
        api.base,
        expired_token(&app, "globex")
    ))
    .await
    .unwrap();
    let heading = wait_for(page, "#message h1").await.text().await.unwrap();
    assert_eq!(heading, EN.expired_title);
    save(&shots, "4-expired", &page.screenshot().await.unwrap());
    page.goto(&format!("{}/pair/{}", api.base, tampered(&token)))
        .await
        .unwrap();
    let heading = wait_for(page, "#message h1").await.text().await.unwrap();
    assert_eq!(heading, EN.invalid_title);
    save(&shots, "5-tampered", &page.screenshot().await.unwrap());

    // Logged out while open: the page offers a new QR code, which comes;
    // then deleted while open: the page says so and stops.
    api.ensure("initech").await;
    let (url, _) = link(api, "initech").await;
    page.goto(&url).await.expect("open the link");
    let first = wait_for(page, "#qr svg").await.html(false).await.unwrap();
    let (status, _) = api.post("/v1/sessions/initech/logout", None).await;
    assert_eq!(status, StatusCode::OK);
    wait_for_state(page, "logged_out").await;
    let restart = wait_for(page, "#restart:not([hidden])").await;
    restart.click().await.expect("click \"Show a new QR code\"");
    wait_for_state(page, "waiting_for_scan").await;
    // A new QR code after the logout (polled: the old one may still be on
    // screen for a moment, and a replaced element goes stale when read).
    poll(
        "a new QR code after the logout",
        Duration::from_millis(50),
        || async {
            let svg = page.find(Locator::Css("#qr svg")).await.ok()?;
            let second = svg.html(false).await.ok()?;
            (second != first).then_some(())
        },
    )
    .await;
    let (status, _) = api.delete("/v1/sessions/initech").await;
    assert_eq!(status, StatusCode::OK);
    let text = wait_for_state(page, "deleted").await;
    assert_eq!(text, EN.state_deleted);
    save(&shots, "6-deleted", &page.screenshot().await.unwrap());

    // The link expires while open: the countdown ends and the page says so
    // (a company still waiting for its scan: a linked one is done at once).
    api.ensure("umbrella").await;
    let url = format!(
        "{}/pair/{}",
        api.base,
        token_expiring_in(&app, "umbrella", 2_500)
    );
    page.goto(&url).await.expect("open the link");
    wait_for(page, "#countdown:not([hidden])").await;
    let text = wait_for_state(page, "expired").await;
    assert!(text.starts_with(EN.expired_title), "{text}");

    browser.close().await;
    app.stop().await;
    uncaptured(&format!("pairing page screenshots: {}\n", shots.display()));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Waits until the page shows `state` (its `data-state`); returns the state's
/// words as the page shows them.
async fn wait_for_state(page: &Client, state: &str) -> String {
    wait_for(page, &format!("main[data-state='{state}']")).await;
    wait_for(page, "#state")
        .await
        .text()
        .await
        .expect("the state's text")
}
