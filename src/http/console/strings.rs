//! Every human-readable string of the operator console, in one place (as
//! the pairing page's are in [`crate::pairing::strings`]): pages, forms,
//! states in plain words, errors and the words its script uses. Strings with
//! a `{name}` placeholder are filled with [`crate::pairing::strings::fill`];
//! which placeholders a string takes is written next to it.
//!
//! The words are for the gateway's operator: plain, with the stable codes
//! kept apart (shown small, for searching the logs and the API docs).

/// The console's words.
#[derive(Debug, serde::Serialize)]
pub struct Strings {
    /// BCP 47 tag (`<html lang>`).
    pub lang: &'static str,
    /// Product name in titles.
    pub product: &'static str,

    // ----- navigation ------------------------------------------------------
    pub nav_overview: &'static str,
    pub nav_sessions: &'static str,
    pub nav_docs: &'static str,
    pub sign_out: &'static str,
    /// Who is signed in: the admin.
    pub signed_in_admin: &'static str,
    /// Who is signed in: a company token. `{company}`.
    pub signed_in_company: &'static str,
    /// Shown when JavaScript is off: pages are complete but not live.
    pub no_script: &'static str,
    /// The live connection dropped (the script retries).
    pub live_lost: &'static str,

    // ----- sign-in ---------------------------------------------------------
    pub sign_in_title: &'static str,
    pub sign_in_intro: &'static str,
    pub sign_in_label: &'static str,
    pub sign_in_submit: &'static str,
    pub sign_in_wrong: &'static str,
    /// `{seconds}`.
    pub sign_in_throttled: &'static str,
    pub signed_out: &'static str,

    // ----- overview --------------------------------------------------------
    pub overview_title: &'static str,
    pub overview_by_state: &'static str,
    pub overview_total: &'static str,
    pub overview_outbox: &'static str,
    pub overview_queued: &'static str,
    pub overview_oldest: &'static str,
    pub overview_dead: &'static str,
    pub overview_restore: &'static str,
    pub restore_done: &'static str,
    /// `{started}`, `{total}`.
    pub restore_running: &'static str,
    pub overview_version: &'static str,
    pub overview_uptime: &'static str,
    pub none: &'static str,

    // ----- sessions table --------------------------------------------------
    pub sessions_title: &'static str,
    pub search_label: &'static str,
    pub filter_label: &'static str,
    pub filter_all: &'static str,
    pub col_company: &'static str,
    pub col_state: &'static str,
    pub col_phone: &'static str,
    pub col_since: &'static str,
    pub col_activity: &'static str,
    pub col_reconnects: &'static str,
    pub no_sessions: &'static str,
    pub create_title: &'static str,
    pub create_label: &'static str,
    pub create_hint: &'static str,
    pub create_submit: &'static str,
    /// The new company's token, shown once. `{company}`.
    pub token_once: &'static str,

    // ----- one company -----------------------------------------------------
    pub status_title: &'static str,
    pub reason_label: &'static str,
    pub history_title: &'static str,
    pub history_empty: &'static str,
    pub link_title: &'static str,
    pub qr_label: &'static str,
    pub qr_placeholder: &'static str,
    pub pair_code_label: &'static str,
    pub pair_code_hint: &'static str,
    pub pair_code_submit: &'static str,
    /// `{code}`.
    pub pair_code_shown: &'static str,
    pub pairing_link_submit: &'static str,
    /// `{expires}`.
    pub pairing_link_shown: &'static str,
    pub copy: &'static str,
    pub copied: &'static str,
    pub actions_title: &'static str,
    pub reconnect: &'static str,
    pub logout: &'static str,
    pub delete: &'static str,
    /// `{company}`.
    pub confirm_logout: &'static str,
    pub confirm_logout_body: &'static str,
    /// `{company}`.
    pub confirm_delete: &'static str,
    pub confirm_delete_body: &'static str,
    pub cancel: &'static str,
    pub done_reconnect: &'static str,
    pub done_logout: &'static str,
    /// `{company}`.
    pub done_delete: &'static str,
    pub webhook_title: &'static str,
    pub webhook_url: &'static str,
    pub webhook_events: &'static str,
    pub webhook_save: &'static str,
    pub webhook_saved: &'static str,
    pub webhook_test: &'static str,
    pub webhook_test_sent: &'static str,
    /// `{secret}`.
    pub webhook_secret_once: &'static str,
    pub deliveries_title: &'static str,
    pub dead_title: &'static str,
    pub queued_title: &'static str,
    pub delivered_title: &'static str,
    pub col_event: &'static str,
    pub col_type: &'static str,
    pub col_target: &'static str,
    pub col_attempts: &'static str,
    pub col_last_error: &'static str,
    pub col_updated: &'static str,
    pub retry: &'static str,
    pub retried: &'static str,
    pub replay: &'static str,
    /// `{count}`.
    pub replayed: &'static str,
    pub no_deliveries: &'static str,

    // ----- errors ----------------------------------------------------------
    pub error_title: &'static str,
    pub error_csrf: &'static str,
    pub error_forbidden: &'static str,
    pub error_not_found: &'static str,
    pub error_throttled: &'static str,
    pub error_internal: &'static str,
    /// Before the API's own message for a refused action.
    pub error_refused: &'static str,
    pub back: &'static str,

    // ----- session states, in plain words ---------------------------------
    pub state_pairing: &'static str,
    pub state_connecting: &'static str,
    pub state_connected: &'static str,
    pub state_reconnecting: &'static str,
    pub state_logged_out: &'static str,
    pub state_replaced: &'static str,
    pub state_banned: &'static str,
    pub state_outdated: &'static str,
    pub state_stopped: &'static str,
}

