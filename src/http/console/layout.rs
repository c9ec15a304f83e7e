//! What every console page shares: the document around its body (head,
//! navigation, who is signed in, sign-out form), the headers, times and
//! states as the console shows them.

use axum::http::{HeaderName, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::strings::{EN, Strings};
use super::{CSS_PATH, JS_PATH, Signed};
use crate::auth::Caller;
use crate::pairing::strings::fill;
use crate::pool::SessionState;

/// The pairing page's headers (CSP allowing only this gateway's own script,
/// stylesheet and `data:` images; no framing; no referrer; no caching).
pub fn page_headers() -> [(HeaderName, HeaderValue); 5] {
    crate::http::pair::page_headers()
}

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Sessions,
    Company,
}

fn head(strings: &Strings, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (strings.product) }
            link rel="stylesheet" href=(CSS_PATH);
            script src=(JS_PATH) defer {}
        }
    }
}

/// A page for a signed-in browser, with the navigation.
pub fn page(signed: &Signed, nav: Nav, title: &str, body: &Markup) -> Response {
    let strings = &EN;
    let who = match &signed.caller {
        Caller::Admin => strings.signed_in_admin.to_owned(),
        Caller::Company(company) => {
            fill(strings.signed_in_company, &[("company", company.as_str())])
        }
    };
    let admin = matches!(signed.caller, Caller::Admin);
    let current = |entry: Nav| if entry == nav { Some("page") } else { None };
    let markup = html! {
        (DOCTYPE)
        html lang=(strings.lang) {
            (head(strings, title))
            body data-csrf=(signed.session.csrf) {
                header.top {
                    span.brand { (strings.product) }
                    nav {
                        @if admin {
                            a href="/console" aria-current=[current(Nav::Overview)] { (strings.nav_overview) }
                        }
                        a href="/console/sessions" aria-current=[current(Nav::Sessions)] { (strings.nav_sessions) }
                        a href="/docs/" { (strings.nav_docs) }
                    }
                    span.who #who { (who) }
                    form.signout method="post" action="/console/sign-out" {
                        input type="hidden" name="csrf" value=(signed.session.csrf);
                        button #sign-out type="submit" { (strings.sign_out) }
                    }
                }
                noscript { p.notice { (strings.no_script) } }
                p.notice #live-lost hidden { (strings.live_lost) }
                main { (body) }
                script #strings type="application/json" { (maud::PreEscaped(script_json())) }
            }
        }
    };
    (page_headers(), Html(markup.into_string())).into_response()
}

/// A page without navigation (sign-in, refusals).
pub fn bare(title: &str, body: &Markup) -> Response {
    let strings = &EN;
    let markup = html! {
        (DOCTYPE)
        html lang=(strings.lang) {
            (head(strings, title))
            body {
                header.top { span.brand { (strings.product) } }
                main.narrow { (body) }
            }
        }
    };
    (page_headers(), Html(markup.into_string())).into_response()
}

/// The catalogue for the script, safe inside `<script>` (`<` escaped).
fn script_json() -> String {
    // A struct of strings always serializes.
    serde_json::to_string(&EN)
        .unwrap_or_default()
        .replace('<', "\\u003c")
}

/// A unix-ms time as the console shows it (UTC, to the second); the
/// script formats live updates the same way.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| EN.none.to_owned())
}

/// An optional time, or the catalogue's "none".
pub fn maybe_time(ms: Option<i64>) -> String {
    ms.filter(|ms| *ms > 0)
        .map_or_else(|| EN.none.to_owned(), time)
}

/// A state as a coloured badge in plain words, with its code for the script.
pub fn state_badge(state: SessionState) -> Markup {
    html! {
        span class={ "state state-" (state.as_str()) } data-state=(state.as_str()) { (EN.state(state)) }
    }
}

/// A duration in whole units, largest first (`3 d 4 h`, `5 min 2 s`).
pub fn duration(total_secs: u64) -> String {
    let (d, h, m, s) = (
        total_secs / 86_400,
        total_secs / 3_600 % 24,
        total_secs / 60 % 60,
        total_secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_plainly() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(maybe_time(None), EN.none);
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(62), "1 min 2 s");
        assert_eq!(duration(3_660), "1 h 1 min");
        assert_eq!(duration(90_000), "1 d 1 h");
    }

    #[test]
    fn every_state_has_plain_words_and_a_colour_class() {
        for state in SessionState::ALL {
            let badge = state_badge(state).into_string();
            assert!(badge.contains(&format!("state-{}", state.as_str())));
            assert!(!EN.state(state).contains('_'));
        }
    }
}
