//! Rich message kinds: what a contact records about a message a client sent
//! it ([`describe`], media fetched from the fake media host and checked),
//! and the messages contacts send ([`ContactContent`] → `wa::Message`).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wacore::download::MediaType;
use waproto::whatsapp as wa;
use waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::control::{Reaction, SentMessage, Shared};
use crate::error::{FakeError, Result};
use crate::media;

/// Unwraps the neutral wrappers a sent message may come in.
fn unwrap(message: &wa::Message) -> &wa::Message {
    let inner = [
        &message.ephemeral_message,
        &message.view_once_message,
        &message.view_once_message_v2,
        &message.document_with_caption_message,
    ]
    .into_iter()
    .find_map(|w| w.as_option().and_then(|f| f.message.as_option()));
    match inner {
        Some(m) => unwrap(m),
        None => message,
    }
}

fn quoted(ctx: &buffa::MessageField<wa::ContextInfo>) -> Option<String> {
    ctx.as_option().and_then(|c| c.stanza_id.clone())
}

/// Fills the kind-specific fields of `out` from a decrypted message.
pub(crate) fn describe(shared: &Shared, message: &wa::Message, out: &mut SentMessage) {
    let m = unwrap(message);
    if let Some(t) = &m.conversation {
        out.kind = "text".into();
        out.text = t.clone();
    } else if let Some(ext) = m.extended_text_message.as_option() {
        out.kind = "text".into();
        out.text = ext.text.clone().unwrap_or_default();
        out.quoted_id = quoted(&ext.context_info);
    } else if let Some(img) = m.image_message.as_option() {
        out.kind = "image".into();
        out.caption = img.caption.clone();
        out.mime_type = img.mimetype.clone();
        out.quoted_id = quoted(&img.context_info);
        check_media(
            shared,
            MediaType::Image,
            (&img.media_key, &img.file_enc_sha256, &img.file_sha256),
            out,
        );
    } else if let Some(v) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        out.kind = "video".into();
        out.caption = v.caption.clone();
        out.mime_type = v.mimetype.clone();
        out.quoted_id = quoted(&v.context_info);
        check_media(
            shared,
            MediaType::Video,
            (&v.media_key, &v.file_enc_sha256, &v.file_sha256),
            out,
        );
    } else if let Some(a) = m.audio_message.as_option() {
        out.kind = if a.ptt == Some(true) {
            "voice"
        } else {
            "audio"
        }
        .into();
        out.mime_type = a.mimetype.clone();
        out.quoted_id = quoted(&a.context_info);
        check_media(
            shared,
            MediaType::Audio,
            (&a.media_key, &a.file_enc_sha256, &a.file_sha256),
            out,
        );
    } else if let Some(d) = m.document_message.as_option() {
        out.kind = "document".into();
        out.caption = d.caption.clone();
        out.mime_type = d.mimetype.clone();
        out.file_name = d.file_name.clone();
        out.quoted_id = quoted(&d.context_info);
        check_media(
            shared,
            MediaType::Document,
            (&d.media_key, &d.file_enc_sha256, &d.file_sha256),
            out,
        );
    } else if let Some(s) = m.sticker_message.as_option() {
        out.kind = "sticker".into();
        out.mime_type = s.mimetype.clone();
        out.quoted_id = quoted(&s.context_info);
        check_media(
            shared,
            MediaType::Sticker,
            (&s.media_key, &s.file_enc_sha256, &s.file_sha256),
            out,
        );
    } else if let Some(l) = m.location_message.as_option() {
        out.kind = "location".into();
        out.latitude = l.degrees_latitude;
        out.longitude = l.degrees_longitude;
        out.location_name = l.name.clone();
        out.address = l.address.clone();
        out.quoted_id = quoted(&l.context_info);
    } else if let Some(c) = m.contact_message.as_option() {
        out.kind = "contact".into();
        out.vcards = c.vcard.iter().cloned().collect();
        out.quoted_id = quoted(&c.context_info);
    } else if let Some(c) = m.contacts_array_message.as_option() {
        out.kind = "contact".into();
        out.vcards = c.contacts.iter().filter_map(|c| c.vcard.clone()).collect();
        out.quoted_id = quoted(&c.context_info);
    } else if let Some(r) = m.reaction_message.as_option() {
        out.kind = "reaction".into();
        out.reaction = Some(Reaction {
            emoji: r.text.clone().unwrap_or_default(),
            target_id: r
                .key
                .as_option()
                .and_then(|k| k.id.clone())
                .unwrap_or_default(),
        });
    } else if let Some(edited) = m
        .edited_message
        .as_option()
        .and_then(|f| f.message.as_option())
    {
        describe(shared, edited, out);
        if out.kind != "edit" {
            out.kind = "edit".into();
        }
    } else if let Some(p) = m.protocol_message.as_option() {
        let target = p.key.as_option().and_then(|k| k.id.clone());
        match (p.r#type, p.edited_message.as_option()) {
            (Some(ProtocolType::REVOKE), _) => {
                out.kind = "revoke".into();
                out.revoke_of = target;
            }
            (_, Some(edited)) => {
                let mut inner = SentMessage::default();
                describe(shared, edited, &mut inner);
                out.kind = "edit".into();
                out.text = inner.text;
                out.caption = inner.caption;
                out.edit_of = target;
            }
            _ => out.kind = "protocol".into(),
        }
    } else {
        out.kind = "other".into();
    }
}

