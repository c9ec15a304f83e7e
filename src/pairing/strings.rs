//! Every human-readable string of the pairing page, in one place.
//!
//! The page, its error pages, its live state messages and its JavaScript all
//! take their words from a [`Strings`] catalogue, so translating the page is
//! adding one more `const` here and listing it in [`CATALOGUES`]. Strings
//! with a `{name}` placeholder are filled by [`fill`]; which placeholders a
//! string takes is written next to it.
//!
//! The words are for a clinic's front-desk staff, not for API users: no
//! state codes, no jargon, and always what to do next.

/// One language's words.
#[derive(Debug, serde::Serialize)]
pub struct Strings {
    /// BCP 47 tag (`<html lang>`), and what [`negotiate`] matches.
    pub lang: &'static str,

    // ----- the page ------------------------------------------------------
    /// `<title>` and heading.
    pub title: &'static str,
    /// Under the heading. `{company}`.
    pub intro: &'static str,
    /// Numbered steps to scan the QR code.
    pub steps: [&'static str; 3],
    /// Accessible name of the QR image.
    pub qr_label: &'static str,
    /// In place of the QR code until the first one arrives.
    pub qr_placeholder: &'static str,
    /// Countdown of the link. `{time}` (m:ss).
    pub countdown: &'static str,
    /// Heading of the pair-code section.
    pub phone_heading: &'static str,
    /// Explains the pair-code section.
    pub phone_intro: &'static str,
    /// Label of the phone number field.
    pub phone_label: &'static str,
    /// Hint under the phone number field.
    pub phone_hint: &'static str,
    /// The button that asks for a pair code.
    pub phone_submit: &'static str,
    /// Shown while the pair code is being requested.
    pub phone_working: &'static str,
    /// Above the pair code.
    pub pair_code_intro: &'static str,
    /// Accessible name of the pair code.
    pub pair_code_label: &'static str,
    /// The button that starts a new linking attempt.
    pub restart: &'static str,
    /// Shown when JavaScript is off (the QR code is live only with it).
    pub no_script: &'static str,
    /// The live connection to the gateway dropped for good.
    pub connection_lost: &'static str,
    /// Link back to the page from the no-JavaScript pair-code answer.
    pub back: &'static str,

    // ----- session states (live) ------------------------------------------
    /// Opening a connection before the first QR code.
    pub state_starting: &'static str,
    /// A QR code is shown, nobody scanned it yet.
    pub state_waiting_for_scan: &'static str,
    /// Scanned: finishing the link.
    pub state_linking: &'static str,
    /// Linked. `{phone}` (`+` and digits).
    pub state_connected: &'static str,
    /// Linked, own number not known yet.
    pub state_connected_no_phone: &'static str,
    /// Connection interrupted, retrying by itself.
    pub state_reconnecting: &'static str,
    /// Unlinked from the phone (or by an administrator).
    pub state_logged_out: &'static str,
    /// Another WhatsApp Web session took the number.
    pub state_replaced: &'static str,
    /// WhatsApp banned the number for a while.
    pub state_banned: &'static str,
    /// WhatsApp refused this gateway's version.
    pub state_outdated: &'static str,
    /// Every QR code expired without a scan.
    pub state_qr_expired: &'static str,
    /// Stopped for another reason.
    pub state_stopped: &'static str,
    /// The company was deleted while the page was open.
    pub state_deleted: &'static str,
    /// The gateway is shutting down or restarting.
    pub state_unavailable: &'static str,

    // ----- pair-code answers ----------------------------------------------
    /// The phone number is not valid.
    pub error_phone: &'static str,
    /// A pair code was asked for a number that is already linked.
    pub error_already_linked: &'static str,
    /// WhatsApp did not give a code, or something else failed.
    pub error_pair_code: &'static str,
    /// The gateway is busy with this company (being deleted, ...).
    pub error_busy: &'static str,
    /// A code was asked for again within seconds of the previous one.
    pub error_too_soon: &'static str,

    // ----- pages instead of the pairing page ------------------------------
    /// Title of the page for an expired link.
    pub expired_title: &'static str,
    /// Body of the page for an expired link.
    pub expired_body: &'static str,
    /// Title of the page for a link that is not valid (tampered, garbled).
    pub invalid_title: &'static str,
    /// Body of the page for a link that is not valid.
    pub invalid_body: &'static str,
    /// Title of the page for a link whose company no longer exists.
    pub unknown_title: &'static str,
    /// Body of the page for a link whose company no longer exists.
    pub unknown_body: &'static str,
    /// Title of the page when the gateway cannot serve the link right now.
    pub unavailable_title: &'static str,
    /// Body of the page when the gateway cannot serve the link right now.
    pub unavailable_body: &'static str,
}

/// English.
pub const EN: Strings = Strings {
    lang: "en",

    title: "Link your WhatsApp number",
    intro: "Link the WhatsApp number of {company} to the messaging gateway.",
    steps: [
        "Open WhatsApp on the phone that has the number.",
        "Tap Menu ⋮ or Settings, then Linked devices, then Link a device.",
        "Point the phone at the QR code below.",
    ],
    qr_label: "QR code to scan with WhatsApp",
    qr_placeholder: "The QR code appears here in a moment…",
    countdown: "This link expires in {time}.",
    phone_heading: "Link with a phone number instead",
    phone_intro: "If you cannot scan the code, get an 8-character code to type on the phone.",
    phone_label: "WhatsApp phone number, with country code",
    phone_hint: "For example +1 555 000 1111",
    phone_submit: "Get a pair code",
    phone_working: "Asking WhatsApp for a code…",
    pair_code_intro: "On the phone, open WhatsApp, tap Linked devices, Link a device, then Link with phone number instead, and type this code:",
    pair_code_label: "Pair code",
    restart: "Show a new QR code",
    no_script: "This page needs JavaScript to show the QR code and follow the linking live. You can still link with a phone number below.",
    connection_lost: "The connection to the gateway was lost. Reload the page to continue.",
    back: "Back to the linking page",

    state_starting: "Preparing the QR code…",
    state_waiting_for_scan: "Waiting for you to scan the QR code.",
    state_linking: "Linking… keep WhatsApp open on the phone.",
    state_connected: "Connected as {phone}. The number is linked; you can close this page.",
    state_connected_no_phone: "Connected. The number is linked; you can close this page.",
    state_reconnecting: "The connection was interrupted. Reconnecting…",
    state_logged_out: "The number was unlinked from the phone. Show a new QR code to link it again.",
    state_replaced: "This number is now used by another WhatsApp Web session. Ask your administrator to take it back.",
    state_banned: "WhatsApp has temporarily blocked this number. Ask your administrator.",
    state_outdated: "WhatsApp refused this gateway's version. Ask your administrator to update it.",
    state_qr_expired: "The QR codes expired before anyone scanned them.",
    state_stopped: "Linking stopped.",
    state_deleted: "This WhatsApp connection was removed by an administrator. This link no longer works.",
    state_unavailable: "The gateway is restarting. This page reconnects by itself.",

    error_phone: "That phone number is not valid. Type it with the country code, for example +1 555 000 1111.",
    error_already_linked: "The number is already linked; no code is needed.",
    error_pair_code: "WhatsApp did not give a code. Try again in a moment, or scan the QR code.",
    error_busy: "The gateway is busy with this number. Try again in a moment.",
    error_too_soon: "A code was requested a moment ago. Wait a few seconds, then ask for a new one (it replaces the earlier code).",

    expired_title: "This link has expired",
    expired_body: "Links to link a WhatsApp number work for a limited time. Ask the person who sent it for a new link.",
    invalid_title: "This link is not valid",
    invalid_body: "The link may have been copied incompletely or changed. Open it again from the message you received, or ask for a new link.",
    unknown_title: "This link no longer works",
    unknown_body: "The WhatsApp connection it was made for has been removed. Ask the person who sent it for a new link.",
    unavailable_title: "Please try again in a moment",
    unavailable_body: "The gateway is starting or restarting. Reload this page in a few seconds.",
};

/// Every language the page speaks; the first is the fallback.
pub const CATALOGUES: &[&Strings] = &[&EN];

/// The catalogue for an `Accept-Language` header value: the first listed
/// language (in the client's order, ignoring weights of zero) whose primary
/// subtag matches a catalogue, else the fallback.
pub fn negotiate(accept_language: Option<&str>) -> &'static Strings {
    let fallback = CATALOGUES[0];
    let Some(header) = accept_language else {
        return fallback;
    };
    header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (!tag.is_empty() && !refused).then_some(tag)
        })
        .find_map(|tag| {
            let primary = tag.split('-').next().unwrap_or(tag);
            CATALOGUES
                .iter()
                .copied()
                .find(|s| s.lang.eq_ignore_ascii_case(primary))
        })
        .unwrap_or(fallback)
}

