//! Domain newtypes parsed at the edge: a value of one of these types has been
//! validated once, so the rest of the code never re-checks it.
//!
//! Phone numbers are personal data: their `Debug` output is redacted so that a
//! stray `?value` in a log line never leaks one.

pub mod delivery;

use std::fmt;

pub mod media;
pub mod outgoing;
pub mod recipient;
mod redact;
pub(crate) use redact::redacted_debug;

pub use outgoing::MessageId;
pub use recipient::Recipient;

/// Unix milliseconds now, from the clock whatsapp-rust uses too (so times the
/// gateway records line up with the client's own).
pub fn now_ms() -> i64 {
    wacore::time::now_millis()
}

/// Why an input value was refused. The `code` is stable and is what API
/// clients match on; the message is for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInput {
    /// Stable snake_case code clients match on, e.g. `invalid_phone`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl InvalidInput {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A tenant's identifier: 1–64 characters of `[a-z0-9_-]`, starting with a
/// letter or digit. Lower-case only, so `Acme` and `acme` can never be two
/// companies sharing one number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompanyId(String);

impl CompanyId {
    /// Longest company id, in bytes (it also fits the one-byte key prefix).
    pub const MAX_LEN: usize = 64;

    /// [`CompanyId::parse`]'s rule as a regular expression (the API document's).
    pub const PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

    /// Parses and validates `raw` (400 with this type's code when it is not one).
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "invalid_company_id",
                format!("company id must be 1 to {} characters long", Self::MAX_LEN),
            ));
        }
        if !raw.chars().all(valid_char) || !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(InvalidInput::new(
                "invalid_company_id",
                "company id may contain only a-z, 0-9, '-' and '_', and must start with a letter or digit",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CompanyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CompanyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompanyId({})", self.0)
    }
}

/// An E.164 phone number without the `+`: 8–15 digits, no leading zero.
///
/// Accepts `+15550001111`, `15550001111`, `+1 555-000-1111` and the JID forms
/// `15550001111@s.whatsapp.net` / `15550001111:7@s.whatsapp.net`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// [`PhoneNumber::parse`]'s rule as a regular expression (the API
    /// document's): 8–15 digits, the first not 0, after an optional `+`,
    /// with ` ().-` anywhere among them, or that as the user of a
    /// `@s.whatsapp.net` / `@c.us` JID (with an optional `:device`);
    /// surrounding whitespace is ignored.
    pub const PATTERN: &str = concat!(
        r"^\s*(?:",
        r"\+?[ ().-]*[1-9][ ().-]*(?:[0-9][ ().-]*){7,14}",
        r"|",
        r"\+?[ ().-]*[1-9][ ().-]*(?:[0-9][ ().-]*){7,14}(?::[^@]*)?@(?:s\.whatsapp\.net|c\.us)",
        r")\s*$"
    );

    /// Parses and validates `raw` (400 with this type's code when it is not one).
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        let user = match raw.split_once('@') {
            Some((user, "s.whatsapp.net" | "c.us")) => user.split(':').next().unwrap_or(user),
            Some(_) => {
                return Err(InvalidInput::new(
                    "invalid_phone",
                    "only phone-number JIDs (…@s.whatsapp.net) are accepted",
                ));
            }
            None => raw,
        };
        let user = user.strip_prefix('+').unwrap_or(user);
        let digits: String = user
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(InvalidInput::new(
                "invalid_phone",
                "a phone number may contain only digits",
            ));
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(InvalidInput::new(
                "invalid_phone",
                "a phone number must be in international (E.164) form: 8 to 15 digits with the country code",
            ));
        }
        Ok(Self(digits))
    }

    /// The digits, without `+`.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The user JID WhatsApp addresses this number by.
    pub fn jid(&self) -> String {
        format!("{}@s.whatsapp.net", self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

/// Redacted: phone numbers are personal data and must not reach logs.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

/// The text of an outgoing message: 1 to [`MessageText::MAX_CHARS`] characters,
/// not only whitespace.
///
/// Message bodies are private: `Debug` is redacted, like [`PhoneNumber`]'s.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// WhatsApp's own limit for one text message.
    pub const MAX_CHARS: usize = 65_536;

    /// Parses and validates `raw` (400 with this type's code when it is not one).
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        if raw.trim().is_empty() {
            return Err(InvalidInput::new(
                "invalid_text",
                "the message text must not be empty",
            ));
        }
        // Count characters only when the byte length could exceed the limit:
        // a char is at least one byte, so fewer bytes than MAX_CHARS is always fine.
        if raw.len() > Self::MAX_CHARS && raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::new(
                "invalid_text",
                format!(
                    "the message text must be at most {} characters long",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(Self(raw))
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Redacted: message bodies must not reach logs.
impl fmt::Debug for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageText(<{} bytes>)", self.0.len())
    }
}

/// A client-chosen key that makes a send safe to retry: the same key for the
/// same company returns the first send's message id instead of sending again.
/// 1–[`IdempotencyKey::MAX_LEN`] visible ASCII characters (no spaces).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// [`IdempotencyKey::parse`]'s rule as a regular expression (the API
    /// document's).
    pub const PATTERN: &str = "^[!-~]{1,255}$";

    /// Longest accepted value, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Parses and validates `raw` (400 with this type's code when it is not one).
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(InvalidInput::new(
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {} visible ASCII characters without spaces",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_ids() {
        assert!(CompanyId::parse("acme").is_ok());
        assert!(CompanyId::parse("clinic-42_b").is_ok());
        for bad in ["", "Acme", "-acme", "a b", "acme/x", "é", &"a".repeat(65)] {
            assert_eq!(
                CompanyId::parse(bad).unwrap_err().code,
                "invalid_company_id",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn phone_numbers() {
        for ok in [
            "+15550001111",
            "15550001111",
            "+1 555-000-1111",
            "15550001111@s.whatsapp.net",
            "15550001111:7@s.whatsapp.net",
        ] {
            assert_eq!(
                PhoneNumber::parse(ok).unwrap().digits(),
                "15550001111",
                "{ok:?}"
            );
        }
        for bad in [
            "",
            "123",
            "+0155500011",
            "1555abc0001",
            "1234567890123456",
            "1@g.us",
            "100000000000001@lid",
        ] {
            assert_eq!(
                PhoneNumber::parse(bad).unwrap_err().code,
                "invalid_phone",
                "{bad:?}"
            );
        }
        assert_eq!(
            format!("{:?}", PhoneNumber::parse("15550001111").unwrap()),
            "PhoneNumber(<redacted>)"
        );
    }

    #[test]
    fn message_texts() {
        assert_eq!(MessageText::parse("hello").unwrap().as_str(), "hello");
        assert!(
            MessageText::parse("é".repeat(MessageText::MAX_CHARS)).is_ok(),
            "the limit counts characters, not bytes"
        );
        for bad in [
            String::new(),
            " \n\t".to_owned(),
            "a".repeat(MessageText::MAX_CHARS + 1),
        ] {
            assert_eq!(MessageText::parse(bad).unwrap_err().code, "invalid_text");
        }
        assert_eq!(
            format!("{:?}", MessageText::parse("secret").unwrap()),
            "MessageText(<6 bytes>)"
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("order-42/retry_1").is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().code,
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }
}
