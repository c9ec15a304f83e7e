//! One company's page (`GET /console/companies/{company}`): status and its
//! transition history (the session's recent transitions, as the API's
//! status returns them: stored with the registry, the last
//! `WaConfig::recent_transitions` of them), the live QR code and the
//! pair-code form, a pairing link with a copy button, reconnect / log out /
//! delete (the last two behind a confirmation naming the company), the
//! webhook, and the delivery log with dead letters, retry and replay.

use axum::extract::{Extension, Path, State};
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

use super::layout::{self, Nav};
use super::strings::EN;
use super::{ConsoleError, Signed};
use crate::http::AppState;
use crate::http::access::CompanyAccess;
use crate::http::webhooks::{DeliveriesQuery, DeliveryView, list_deliveries, webhook_view};
use crate::pairing::strings::fill;
use crate::pool::{SessionHandle, SessionState};
use crate::webhook::Webhooks;

/// The URL of one of the company's actions, by name (`reconnect`, …).
type ActionUrl<'a> = &'a dyn Fn(&str) -> String;

/// How many deliveries of each state the page lists.
const DELIVERIES_SHOWN: usize = 20;

/// `GET /console/companies/{company}`.
pub async fn page(
    State(state): State<AppState>,
    webhooks: Option<Extension<Webhooks>>,
    signed: Signed,
    Path(company): Path<String>,
) -> Result<Response, ConsoleError> {
    let access = signed.access(&company)?;
    render(
        &state,
        webhooks.map(|Extension(w)| w).as_ref(),
        &signed,
        &access,
        None,
    )
}

/// The company's page, with `notice` (an action's outcome) on top.
pub fn render(
    state: &AppState,
    webhooks: Option<&Webhooks>,
    signed: &Signed,
    access: &CompanyAccess,
    notice: Option<Markup>,
) -> Result<Response, ConsoleError> {
    let handle = state
        .pool
        .get(&access.company)
        .ok_or(ConsoleError::NotFound)?;
    let company = access.company.as_str();
    let csrf = &signed.session.csrf;
    let action = |name: &str| format!("/console/companies/{company}/{name}");
    let deliveries = webhooks
        .map(|w| deliveries_section(w, access, csrf, &action))
        .transpose()?;
    let body = html! {
        h1 #company data-company=(company) { (company) }
        @if let Some(notice) = notice {
            div.notice #notice role="status" { (notice) }
        }
        div.columns {
            // Linking first: while a session waits for a scan, the QR code is
            // what the operator came for (and it is hidden once connected).
            (link_section(&handle, csrf, &action))
            (status_section(&handle))
        }
        section.card #actions {
            h2 { (EN.actions_title) }
            form.inline method="post" action=(action("reconnect")) {
                input type="hidden" name="csrf" value=(csrf);
                button #reconnect type="submit" { (EN.reconnect) }
            }
            a.button #logout href=(action("confirm/logout")) { (EN.logout) }
            a.button.danger #delete href=(action("confirm/delete")) { (EN.delete) }
        }
        @if let Some(webhooks) = webhooks {
            (webhook_section(webhooks, access, csrf, &action))
        }
        @if let Some(deliveries) = deliveries {
            (deliveries)
        }
    };
    Ok(layout::page(signed, Nav::Company, company, &body))
}

fn status_section(handle: &SessionHandle) -> Markup {
    let s = handle.status();
    html! {
        section.card #status {
            h2 { (EN.status_title) }
            p #company-state data-company=(s.company) { (layout::state_badge(s.state)) }
            dl {
                dt { (EN.reason_label) } dd { code #reason { (s.reason) } }
                dt { (EN.col_since) } dd { (layout::time(s.since_ms)) }
                dt { (EN.col_phone) } dd { @if let Some(p) = &s.phone { "+" (p) } @else { (EN.none) } }
                dt { (EN.col_activity) } dd { (layout::time(s.last_activity_ms)) }
                dt { (EN.col_reconnects) } dd { (s.reconnects_24h) }
            }
            h3 { (EN.history_title) }
            @if s.recent_transitions.is_empty() {
                p { (EN.history_empty) }
            } @else {
                ol.timeline #history {
                    @for t in s.recent_transitions.iter().rev() {
                        li {
                            time { (layout::time(t.at_ms)) }
                            " " (layout::state_badge(t.from)) " → " (layout::state_badge(t.to))
                            " " code { (t.reason) }
                        }
                    }
                }
            }
        }
    }
}

fn link_section(handle: &SessionHandle, csrf: &str, action: ActionUrl<'_>) -> Markup {
    let state = handle.status().state;
    let qr = handle
        .current_qr()
        .and_then(|qr| crate::http::qr::inline_svg(&qr.code));
    html! {
        section.card #link hidden[state == SessionState::Connected] {
            h2 { (EN.link_title) }
            div.qr #qr data-company=(handle.company().as_str()) role="img" aria-label=(EN.qr_label) {
                @if let Some(svg) = qr {
                    // Rendered here from the QR text by `qrcode`: no input markup.
                    (PreEscaped(svg))
                } @else {
                    p.placeholder { (EN.qr_placeholder) }
                }
            }
            form method="post" action=(action("pair-code")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="phone" { (EN.pair_code_label) }
                input #phone name="phone" type="tel" autocomplete="off" aria-describedby="phone-hint";
                small #phone-hint { (EN.pair_code_hint) }
                button #pair-code-submit type="submit" { (EN.pair_code_submit) }
            }
            form #pairing-link method="post" action=(action("pairing-link")) {
                input type="hidden" name="csrf" value=(csrf);
                button #pairing-link-submit type="submit" { (EN.pairing_link_submit) }
            }
        }
    }
}