/// `template` with each `{name}` replaced by its value. Placeholders without
/// a value are left as they are (a test checks every string's placeholders).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string of a catalogue with its field name (through `Serialize`,
    /// so a field added later is covered without touching this test).
    fn all_strings(strings: &Strings) -> Vec<(String, String)> {
        let serde_json::Value::Object(fields) = serde_json::to_value(strings).unwrap() else {
            panic!("a catalogue serializes to an object");
        };
        let mut out = Vec::new();
        for (name, value) in fields {
            match value {
                serde_json::Value::String(s) => out.push((name, s)),
                serde_json::Value::Array(items) => out.extend(
                    items
                        .into_iter()
                        .map(|item| (name.clone(), item.as_str().unwrap().to_owned())),
                ),
                other => panic!("{name}: not a string: {other}"),
            }
        }
        out
    }

    #[test]
    fn no_string_is_empty_and_placeholders_are_the_documented_ones() {
        for strings in CATALOGUES {
            let all = all_strings(strings);
            assert!(all.len() > 40, "parsed {} strings", all.len());
            for (name, value) in &all {
                assert!(
                    !value.trim().is_empty(),
                    "{}: {name} is empty",
                    strings.lang
                );
                let expected: &[&str] = match name.as_str() {
                    "intro" => &["{company}"],
                    "countdown" => &["{time}"],
                    "state_connected" => &["{phone}"],
                    _ => &[],
                };
                let found: Vec<&str> = value
                    .match_indices('{')
                    .filter_map(|(at, _)| value[at..].find('}').map(|end| &value[at..=at + end]))
                    .collect();
                assert_eq!(found, expected, "{}: {name}", strings.lang);
            }
        }
    }

    #[test]
    fn catalogue_tags_are_unique_primary_subtags() {
        for (i, a) in CATALOGUES.iter().enumerate() {
            assert!(a.lang.chars().all(|c| c.is_ascii_lowercase()), "{}", a.lang);
            for b in &CATALOGUES[i + 1..] {
                assert_ne!(a.lang, b.lang);
            }
        }
    }

    #[test]
    fn negotiation_falls_back_to_the_first_catalogue() {
        assert_eq!(negotiate(None).lang, "en");
        assert_eq!(negotiate(Some("en-GB,en;q=0.9")).lang, "en");
        assert_eq!(negotiate(Some("xx-YY, zz;q=0.5")).lang, "en");
        assert_eq!(negotiate(Some("")).lang, "en");
        assert_eq!(negotiate(Some(";;,,;q=")).lang, "en");
        assert_eq!(negotiate(Some("EN")).lang, "en");
    }

    #[test]
    fn fill_replaces_named_placeholders_only() {
        assert_eq!(
            fill(EN.state_connected, &[("phone", "+15550001111")]),
            "Connected as +15550001111. The number is linked; you can close this page."
        );
        assert_eq!(fill("{a} {b} {a}", &[("a", "1")]), "1 {b} 1");
    }
}
