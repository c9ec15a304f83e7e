//! What the gateway sends, described without any whatsapp-rust type: the
//! [`Content`] of a new message, the [`Action`]s on an existing one, and the
//! [`MessageId`]s and [`ChatState`]s API clients name. `crate::wa` turns
//! these into protocol messages.

use std::fmt;

use super::media::{MediaFile, MediaKind};
use super::{InvalidInput, MessageText, PhoneNumber};

/// A WhatsApp message id as API clients pass it (`3EB0C431C26A1916E07E`):
/// 1–128 characters of `[A-Za-z0-9._:-]`. Code `invalid_message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 128;

    /// [`MessageId::parse`]'s rule as a regular expression (the API document's).
    pub const PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

    /// Parses and validates `raw` (400 `invalid_message_id` when it is not one).
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.chars().all(valid_char) {
            return Err(InvalidInput::new(
                "invalid_message_id",
                "a message id is 1 to 128 characters of A-Z, a-z, 0-9, `.`, `_`, `:` and `-`",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A point on the map. Coordinates are checked: latitude in −90..=90,
/// longitude in −180..=180 (code `invalid_location`).
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Degrees north (negative: south).
    pub latitude: f64,
    /// Degrees east (negative: west).
    pub longitude: f64,
    /// The place's name, if any.
    pub name: Option<String>,
    /// Its address, if any.
    pub address: Option<String>,
}

impl Location {
    /// A checked location (`invalid_location` when a coordinate is out of range).
    pub fn new(
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    ) -> Result<Self, InvalidInput> {
        if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
            return Err(InvalidInput::new(
                "invalid_location",
                "latitude must be within -90..90 and longitude within -180..180",
            ));
        }
        let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.chars().count() > 1024);
        if too_long(&name) || too_long(&address) {
            return Err(InvalidInput::new(
                "invalid_location",
                "name and address may be at most 1024 characters long",
            ));
        }
        Ok(Self {
            latitude,
            longitude,
            name,
            address,
        })
    }
}

/// One contact card: the name WhatsApp shows and the vCard it carries.
#[derive(Clone, PartialEq, Eq)]
pub struct ContactCard {
    /// The name WhatsApp shows on the card.
    pub display_name: String,
    /// The vCard text.
    pub vcard: String,
}

impl ContactCard {
    /// A card from a client's vCard (`BEGIN:VCARD … END:VCARD`, at most
    /// 64 KiB); the display name is its `FN:` line. Code `invalid_contact`.
    pub fn from_vcard(vcard: String) -> Result<Self, InvalidInput> {
        let trimmed = vcard.trim();
        if vcard.len() > 65_536
            || !trimmed.starts_with("BEGIN:VCARD")
            || !trimmed.ends_with("END:VCARD")
        {
            return Err(invalid_contact(
                "a vCard must start with BEGIN:VCARD and end with END:VCARD (at most 64 KiB)",
            ));
        }
        let display_name = trimmed
            .lines()
            .find_map(|line| line.trim().strip_prefix("FN:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        if display_name.is_empty() {
            return Err(invalid_contact(
                "a vCard needs an `FN:` (display name) line",
            ));
        }
        Ok(Self {
            display_name,
            vcard,
        })
    }

    /// A card built from a name and phone numbers (each with WhatsApp's
    /// `waid` parameter, so the card offers "Message").
    pub fn from_name_and_phones(name: &str, phones: &[PhoneNumber]) -> Result<Self, InvalidInput> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
            return Err(invalid_contact(
                "a contact's name must be 1 to 256 characters without control characters",
            ));
        }
        if phones.is_empty() {
            return Err(invalid_contact("a contact needs at least one phone number"));
        }
        let escaped = name
            .replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace(';', "\\;");
        let mut vcard = format!("BEGIN:VCARD\nVERSION:3.0\nN:;{escaped};;;\nFN:{escaped}\n");
        for phone in phones {
            vcard.push_str(&format!(
                "TEL;type=CELL;type=VOICE;waid={0}:+{0}\n",
                phone.digits()
            ));
        }
        vcard.push_str("END:VCARD");
        Ok(Self {
            display_name: name.to_owned(),
            vcard,
        })
    }
}

