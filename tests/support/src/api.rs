//! The gateway's HTTP API as a test client: [`Api`] (a base URL and a
//! credential) and [`Events`], one Server-Sent Events stream parsed into
//! `(event, data)` pairs, on which session states and QR codes are awaited.

use std::pin::Pin;

use fakewa::FakeServer;
use futures_util::{Stream, StreamExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::wait::WAIT;

/// States a session does not leave by itself: waiting for another state
/// fails at once when the session lands in one of them.
const TERMINAL_STATES: [&str; 5] = ["logged_out", "banned", "outdated", "stopped", "replaced"];

/// An HTTP client for the gateway at `base`, authenticating with `key`.
#[derive(Clone)]
pub struct Api {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// The bearer credential (admin key or company token); `None`: no header.
    pub key: Option<String>,
    http: reqwest::Client,
}

impl Api {
    /// A client for the gateway at `base` with the credential `key`.
    pub fn new(base: String, key: Option<&str>) -> Self {
        Self {
            base,
            key: key.map(str::to_owned),
            http: reqwest::Client::new(),
        }
    }

    /// The same gateway with another credential (`None`: no header).
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self {
            base: self.base.clone(),
            key: key.map(str::to_owned),
            http: self.http.clone(),
        }
    }

    /// A request to `path` with the credential, to finish and send.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends a request and returns the status and the JSON body (`Null` when
    /// the body is empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = self.request(method, path);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        send(builder).await
    }

    /// `GET path`: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Waits until `company`'s delivery log lists, in `state` (`delivered`,
    /// `dead`, …), a delivery `pick` accepts; that delivery. The dispatcher
    /// records outcomes without notifying anyone, so this polls.
    pub async fn wait_for_delivery(
        &self,
        company: &str,
        state: &str,
        pick: impl Fn(&Value) -> bool,
    ) -> Value {
        let path = format!("/v1/sessions/{company}/deliveries?state={state}");
        crate::wait::poll(
            &format!("a {state} delivery of {company}"),
            std::time::Duration::from_millis(20),
            || async {
                let (_, body) = self.get(&path).await;
                body[state]
                    .as_array()
                    .and_then(|d| d.iter().find(|d| pick(d)).cloned())
            },
        )
        .await
    }

    /// `GET path`: the status and the body as text (`/metrics`, `/readyz`).
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .request(Method::GET, path)
            .send()
            .await
            .expect("the gateway answers");
        let status = response.status();
        (status, response.text().await.expect("a text body"))
    }

    /// `POST path` with an optional JSON body: the status and the JSON body.
    pub async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(Method::POST, path, body).await
    }

    /// `DELETE path`: the status and the JSON body.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// `POST /v1/sessions/{company}`, expecting 200 or 201.
    pub async fn ensure(&self, company: &str) -> Value {
        let (status, body) = self.post(&format!("/v1/sessions/{company}"), None).await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "ensure {company}: {status} {body}"
        );
        body
    }

    /// `GET /v1/sessions/{company}`, expecting 200; returns the status body.
    pub async fn status(&self, company: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/sessions/{company}")).await;
        assert_eq!(status, StatusCode::OK, "status of {company}: {body}");
        body
    }

    /// Sends a text (with an `Idempotency-Key` if `key` is given); returns
    /// the status and body.
    pub async fn send_text(
        &self,
        company: &str,
        to: &str,
        text: &str,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut builder = self
            .request(Method::POST, &format!("/v1/sessions/{company}/messages"))
            .json(&json!({"to": to, "text": text}));
        if let Some(key) = key {
            builder = builder.header("Idempotency-Key", key);
        }
        send(builder).await
    }

    /// Opens the company's event stream.
    pub async fn events(&self, company: &str) -> Events {
        let response = self
            .request(Method::GET, &format!("/v1/sessions/{company}/events"))
            .send()
            .await
            .expect("open the event stream");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "event stream of {company}"
        );
        Events::from_response(response)
    }

    /// Waits (on the event stream) until `company` is in `state`; returns the
    /// status. Fails at once if the session lands in a state it cannot leave
    /// by itself.
    pub async fn wait_for_state(&self, company: &str, state: &str) -> Value {
        let mut events = self.events(company).await;
        events.wait_for_state(state).await
    }

    /// Ensures `company`, scans its QR as the phone `phone`, and waits until
    /// it is `connected`. Returns the ensure answer (with the token if the
    /// company was new).
    pub async fn link_by_qr(&self, fake: &FakeServer, company: &str, phone: &str) -> Value {
        let ensured = self.ensure(company).await;
        let mut events = self.events(company).await;
        let qr = events.next_qr().await;
        fake.scan_qr_as(phone, &qr)
            .await
            .expect("the fake phone scans the QR code");
        let status = events.wait_for_state("connected").await;
        assert_eq!(status["phone"], phone, "{status}");
        ensured
    }
}

async fn send(builder: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = builder.send().await.expect("the gateway answers");
    let status = response.status();
    let bytes = response.bytes().await.expect("read the body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A Server-Sent Events stream of one session, parsed into `(event, data)`.
pub struct Events {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    /// The events of any Server-Sent Events response (e.g. the pairing page's).
    pub fn from_response(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event: its name and its JSON data. Panics if none arrives
    /// within [`WAIT`].
    pub async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() && name == "message" {
                    continue; // keep-alive comment
                }
                return (
                    name,
                    serde_json::from_str(&data).unwrap_or(Value::String(data)),
                );
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event within the time limit")
                .expect("the event stream is still open")
                .expect("read the event stream");
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Whether the server ends the stream within [`WAIT`] (events still
    /// arriving are skipped).
    pub async fn ends(&mut self) -> bool {
        let drain = async {
            while let Some(chunk) = self.body.next().await {
                if chunk.is_err() {
                    break;
                }
            }
        };
        tokio::time::timeout(WAIT, drain).await.is_ok()
    }

    /// Waits for a `session.status` event with `state`; returns its data.
    /// Fails at once if the session lands in a state it cannot leave by
    /// itself (unless that is what is awaited).
    pub async fn wait_for_state(&mut self, state: &str) -> Value {
        loop {
            let (name, data) = self.next().await;
            if name != "session.status" {
                continue;
            }
            if data["state"] == state {
                return data;
            }
            let now = data["state"].as_str().unwrap_or_default();
            assert!(
                !TERMINAL_STATES.contains(&now) || TERMINAL_STATES.contains(&state),
                "waiting for `{state}`, the session went `{now}`: {data}"
            );
        }
    }

    /// Waits for a `session.qr` event; returns the QR code.
    pub async fn next_qr(&mut self) -> String {
        loop {
            let (name, data) = self.next().await;
            if name == "session.qr" {
                return data["code"].as_str().expect("a QR code").to_owned();
            }
        }
    }
}

/// A `multipart/form-data` body with text `fields` and a `file` part named
/// `name` of type `mime`: (the `Content-Type` header, the body).
pub fn multipart(
    fields: &[(&str, &str)],
    file: &[u8],
    mime: &str,
    name: &str,
) -> (String, Vec<u8>) {
    let boundary = "wagate-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
