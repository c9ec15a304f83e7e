//! The pairing page's HTML and its live view of a session, as pure functions:
//! templates in `assets/pairing/` (embedded with `include_str!`, so the binary
//! serves them without a file system or a CDN), filled with escaped values
//! from a [`Strings`] catalogue.
//!
//! # Invariants
//!
//! - Every value put into a template is HTML-escaped ([`escape`]) unless it is
//!   a fragment this module built itself from escaped parts ([`Slot::Html`]).
//! - The strings handed to the page's script are JSON inside
//!   `<script type="application/json">` with `<` escaped, so no string can
//!   close the element.
//! - What a state means for the page (its words, whether the page is done,
//!   whether a new QR code can be asked for) is decided here, in
//!   [`state_view`], and nowhere else.

use serde::Serialize;

use super::strings::{Strings, fill};
use crate::pool::{SessionState, SessionStatus};

/// The start of every page, up to its stylesheet (`<head>` stays open).
const HEAD_HTML: &str = include_str!("../../assets/pairing/head.html");
/// The page itself.
const PAGE_HTML: &str = include_str!("../../assets/pairing/page.html");
/// The page shown instead of it (expired or invalid link, pair code without
/// JavaScript).
const MESSAGE_HTML: &str = include_str!("../../assets/pairing/message.html");
/// The page's stylesheet, served at [`CSS_PATH`].
pub const CSS: &str = include_str!("../../assets/pairing/pair.css");
/// The page's script, served at [`JS_PATH`].
pub const JS: &str = include_str!("../../assets/pairing/pair.js");
/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/assets/pairing/pair.css";
/// Where the script is served.
pub const JS_PATH: &str = "/assets/pairing/pair.js";

