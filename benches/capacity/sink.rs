//! The webhook sink: a local receiver that answers 204 to every delivery and
//! remembers when each distinct message text first arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Sink {
    pub received: Arc<Mutex<HashMap<String, Instant>>>,
    count: watch::Sender<usize>,
    pub url: String,
}

async fn receive(State(sink): State<Sink>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if let Some(text) = json["data"]["text"].as_str() {
        let count = {
            let mut received = sink.received.lock();
            received.entry(text.to_owned()).or_insert(now);
            received.len()
        };
        sink.count.send_replace(count);
    }
    StatusCode::NO_CONTENT
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let sink = Sink {
            received: Arc::default(),
            count: watch::Sender::new(0),
            url,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(sink.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(sink)
    }

    /// Forgets everything received (between runs).
    pub fn clear(&self) {
        self.received.lock().clear();
        self.count.send_replace(0);
    }

    /// Waits until `count` distinct texts arrived; false on timeout.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> bool {
        let mut rx = self.count.subscribe();
        matches!(
            tokio::time::timeout(limit, rx.wait_for(|n| *n >= count)).await,
            Ok(Ok(_))
        )
    }

    /// When the last of the received texts arrived.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.received.lock().values().max().copied()
    }
}