fn webhook_section(
    webhooks: &Webhooks,
    access: &CompanyAccess,
    csrf: &str,
    action: ActionUrl<'_>,
) -> Markup {
    let view = webhook_view(webhooks, access);
    let configured = view.url.is_some();
    html! {
        section.card #webhook {
            h2 { (EN.webhook_title) }
            form method="post" action=(action("webhook")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="webhook-url" { (EN.webhook_url) }
                input #webhook-url name="url" type="url" value=(view.url.unwrap_or_default());
                label for="webhook-events" { (EN.webhook_events) }
                input #webhook-events name="events" value=(view.events.join(", "));
                button #webhook-save type="submit" { (EN.webhook_save) }
            }
            @if configured {
                form method="post" action=(action("webhook-test")) {
                    input type="hidden" name="csrf" value=(csrf);
                    button #webhook-test type="submit" { (EN.webhook_test) }
                }
            }
        }
    }
}

fn deliveries_section(
    webhooks: &Webhooks,
    access: &CompanyAccess,
    csrf: &str,
    action: ActionUrl<'_>,
) -> Result<Markup, ConsoleError> {
    let query = DeliveriesQuery {
        state: None,
        limit: Some(DELIVERIES_SHOWN),
    };
    let view = list_deliveries(webhooks, access, &query)?;
    Ok(html! {
        section.card #deliveries {
            h2 { (EN.deliveries_title) }
            form.inline method="post" action=(action("replay")) {
                input type="hidden" name="csrf" value=(csrf);
                button #replay type="submit" { (EN.replay) }
            }
            h3 { (EN.dead_title) }
            (delivery_table("dead", &view.dead, Some((csrf, action))))
            h3 { (EN.queued_title) }
            (delivery_table("queued", &view.queued, None))
            h3 { (EN.delivered_title) }
            (delivery_table("delivered", &view.delivered, None))
        }
    })
}

fn delivery_table(id: &str, rows: &[DeliveryView], retry: Option<(&str, ActionUrl<'_>)>) -> Markup {
    html! {
        @if rows.is_empty() {
            p id={ (id) "-none" } { (EN.no_deliveries) }
        } @else {
            div.table-wrap {
                table.deliveries id=(id) {
                    thead { tr {
                        th { (EN.col_event) } th { (EN.col_type) } th { (EN.col_target) }
                        th.num { (EN.col_attempts) } th { (EN.col_last_error) } th { (EN.col_updated) }
                        @if retry.is_some() { th {} }
                    } }
                    tbody {
                        @for d in rows {
                            tr data-delivery=(d.id) {
                                td { code { (d.event_id) } } td { (d.event_type) } td { (d.target) }
                                td.num { (d.attempts) }
                                td { (d.last_error.as_deref().unwrap_or(EN.none)) }
                                td { (layout::time(d.updated_at_ms)) }
                                @if let Some((csrf, action)) = retry {
                                    td {
                                        form.inline method="post" action=(action(&format!("deliveries/{}/retry", d.id))) {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button.retry type="submit" { (EN.retry) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/companies/{company}/confirm/{action}`: "Log out acme?" or
/// "Delete acme?", with the form that does it.
pub async fn confirm(
    State(state): State<AppState>,
    signed: Signed,
    Path((company, action)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let access = signed.access(&company)?;
    if state.pool.get(&access.company).is_none() {
        return Err(ConsoleError::NotFound);
    }
    let company = access.company.as_str();
    let (question, explanation, label) = match action.as_str() {
        "logout" => (EN.confirm_logout, EN.confirm_logout_body, EN.logout),
        "delete" => (EN.confirm_delete, EN.confirm_delete_body, EN.delete),
        _ => return Err(ConsoleError::NotFound),
    };
    let question = fill(question, &[("company", company)]);
    let body = html! {
        section.card #confirm {
            h1 { (question) }
            p { (explanation) }
            form method="post" action={ "/console/companies/" (company) "/" (action) } {
                input type="hidden" name="csrf" value=(signed.session.csrf);
                button.danger #confirm-submit type="submit" { (label) }
                " "
                a.button href={ "/console/companies/" (company) } { (EN.cancel) }
            }
        }
    };
    Ok(layout::page(&signed, Nav::Company, &question, &body))
}

/// The notice of an action that returned something to show once.
pub fn notice_with(text: &str, value: Option<(&str, bool)>) -> Markup {
    html! {
        p { (text) }
        @if let Some((value, copy)) = value {
            p.secret {
                output #notice-value { (value) }
                @if copy { " " button #copy type="button" data-copy="notice-value" { (EN.copy) } }
            }
        }
    }
}

/// Fills `text`'s `{name}` with `value`.
pub fn filled(text: &str, name: &str, value: &str) -> String {
    fill(text, &[(name, value)])
}
