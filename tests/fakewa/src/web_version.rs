//! WhatsApp Web's version document, served the way the real site serves it
//! (`GET /sw.js`: the service worker script, whose `client_revision` is the
//! current version's third number), and what clients announced at login.
//!
//! A gateway that resolves the version itself points its version URL here;
//! tests read how often it was fetched and which versions logged in
//! (`GET /admin/web-version`), and move the current revision on
//! (`POST /admin/web-version`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::control::Shared;

/// The revision served until a test sets another.
pub const DEFAULT_REVISION: u32 = 1_023_456_789;

/// The served revision, fetch count and announced versions.
#[derive(Debug)]
pub(crate) struct WebVersion {
    revision: AtomicU32,
    fetches: AtomicUsize,
    /// `MAJOR.MINOR.PATCH` announced in a login or registration → count.
    logins: Mutex<BTreeMap<String, usize>>,
}

impl Default for WebVersion {
    fn default() -> Self {
        Self {
            revision: AtomicU32::new(DEFAULT_REVISION),
            fetches: AtomicUsize::new(0),
            logins: Mutex::new(BTreeMap::new()),
        }
    }
}

/// `GET /admin/web-version`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebVersionReport {
    /// The version `GET /sw.js` announces now (`2.3000.REVISION`).
    pub version: String,
    /// How many times `GET /sw.js` was served.
    pub fetches: usize,
    /// Versions clients announced in their ClientPayload → how many times.
    pub logins: BTreeMap<String, usize>,
}

impl WebVersion {
    /// Records the version a client announced in its ClientPayload.
    pub(crate) fn record_login(&self, payload: &waproto::whatsapp::ClientPayload) {
        let Some(version) = payload
            .user_agent
            .as_option()
            .and_then(|agent| agent.app_version.as_option())
        else {
            return;
        };
        let part = |p: Option<u32>| p.unwrap_or(0);
        let key = format!(
            "{}.{}.{}",
            part(version.primary),
            part(version.secondary),
            part(version.tertiary)
        );
        *self.logins.lock().entry(key).or_default() += 1;
    }

    pub(crate) fn report(&self) -> WebVersionReport {
        WebVersionReport {
            version: format!("2.3000.{}", self.revision.load(Ordering::SeqCst)),
            fetches: self.fetches.load(Ordering::SeqCst),
            logins: self.logins.lock().clone(),
        }
    }

    pub(crate) fn set_revision(&self, revision: u32) {
        self.revision.store(revision, Ordering::SeqCst);
    }
}

/// `GET /sw.js`: the shape of WhatsApp's own (a JavaScript file with the
/// site data inlined as escaped JSON).
pub(crate) async fn sw_js(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let web = &shared.web_version;
    web.fetches.fetch_add(1, Ordering::SeqCst);
    let revision = web.revision.load(Ordering::SeqCst);
    let body = format!(
        "__DEV__=0;/*FB_PKG_DELIM*/\nself.__swData=JSON.parse(/*BTDS*/\"{{\\\"dynamic_data\\\":{{\\\"SiteData\\\":{{\\\"server_revision\\\":{revision},\\\"client_revision\\\":{revision},\\\"push_phase\\\":\\\"C3\\\"}}}}}}\");\nimportScripts(\"https:\\/\\/static.whatsapp.net\\/rsrc.php\\/v4\\/fake.js\");\n"
    );
    (
        [(CONTENT_TYPE, "application/javascript; charset=utf-8")],
        body,
    )
}

pub(crate) async fn report(State(shared): State<Arc<Shared>>) -> Json<WebVersionReport> {
    Json(shared.web_version.report())
}

#[derive(Deserialize)]
pub(crate) struct SetRevision {
    revision: u32,
}

pub(crate) async fn set_revision(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<SetRevision>,
) -> StatusCode {
    shared.web_version.set_revision(body.revision);
    StatusCode::NO_CONTENT
}