/// A value for a `{{name}}` slot of a template.
#[derive(Debug, Clone, Copy)]
pub enum Slot<'a> {
    /// Plain text: escaped.
    Text(&'a str),
    /// Markup built by this module from escaped parts: inserted as is.
    Html(&'a str),
}

/// `&`, `<`, `>`, `"` and `'` as character references: safe in element
/// content and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `template` with `{{head}}` (the shared start of every page, titled
/// `title`) and every other `{{name}}` replaced by its slot's value.
fn render(strings: &Strings, title: &str, template: &str, slots: &[(&str, Slot<'_>)]) -> String {
    let head = HEAD_HTML
        .replace("{{lang}}", &escape(strings.lang))
        .replace("{{title}}", &escape(title))
        .replace("{{css_path}}", &escape(CSS_PATH));
    let mut out = template.replacen("{{head}}", &head, 1);
    for (name, slot) in slots {
        let value = match slot {
            Slot::Text(text) => escape(text),
            Slot::Html(html) => (*html).to_owned(),
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

/// What the pairing page needs to render.
#[derive(Debug, Clone, Copy)]
pub struct PageContext<'a> {
    /// The company the link is for (shown to the user).
    pub company: &'a str,
    /// `/pair/{token}`: base of the page's own requests.
    pub base_path: &'a str,
    /// When the link expires (unix ms).
    pub expires_at_ms: i64,
    /// The server's clock when rendering (unix ms), so the countdown does not
    /// depend on the phone's clock being right.
    pub now_ms: i64,
    /// The gateway runs in sandbox mode (`wagate --sandbox`): the page says
    /// so and offers a "simulate scan" button ([`sandbox_fragment`]).
    pub sandbox: bool,
}

/// The pairing page.
pub fn pairing_page(strings: &Strings, ctx: PageContext<'_>) -> String {
    let intro = fill(strings.intro, &[("company", ctx.company)]);
    let strings_json = script_json(strings);
    let (expires, now) = (ctx.expires_at_ms.to_string(), ctx.now_ms.to_string());
    let sandbox = if ctx.sandbox {
        sandbox_fragment(ctx.base_path)
    } else {
        String::new()
    };
    render(
        strings,
        strings.title,
        PAGE_HTML,
        &[
            ("title", Slot::Text(strings.title)),
            ("js_path", Slot::Text(JS_PATH)),
            ("intro", Slot::Text(&intro)),
            ("base", Slot::Text(ctx.base_path)),
            ("expires_at_ms", Slot::Text(&expires)),
            ("now_ms", Slot::Text(&now)),
            ("state_starting", Slot::Text(strings.state_starting)),
            ("no_script", Slot::Text(strings.no_script)),
            ("step1", Slot::Text(strings.steps[0])),
            ("step2", Slot::Text(strings.steps[1])),
            ("step3", Slot::Text(strings.steps[2])),
            ("qr_label", Slot::Text(strings.qr_label)),
            ("qr_placeholder", Slot::Text(strings.qr_placeholder)),
            ("restart", Slot::Text(strings.restart)),
            ("phone_heading", Slot::Text(strings.phone_heading)),
            ("phone_intro", Slot::Text(strings.phone_intro)),
            ("phone_label", Slot::Text(strings.phone_label)),
            ("phone_hint", Slot::Text(strings.phone_hint)),
            ("phone_submit", Slot::Text(strings.phone_submit)),
            ("pair_code_intro", Slot::Text(strings.pair_code_intro)),
            ("pair_code_label", Slot::Text(strings.pair_code_label)),
            ("strings_json", Slot::Html(&strings_json)),
            ("sandbox", Slot::Html(&sandbox)),
        ],
    )
}

/// Where the sandbox's "simulate scan" button posts, under the page's path.
pub const SANDBOX_SCAN_PATH: &str = "/sandbox-scan";

/// The sandbox banner and its "simulate scan" button (a plain form: it
/// works without the page's script). English only: sandbox mode is for
/// developers trying the gateway, not for the companies' staff.
fn sandbox_fragment(base_path: &str) -> String {
    format!(
        "<section id=\"sandbox\" class=\"sandbox\" role=\"note\">\
         <p><strong>Sandbox mode.</strong> This gateway talks to a simulated WhatsApp: \
         no phone is needed and no real message is sent or received.</p>\
         <form method=\"post\" action=\"{action}\">\
         <button id=\"sandbox-scan\" type=\"submit\">Simulate scan</button></form></section>",
        action = escape(&format!("{base_path}{SANDBOX_SCAN_PATH}"))
    )
}

/// A page with a title and one paragraph, and optionally markup after it
/// (built by [`pair_code_fragment`] or [`back_link`]).
pub fn message_page(strings: &Strings, title: &str, body: &str, extra: Option<&str>) -> String {
    render(
        strings,
        title,
        MESSAGE_HTML,
        &[
            ("title", Slot::Text(title)),
            ("body", Slot::Text(body)),
            ("extra", Slot::Html(extra.unwrap_or_default())),
        ],
    )
}

/// The pair code as the page shows it: two groups of four (`ABCD-1234`),
/// as WhatsApp prints codes.
pub fn display_pair_code(code: &str) -> String {
    if code.len() == 8 && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

/// Markup showing a pair code (for the page without JavaScript).
pub fn pair_code_fragment(strings: &Strings, code: &str, base_path: &str) -> String {
    format!(
        "<p class=\"code\" id=\"pair-code-value\" aria-label=\"{label}\">{code}</p>{back}",
        label = escape(strings.pair_code_label),
        code = escape(&display_pair_code(code)),
        back = back_link(strings, base_path),
    )
}

/// A link back to the pairing page.
pub fn back_link(strings: &Strings, base_path: &str) -> String {
    format!(
        "<p><a href=\"{href}\">{text}</a></p>",
        href = escape(base_path),
        text = escape(strings.back)
    )
}

/// The catalogue as JSON for the page's script, safe inside a `<script>`
/// element (see the module invariants).
fn script_json(strings: &Strings) -> String {
    // A struct of strings always serializes.
    serde_json::to_string(strings)
        .unwrap_or_default()
        .replace('<', "\\u003c")
}

/// The page's live view of the session (data of the `state` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateView {
    /// What the page is showing, as a stable code: `starting`,
    /// `waiting_for_scan`, `linking`, `connected`, `reconnecting`,
    /// `logged_out`, `replaced`, `banned`, `outdated`, `qr_expired`,
    /// `stopped`, `deleted`, `unavailable`.
    pub state: &'static str,
    /// The state in plain words.
    pub message: String,
    /// Nothing more will happen on this page: it stops updating.
    pub done: bool,
    /// The page offers to show a new QR code (a new linking attempt).
    pub can_restart: bool,
    /// The QR code (or its placeholder) is relevant in this state.
    pub show_qr: bool,
    /// Linking by phone number makes sense in this state.
    pub can_pair_code: bool,
}

impl StateView {
    fn new(state: &'static str, message: impl Into<String>) -> Self {
        Self {
            state,
            message: message.into(),
            done: false,
            can_restart: false,
            show_qr: false,
            can_pair_code: false,
        }
    }

    fn linkable(mut self) -> Self {
        self.show_qr = true;
        self.can_pair_code = true;
        self
    }

    fn restartable(mut self) -> Self {
        self.can_restart = true;
        self
    }

    fn done(mut self) -> Self {
        self.done = true;
        self
    }
}

/// What the page shows for `status`.
pub fn state_view(strings: &Strings, status: &SessionStatus) -> StateView {
    match status.state {
        SessionState::Pairing => {
            StateView::new("waiting_for_scan", strings.state_waiting_for_scan).linkable()
        }
        SessionState::Connecting if status.reason == "paired" => {
            StateView::new("linking", strings.state_linking)
        }
        SessionState::Connecting => StateView::new("starting", strings.state_starting).linkable(),
        SessionState::Connected => {
            let message = match &status.phone {
                Some(phone) => fill(strings.state_connected, &[("phone", &format!("+{phone}"))]),
                None => strings.state_connected_no_phone.to_owned(),
            };
            StateView::new("connected", message).done()
        }
        SessionState::Reconnecting => StateView::new("reconnecting", strings.state_reconnecting),
        SessionState::LoggedOut => {
            StateView::new("logged_out", strings.state_logged_out).restartable()
        }
        SessionState::Replaced => StateView::new("replaced", strings.state_replaced),
        SessionState::Banned => StateView::new("banned", strings.state_banned),
        SessionState::Outdated => StateView::new("outdated", strings.state_outdated),
        SessionState::Stopped => match status.reason.as_str() {
            "deleted" => deleted_view(strings),
            "shutdown" => unavailable_view(strings),
            "qr_expired" => StateView::new("qr_expired", strings.state_qr_expired).restartable(),
            _ => StateView::new("stopped", strings.state_stopped).restartable(),
        },
    }
}

/// The company was deleted while the page was open.
pub fn deleted_view(strings: &Strings) -> StateView {
    StateView::new("deleted", strings.state_deleted).done()
}

/// The link was revoked while the page was open: it no longer works.
pub fn revoked_view(strings: &Strings) -> StateView {
    let message = format!("{}. {}", strings.invalid_title, strings.invalid_body);
    StateView::new("revoked", message).done()
}

/// The gateway is shutting down: the page's event stream reconnects by itself.
pub fn unavailable_view(strings: &Strings) -> StateView {
    StateView::new("unavailable", strings.state_unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::strings::{CATALOGUES, EN};

    fn status(state: SessionState, reason: &str, phone: Option<&str>) -> SessionStatus {
        SessionStatus {
            phone: phone.map(str::to_owned),
            ..SessionStatus::new("acme", state, reason, 0)
        }
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain ⋮ text"), "plain ⋮ text");
    }

    #[test]
    fn every_slot_of_every_template_is_filled() {
        for strings in CATALOGUES {
            let page = pairing_page(
                strings,
                PageContext {
                    company: "acme",
                    base_path: "/pair/abc.def",
                    expires_at_ms: 2_000,
                    now_ms: 1_000,
                    sandbox: false,
                },
            );
            assert!(!page.contains("{{"), "unfilled slot in the page");
            assert!(
                !page.contains("Sandbox mode"),
                "no sandbox mark on a real gateway"
            );
            let intro = fill(strings.intro, &[("company", "acme")]);
            assert!(page.contains(&format!("<p class=\"intro\">{}</p>", escape(&intro))));
            assert!(page.contains("lang=\"en\""));
            assert!(page.contains("data-expires-at-ms=\"2000\""));
            assert!(page.contains(r#"action="/pair/abc.def/pair-code""#));
            assert!(page.contains("aria-live=\"polite\""));
            assert!(page.contains("name=\"viewport\""));
            assert!(page.contains("<label for=\"phone-input\">"));
            let message = message_page(strings, "T", "B", Some("<p>x</p>"));
            assert!(!message.contains("{{"), "unfilled slot in the message page");
        }
    }

    #[test]
    fn untrusted_values_cannot_inject_markup() {
        let page = pairing_page(
            &EN,
            PageContext {
                company: "<script>alert(1)</script>",
                base_path: "/pair/\"><script>",
                expires_at_ms: 1,
                now_ms: 0,
                sandbox: true,
            },
        );
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("\"><script>"));
        let message = message_page(&EN, "<b>", "</p><script>", None);
        assert!(!message.contains("<b>") && !message.contains("</p><script>"));
    }

    #[test]
    fn a_sandbox_page_says_so_and_offers_a_simulated_scan() {
        let page = pairing_page(
            &EN,
            PageContext {
                company: "acme",
                base_path: "/pair/abc.def",
                expires_at_ms: 2_000,
                now_ms: 1_000,
                sandbox: true,
            },
        );
        assert!(page.contains("Sandbox mode."));
        assert!(page.contains(r#"<form method="post" action="/pair/abc.def/sandbox-scan">"#));
        assert!(page.contains("Simulate scan"));
    }

    #[test]
    fn script_strings_cannot_close_the_script_element() {
        let json = script_json(&EN);
        assert!(!json.contains('<'));
        let back: serde_json::Value =
            serde_json::from_str(&json).expect("still JSON after escaping");
        assert_eq!(back["countdown"], EN.countdown);
    }

    #[test]
    fn states_read_as_plain_words() {
        let view = state_view(&EN, &status(SessionState::Pairing, "qr_issued", None));
        assert_eq!(view.state, "waiting_for_scan");
        assert!(view.show_qr && view.can_pair_code && !view.done);

        let view = state_view(&EN, &status(SessionState::Connecting, "paired", None));
        assert_eq!(view.state, "linking");
        assert!(!view.show_qr && !view.done);

        let view = state_view(
            &EN,
            &status(SessionState::Connected, "logged_in", Some("15550001111")),
        );
        assert_eq!(view.state, "connected");
        assert!(view.done && !view.show_qr);
        assert!(view.message.contains("+15550001111"), "{}", view.message);

        let view = state_view(
            &EN,
            &status(SessionState::LoggedOut, "device_removed", None),
        );
        assert!(view.can_restart && !view.done);
        let view = state_view(&EN, &status(SessionState::Stopped, "qr_expired", None));
        assert_eq!((view.state, view.can_restart), ("qr_expired", true));
        let view = state_view(&EN, &status(SessionState::Stopped, "deleted", None));
        assert_eq!((view.state, view.done), ("deleted", true));
        let view = state_view(&EN, &status(SessionState::Stopped, "shutdown", None));
        assert_eq!((view.state, view.done), ("unavailable", false));
        let view = state_view(
            &EN,
            &status(SessionState::Replaced, "stream_replaced", None),
        );
        assert!(
            !view.can_restart && !view.done,
            "only an administrator can take it back"
        );

        // No state is shown by its code.
        for state in SessionState::ALL {
            let view = state_view(&EN, &status(state, "x", Some("15550001111")));
            assert!(!view.message.contains('_'), "{state}: {}", view.message);
        }
    }

    #[test]
    fn pair_codes_are_shown_in_two_groups() {
        assert_eq!(display_pair_code("ABCD1234"), "ABCD-1234");
        assert_eq!(display_pair_code("short"), "short");
        let fragment = pair_code_fragment(&EN, "ABCD1234", "/pair/t");
        assert!(fragment.contains(">ABCD-1234<") && fragment.contains("href=\"/pair/t\""));
    }
}
