//! The operator console (`/console`) and the rendered API docs (`/docs`):
//! sign-in with the admin key or a company token, the server-side session
//! and its cookie, CSRF tokens, the backoff on wrong keys, and — in headless
//! Chromium ([`crate::browser`]) — a company created, linked by its QR code
//! read from the page, its row turning connected without a reload, a dead
//! letter retried from the page, a delete behind its confirmation, sign-out,
//! `/docs`, and no request to another origin. Screenshots of the overview,
//! the sessions table and a company page, at desktop and phone widths, are
//! written to `docs/screenshots/` (committed; the README shows them).

use std::time::Duration;

use fantoccini::Client;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::browser::{Browser, decode_qr, save, uncaptured, wait_for};
use test_support::fake::start_fake;
use test_support::gateway::{ADMIN_KEY, spawn_app, spawn_app_with};
use test_support::wait::poll;
use test_support::webhook::Receiver;

const ACME_PHONE: &str = "15550003111";

/// A client that does not follow redirects (the console answers 303s).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// What the console answered: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The session cookie this answer set (`name=value`).
    fn cookie(&self) -> Option<String> {
        let set = self.headers.get(SET_COOKIE)?.to_str().ok()?;
        Some(set.split(';').next()?.to_owned())
    }

    /// The CSRF token of a signed-in page (`<body data-csrf="…">`).
    fn csrf(&self) -> String {
        let at = self.body.find("data-csrf=\"").expect("a signed-in page") + 11;
        self.body[at..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the gateway answers");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.expect("a body"),
    }
}

async fn get(base: &str, path: &str, cookie: Option<&str>) -> Answer {
    let mut request = client().get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(request).await
}

async fn post(base: &str, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let mut request = client().post(format!("{base}{path}")).form(form);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(request).await
}

/// Signs in with `key`: the cookie (`name=value`) and the answer.
async fn sign_in(base: &str, key: &str) -> (Option<String>, Answer) {
    let answer = post(base, "/console/sign-in", None, &[("key", key)]).await;
    (answer.cookie(), answer)
}

/// The pairing page's headers, which every console page carries.
fn assert_page_headers(answer: &Answer) {
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
}

/// No `http:`, `https:` or protocol-relative reference in `text`.
fn assert_same_origin_only(what: &str, text: &str) {
    for marker in ["http://", "https://", "src=\"//", "href=\"//", "url(//"] {
        assert!(
            !text.contains(marker),
            "{what} refers to another origin ({marker})"
        );
    }
}

