//! Signing in and out. A key typed into the sign-in form is checked like an
//! API credential, and a wrong one counts against the address in the API's
//! own failed-authentication backoff ([`crate::http::auth_backoff`]): once an
//! address is blocked, its attempts are answered 429 before any key is
//! looked at.

use std::net::IpAddr;

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

use super::error::refusal_page;
use super::layout;
use super::session;
use super::strings::EN;
use super::{Console, ConsoleError, Posted};
use crate::auth::Caller;
use crate::http::AppState;
use crate::pairing::strings::fill;
use crate::token::hash_token;

/// The sign-in form.
#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
}

crate::domain::redacted_debug!(SignInForm {});

/// `GET /console/sign-in`.
pub async fn page() -> Response {
    form_page(StatusCode::OK, None)
}

fn form_page(status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        section #sign-in {
            h1 { (EN.sign_in_title) }
            p { (EN.sign_in_intro) }
            @if let Some(error) = error {
                p.error #sign-in-error role="alert" { (error) }
            }
            form method="post" action="/console/sign-in" {
                label for="key" { (EN.sign_in_label) }
                input #key type="password" name="key" autocomplete="current-password" required;
                button #sign-in-submit type="submit" { (EN.sign_in_submit) }
            }
        }
    };
    (status, layout::bare(EN.sign_in_title, &body)).into_response()
}

/// `POST /console/sign-in`: a session for the admin key or a company token.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    parts: PeerOf,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let peer = parts.0;
    if let Some(wait) = peer.and_then(|ip| state.auth_backoff.blocked_for(ip)) {
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).to_string();
        let message = fill(EN.sign_in_throttled, &[("seconds", &seconds)]);
        let mut response = refusal_page(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &message,
            None,
        );
        crate::http::error::set_retry_after(&mut response, wait);
        return response;
    }
    let key = form.map(|Form(f)| f.key).unwrap_or_default();
    let hash = hash_token(key.trim());
    let caller = match state.auth.caller_of_hash(&hash) {
        Ok(caller) if !key.trim().is_empty() => caller,
        _ => {
            if let Some(ip) = peer {
                state.auth_backoff.failed(ip);
            }
            return form_page(StatusCode::UNAUTHORIZED, Some(EN.sign_in_wrong));
        }
    };
    let Some(id) = console.sessions.create(hash) else {
        return ConsoleError::Internal.into_response();
    };
    let who = match &caller {
        Caller::Admin => "admin".to_owned(),
        Caller::Company(company) => company.to_string(),
    };
    tracing::info!(console.caller = %who, "console sign-in");
    let home = match caller {
        Caller::Admin => "/console".to_owned(),
        Caller::Company(company) => format!("/console/companies/{company}"),
    };
    let mut headers = HeaderMap::new();
    if let (Ok(cookie), Ok(home)) = (
        session::set_cookie(&id, console.secure).parse(),
        home.parse(),
    ) {
        headers.insert(SET_COOKIE, cookie);
        headers.insert(LOCATION, home);
    }
    (StatusCode::SEE_OTHER, layout::page_headers(), headers).into_response()
}

/// No fields besides the CSRF token.
#[derive(Deserialize)]
pub struct Empty {}

/// `POST /console/sign-out`: the session ends; its cookie is refused from
/// now on.
pub async fn sign_out(posted: Posted<Empty>) -> Response {
    let signed = posted.signed;
    signed.console.sessions.remove(&signed.id);
    let mut headers = HeaderMap::new();
    if let Ok(cookie) = session::clear_cookie(signed.console.secure).parse() {
        headers.insert(SET_COOKIE, cookie);
    }
    let body = html! {
        section #signed-out {
            h1 { (EN.signed_out) }
            p { a href="/console/sign-in" { (EN.sign_in_title) } }
        }
    };
    (headers, layout::bare(EN.signed_out, &body)).into_response()
}

/// The request's address (for the backoff).
pub struct PeerOf(Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerOf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            crate::http::server::peer_of(&parts.extensions).map(|addr| addr.ip()),
        ))
    }
}
