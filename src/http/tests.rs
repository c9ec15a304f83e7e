//! Router tests: the whole API through `oneshot`, no socket. The pool points
//! at a WhatsApp URL nobody listens on, so sessions exist but never link;
//! linking, sending and restarts are covered end to end in `tests/e2e`.
//!
//! Every refusal is checked for its status and stable code, and for having
//! changed nothing.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::{AppState, Lifecycle, MAX_BODY_BYTES, router};
use crate::auth::{AdminKey, Authenticator, TokenIndex};
use crate::domain::CompanyId;
use crate::pool::{SessionPool, WaConfig};
use crate::store::Store;

const ADMIN: &str = "router-test-admin-key";

struct Harness {
    router: Router,
    state: AppState,
    store: Store,
}

fn harness() -> Harness {
    let store = Store::open_temporary().unwrap();
    let wa = WaConfig {
        // Port 9 (discard) on loopback: refused at once, nothing leaves the box.
        url: Some("ws://127.0.0.1:9/ws/chat".into()),
        version: crate::wa::version::WaVersion::fixed((2, 3000, 1)),
        ..WaConfig::default()
    };
    let pool = SessionPool::new(store.clone(), wa);
    let auth = Authenticator::new(
        AdminKey::from_plaintext(ADMIN),
        store.clone(),
        TokenIndex::default(),
    );
    let state = AppState {
        media: Default::default(),
        outbound: Default::default(),
        send_rate: crate::http::send_rate::SendRate::new(&Default::default()),
        pool,
        auth: std::sync::Arc::new(auth),
        lifecycle: Lifecycle::default(),
        pairing: std::sync::Arc::new(
            crate::pairing::PairingLinks::load(&store, &Default::default(), None).unwrap(),
        ),
        company_streams: crate::http::limits::StreamSlots::new(2),
        link_streams: crate::http::limits::StreamSlots::new(2),
        request_timeout: std::time::Duration::from_secs(30),
        stream_max_duration: None,
        auth_backoff: Default::default(),
        #[cfg(feature = "sandbox")]
        sandbox: None,
    };
    Harness {
        router: router(state.clone()),
        state,
        store,
    }
}

/// What a test request carries.
struct Req<'a> {
    method: Method,
    uri: &'a str,
    key: Option<&'a str>,
    body: Option<Body>,
    content_type: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Req<'a> {
    fn new(method: Method, uri: &'a str) -> Self {
        Self {
            method,
            uri,
            key: Some(ADMIN),
            body: None,
            content_type: None,
            headers: Vec::new(),
        }
    }

    fn key(mut self, key: Option<&'a str>) -> Self {
        self.key = key;
        self
    }

    fn json(mut self, value: Value) -> Self {
        self.body = Some(Body::from(value.to_string()));
        self.content_type = Some("application/json");
        self
    }

    fn raw(mut self, body: impl Into<Body>, content_type: Option<&'a str>) -> Self {
        self.body = Some(body.into());
        self.content_type = content_type;
        self
    }

    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl Harness {
    /// Sends a request; returns the status, the headers and the body as JSON
    /// (`Null` if it is not JSON).
    async fn send(&self, req: Req<'_>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut builder = Request::builder().method(req.method).uri(req.uri);
        if let Some(key) = req.key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if let Some(content_type) = req.content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(req.body.unwrap_or_else(Body::empty)).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn call(&self, req: Req<'_>) -> (StatusCode, Value) {
        let (status, _, body) = self.send(req).await;
        status_and_envelope_checked(status, body)
    }

    async fn ensure(&self, company: &str) -> Value {
        let uri = format!("/v1/sessions/{company}");
        let (status, body) = self.call(Req::new(Method::POST, &uri)).await;
        assert!(status.is_success(), "{status} {body}");
        body
    }

    /// The companies the API lists and the store holds.
    async fn companies(&self) -> (Vec<String>, Vec<String>) {
        let (status, list) = self.call(Req::new(Method::GET, "/v1/sessions")).await;
        assert_eq!(status, StatusCode::OK);
        let listed = list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["company"].as_str().unwrap().to_owned());
        let stored = self
            .store
            .list_companies()
            .unwrap()
            .into_iter()
            .map(|r| r.company_id);
        (listed.collect(), stored.collect())
    }
}

