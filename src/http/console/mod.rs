//! The operator console under `/console`: server-rendered HTML pages
//! ([`maud`] templates, escaped by default) with a small script of our own
//! for live updates, all embedded in the binary. It is for people, not part
//! of the JSON API, and not in `/openapi.json`.
//!
//! | route | what |
//! |---|---|
//! | `GET /console/sign-in`, `POST /console/sign-in` | sign in with the admin key or a company token |
//! | `POST /console/sign-out` | end the session |
//! | `GET /console` | overview: sessions by state, outbox, restore, version, uptime |
//! | `GET /console/sessions`, `POST /console/sessions` | the sessions table; create a company |
//! | `GET /console/companies/{company}` | one company: status, history, QR, pair code, actions, webhook, deliveries |
//! | `POST /console/companies/{company}/{action}` | the company's actions ([`actions`]) |
//! | `GET /console/companies/{company}/confirm/{action}` | the confirmation naming the company (log out, delete) |
//! | `GET /console/events` | live status changes and QR codes (SSE) |
//! | `GET /assets/console/console.{css,js}` | stylesheet and script |
//!
//! - [`session`]: server-side sessions, the cookie, CSRF tokens.
//! - [`signin`]: signing in and out; wrong keys slow the address down
//!   through the API's own failed-authentication backoff.
//! - [`pages`], [`company`]: the pages; [`layout`]: what every page shares.
//! - [`actions`]: the forms, each calling the same service function the
//!   HTTP API's handler calls (no second implementation).
//! - [`feed`]: the live stream. [`strings`]: every word.
//!
//! # Invariants
//!
//! - Every page is `Cache-Control: no-store`, under the pairing page's
//!   Content-Security-Policy, frame and referrer headers; nothing refers to
//!   another origin.
//! - Every request but sign-in needs a live session ([`Signed`]); a company
//!   token's session sees and acts on its own company only.
//! - Every state-changing request is a `POST` carrying the session's CSRF
//!   token ([`Posted`]); without it nothing happens (403 `csrf_invalid`).

mod actions;
mod company;
mod error;
mod feed;
mod layout;
mod pages;
pub mod session;
mod signin;
mod strings;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::access::CompanyAccess;
use crate::auth::Caller;
use crate::domain::CompanyId;
pub use error::ConsoleError;
use session::{ConsoleSession, ConsoleSessions};

/// The console's stylesheet.
const CSS: &str = include_str!("../../../assets/console/console.css");
/// The console's script.
const JS: &str = include_str!("../../../assets/console/console.js");
/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/assets/console/console.css";
/// Where the script is served.
pub const JS_PATH: &str = "/assets/console/console.js";

/// What the console keeps beside [`AppState`] (installed as an extension by
/// [`router`]).
pub struct Console {
    /// Signed-in browsers.
    pub sessions: ConsoleSessions,
    /// The cookie carries `Secure`: the public URL is https.
    pub secure: bool,
    /// When this router was built (the process's start, near enough): uptime.
    pub started: std::time::Instant,
}

/// The console's routes, for merging into the gateway's router.
pub fn router(state: &AppState) -> Router<AppState> {
    let secure = state
        .pairing
        .public_url()
        .is_some_and(|url| url.starts_with("https://"));
    let console = Arc::new(Console {
        sessions: ConsoleSessions::default(),
        secure,
        started: std::time::Instant::now(),
    });
    Router::new()
        .route("/console", get(pages::overview))
        .route("/console/", get(pages::overview))
        .route("/console/sign-in", get(signin::page).post(signin::sign_in))
        .route("/console/sign-out", post(signin::sign_out))
        .route(
            "/console/sessions",
            get(pages::sessions).post(actions::create),
        )
        .route("/console/events", get(feed::events))
        .route("/console/companies/{company}", get(company::page))
        .route(
            "/console/companies/{company}/confirm/{action}",
            get(company::confirm),
        )
        .route(
            "/console/companies/{company}/{action}",
            post(actions::company_action),
        )
        .route(
            "/console/companies/{company}/deliveries/{id}/retry",
            post(actions::retry),
        )
        .route("/console/{*rest}", get(error::not_found))
        .route(CSS_PATH, get(stylesheet))
        .route(JS_PATH, get(script))
        .layer(axum::Extension(console))
}

async fn stylesheet() -> impl axum::response::IntoResponse {
    super::pair::asset("text/css; charset=utf-8", CSS)
}

async fn script() -> impl axum::response::IntoResponse {
    super::pair::asset("text/javascript; charset=utf-8", JS)
}

/// A request from a signed-in browser: who it acts as and its session.
pub struct Signed {
    /// The admin, or one company.
    pub caller: Caller,
    /// The session (its CSRF token).
    pub session: ConsoleSession,
    /// The console's shared state.
    pub console: Arc<Console>,
    /// The session's id (its cookie), to end it on sign-out.
    id: String,
}

impl Signed {
    /// The API's access to `company` for this caller: the admin's, or the
    /// company's own; another company is refused (403).
    pub fn access(&self, company: &str) -> Result<CompanyAccess, ConsoleError> {
        let company = CompanyId::parse(company).map_err(|_| ConsoleError::NotFound)?;
        match &self.caller {
            Caller::Admin => Ok(CompanyAccess {
                company,
                admin: true,
            }),
            Caller::Company(own) if *own == company => Ok(CompanyAccess {
                company,
                admin: false,
            }),
            Caller::Company(_) => Err(ConsoleError::Forbidden),
        }
    }

    /// Whether `company` is visible to this caller.
    pub fn sees(&self, company: &str) -> bool {
        match &self.caller {
            Caller::Admin => true,
            Caller::Company(own) => own.as_str() == company,
        }
    }
}

fn console_of(parts: &Parts) -> Result<Arc<Console>, ConsoleError> {
    parts
        .extensions
        .get::<Arc<Console>>()
        .cloned()
        .ok_or(ConsoleError::Internal)
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let console = console_of(parts)?;
        let id = session::cookie_of(&parts.headers).ok_or(ConsoleError::SignInRequired)?;
        let session = console
            .sessions
            .touch(id)
            .ok_or(ConsoleError::SignInRequired)?;
        let Ok(caller) = state.auth.caller_of_hash(&session.credential) else {
            // The key was rotated or the company deleted: the session ends.
            console.sessions.remove(id);
            return Err(ConsoleError::SignInRequired);
        };
        Ok(Self {
            caller,
            session,
            console,
            id: id.to_owned(),
        })
    }
}

/// A form with the session's CSRF token (field `csrf`).
#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

/// A state-changing request: a signed-in session and its form, whose CSRF
/// token was checked (403 `csrf_invalid` otherwise, before the form is read).
pub struct Posted<T> {
    /// Who posts.
    pub signed: Signed,
    /// The form, without its CSRF token.
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let Ok(Form(posted)) =
            Form::<WithCsrf<serde_json::Value>>::from_request(request, state).await
        else {
            return Err(ConsoleError::Csrf);
        };
        if !signed.session.csrf_matches(&posted.csrf) {
            return Err(ConsoleError::Csrf);
        }
        let form = serde_json::from_value(posted.form).map_err(|_| ConsoleError::BadForm)?;
        Ok(Self { signed, form })
    }
}