/// Sign-in, the session cookie, CSRF, sign-out; and the console stays out
/// of the API document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_need_the_key_a_csrf_token_and_end_on_sign_out() {
    let app = spawn_app().await;
    let base = app.api.base.clone();

    let answer = get(&base, "/console", None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/console/sign-in");
    let answer = get(&base, "/console/sign-in", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_page_headers(&answer);

    let (cookie, answer) = sign_in(&base, "not-the-key").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none(), "no session for a wrong key");
    assert!(answer.body.contains("id=\"sign-in-error\""));

    let (cookie, answer) = sign_in(&base, ADMIN_KEY).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/console");
    let set = answer.headers[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain-HTTP public URL: {set}");
    assert!(
        !set.contains(ADMIN_KEY),
        "the cookie is a session id, not the key"
    );
    let cookie = cookie.expect("a session cookie");

    let overview = get(&base, "/console", Some(&cookie)).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert_page_headers(&overview);
    assert!(overview.body.contains("id=\"state-counts\""));
    assert_same_origin_only("the overview", &overview.body);
    let csrf = overview.csrf();

    // A form without (or with a wrong) CSRF token changes nothing.
    for form in [
        vec![("company", "acme")],
        vec![("company", "acme"), ("csrf", "forged")],
    ] {
        let refused = post(&base, "/console/sessions", Some(&cookie), &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(
            refused.body.contains("data-code=\"csrf_invalid\""),
            "{}",
            refused.body
        );
    }
    let (status, _) = app.api.get("/v1/sessions/acme").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no company was created");

    // With the token: created through the API's own path (token shown once).
    let created = post(
        &base,
        "/console/sessions",
        Some(&cookie),
        &[("csrf", csrf.as_str()), ("company", "acme")],
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(
        created.body.contains("wgc_"),
        "the new company's token, once"
    );
    assert_eq!(app.api.status("acme").await["company"], "acme");
    // Bad input: a clear page with the API's code, nothing created.
    let bad = post(
        &base,
        "/console/sessions",
        Some(&cookie),
        &[("csrf", csrf.as_str()), ("company", "Not Valid!")],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("data-code=\"invalid_company_id\""),
        "{}",
        bad.body
    );

    // Sign-out ends the session on the server: the old cookie is refused.
    let out = post(
        &base,
        "/console/sign-out",
        Some(&cookie),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(
        out.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let again = get(&base, "/console", Some(&cookie)).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location(), "/console/sign-in");

    // Not part of the JSON API.
    let (_, openapi) = app.api.get("/openapi.json").await;
    let paths = openapi["paths"].as_object().expect("paths");
    assert!(
        paths
            .keys()
            .all(|p| !p.starts_with("/console") && !p.starts_with("/docs"))
    );

    // Assets: embedded, same origin only.
    for asset in ["/assets/console/console.css", "/assets/console/console.js"] {
        let answer = get(&base, asset, None).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_same_origin_only(asset, &answer.body);
    }
    app.stop().await;
}

/// A company token's console shows and acts on its own company only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_token_sees_only_its_company() {
    let app = spawn_app().await;
    let base = app.api.base.clone();
    let token = app.api.ensure("acme").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.api.ensure("globex").await;

    let (cookie, answer) = sign_in(&base, &token).await;
    assert_eq!(answer.location(), "/console/companies/acme");
    let cookie = cookie.expect("a session cookie");
    let page = get(&base, "/console/companies/acme", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();

    let table = get(&base, "/console/sessions", Some(&cookie)).await;
    assert!(table.body.contains("data-company=\"acme\""));
    assert!(
        !table.body.contains("globex"),
        "another company is not listed"
    );
    let other = get(&base, "/console/companies/globex", Some(&cookie)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let acted = post(
        &base,
        "/console/companies/globex/logout",
        Some(&cookie),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(acted.status, StatusCode::FORBIDDEN);
    let create = post(
        &base,
        "/console/sessions",
        Some(&cookie),
        &[("csrf", csrf.as_str()), ("company", "initech")],
    )
    .await;
    assert_eq!(
        create.status,
        StatusCode::FORBIDDEN,
        "only the admin creates companies"
    );
    let (status, _) = app.api.get("/v1/sessions/initech").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A rotated token ends its console sessions.
    let (status, body) = app.api.post("/v1/sessions/acme/token", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = get(&base, "/console/companies/acme", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    app.stop().await;
}

/// Wrong keys slow the address down (the API's failed-authentication
/// backoff): after the third, even the right key waits; an https public URL
/// makes the cookie `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_at_sign_in_are_slowed_down() {
    let app = spawn_app_with(start_fake().await, |config| {
        config.http.auth_free_failures = 2;
        config.public_url = Some("https://wa.example.com".to_owned());
    })
    .await;
    let base = app.api.base.clone();
    for _ in 0..3 {
        let (_, answer) = sign_in(&base, "wrong-key").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let (cookie, answer) = sign_in(&base, ADMIN_KEY).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers.contains_key("retry-after"));
    assert!(answer.body.contains("data-code=\"rate_limited\""));
    assert!(
        cookie.is_none(),
        "a blocked address is not signed in, whatever the key"
    );

    let wait = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let (cookie, answer) = poll("the block to end", Duration::from_millis(200), || {
        let base = base.clone();
        async move {
            let (cookie, answer) = sign_in(&base, ADMIN_KEY).await;
            (answer.status == StatusCode::SEE_OTHER).then_some((cookie, answer))
        }
    })
    .await;
    assert!(wait >= 1 && cookie.is_some());
    assert!(
        answer.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
    app.stop().await;
}

/// Waits until the element `css` exists, and clicks it.
async fn click(page: &Client, css: &str) {
    wait_for(page, css)
        .await
        .click()
        .await
        .unwrap_or_else(|err| panic!("click `{css}`: {err}"));
}

/// Clicks `css`, a link or a form's button, and waits until the page it
/// leads to has replaced the current one. Without the wait, a `wait_for` right
/// after it can find the old page's element of the same id (every action's
/// answer has a `#notice`), which then goes stale under the test's feet.
async fn follow(page: &Client, css: &str) {
    page.execute("document.documentElement.dataset.leaving = 'yes';", vec![])
        .await
        .expect("mark the current page");
    click(page, css).await;
    poll("the next page", Duration::from_millis(50), || async {
        let loaded = page
            .execute(
                "return document.readyState === 'complete' \
                     && document.documentElement.dataset.leaving === undefined;",
                vec![],
            )
            .await
            .ok()?;
        (loaded == json!(true)).then_some(())
    })
    .await;
}

/// Waits until the element `css` exists; its text.
async fn text_of(page: &Client, css: &str) -> String {
    wait_for(page, css).await.text().await.expect("its text")
}

/// Every resource the page loaded came from `base`.
async fn assert_loaded_from(page: &Client, base: &str) {
    let names = page
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
            vec![],
        )
        .await
        .expect("the page's resources");
    for name in names.as_array().expect("a list") {
        let name = name.as_str().unwrap_or_default();
        assert!(name.starts_with(base), "{name} is not from {base}");
    }
}

/// Screenshots of the page at desktop and phone widths, `height` tall (the
/// window's, not the page's: WebDriver shoots the viewport).
async fn shoot(page: &Client, name: &str, height: u32) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    for (width, label) in [(1280, "desktop"), (412, "phone")] {
        page.set_window_size(width, height)
            .await
            .expect("resize the window");
        save(
            &dir,
            &format!("console-{name}-{label}"),
            &page.screenshot().await.unwrap(),
        );
    }
}

/// The console in headless Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app_with(start_fake().await, |config| {
        config.webhooks.webhook_max_attempts = 2;
        config.webhooks.webhook_backoff_ms = 50;
    })
    .await;
    let base = app.api.base.clone();
    let page = &browser.client;

    // Sign in with the admin key.
    page.goto(&format!("{base}/console"))
        .await
        .expect("open the console");
    wait_for(page, "#key")
        .await
        .send_keys(ADMIN_KEY)
        .await
        .unwrap();
    follow(page, "#sign-in-submit").await;
    wait_for(page, "#state-counts").await;
    assert_loaded_from(page, &base).await;

    // Create a company; its page shows the QR code.
    page.goto(&format!("{base}/console/sessions"))
        .await
        .unwrap();
    wait_for(page, "#company-id")
        .await
        .send_keys("acme")
        .await
        .unwrap();
    follow(page, "#create-submit").await;
    assert_eq!(text_of(page, "#company").await, "acme");
    let qr = wait_for(page, "#qr svg").await;
    // Whole in the viewport: a screenshot of an element is clipped to it.
    let arg = serde_json::to_value(&qr).expect("an element reference");
    page.execute("arguments[0].scrollIntoView({block: 'center'});", vec![arg])
        .await
        .expect("scroll to the QR code");
    let code = decode_qr(&qr.screenshot().await.expect("the QR code's pixels"));
    assert!(code.starts_with("2@"), "a WhatsApp QR string");
    shoot(page, "company-pairing", 1100).await;

    // The sessions table, live: the fake phone scans the code read from the
    // page, and the row turns connected without a reload.
    page.goto(&format!("{base}/console/sessions"))
        .await
        .unwrap();
    wait_for(page, "tr[data-company='acme'][data-state='pairing']").await;
    page.execute("window.__consoleTest = 'same document';", vec![])
        .await
        .unwrap();
    app.fake
        .scan_qr_as(ACME_PHONE, &code)
        .await
        .expect("the fake phone scans the page's QR code");
    let row = wait_for(page, "tr[data-company='acme'][data-state='connected']").await;
    assert!(
        row.text()
            .await
            .unwrap()
            .contains(&format!("+{ACME_PHONE}"))
    );
    let mark = page
        .execute("return window.__consoleTest || null;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, json!("same document"), "no reload happened");
    // Filtering by state, in the page.
    app.api.ensure("globex").await;
    wait_for(page, "tr[data-company='globex']").await;
    click(page, "#state-filter option[value='connected']").await;
    wait_for(page, "tr[data-company='globex'][hidden]").await;
    shoot(page, "sessions", 700).await;
    page.goto(&format!("{base}/console")).await.unwrap();
    wait_for(page, "dd[data-count='connected']").await;
    shoot(page, "overview", 1000).await;

    // A receiver answering 500: an inbound message's event becomes a dead
    // letter; the page's retry delivers it once the receiver is back.
    let receiver = Receiver::start().await;
    receiver.fail_for(Duration::from_secs(3600));
    page.goto(&format!("{base}/console/companies/acme"))
        .await
        .unwrap();
    wait_for(page, "#webhook-url")
        .await
        .send_keys(&receiver.url)
        .await
        .unwrap();
    follow(page, "#webhook-save").await;
    wait_for(page, "#notice").await;
    follow(page, "#reconnect").await;
    wait_for(page, "#notice").await;
    app.fake
        .contact_send_text("15550003999", ACME_PHONE, "hello, console")
        .await
        .expect("a fake contact writes to acme");
    poll("a dead letter", Duration::from_millis(100), || async {
        let (_, body) = app.api.get("/v1/sessions/acme/deliveries?state=dead").await;
        body["dead"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
            .then_some(())
    })
    .await;
    receiver.recover();
    page.goto(&format!("{base}/console/companies/acme"))
        .await
        .unwrap();
    follow(page, "#dead .retry").await;
    wait_for(page, "#notice").await;
    receiver
        .wait_for("the retried delivery", |log| !log.accepted.is_empty())
        .await;
    // "Send test event": a `webhook.test` event reaches the receiver.
    follow(page, "#webhook-test").await;
    assert!(text_of(page, "#notice").await.contains("tst_"));
    receiver
        .wait_for("the test event", |log| {
            log.accepted
                .iter()
                .any(|h| h.body["type"] == "webhook.test")
        })
        .await;
    assert_loaded_from(page, &base).await;
    shoot(page, "company", 1800).await;

    // Delete behind a confirmation that names the company.
    page.goto(&format!("{base}/console/companies/globex"))
        .await
        .unwrap();
    follow(page, "#delete").await;
    assert!(text_of(page, "#confirm h1").await.contains("globex"));
    follow(page, "#confirm-submit").await;
    wait_for(page, "#deleted").await;
    let (status, _) = app.api.get("/v1/sessions/globex").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // /docs renders the API document: the session operations are listed.
    page.goto(&format!("{base}/docs/")).await.unwrap();
    wait_for(page, "[data-path='/v1/sessions/{company}']").await;
    let listed = text_of(page, "#swagger-ui").await;
    assert!(
        listed.contains("/v1/sessions/{company}/reconnect"),
        "the session operations"
    );
    assert_loaded_from(page, &base).await;

    // Sign out: the browser's old cookie no longer works.
    page.goto(&format!("{base}/console/sessions"))
        .await
        .unwrap();
    let cookie = page
        .get_named_cookie("wagate_console")
        .await
        .expect("the session cookie");
    let old = format!("wagate_console={}", cookie.value());
    assert_eq!(
        get(&base, "/console/sessions", Some(&old)).await.status,
        StatusCode::OK
    );
    follow(page, "#sign-out").await;
    wait_for(page, "#signed-out").await;
    let refused = get(&base, "/console/sessions", Some(&old)).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);

    browser.close().await;
    app.stop().await;
    uncaptured("console screenshots: docs/screenshots/\n");
}
