//! The overview (`GET /console`) and the sessions table
//! (`GET /console/sessions`). Both render the current state on the server
//! and are kept current by the console's script from the live stream
//! ([`super::feed`]): rows change state, counts move, new companies appear.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::strings::EN;
use super::{ConsoleError, Signed};
use crate::auth::Caller;
use crate::http::AppState;
use crate::pairing::strings::fill;
use crate::pool::{SessionState, SessionStatus};
use crate::webhook::Webhooks;

/// The sessions this caller may see, by company id.
pub fn visible(state: &AppState, signed: &Signed) -> Vec<SessionStatus> {
    let mut sessions: Vec<SessionStatus> = state
        .pool
        .list()
        .into_iter()
        .filter(|s| signed.sees(&s.company))
        .collect();
    sessions.sort_by(|a, b| a.company.cmp(&b.company));
    sessions
}

/// `GET /console`: the overview (the admin's; a company token goes to its
/// company's page).
pub async fn overview(
    State(state): State<AppState>,
    webhooks: Option<Extension<Webhooks>>,
    signed: Signed,
) -> Result<Response, ConsoleError> {
    if let Caller::Company(company) = &signed.caller {
        let to = format!("/console/companies/{company}");
        return Ok((StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response());
    }
    let sessions = visible(&state, &signed);
    let summary = match webhooks {
        Some(Extension(webhooks)) => Some(
            webhooks
                .outbox_summary()
                .map_err(|e| ConsoleError::Api(crate::http::error::ApiError::internal(e)))?,
        ),
        None => None,
    };
    let restore = if state.lifecycle.is_ready() {
        EN.restore_done.to_owned()
    } else {
        let total = state.pool.store().list_companies().map_or(0, |c| c.len());
        fill(
            EN.restore_running,
            &[
                ("started", &sessions.len().to_string()),
                ("total", &total.to_string()),
            ],
        )
    };
    let uptime = layout::duration(signed.console.started.elapsed().as_secs());
    let count = |state: SessionState| sessions.iter().filter(|s| s.state == state).count();
    let body = html! {
        h1 { (EN.overview_title) }
        section.cards {
            div.card {
                h2 { (EN.overview_by_state) }
                dl.counts #state-counts {
                    dt { (EN.overview_total) } dd #count-total { (sessions.len()) }
                    @for s in SessionState::ALL {
                        dt { (layout::state_badge(s)) }
                        dd data-count=(s.as_str()) { (count(s)) }
                    }
                }
            }
            div.card {
                h2 { (EN.overview_outbox) }
                dl {
                    @if let Some(summary) = summary {
                        dt { (EN.overview_queued) } dd #outbox-queued { (summary.queued) }
                        dt { (EN.overview_oldest) } dd #outbox-oldest { (layout::maybe_time(summary.oldest_queued_ms)) }
                        dt { (EN.overview_dead) } dd #outbox-dead { (summary.dead) }
                    } @else {
                        dt { (EN.overview_queued) } dd { (EN.none) }
                    }
                }
            }
            div.card {
                h2 { (EN.overview_restore) }
                p #restore { (restore) }
                dl {
                    dt { (EN.overview_version) } dd #version { (env!("CARGO_PKG_VERSION")) }
                    dt { (EN.overview_uptime) } dd #uptime { (uptime) }
                }
            }
        }
        (table(&sessions))
    };
    Ok(layout::page(
        &signed,
        Nav::Overview,
        EN.overview_title,
        &body,
    ))
}

/// Query of the sessions table (also filtered live by the script).
#[derive(Debug, Default, Deserialize)]
pub struct TableQuery {
    /// Only companies whose id contains this.
    #[serde(default)]
    pub q: String,
    /// Only this state (its code).
    #[serde(default)]
    pub state: String,
}

/// `GET /console/sessions`: the table, searchable and filterable, and the
/// form creating a company (admin).
pub async fn sessions(
    State(state): State<AppState>,
    signed: Signed,
    query: Result<Query<TableQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    // A garbled query string shows the whole table.
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let sessions: Vec<SessionStatus> = visible(&state, &signed)
        .into_iter()
        .filter(|s| s.company.contains(query.q.trim()))
        .filter(|s| query.state.is_empty() || s.state.as_str() == query.state)
        .collect();
    let admin = matches!(signed.caller, Caller::Admin);
    let body = html! {
        h1 { (EN.sessions_title) }
        form.filters #filters method="get" action="/console/sessions" {
            label for="search" { (EN.search_label) }
            input #search type="search" name="q" value=(query.q);
            label for="state-filter" { (EN.filter_label) }
            select #state-filter name="state" {
                option value="" { (EN.filter_all) }
                @for s in SessionState::ALL {
                    option value=(s.as_str()) selected[query.state == s.as_str()] { (EN.state(s)) }
                }
            }
            noscript { button type="submit" { (EN.search_label) } }
        }
        (table(&sessions))
        @if admin {
            section.card #create {
                h2 { (EN.create_title) }
                form method="post" action="/console/sessions" {
                    input type="hidden" name="csrf" value=(signed.session.csrf);
                    label for="company-id" { (EN.create_label) }
                    input #company-id name="company" required pattern="[a-z0-9_-]{1,64}" aria-describedby="company-hint";
                    small #company-hint { (EN.create_hint) }
                    button #create-submit type="submit" { (EN.create_submit) }
                }
            }
        }
    };
    Ok(layout::page(
        &signed,
        Nav::Sessions,
        EN.sessions_title,
        &body,
    ))
}

/// The sessions table; its rows are replaced live by the script.
fn table(sessions: &[SessionStatus]) -> Markup {
    html! {
        div.table-wrap {
            table #sessions {
                thead {
                    tr {
                        th { (EN.col_company) } th { (EN.col_state) } th { (EN.col_phone) }
                        th { (EN.col_since) } th { (EN.col_activity) } th.num { (EN.col_reconnects) }
                    }
                }
                tbody {
                    @for s in sessions { (row(s)) }
                }
            }
            p #no-sessions hidden[!sessions.is_empty()] { (EN.no_sessions) }
        }
    }
}

/// One company's row (the script builds the same from a live update).
pub fn row(s: &SessionStatus) -> Markup {
    html! {
        tr data-company=(s.company) data-state=(s.state.as_str()) {
            td { a href={ "/console/companies/" (s.company) } { (s.company) } }
            td.state-cell { (layout::state_badge(s.state)) }
            td.phone { @if let Some(phone) = &s.phone { "+" (phone) } @else { (EN.none) } }
            td.since { (layout::time(s.since_ms)) }
            td.activity { (layout::time(s.last_activity_ms)) }
            td.num.reconnects { (s.reconnects_24h) }
        }
    }
}
