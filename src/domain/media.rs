//! Media kinds and their rules: what WhatsApp accepts for each kind (MIME
//! types, default size limits), and [`MediaFile`], a file received from an
//! API client and spooled to an anonymous temporary file (no name on disk,
//! so nothing is left behind on any refusal, error or crash).

use std::fmt;

use super::InvalidInput;

/// A kind of media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A photo (JPEG, PNG, WebP).
    Image,
    /// A video (MP4, 3GPP).
    Video,
    /// An audio file (music, recordings).
    Audio,
    /// A push-to-talk voice note (audio with `ptt`).
    Voice,
    /// Any file, sent with its name (PDF invoices, spreadsheets, …).
    Document,
    /// A WebP sticker.
    Sticker,
}

const MIB: u64 = 1024 * 1024;

impl MediaKind {
    /// Every kind, in API order.
    pub const ALL: [Self; 6] = [
        Self::Image,
        Self::Video,
        Self::Audio,
        Self::Voice,
        Self::Document,
        Self::Sticker,
    ];

    /// The API name (`image`, `video`, `audio`, `voice`, `document`, `sticker`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Voice => "voice",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// The kind named `raw`, if it is a media kind.
    pub fn from_name(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// WhatsApp's own size limit for this kind (what its apps accept):
    /// 16 MiB for images and audio, 64 MiB for video, 2 GiB for documents,
    /// 1 MiB for stickers.
    pub fn whatsapp_max_bytes(self) -> u64 {
        match self {
            Self::Image | Self::Audio | Self::Voice => 16 * MIB,
            Self::Video => 64 * MIB,
            Self::Document => 2048 * MIB,
            Self::Sticker => MIB,
        }
    }

    /// Whether WhatsApp takes a file of type `mime` (parameters such as
    /// `; codecs=opus` ignored) as this kind. Documents take anything.
    pub fn accepts_mime(self, mime: &str) -> bool {
        let essence = mime_essence(mime);
        match self {
            Self::Document => essence.contains('/'),
            _ => self.mime_types().contains(&essence.as_str()),
        }
    }

    /// The MIME types (essences) WhatsApp takes for this kind; empty for a
    /// document, which takes any.
    pub fn mime_types(self) -> &'static [&'static str] {
        match self {
            Self::Image => &["image/jpeg", "image/png", "image/webp"],
            Self::Video => &["video/mp4", "video/3gpp"],
            Self::Audio => &[
                "audio/aac",
                "audio/mp4",
                "audio/mpeg",
                "audio/amr",
                "audio/ogg",
                "audio/x-m4a",
            ],
            // WhatsApp plays voice notes only as Ogg Opus.
            Self::Voice => &["audio/ogg"],
            Self::Sticker => &["image/webp"],
            Self::Document => &[],
        }
    }

    /// The MIME type announced for a voice note, whose codec WhatsApp needs
    /// to see; other kinds keep the type they came with.
    pub fn announced_mime(self, mime: &str) -> String {
        if self == Self::Voice && !mime.contains("codecs") {
            "audio/ogg; codecs=opus".to_owned()
        } else {
            mime.to_owned()
        }
    }
}

/// `type/subtype` in lower case, without parameters.
pub fn mime_essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A MIME type given by a client: `type/subtype[; params]`, at most 255
/// visible ASCII characters. Code `invalid_mime_type`.
pub fn parse_mime(raw: &str) -> Result<String, InvalidInput> {
    let raw = raw.trim();
    let essence = mime_essence(raw);
    let valid = raw.len() <= 255
        && raw.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(InvalidInput::new(
            "invalid_mime_type",
            "mime_type must look like `type/subtype`",
        ))
    }
}

/// A file name for a document: 1–255 characters, no path separators or
/// control characters. Code `invalid_file_name`.
pub fn parse_file_name(raw: &str) -> Result<String, InvalidInput> {
    let valid = !raw.trim().is_empty()
        && raw.chars().count() <= 255
        && !raw.chars().any(|c| c.is_control() || c == '/' || c == '\\');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(InvalidInput::new(
            "invalid_file_name",
            "file_name must be 1 to 255 characters without `/`, `\\` or control characters",
        ))
    }
}

/// A caption: at most 4,096 characters (WhatsApp's limit). Code `invalid_caption`.
pub fn parse_caption(raw: String) -> Result<String, InvalidInput> {
    if raw.chars().count() > 4096 {
        return Err(InvalidInput::new(
            "invalid_caption",
            "a caption may be at most 4096 characters long",
        ));
    }
    Ok(raw)
}

/// A media file ready to upload: spooled to an anonymous temporary file, with
/// its length and resolved MIME type.
pub struct MediaFile {
    /// The plaintext; an unnamed temporary file, gone when dropped.
    pub file: std::fs::File,
    /// Its length in bytes.
    pub len: u64,
    /// The MIME type (given by the client, else sniffed).
    pub mime: String,
}

/// Redacted: a file's content is the sender's business.
impl fmt::Debug for MediaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaFile")
            .field("len", &self.len)
            .field("mime", &self.mime)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_accept_what_whatsapp_accepts() {
        assert!(MediaKind::Image.accepts_mime("image/jpeg"));
        assert!(MediaKind::Image.accepts_mime("IMAGE/PNG"));
        assert!(!MediaKind::Image.accepts_mime("application/pdf"));
        assert!(MediaKind::Voice.accepts_mime("audio/ogg; codecs=opus"));
        assert!(!MediaKind::Voice.accepts_mime("audio/mpeg"));
        assert!(MediaKind::Sticker.accepts_mime("image/webp"));
        assert!(!MediaKind::Sticker.accepts_mime("image/png"));
        assert!(MediaKind::Document.accepts_mime("application/pdf"));
        assert!(MediaKind::Video.accepts_mime("video/mp4"));
        assert!(!MediaKind::Video.accepts_mime("video/x-msvideo"));
        assert_eq!(
            MediaKind::Voice.announced_mime("audio/ogg"),
            "audio/ogg; codecs=opus"
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in MediaKind::ALL {
            assert_eq!(MediaKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(MediaKind::from_name("text"), None);
    }

    #[test]
    fn client_strings_are_checked() {
        assert!(parse_mime("application/pdf").is_ok());
        assert_eq!(parse_mime("pdf").unwrap_err().code, "invalid_mime_type");
        assert!(parse_file_name("invoice 42.pdf").is_ok());
        assert_eq!(
            parse_file_name("../etc/passwd").unwrap_err().code,
            "invalid_file_name"
        );
        assert_eq!(
            parse_caption("x".repeat(4097)).unwrap_err().code,
            "invalid_caption"
        );
    }
}