/// English.
pub const EN: Strings = Strings {
    lang: "en",
    product: "wagate console",

    nav_overview: "Overview",
    nav_sessions: "Sessions",
    nav_docs: "API docs",
    sign_out: "Sign out",
    signed_in_admin: "Signed in as administrator",
    signed_in_company: "Signed in for {company}",
    no_script: "JavaScript is off: the pages do not update by themselves. Reload to see changes.",
    live_lost: "Live updates paused; reconnecting…",

    sign_in_title: "Sign in",
    sign_in_intro: "Sign in with the gateway's admin key, or with a company's token to see only that company.",
    sign_in_label: "Admin key or company token",
    sign_in_submit: "Sign in",
    sign_in_wrong: "That key or token is not valid.",
    sign_in_throttled: "Too many wrong keys from this address. Try again in {seconds} s.",
    signed_out: "You are signed out.",

    overview_title: "Overview",
    overview_by_state: "Sessions by state",
    overview_total: "All sessions",
    overview_outbox: "Webhook outbox",
    overview_queued: "Deliveries queued",
    overview_oldest: "Oldest queued",
    overview_dead: "Dead letters",
    overview_restore: "Restore after start",
    restore_done: "Complete",
    restore_running: "Running: {started} of {total} sessions",
    overview_version: "Version",
    overview_uptime: "Up for",
    none: "—",

    sessions_title: "Sessions",
    search_label: "Search",
    filter_label: "State",
    filter_all: "All states",
    col_company: "Company",
    col_state: "State",
    col_phone: "Phone",
    col_since: "Since",
    col_activity: "Last activity",
    col_reconnects: "Reconnects (24 h)",
    no_sessions: "No sessions yet.",
    create_title: "New company",
    create_label: "Company id",
    create_hint: "1–64 of a–z, 0–9, - and _",
    create_submit: "Create",
    token_once: "The API token of {company}, shown only now. Store it somewhere safe:",

    status_title: "Status",
    reason_label: "Reason",
    history_title: "History",
    history_empty: "No transitions recorded yet.",
    link_title: "Link a phone",
    qr_label: "QR code to scan with WhatsApp",
    qr_placeholder: "The QR code appears here while the session waits for a scan.",
    pair_code_label: "Or link by phone number",
    pair_code_hint: "With country code, e.g. +1 555 000 1111",
    pair_code_submit: "Get a pair code",
    pair_code_shown: "Type this code on the phone: {code}",
    pairing_link_submit: "Create a pairing link",
    pairing_link_shown: "Pairing link for the company's staff (valid until {expires}):",
    copy: "Copy",
    copied: "Copied",
    actions_title: "Actions",
    reconnect: "Reconnect",
    logout: "Log out",
    delete: "Delete",
    confirm_logout: "Log out {company}?",
    confirm_logout_body: "The phone is unlinked and the credentials are wiped. The company, its token and its webhook stay; linking again needs a new scan.",
    confirm_delete: "Delete {company}?",
    confirm_delete_body: "The phone is unlinked and the company's credentials, registry record, token and queues are removed. This cannot be undone.",
    cancel: "Cancel",
    done_reconnect: "Reconnecting.",
    done_logout: "Logged out.",
    done_delete: "{company} was deleted.",
    webhook_title: "Webhook",
    webhook_url: "URL (empty removes the webhook)",
    webhook_events: "Event types, comma-separated (empty: all)",
    webhook_save: "Save webhook",
    webhook_saved: "Webhook saved.",
    webhook_test: "Send test event",
    webhook_test_sent: "Test event {event} queued: its delivery shows below.",
    webhook_secret_once: "Signing secret, shown only now: {secret}",
    deliveries_title: "Deliveries",
    dead_title: "Dead letters",
    queued_title: "Queued",
    delivered_title: "Delivered",
    col_event: "Event",
    col_type: "Type",
    col_target: "Target",
    col_attempts: "Attempts",
    col_last_error: "Last error",
    col_updated: "Updated",
    retry: "Retry",
    retried: "Queued again.",
    replay: "Replay stored events",
    replayed: "{count} deliveries queued.",
    no_deliveries: "None.",

    error_title: "Something went wrong",
    error_csrf: "This form has expired or did not come from the console. Reload the page and try again.",
    error_forbidden: "This company is not yours to see.",
    error_not_found: "There is no such page or company.",
    error_throttled: "Too many wrong keys from this address. Wait a moment and try again.",
    error_internal: "The gateway could not do this; its log has the details.",
    error_refused: "The gateway refused this:",
    back: "Back",

    state_pairing: "Waiting for a scan",
    state_connecting: "Connecting",
    state_connected: "Connected",
    state_reconnecting: "Reconnecting",
    state_logged_out: "Logged out",
    state_replaced: "Taken over by another session",
    state_banned: "Banned for now",
    state_outdated: "Version refused",
    state_stopped: "Stopped",
};

impl Strings {
    /// A session state in plain words.
    pub fn state(&self, state: crate::pool::SessionState) -> &'static str {
        use crate::pool::SessionState as S;
        match state {
            S::Pairing => self.state_pairing,
            S::Connecting => self.state_connecting,
            S::Connected => self.state_connected,
            S::Reconnecting => self.state_reconnecting,
            S::LoggedOut => self.state_logged_out,
            S::Replaced => self.state_replaced,
            S::Banned => self.state_banned,
            S::Outdated => self.state_outdated,
            S::Stopped => self.state_stopped,
        }
    }
}
