//! What a person sent, read out of whatsapp-rust's message protobuf: the kind,
//! the text, a quoted message, media metadata (and what downloading it
//! needs), a location, contact cards — or an action on an earlier message
//! (reaction, edit, revoke).
//!
//! Pure functions of the protobuf: the event built from them is the same on
//! every redelivery. Nothing here logs (bodies and media are personal data).

use waproto::whatsapp as wa;
use waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::pb;

/// What a message does.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// A message in its own right (`message.received`).
    Message(Box<Received>),
    /// A reaction to `target_id`; an empty emoji removes it.
    Reaction {
        /// The message reacted to.
        target_id: String,
        /// The emoji (empty: removed).
        emoji: String,
    },
    /// New text for `target_id`.
    Edited {
        /// The message edited.
        target_id: String,
        /// Its new text.
        text: String,
    },
    /// "Delete for everyone" of `target_id`.
    Revoked {
        /// The message deleted.
        target_id: String,
    },
    /// Protocol plumbing (history sync, key shares, bare sender-key
    /// distributions): no event.
    Plumbing,
}

/// A message in its own right.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Received {
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location`, `contact`, `other`.
    pub kind: &'static str,
    /// The text, or a media caption.
    pub text: Option<String>,
    /// The message this one replies to.
    pub quoted_id: Option<String>,
    /// The file's metadata, for media.
    pub media: Option<pb::MediaInfo>,
    /// The point, for a location.
    pub location: Option<pb::Location>,
    /// The cards, for contacts.
    pub contacts: Vec<pb::ContactCard>,
}

/// Reads `message` (see the module docs).
pub fn read(message: &wa::Message) -> Content {
    let message = unwrap(message);
    if let Some(protocol) = message.protocol_message.as_option() {
        let target_id = protocol
            .key
            .as_option()
            .and_then(|k| k.id.clone())
            .unwrap_or_default();
        if let Some(edited) = protocol.edited_message.as_option() {
            return Content::Edited {
                target_id,
                text: received(edited).text.unwrap_or_default(),
            };
        }
        return match protocol.r#type {
            Some(ProtocolType::REVOKE) => Content::Revoked { target_id },
            _ => Content::Plumbing,
        };
    }
    if let Some(reaction) = message.reaction_message.as_option() {
        return Content::Reaction {
            target_id: reaction
                .key
                .as_option()
                .and_then(|k| k.id.clone())
                .unwrap_or_default(),
            emoji: reaction.text.clone().unwrap_or_default(),
        };
    }
    let received = received(message);
    if received.kind == "other"
        && (message.sender_key_distribution_message.is_set()
            || message.message_context_info.is_set())
    {
        return Content::Plumbing;
    }
    Content::Message(Box::new(received))
}

/// The real message inside wrappers (ephemeral, view-once, device-sent,
/// document-with-caption, edit wrappers).
fn unwrap(message: &wa::Message) -> &wa::Message {
    let wrapped = [
        &message.ephemeral_message,
        &message.view_once_message,
        &message.view_once_message_v2,
        &message.view_once_message_v2_extension,
        &message.document_with_caption_message,
        &message.edited_message,
    ];
    for wrapper in wrapped {
        if let Some(inner) = wrapper.as_option().and_then(|w| w.message.as_option()) {
            return unwrap(inner);
        }
    }
    if let Some(inner) = message
        .device_sent_message
        .as_option()
        .and_then(|sent| sent.message.as_option())
    {
        return unwrap(inner);
    }
    message
}

fn quoted(context: &waproto::buffa::MessageField<wa::ContextInfo>) -> Option<String> {
    context
        .as_option()
        .and_then(|c| c.stanza_id.clone())
        .filter(|id| !id.is_empty())
}

/// Media fields every media message has.
struct Blob<'a> {
    media_type: &'static str,
    mime_type: &'a Option<String>,
    size: Option<u64>,
    file_sha256: &'a Option<Vec<u8>>,
    file_enc_sha256: &'a Option<Vec<u8>>,
    media_key: &'a Option<Vec<u8>>,
    direct_path: &'a Option<String>,
}

impl Blob<'_> {
    fn info(&self) -> pb::MediaInfo {
        pb::MediaInfo {
            mime_type: self.mime_type.clone().unwrap_or_default(),
            size: self.size.unwrap_or_default(),
            file_sha256: self.file_sha256.clone().unwrap_or_default(),
            file_enc_sha256: self.file_enc_sha256.clone().unwrap_or_default(),
            media_key: self.media_key.clone().unwrap_or_default(),
            direct_path: self.direct_path.clone().unwrap_or_default(),
            media_type: self.media_type.to_owned(),
            ..Default::default()
        }
    }
}

fn received(message: &wa::Message) -> Received {
    let message = unwrap(message);
    if let Some(text) = &message.conversation {
        return Received {
            kind: "text",
            text: Some(text.clone()),
            ..Default::default()
        };
    }
    if let Some(extended) = message.extended_text_message.as_option() {
        return Received {
            kind: "text",
            text: extended.text.clone(),
            quoted_id: quoted(&extended.context_info),
            ..Default::default()
        };
    }
    if let Some(image) = message.image_message.as_option() {
        let mut media = Blob {
            media_type: "image",
            mime_type: &image.mimetype,
            size: image.file_length,
            file_sha256: &image.file_sha256,
            file_enc_sha256: &image.file_enc_sha256,
            media_key: &image.media_key,
            direct_path: &image.direct_path,
        }
        .info();
        media.width = image.width.unwrap_or_default();
        media.height = image.height.unwrap_or_default();
        return Received {
            kind: "image",
            text: image.caption.clone(),
            quoted_id: quoted(&image.context_info),
            media: Some(media),
            ..Default::default()
        };
    }
    if let Some(video) = message
        .video_message
        .as_option()
        .or(message.ptv_message.as_option())
    {
        let mut media = Blob {
            media_type: "video",
            mime_type: &video.mimetype,
            size: video.file_length,
            file_sha256: &video.file_sha256,
            file_enc_sha256: &video.file_enc_sha256,
            media_key: &video.media_key,
            direct_path: &video.direct_path,
        }
        .info();
        media.duration_s = video.seconds.unwrap_or_default();
        media.width = video.width.unwrap_or_default();
        media.height = video.height.unwrap_or_default();
        return Received {
            kind: "video",
            text: video.caption.clone(),
            quoted_id: quoted(&video.context_info),
            media: Some(media),
            ..Default::default()
        };
    }
    if let Some(audio) = message.audio_message.as_option() {
        let mut media = Blob {
            media_type: "audio",
            mime_type: &audio.mimetype,
            size: audio.file_length,
            file_sha256: &audio.file_sha256,
            file_enc_sha256: &audio.file_enc_sha256,
            media_key: &audio.media_key,
            direct_path: &audio.direct_path,
        }
        .info();
        media.duration_s = audio.seconds.unwrap_or_default();
        media.voice = audio.ptt.unwrap_or(false);
        return Received {
            kind: if media.voice { "voice" } else { "audio" },
            quoted_id: quoted(&audio.context_info),
            media: Some(media),
            ..Default::default()
        };
    }
    if let Some(document) = message.document_message.as_option() {
        let mut media = Blob {
            media_type: "document",
            mime_type: &document.mimetype,
            size: document.file_length,
            file_sha256: &document.file_sha256,
            file_enc_sha256: &document.file_enc_sha256,
            media_key: &document.media_key,
            direct_path: &document.direct_path,
        }
        .info();
        media.file_name = document.file_name.clone().unwrap_or_default();
        return Received {
            kind: "document",
            text: document.caption.clone(),
            quoted_id: quoted(&document.context_info),
            media: Some(media),
            ..Default::default()
        };
    }
    if let Some(sticker) = message.sticker_message.as_option() {
        let mut media = Blob {
            media_type: "sticker",
            mime_type: &sticker.mimetype,
            size: sticker.file_length,
            file_sha256: &sticker.file_sha256,
            file_enc_sha256: &sticker.file_enc_sha256,
            media_key: &sticker.media_key,
            direct_path: &sticker.direct_path,
        }
        .info();
        media.width = sticker.width.unwrap_or_default();
        media.height = sticker.height.unwrap_or_default();
        return Received {
            kind: "sticker",
            quoted_id: quoted(&sticker.context_info),
            media: Some(media),
            ..Default::default()
        };
    }
    if let Some(location) = message.location_message.as_option() {
        return Received {
            kind: "location",
            quoted_id: quoted(&location.context_info),
            location: Some(pb::Location {
                latitude: location.degrees_latitude.unwrap_or_default(),
                longitude: location.degrees_longitude.unwrap_or_default(),
                name: location.name.clone().unwrap_or_default(),
                address: location.address.clone().unwrap_or_default(),
            }),
            ..Default::default()
        };
    }
    if let Some(live) = message.live_location_message.as_option() {
        return Received {
            kind: "location",
            quoted_id: quoted(&live.context_info),
            location: Some(pb::Location {
                latitude: live.degrees_latitude.unwrap_or_default(),
                longitude: live.degrees_longitude.unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        };
    }
    let card = |c: &wa::message::ContactMessage| pb::ContactCard {
        display_name: c.display_name.clone().unwrap_or_default(),
        vcard: c.vcard.clone().unwrap_or_default(),
    };
    if let Some(contact) = message.contact_message.as_option() {
        return Received {
            kind: "contact",
            quoted_id: quoted(&contact.context_info),
            contacts: vec![card(contact)],
            ..Default::default()
        };
    }
    if let Some(array) = message.contacts_array_message.as_option() {
        return Received {
            kind: "contact",
            quoted_id: quoted(&array.context_info),
            contacts: array.contacts.iter().map(card).collect(),
            ..Default::default()
        };
    }
    Received {
        kind: "other",
        ..Default::default()
    }
}