/// `(media_key, file_enc_sha256, file_sha256)` of a media message.
type MediaRefs<'a> = (
    &'a Option<Vec<u8>>,
    &'a Option<Vec<u8>>,
    &'a Option<Vec<u8>>,
);

fn check_media(
    shared: &Shared,
    media_type: MediaType,
    (key, enc, plain): MediaRefs<'_>,
    out: &mut SentMessage,
) {
    let (Some(key), Some(enc), Some(plain)) = (key, enc, plain) else {
        out.media_error = Some("media_key, file_enc_sha256 or file_sha256 missing".into());
        return;
    };
    match media::fetch_and_decrypt(shared, media_type, key, enc, plain) {
        Ok(bytes) => out.media_sha256 = Some(hex::encode(Sha256::digest(&bytes))),
        Err(e) => out.media_error = Some(e),
    }
}

/// What a contact sends (admin `POST /admin/contacts/{phone}/messages` with
/// `kind`, or the `contact_send*` Rust calls).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContactContent {
    /// `text` (default), `image`, `video`, `audio`, `voice`, `document`,
    /// `sticker`, `reaction`, `edit`, `revoke`, `location`, `contact`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Text (`text`, `edit`).
    #[serde(default)]
    pub text: Option<String>,
    /// The file, base64 (media kinds).
    #[serde(default)]
    pub base64: Option<String>,
    /// Media MIME type.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Media caption.
    #[serde(default)]
    pub caption: Option<String>,
    /// Document file name.
    #[serde(default)]
    pub file_name: Option<String>,
    /// Message a `reaction`/`edit`/`revoke` refers to.
    #[serde(default)]
    pub target_id: Option<String>,
    /// Reaction emoji (empty removes the reaction).
    #[serde(default)]
    pub emoji: Option<String>,
    /// Location.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Location.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Location name.
    #[serde(default)]
    pub name: Option<String>,
    /// Location address.
    #[serde(default)]
    pub address: Option<String>,
    /// Contact card (`contact`).
    #[serde(default)]
    pub vcard: Option<String>,
    /// Quote this message id (ContextInfo `stanza_id`), any kind.
    #[serde(default)]
    pub quoted_id: Option<String>,
    /// Send from the contact's LID (`LID@lid`) instead of its phone number.
    #[serde(default)]
    pub as_lid: bool,
    /// With `as_lid`: the stanza also names the contact's phone number
    /// (`sender_pn`), as WhatsApp does in LID-addressed chats, so the client
    /// learns the LID↔phone mapping.
    #[serde(default)]
    pub sender_pn: bool,
}