/// Every non-2xx answer must be the envelope with a snake_case code.
fn status_and_envelope_checked(status: StatusCode, body: Value) -> (StatusCode, Value) {
    if !status.is_success() {
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}: not the envelope: {body}"));
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    (status, body)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let h = harness();
    for (key, want) in [
        (None, "missing_credentials"),
        (Some("wrong-key"), "invalid_credentials"),
    ] {
        for (method, uri) in [
            (Method::GET, "/v1/sessions"),
            (Method::POST, "/v1/sessions/acme"),
            (Method::GET, "/v1/sessions/acme/qr"),
            (Method::DELETE, "/v1/sessions/acme"),
        ] {
            let (status, body) = h.call(Req::new(method.clone(), uri).key(key)).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, want),
                "{method} {uri}"
            );
        }
    }
    // A bad company id does not tell an unauthenticated caller anything.
    let (status, body) = h
        .call(Req::new(Method::POST, "/v1/sessions/BAD").key(None))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_credentials")
    );
    assert_eq!(h.companies().await, (vec![], vec![]), "nothing was created");
}

#[tokio::test]
async fn ensure_creates_once_and_returns_the_token_once() {
    let h = harness();
    let (status, headers, first) = h.send(Req::new(Method::POST, "/v1/sessions/acme")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "no-store",
        "the token must not be cached"
    );
    assert_eq!(first["created"], true);
    assert!(first["token"].as_str().unwrap().starts_with("wgc_"));
    assert_eq!(first["session"]["company"], "acme");

    let (status, second) = h.call(Req::new(Method::POST, "/v1/sessions/acme")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["created"], false);
    assert!(
        second.get("token").is_none(),
        "the token is shown only once: {second}"
    );
    assert_eq!(
        h.companies().await,
        (vec!["acme".to_owned()], vec!["acme".to_owned()])
    );
    let stored = h
        .store
        .get_company(&CompanyId::parse("acme").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.token_hash,
        crate::token::hash_token(first["token"].as_str().unwrap()).to_vec(),
        "stored hashed"
    );
}

#[tokio::test]
async fn company_tokens_act_only_on_their_own_company() {
    let h = harness();
    let acme = h.ensure("acme").await["token"].as_str().unwrap().to_owned();
    let globex = h.ensure("globex").await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = h
        .call(Req::new(Method::GET, "/v1/sessions/acme").key(Some(&acme)))
        .await;
    assert_eq!(
        (status, body["company"].as_str()),
        (StatusCode::OK, Some("acme"))
    );
    let (status, _) = h
        .call(Req::new(Method::POST, "/v1/sessions/acme").key(Some(&acme)))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a tenant may ensure its own session"
    );

    for (method, uri, key) in [
        (Method::GET, "/v1/sessions/globex", &acme),
        (Method::DELETE, "/v1/sessions/globex", &acme),
        (Method::POST, "/v1/sessions/acme/reconnect", &globex),
        (Method::POST, "/v1/sessions/initech", &acme),
        (Method::GET, "/v1/sessions", &acme),
    ] {
        let (status, body) = h.call(Req::new(method.clone(), uri).key(Some(key))).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {uri}"
        );
    }
    let both = vec!["acme".to_owned(), "globex".to_owned()];
    assert_eq!(
        h.companies().await,
        (both.clone(), both),
        "nothing was created or deleted"
    );
}

#[tokio::test]
async fn invalid_company_ids_are_refused() {
    let h = harness();
    let long = format!("/v1/sessions/{}", "a".repeat(65));
    for uri in [
        "/v1/sessions/Acme",
        "/v1/sessions/-acme",
        "/v1/sessions/a%20b",
        "/v1/sessions/%C3%A9",
        long.as_str(),
    ] {
        let (status, body) = h.call(Req::new(Method::POST, uri)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_company_id"),
            "{uri}: {body}"
        );
    }
    assert_eq!(h.companies().await, (vec![], vec![]));
}