/// Redacted: contact cards hold personal data.
impl fmt::Debug for ContactCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContactCard(<redacted>)")
    }
}

fn invalid_contact(message: &str) -> InvalidInput {
    InvalidInput::new("invalid_contact", message)
}

/// The content of a new message.
#[derive(Debug)]
pub enum Content {
    /// Plain text.
    Text(MessageText),
    /// A file of one media kind.
    Media {
        /// What WhatsApp shows it as.
        kind: MediaKind,
        /// The file, spooled and checked.
        file: MediaFile,
        /// Text shown under it (not for audio, voice and stickers).
        caption: Option<String>,
        /// The name a document is shown and saved with.
        file_name: Option<String>,
    },
    /// A point on the map.
    Location(Location),
    /// One or more cards (more than one becomes a contacts array).
    Contacts(Vec<ContactCard>),
}

impl Content {
    /// The API name of the kind (`text`, `image`, …, `location`, `contact`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Media { kind, .. } => kind.as_str(),
            Self::Location(_) => "location",
            Self::Contacts(_) => "contact",
        }
    }
}

/// An action on an existing message of a chat.
#[derive(Debug)]
pub enum Action {
    /// React with `emoji`; an empty one removes the reaction.
    React {
        /// The emoji; empty removes the reaction.
        emoji: String,
    },
    /// Replace the text of a message the gateway sent.
    Edit {
        /// The new text.
        text: MessageText,
    },
    /// Delete a message the gateway sent, for everyone.
    Revoke,
}

/// What `…/chats/{chat}/presence` shows the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatState {
    /// "typing…"
    Composing,
    /// "recording audio…"
    Recording,
    /// Stopped typing.
    Paused,
}

/// The most characters (Unicode scalar values) a reaction emoji may have:
/// enough for a ZWJ family or a flag sequence, and at most 32 bytes.
pub const MAX_EMOJI_CHARS: usize = 8;

/// An emoji for a reaction: empty (removes the reaction) or at most
/// [`MAX_EMOJI_CHARS`] characters, none a control character or an ASCII
/// letter or digit. Code `invalid_emoji`.
pub fn parse_emoji(raw: String) -> Result<String, InvalidInput> {
    if raw.chars().count() > MAX_EMOJI_CHARS
        || raw
            .chars()
            .any(|c| c.is_control() || c.is_ascii_alphanumeric())
    {
        return Err(InvalidInput::new(
            "invalid_emoji",
            "emoji must be one emoji (or empty to remove the reaction)",
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        assert!(MessageId::parse("3EB0C431C26A1916E07E").is_ok());
        for bad in ["", "a b", "x/y", &"a".repeat(129)] {
            assert_eq!(
                MessageId::parse(bad).unwrap_err().code,
                "invalid_message_id"
            );
        }
    }

    #[test]
    fn locations_are_range_checked() {
        assert!(Location::new(52.5, 13.4, None, None).is_ok());
        assert!(Location::new(91.0, 0.0, None, None).is_err());
        assert!(Location::new(0.0, -181.0, None, None).is_err());
        assert!(Location::new(f64::NAN, 0.0, None, None).is_err());
    }

    #[test]
    fn contact_cards() {
        let card =
            ContactCard::from_vcard("BEGIN:VCARD\nVERSION:3.0\nFN:Eve\nEND:VCARD".into()).unwrap();
        assert_eq!(card.display_name, "Eve");
        assert!(ContactCard::from_vcard("hello".into()).is_err());
        let phone = PhoneNumber::parse("+15550005555").unwrap();
        let built = ContactCard::from_name_and_phones("Eve; Jr", &[phone]).unwrap();
        assert!(built.vcard.contains("FN:Eve\\; Jr\n"), "{}", built.vcard);
        assert!(built.vcard.contains("waid=15550005555:+15550005555"));
        assert!(ContactCard::from_name_and_phones("Eve", &[]).is_err());
    }

    #[test]
    fn emojis() {
        assert_eq!(parse_emoji("👍".into()).unwrap(), "👍");
        assert_eq!(parse_emoji(String::new()).unwrap(), "");
        assert!(parse_emoji("ok".into()).is_err());
    }
}
