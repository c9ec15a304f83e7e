//! Credentials end to end: revoking a company's pairing links.

use reqwest::StatusCode;
use serde_json::{Value, json};

use test_support::api::{Api, Events};
use test_support::gateway::spawn_app;
use wagate::pairing::strings::EN;

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