#[tokio::test]
async fn malformed_requests_get_the_envelope_and_change_nothing() {
    let h = harness();
    h.ensure("acme").await;
    let acme = CompanyId::parse("acme").unwrap();
    let before = h.call(Req::new(Method::GET, "/v1/sessions/acme")).await.1["state"].clone();
    let messages = "/v1/sessions/acme/messages";
    let huge = json!({"to": "15550002222", "text": "x".repeat(MAX_BODY_BYTES)});

    let cases = [
        (
            Req::new(Method::POST, messages).raw("{not json", Some("application/json")),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Req::new(Method::POST, messages).json(json!({"to": "15550002222"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Req::new(Method::POST, messages).json(json!({"to": 1, "text": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Req::new(Method::POST, messages)
                .json(json!({"to": "15550002222", "text": "x", "extra": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Req::new(Method::POST, messages).raw(r#"{"to":"15550002222","text":"x"}"#, None),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            // Sends take media up to their own limit; other routes keep
            // MAX_BODY_BYTES.
            Req::new(Method::POST, "/v1/sessions/acme/pair-code").json(huge),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Req::new(Method::POST, messages).json(json!({"to": "12345", "text": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid_phone",
        ),
        (
            Req::new(Method::POST, messages).json(json!({"to": "120363@g.us", "text": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid_recipient",
        ),
        (
            Req::new(Method::POST, messages).json(json!({"to": "15550002222", "text": "  "})),
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
        (
            Req::new(Method::POST, messages)
                .json(json!({"to": "15550002222", "text": "x"}))
                .header("idempotency-key", "has space"),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
        ),
        (
            Req::new(Method::POST, "/v1/sessions/acme/pair-code").json(json!({"phone": "0155"})),
            StatusCode::BAD_REQUEST,
            "invalid_phone",
        ),
        (
            Req::new(Method::POST, "/v1/sessions/acme/pair-code").json(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Req::new(Method::GET, "/v1/sessions/acme/qr?format=gif"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Req::new(Method::GET, "/v1/nope"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Req::new(Method::PUT, "/v1/sessions/acme"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let label = format!("{} {}", req.method, req.uri);
        let (status, body) = h.call(req).await;
        assert_eq!(
            (status, code(&body)),
            (want_status, want_code),
            "{label}: {body}"
        );
    }

    assert_eq!(
        h.companies().await,
        (vec!["acme".to_owned()], vec!["acme".to_owned()])
    );
    assert_eq!(
        h.call(Req::new(Method::GET, "/v1/sessions/acme")).await.1["state"],
        before
    );
    assert_eq!(
        h.store.idempotent_message_id(&acme, "has space").unwrap(),
        None
    );
}

#[tokio::test]
async fn unknown_companies_are_404() {
    let h = harness();
    let send = json!({"to": "15550002222", "text": "hi"});
    for req in [
        Req::new(Method::GET, "/v1/sessions/initech"),
        Req::new(Method::GET, "/v1/sessions/initech/qr"),
        Req::new(Method::GET, "/v1/sessions/initech/events"),
        Req::new(Method::POST, "/v1/sessions/initech/reconnect"),
        Req::new(Method::POST, "/v1/sessions/initech/logout"),
        Req::new(Method::DELETE, "/v1/sessions/initech"),
        Req::new(Method::POST, "/v1/sessions/initech/messages").json(send),
        Req::new(Method::POST, "/v1/sessions/initech/pair-code")
            .json(json!({"phone": "15550001111"})),
    ] {
        let label = format!("{} {}", req.method, req.uri);
        let (status, body) = h.call(req).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "unknown_company"),
            "{label}: {body}"
        );
    }
    assert_eq!(
        h.companies().await,
        (vec![], vec![]),
        "no request created the company"
    );
}

#[tokio::test]
async fn sending_while_not_connected_is_409_and_records_nothing() {
    let h = harness();
    let token = h.ensure("acme").await["token"].as_str().unwrap().to_owned();
    let req = Req::new(Method::POST, "/v1/sessions/acme/messages")
        .key(Some(&token))
        .json(json!({"to": "+15550002222", "text": "hello"}))
        .header("Idempotency-Key", "order-1");
    let (status, body) = h.call(req).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "not_connected"),
        "{body}"
    );
    assert!(
        body["error"]["state"].is_string(),
        "the state is reported: {body}"
    );
    let acme = CompanyId::parse("acme").unwrap();
    assert_eq!(
        h.store.idempotent_message_id(&acme, "order-1").unwrap(),
        None,
        "the key was not consumed"
    );
}

#[tokio::test]
async fn no_qr_is_409_with_the_state() {
    let h = harness();
    h.ensure("acme").await;
    let (status, body) = h
        .call(Req::new(Method::GET, "/v1/sessions/acme/qr?format=png"))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "no_qr"),
        "{body}"
    );
    assert!(body["error"]["state"].is_string(), "{body}");
}

#[tokio::test]
async fn delete_reports_each_step_and_revokes_the_token() {
    let h = harness();
    let token = h.ensure("acme").await["token"].as_str().unwrap().to_owned();
    let (status, report) = h
        .call(Req::new(Method::DELETE, "/v1/sessions/acme").key(Some(&token)))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["logout", "credentials", "registry"]);
    assert_eq!(report["steps"][2]["outcome"], "done");

    let (status, body) = h.call(Req::new(Method::GET, "/v1/sessions/acme")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "unknown_company")
    );
    let (status, body) = h
        .call(Req::new(Method::GET, "/v1/sessions/acme").key(Some(&token)))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "the token died with it"
    );
    assert_eq!(h.companies().await, (vec![], vec![]));
}

#[tokio::test]
async fn health_and_readiness() {
    let h = harness();
    let (status, body) = h.call(Req::new(Method::GET, "/healthz").key(None)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = h.call(Req::new(Method::GET, "/readyz").key(None)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    );
    h.state.lifecycle.set_ready();
    let (status, _) = h.call(Req::new(Method::GET, "/readyz").key(None)).await;
    assert_eq!(status, StatusCode::OK);
    h.state.lifecycle.begin_stopping();
    let (status, _) = h.call(Req::new(Method::GET, "/readyz").key(None)).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready while stopping"
    );
}

#[tokio::test]
async fn openapi_document_describes_the_api() {
    let h = harness();
    let (status, doc) = h
        .call(Req::new(Method::GET, "/openapi.json").key(None))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/v1/sessions", "get"),
        ("/v1/sessions/{company}", "post"),
        ("/v1/sessions/{company}", "get"),
        ("/v1/sessions/{company}", "delete"),
        ("/v1/sessions/{company}/qr", "get"),
        ("/v1/sessions/{company}/pair-code", "post"),
        ("/v1/sessions/{company}/events", "get"),
        ("/v1/sessions/{company}/reconnect", "post"),
        ("/v1/sessions/{company}/logout", "post"),
        ("/v1/sessions/{company}/messages", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "ErrorBody",
        "SessionView",
        "SendMessageRequest",
        "QrView",
        "EnsureResponse",
        "DeleteResponse",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }
}

#[tokio::test]
async fn a_rotated_token_replaces_its_predecessor_at_once() {
    let h = harness();
    let old = h.ensure("acme").await["token"].as_str().unwrap().to_owned();
    let globex = h.ensure("globex").await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = h
        .call(Req::new(Method::POST, "/v1/sessions/acme/token").key(Some(&old)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["token"].as_str().unwrap().to_owned();
    assert!(new.starts_with("wgc_") && new != old);

    let (status, body) = h
        .call(Req::new(Method::GET, "/v1/sessions/acme").key(Some(&old)))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let (status, _) = h
        .call(Req::new(Method::GET, "/v1/sessions/acme").key(Some(&new)))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Another company's token cannot rotate acme's; the admin can, and an
    // unknown company gets 404 without being created.
    let (status, body) = h
        .call(Req::new(Method::POST, "/v1/sessions/acme/token").key(Some(&globex)))
        .await;
    assert_eq!(body["error"]["code"], "forbidden", "{status}");
    let (status, _) = h
        .call(Req::new(Method::POST, "/v1/sessions/acme/token"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .call(Req::new(Method::POST, "/v1/sessions/initech/token"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "unknown_company");
    assert!(
        h.store
            .get_company(&crate::domain::CompanyId::parse("initech").unwrap())
            .unwrap()
            .is_none()
    );
}
