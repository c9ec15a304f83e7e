//! The console's forms. Each one calls the function the HTTP API's handler
//! for the same thing calls (`http::sessions`, `http::webhooks`,
//! `http::pair`), with the API's own access for this caller, so the console
//! cannot do what the API would refuse, nor do it differently. The answer is
//! the company's page with the outcome on top (a pair code, a link, a
//! secret: shown once, never put in a URL).

use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::company::{filled, notice_with, render};
use super::layout::{self, Nav};
use super::strings::EN;
use super::{ConsoleError, Posted};
use crate::auth::Caller;
use crate::domain::PhoneNumber;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::pair::issue_link;
use crate::http::sessions::{delete_company, ensure_company, session};
use crate::http::webhooks::{
    PutWebhookRequest, ReplayRequest, replay_events, retry_delivery, save_webhook,
};
use crate::webhook::Webhooks;

/// `POST /console/sessions`: the form creating a company.
#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    company: String,
}

/// `POST /console/sessions`: create a company (admin), like
/// `POST /v1/sessions/{company}`; its token is shown once.
pub async fn create(
    State(state): State<AppState>,
    webhooks: Option<Extension<Webhooks>>,
    posted: Posted<CreateForm>,
) -> Result<Response, ConsoleError> {
    let signed = posted.signed;
    if !matches!(signed.caller, Caller::Admin) {
        return Err(ConsoleError::Forbidden);
    }
    let company = crate::domain::CompanyId::parse(posted.form.company.trim())
        .map_err(ApiError::InvalidInput)?;
    let access = signed.access(company.as_str())?;
    let ensured = ensure_company(&state, &access.company).await?;
    let notice = ensured.token.as_deref().map(|token| {
        notice_with(
            &filled(EN.token_once, "company", company.as_str()),
            Some((token, true)),
        )
    });
    render(
        &state,
        webhooks.map(|Extension(w)| w).as_ref(),
        &signed,
        &access,
        notice,
    )
}

/// The fields the company's forms may carry (each form uses its own).
#[derive(Deserialize, Default)]
pub struct ActionForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
}

crate::domain::redacted_debug!(ActionForm {});

/// `POST /console/companies/{company}/{action}`.
pub async fn company_action(
    State(state): State<AppState>,
    webhooks: Option<Extension<Webhooks>>,
    headers: HeaderMap,
    Path((company, action)): Path<(String, String)>,
    posted: Posted<ActionForm>,
) -> Result<Response, ConsoleError> {
    let (signed, form) = (posted.signed, posted.form);
    let access = signed.access(&company)?;
    let webhooks = webhooks.map(|Extension(w)| w);
    let service = || {
        webhooks
            .clone()
            .ok_or(ConsoleError::Api(ApiError::NotReady))
    };
    let notice = match action.as_str() {
        "reconnect" => {
            session(&state, &access)?.reconnect().await?;
            notice_with(EN.done_reconnect, None)
        }
        "logout" => {
            session(&state, &access)?.logout().await?;
            notice_with(EN.done_logout, None)
        }
        "delete" => {
            delete_company(&state, &access).await?;
            let text = filled(EN.done_delete, "company", access.company.as_str());
            let body = html! { section.card #deleted { h1 { (text) } p { a href="/console/sessions" { (EN.nav_sessions) } } } };
            return Ok(layout::page(&signed, Nav::Sessions, &text, &body));
        }
        "pair-code" => {
            let phone = PhoneNumber::parse(&form.phone).map_err(ApiError::InvalidInput)?;
            let code = session(&state, &access)?.pair_code(phone).await?;
            let display = crate::pairing::page::display_pair_code(&code);
            notice_with(&filled(EN.pair_code_shown, "code", &display), None)
        }
        "pairing-link" => {
            let link = issue_link(&state, &access, None, &headers)?;
            let text = filled(
                EN.pairing_link_shown,
                "expires",
                &layout::time(link.expires_at_ms),
            );
            notice_with(&text, Some((&link.url, true)))
        }
        "webhook" => {
            let url = form.url.trim();
            let request = PutWebhookRequest {
                url: (!url.is_empty()).then(|| url.to_owned()),
                secret: None,
                events: form
                    .events
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            let view = save_webhook(&service()?, &access, &request)?;
            match view.secret {
                Some(secret) => {
                    notice_with(&filled(EN.webhook_secret_once, "secret", &secret), None)
                }
                None => notice_with(EN.webhook_saved, None),
            }
        }
        "replay" => {
            let request = ReplayRequest {
                since_ms: None,
                limit: None,
            };
            let view = replay_events(&service()?, &access, &request)?;
            notice_with(
                &filled(EN.replayed, "count", &view.queued.to_string()),
                None,
            )
        }
        _ => return Err(ConsoleError::NotFound),
    };
    render(&state, webhooks.as_ref(), &signed, &access, Some(notice))
}

/// `POST /console/companies/{company}/deliveries/{id}/retry`: queue a dead
/// letter again, like `POST …/deliveries/{id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    webhooks: Option<Extension<Webhooks>>,
    Path((company, id)): Path<(String, String)>,
    posted: Posted<ActionForm>,
) -> Result<Response, ConsoleError> {
    let signed = posted.signed;
    let access = signed.access(&company)?;
    let webhooks = webhooks.map(|Extension(w)| w);
    let service = webhooks
        .clone()
        .ok_or(ConsoleError::Api(ApiError::NotReady))?;
    retry_delivery(&service, &access, &id)?;
    let notice = notice_with(EN.retried, None);
    let mut response = render(&state, webhooks.as_ref(), &signed, &access, Some(notice))?;
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}