impl ContactContent {
    /// Plain text.
    pub fn text(text: &str) -> Self {
        Self {
            kind: Some("text".into()),
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// A media file (`kind`: image, video, audio, voice, document, sticker).
    pub fn media(kind: &str, bytes: &[u8], mime_type: &str) -> Self {
        use base64::Engine as _;
        Self {
            kind: Some(kind.into()),
            base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            mime_type: Some(mime_type.into()),
            ..Self::default()
        }
    }

    /// A reaction to message `target_id`.
    pub fn reaction(target_id: &str, emoji: &str) -> Self {
        Self {
            kind: Some("reaction".into()),
            target_id: Some(target_id.into()),
            emoji: Some(emoji.into()),
            ..Self::default()
        }
    }

    /// An edit of the contact's message `target_id`.
    pub fn edit(target_id: &str, text: &str) -> Self {
        Self {
            kind: Some("edit".into()),
            target_id: Some(target_id.into()),
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Revokes ("delete for everyone") the contact's message `target_id`.
    pub fn revoke(target_id: &str) -> Self {
        Self {
            kind: Some("revoke".into()),
            target_id: Some(target_id.into()),
            ..Self::default()
        }
    }

    /// A location pin.
    pub fn location(latitude: f64, longitude: f64) -> Self {
        Self {
            kind: Some("location".into()),
            latitude: Some(latitude),
            longitude: Some(longitude),
            ..Self::default()
        }
    }

    /// A contact card.
    pub fn contact(vcard: &str) -> Self {
        Self {
            kind: Some("contact".into()),
            vcard: Some(vcard.into()),
            ..Self::default()
        }
    }

    /// Quotes message `id`.
    pub fn quoting(mut self, id: &str) -> Self {
        self.quoted_id = Some(id.into());
        self
    }

    /// Sent from the contact's LID.
    pub fn from_lid(mut self) -> Self {
        self.as_lid = true;
        self
    }

    /// Sent from the contact's LID, naming its phone number (`sender_pn`).
    pub fn from_lid_with_phone(mut self) -> Self {
        self.as_lid = true;
        self.sender_pn = true;
        self
    }

    pub(crate) fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("text")
    }

    /// The `type` attribute of the stanza carrying it.
    pub(crate) fn stanza_type(&self) -> &'static str {
        match self.kind() {
            "image" | "video" | "audio" | "voice" | "document" | "sticker" | "location"
            | "contact" => "media",
            "reaction" => "reaction",
            _ => "text",
        }
    }

    /// Builds the protobuf; media kinds are encrypted and stored on the
    /// media host first. `from_jid` / `to_jid` fill message keys.
    pub(crate) fn build(&self, shared: &Shared, from_jid: &str) -> Result<wa::Message> {
        let bad = |what: &str| FakeError::InvalidInput(format!("{} needs {what}", self.kind()));
        let context = self.quoted_id.as_ref().map(|id| wa::ContextInfo {
            stanza_id: Some(id.clone()),
            participant: Some(from_jid.to_string()),
            quoted_message: buffa::MessageField::some(wa::Message {
                conversation: Some(String::new()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let ctx = || match &context {
            Some(c) => buffa::MessageField::some(c.clone()),
            None => buffa::MessageField::none(),
        };
        let target_key = |from_me: bool| -> Result<wa::MessageKey> {
            Ok(wa::MessageKey {
                remote_jid: Some(from_jid.to_string()),
                from_me: Some(from_me),
                id: Some(self.target_id.clone().ok_or_else(|| bad("target_id"))?),
                participant: None,
            })
        };
        let mut message = wa::Message::default();
        match self.kind() {
            "text" => {
                let text = self.text.clone().ok_or_else(|| bad("text"))?;
                if context.is_some() {
                    message.extended_text_message =
                        buffa::MessageField::some(wa::message::ExtendedTextMessage {
                            text: Some(text),
                            context_info: ctx(),
                            ..Default::default()
                        });
                } else {
                    message.conversation = Some(text);
                }
            }
            kind @ ("image" | "video" | "audio" | "voice" | "document" | "sticker") => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(self.base64.as_deref().ok_or_else(|| bad("base64"))?)
                    .map_err(|e| FakeError::InvalidInput(format!("base64: {e}")))?;
                let up = media::upload_as_contact(shared, &bytes, media::media_type_of(kind))?;
                let mime = self.mime_type.clone();
                let (key, plain, enc) = (
                    Some(up.media_key.to_vec()),
                    Some(up.file_sha256.to_vec()),
                    Some(up.file_enc_sha256.to_vec()),
                );
                let ts = Some(crate::codec::now_secs() as i64);
                match kind {
                    "image" => {
                        message.image_message =
                            buffa::MessageField::some(wa::message::ImageMessage {
                                url: Some(up.url),
                                direct_path: Some(up.direct_path),
                                mimetype: mime.or(Some("image/jpeg".into())),
                                caption: self.caption.clone(),
                                media_key: key,
                                file_sha256: plain,
                                file_enc_sha256: enc,
                                file_length: Some(up.file_length),
                                media_key_timestamp: ts,
                                width: Some(1),
                                height: Some(1),
                                context_info: ctx(),
                                ..Default::default()
                            })
                    }
                    "video" => {
                        message.video_message =
                            buffa::MessageField::some(wa::message::VideoMessage {
                                url: Some(up.url),
                                direct_path: Some(up.direct_path),
                                mimetype: mime.or(Some("video/mp4".into())),
                                caption: self.caption.clone(),
                                media_key: key,
                                file_sha256: plain,
                                file_enc_sha256: enc,
                                file_length: Some(up.file_length),
                                media_key_timestamp: ts,
                                seconds: Some(1),
                                width: Some(1),
                                height: Some(1),
                                context_info: ctx(),
                                ..Default::default()
                            })
                    }
                    "audio" | "voice" => {
                        message.audio_message =
                            buffa::MessageField::some(wa::message::AudioMessage {
                                url: Some(up.url),
                                direct_path: Some(up.direct_path),
                                mimetype: mime.or(Some("audio/ogg; codecs=opus".into())),
                                media_key: key,
                                file_sha256: plain,
                                file_enc_sha256: enc,
                                file_length: Some(up.file_length),
                                media_key_timestamp: ts,
                                seconds: Some(1),
                                ptt: Some(kind == "voice"),
                                context_info: ctx(),
                                ..Default::default()
                            })
                    }
                    "document" => {
                        message.document_message =
                            buffa::MessageField::some(wa::message::DocumentMessage {
                                url: Some(up.url),
                                direct_path: Some(up.direct_path),
                                mimetype: mime.or(Some("application/octet-stream".into())),
                                caption: self.caption.clone(),
                                file_name: self.file_name.clone(),
                                title: self.file_name.clone(),
                                media_key: key,
                                file_sha256: plain,
                                file_enc_sha256: enc,
                                file_length: Some(up.file_length),
                                media_key_timestamp: ts,
                                context_info: ctx(),
                                ..Default::default()
                            })
                    }
                    _ => {
                        message.sticker_message =
                            buffa::MessageField::some(wa::message::StickerMessage {
                                url: Some(up.url),
                                direct_path: Some(up.direct_path),
                                mimetype: mime.or(Some("image/webp".into())),
                                media_key: key,
                                file_sha256: plain,
                                file_enc_sha256: enc,
                                file_length: Some(up.file_length),
                                media_key_timestamp: ts,
                                width: Some(1),
                                height: Some(1),
                                context_info: ctx(),
                                ..Default::default()
                            })
                    }
                }
            }
            "reaction" => {
                message.reaction_message = buffa::MessageField::some(wa::message::ReactionMessage {
                    key: buffa::MessageField::some(target_key(false)?),
                    text: Some(self.emoji.clone().unwrap_or_default()),
                    sender_timestamp_ms: Some(crate::codec::now_secs() as i64 * 1000),
                    ..Default::default()
                })
            }
            "edit" => {
                let text = self.text.clone().ok_or_else(|| bad("text"))?;
                message.protocol_message =
                    buffa::MessageField::some(wa::message::ProtocolMessage {
                        key: buffa::MessageField::some(target_key(true)?),
                        r#type: Some(ProtocolType::MESSAGE_EDIT),
                        edited_message: buffa::MessageField::some(wa::Message {
                            conversation: Some(text),
                            ..Default::default()
                        }),
                        timestamp_ms: Some(crate::codec::now_secs() as i64 * 1000),
                        ..Default::default()
                    });
            }
            "revoke" => {
                message.protocol_message =
                    buffa::MessageField::some(wa::message::ProtocolMessage {
                        key: buffa::MessageField::some(target_key(true)?),
                        r#type: Some(ProtocolType::REVOKE),
                        ..Default::default()
                    });
            }
            "location" => {
                message.location_message = buffa::MessageField::some(wa::message::LocationMessage {
                    degrees_latitude: Some(self.latitude.ok_or_else(|| bad("latitude"))?),
                    degrees_longitude: Some(self.longitude.ok_or_else(|| bad("longitude"))?),
                    name: self.name.clone(),
                    address: self.address.clone(),
                    context_info: ctx(),
                    ..Default::default()
                })
            }
            "contact" => {
                let vcard = self.vcard.clone().ok_or_else(|| bad("vcard"))?;
                let display_name = vcard
                    .lines()
                    .find_map(|l| l.strip_prefix("FN:"))
                    .map(str::to_string);
                message.contact_message = buffa::MessageField::some(wa::message::ContactMessage {
                    display_name,
                    vcard: Some(vcard),
                    context_info: ctx(),
                    ..Default::default()
                })
            }
            other => {
                return Err(FakeError::InvalidInput(format!(
                    "unknown message kind {other:?}"
                )));
            }
        }
        Ok(message)
    }
}
