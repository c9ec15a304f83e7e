//! [`Recipient`]: who a message goes to — a phone number, a LID (WhatsApp's
//! privacy identifier, `…@lid`) or a group (`…@g.us`) — parsed once at the
//! edge from what API clients write in `to` or a `{chat}` path segment.
//!
//! Recipients are personal data: `Debug` is redacted like
//! [`PhoneNumber`]'s.

use std::fmt;

use super::{InvalidInput, PhoneNumber};

/// A chat the gateway can send to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// A phone number (E.164 digits): `+15550002222`, `15550002222@s.whatsapp.net`.
    Phone(PhoneNumber),
    /// A LID user (digits only): `123456789012345@lid`.
    Lid(String),
    /// A group id: `120363012345678901@g.us` (or the older `creator-time@g.us`).
    Group(String),
}

impl Recipient {
    /// [`Recipient::parse`]'s rule as a regular expression (the API
    /// document's): a phone number or phone JID ([`PhoneNumber::PATTERN`]),
    /// a LID JID (6–20 digits, optional `:device`, `@lid`) or a group JID
    /// (10–24 digits, or `creator-time`, `@g.us`).
    pub const PATTERN: &str = concat!(
        r"^\s*(?:",
        r"\+?[ ().-]*[1-9][ ().-]*(?:[0-9][ ().-]*){7,14}",
        r"|",
        r"\+?[ ().-]*[1-9][ ().-]*(?:[0-9][ ().-]*){7,14}(?::[^@]*)?@(?:s\.whatsapp\.net|c\.us)",
        r"|",
        r"[0-9]{6,20}(?::[\s\S]*)?@lid",
        r"|",
        r"(?:[0-9]{8,15}-[0-9]{9,12}|[0-9]{10,24})@g\.us",
        r")\s*$"
    );

    /// Parses an E.164 number, a phone JID, a LID JID or a group JID.
    ///
    /// Errors: `invalid_phone` for a malformed number, `invalid_recipient`
    /// for a malformed LID or group JID or another JID server.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let raw = raw.trim();
        match raw.rsplit_once('@') {
            None | Some((_, "s.whatsapp.net" | "c.us")) => PhoneNumber::parse(raw).map(Self::Phone),
            Some((user, "lid")) => {
                // A device suffix (`:3`) addresses one device; the chat is the user.
                let user = user.split(':').next().unwrap_or(user);
                if (6..=20).contains(&user.len()) && all_digits(user) {
                    Ok(Self::Lid(user.to_owned()))
                } else {
                    Err(invalid("a LID JID is digits followed by `@lid`"))
                }
            }
            Some((id, "g.us")) => {
                let valid = match id.split_once('-') {
                    // Older groups: `<creator phone>-<unix time>`.
                    Some((creator, time)) => {
                        (8..=15).contains(&creator.len())
                            && all_digits(creator)
                            && (9..=12).contains(&time.len())
                            && all_digits(time)
                    }
                    None => (10..=24).contains(&id.len()) && all_digits(id),
                };
                if valid {
                    Ok(Self::Group(id.to_owned()))
                } else {
                    Err(invalid("a group JID is digits followed by `@g.us`"))
                }
            }
            Some(_) => Err(invalid(
                "a recipient is an E.164 number or a JID ending in @s.whatsapp.net, @lid or @g.us",
            )),
        }
    }

    /// The chat JID WhatsApp addresses.
    pub fn jid(&self) -> String {
        match self {
            Self::Phone(phone) => phone.jid(),
            Self::Lid(user) => format!("{user}@lid"),
            Self::Group(id) => format!("{id}@g.us"),
        }
    }

    /// What API answers show as the recipient: the phone's digits (as text
    /// sends always did), else the JID.
    pub fn display(&self) -> String {
        match self {
            Self::Phone(phone) => phone.digits().to_owned(),
            other => other.jid(),
        }
    }

    /// The phone number, for a phone recipient.
    pub fn phone(&self) -> Option<&PhoneNumber> {
        match self {
            Self::Phone(phone) => Some(phone),
            _ => None,
        }
    }

    /// Whether this is a group chat.
    pub fn is_group(&self) -> bool {
        matches!(self, Self::Group(_))
    }
}

impl From<PhoneNumber> for Recipient {
    fn from(phone: PhoneNumber) -> Self {
        Self::Phone(phone)
    }
}

/// Redacted: recipients are personal data and must not reach logs.
impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Phone(_) => "Phone",
            Self::Lid(_) => "Lid",
            Self::Group(_) => "Group",
        };
        write!(f, "Recipient::{kind}(<redacted>)")
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn invalid(message: &str) -> InvalidInput {
    InvalidInput::new("invalid_recipient", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipient_form_parses() {
        for (raw, jid) in [
            ("+15550002222", "15550002222@s.whatsapp.net"),
            ("15550002222@s.whatsapp.net", "15550002222@s.whatsapp.net"),
            ("15550002222:4@s.whatsapp.net", "15550002222@s.whatsapp.net"),
            ("123456789012345@lid", "123456789012345@lid"),
            ("123456789012345:2@lid", "123456789012345@lid"),
            ("120363012345678901@g.us", "120363012345678901@g.us"),
            ("15550002222-1600000000@g.us", "15550002222-1600000000@g.us"),
        ] {
            assert_eq!(Recipient::parse(raw).unwrap().jid(), jid, "{raw}");
        }
        assert!(
            Recipient::parse("120363012345678901@g.us")
                .unwrap()
                .is_group()
        );
    }

    #[test]
    fn malformed_recipients_are_refused_with_their_code() {
        for (raw, code) in [
            ("12", "invalid_phone"),
            ("abc@s.whatsapp.net", "invalid_phone"),
            ("1@g.us", "invalid_recipient"),
            ("12ab@lid", "invalid_recipient"),
            ("x@newsletter", "invalid_recipient"),
            ("status@broadcast", "invalid_recipient"),
        ] {
            assert_eq!(Recipient::parse(raw).unwrap_err().code, code, "{raw}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let r = Recipient::parse("123456789012345@lid").unwrap();
        assert_eq!(format!("{r:?}"), "Recipient::Lid(<redacted>)");
    }
}
