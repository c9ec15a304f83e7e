//! Turning the gateway's description of a message ([`crate::domain::outgoing`])
//! into whatsapp-rust protobufs: text, media (after [`super::media`] uploaded
//! the file), location, contact cards, and the quote context of a reply.
//!
//! Replies: the gateway keeps message ids, never bodies (DESIGN.md
//! invariant 7), so the quote context names the quoted message by id and
//! sender (`stanza_id`, `participant`) without a copy of it; WhatsApp apps
//! show the quoted message from their own history.

use waproto::buffa::MessageField;
use waproto::whatsapp as wa;
use whatsapp_rust::upload::UploadResponse;

use crate::domain::media::MediaKind;
use crate::domain::outgoing::{ContactCard, Content, Location};

/// Who wrote the message a reply quotes.
#[derive(Debug, Clone)]
pub struct Quote {
    /// The quoted message's id.
    pub message_id: String,
    /// Its sender's JID (the gateway's own number for its own messages).
    pub sender: String,
}

impl Quote {
    fn context(&self) -> wa::ContextInfo {
        wa::ContextInfo {
            stanza_id: Some(self.message_id.clone()),
            participant: Some(self.sender.clone()),
            ..Default::default()
        }
    }
}

/// Media content after upload: what [`build`] needs besides the content.
pub struct Uploaded {
    /// The media host's answer (URL, direct path, hashes, key).
    pub response: UploadResponse,
}

/// The protocol message for `content`; `uploaded` is required for media.
pub fn build(content: &Content, uploaded: Option<&Uploaded>, quote: Option<&Quote>) -> wa::Message {
    let context = || match quote {
        Some(q) => MessageField::some(q.context()),
        None => MessageField::none(),
    };
    match content {
        Content::Text(text) => match quote {
            None => wa::Message {
                conversation: Some(text.as_str().to_owned()),
                ..Default::default()
            },
            Some(_) => wa::Message {
                extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                    text: Some(text.as_str().to_owned()),
                    context_info: context(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        },
        Content::Media {
            kind,
            file,
            caption,
            file_name,
        } => {
            let Some(Uploaded { response: up }) = uploaded else {
                // The caller uploads first; an empty message is refused by
                // the client rather than sent.
                return wa::Message::default();
            };
            media_message(
                *kind,
                up,
                &file.mime,
                caption.clone(),
                file_name.clone(),
                context(),
            )
        }
        Content::Location(location) => location_message(location, context()),
        Content::Contacts(cards) => contacts_message(cards, context()),
    }
}

fn media_message(
    kind: MediaKind,
    up: &UploadResponse,
    mime: &str,
    caption: Option<String>,
    file_name: Option<String>,
    context_info: MessageField<wa::ContextInfo>,
) -> wa::Message {
    let url = Some(up.url.clone());
    let direct_path = Some(up.direct_path.clone());
    let media_key = Some(up.media_key.to_vec());
    let file_enc_sha256 = Some(up.file_enc_sha256.to_vec());
    let file_sha256 = Some(up.file_sha256.to_vec());
    let file_length = Some(up.file_length);
    let media_key_timestamp = Some(up.media_key_timestamp);
    let mimetype = Some(kind.announced_mime(mime));
    let mut message = wa::Message::default();
    match kind {
        MediaKind::Image => {
            message.image_message = MessageField::some(wa::message::ImageMessage {
                url,
                direct_path,
                media_key,
                file_enc_sha256,
                file_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                caption,
                context_info,
                ..Default::default()
            });
        }
        MediaKind::Video => {
            message.video_message = MessageField::some(wa::message::VideoMessage {
                url,
                direct_path,
                media_key,
                file_enc_sha256,
                file_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                caption,
                streaming_sidecar: up.streaming_sidecar.clone(),
                context_info,
                ..Default::default()
            });
        }
        MediaKind::Audio | MediaKind::Voice => {
            message.audio_message = MessageField::some(wa::message::AudioMessage {
                url,
                direct_path,
                media_key,
                file_enc_sha256,
                file_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                ptt: Some(kind == MediaKind::Voice),
                streaming_sidecar: up.streaming_sidecar.clone(),
                context_info,
                ..Default::default()
            });
        }
        MediaKind::Document => {
            message.document_message = MessageField::some(wa::message::DocumentMessage {
                url,
                direct_path,
                media_key,
                file_enc_sha256,
                file_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                title: file_name.clone(),
                file_name,
                caption,
                context_info,
                ..Default::default()
            });
        }
        MediaKind::Sticker => {
            message.sticker_message = MessageField::some(wa::message::StickerMessage {
                url,
                direct_path,
                media_key,
                file_enc_sha256,
                file_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                context_info,
                ..Default::default()
            });
        }
    }
    message
}

fn location_message(
    location: &Location,
    context_info: MessageField<wa::ContextInfo>,
) -> wa::Message {
    wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(location.latitude),
            degrees_longitude: Some(location.longitude),
            name: location.name.clone(),
            address: location.address.clone(),
            context_info,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn contacts_message(
    cards: &[ContactCard],
    context_info: MessageField<wa::ContextInfo>,
) -> wa::Message {
    let card = |c: &ContactCard, context_info| wa::message::ContactMessage {
        display_name: Some(c.display_name.clone()),
        vcard: Some(c.vcard.clone()),
        context_info,
        ..Default::default()
    };
    match cards {
        [one] => wa::Message {
            contact_message: MessageField::some(card(one, context_info)),
            ..Default::default()
        },
        many => wa::Message {
            contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                display_name: Some(format!("{} contacts", many.len())),
                contacts: many.iter().map(|c| card(c, MessageField::none())).collect(),
                context_info,
            }),
            ..Default::default()
        },
    }
}
