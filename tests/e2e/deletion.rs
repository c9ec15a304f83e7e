//! Deleting a company while other calls on it are in flight (issue 16,
//! "Races"): a webhook set during the delete never brings the company back —
//! no registry record, no session, and no webhook left behind that a company
//! created anew under the same id would inherit.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use test_support::gateway::{company, spawn_app};
use test_support::webhook::{Receiver, SECRET};

/// Rounds of create → (delete ‖ webhook sets); each round's webhook sets
/// run back to back for the whole delete, so between them they land before,
/// during and after each of its steps.
const ROUNDS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_a_webhook_while_the_company_is_deleted_never_brings_it_back() {
    let receiver = Receiver::start().await;
    let app = spawn_app().await;
    let webhook = json!({"url": receiver.url, "secret": SECRET});
    let put_webhook = || {
        app.api.call(
            Method::PUT,
            "/v1/sessions/acme/webhook",
            Some(webhook.clone()),
        )
    };
    let (mut won_before, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        // Created anew under the same id: nothing of the last round's
        // company, its webhook least of all.
        app.api.ensure("acme").await;
        let (status, body) = app.api.get("/v1/sessions/acme/webhook").await;
        assert_eq!(status, StatusCode::OK, "round {round}: {body}");
        assert_eq!(body["url"], Value::Null, "round {round}: inherited {body}");

        let delete = tokio::spawn({
            let api = app.api.clone();
            async move { api.delete("/v1/sessions/acme").await }
        });
        while !delete.is_finished() {
            let (status, body) = put_webhook().await;
            match status {
                StatusCode::OK => won_before += 1,
                StatusCode::NOT_FOUND => {
                    assert_eq!(body["error"]["code"], "unknown_company", "{body}");
                    refused += 1;
                    break;
                }
                other => panic!("round {round}: {other} {body}"),
            }
        }
        let (status, report) = delete.await.expect("the delete task");
        assert_eq!(status, StatusCode::OK, "round {round}: {report}");
        let registry = report["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["step"] == "registry"));
        assert_eq!(
            registry.map(|step| &step["outcome"]),
            Some(&json!("done")),
            "round {round}: {report}"
        );

        // Absent, as the API and the store see it.
        let (status, body) = app.api.get("/v1/sessions/acme").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "round {round}: {body}");
        let (_, list) = app.api.get("/v1/sessions").await;
        assert!(
            !list.to_string().contains("\"acme\""),
            "round {round}: listed after its delete: {list}"
        );
        assert!(
            app.store.get_company(&company("acme")).unwrap().is_none(),
            "round {round}: a registry record outlived the delete"
        );
        let (_, body) = app.api.get("/v1/sessions/acme/webhook").await;
        assert_eq!(
            body["url"],
            Value::Null,
            "round {round}: a webhook outlived its company: {body}"
        );
        let (status, body) = put_webhook().await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::NOT_FOUND, &json!("unknown_company")),
            "round {round}: a webhook set after the delete"
        );
    }
    // Both orders happened: sets that won before the delete's removal, and
    // sets the removal refused.
    assert!(
        won_before > 0 && refused > 0,
        "{won_before} won, {refused} refused"
    );
    app.stop().await;
}
