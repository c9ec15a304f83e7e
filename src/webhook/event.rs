//! Building events: from whatsapp-rust's inbound messages and the pool's
//! status changes to [`pb::WebhookEvent`], and from there to the JSON body
//! webhooks and SSE carry.
//!
//! # Invariants
//!
//! - An event id is a pure function of what identifies the fact: a message's
//!   `(company, chat, sender, message id)`, a status change's
//!   `(company, from, to, reason, time)`. So a redelivered message, or one
//!   replayed after a crash, gets the same id as the first time, whether or not
//!   the first commit survived.
//! - The JSON body is a pure function of the stored event: a retry or replay
//!   sends the same bytes, so signatures and receivers' dedup agree.
//! - Message text never reaches a log line from here.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use wacore::types::events::InboundMessage;
use wacore_binary::jid::Jid;
use waproto::whatsapp as wa;

use crate::domain::CompanyId;
use crate::pb;
use crate::store::outbox::{DedupKey, NewEvent};

/// Event type of a received message.
pub const MESSAGE_RECEIVED: &str = "message.received";
/// Event type of a session state change.
pub const SESSION_STATUS: &str = "session.status";
/// Every event type, for validating webhook filters.
pub const EVENT_TYPES: [&str; 2] = [MESSAGE_RECEIVED, SESSION_STATUS];

/// The ordering lane of session events (one per company).
pub const SESSION_LANE: &str = "session";

/// A stable id: a type prefix and 128 bits of SHA-256 over length-delimited
/// parts (so `("ab","c")` and `("a","bc")` differ).
fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut id = String::with_capacity(prefix.len() + 33);
    id.push_str(prefix);
    id.push('_');
    for byte in &digest[..16] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// The event id of a message (see the module invariants).
pub fn message_event_id(company: &CompanyId, chat: &str, sender: &str, message_id: &str) -> String {
    stable_id("msg", &[company.as_str(), chat, sender, message_id])
}

/// Builds the event of one inbound message.
pub fn message_event(company: &CompanyId, inbound: &InboundMessage) -> NewEvent {
    let info = &inbound.info;
    let source = &info.source;
    let chat = source.chat.to_non_ad_string();
    let sender = source.sender.to_non_ad_string();
    let (sender_phone, sender_lid) = sender_identities(&source.sender, source.sender_alt.as_ref());
    let (kind, text) = content(&inbound.message);
    let id = message_event_id(company, &chat, &sender, &info.id);
    let timestamp_ms = info.timestamp.timestamp_millis();
    let message = pb::InboundMessage {
        company_id: company.to_string(),
        message_id: info.id.clone(),
        chat: chat.clone(),
        sender: sender.clone(),
        push_name: info.push_name.clone(),
        timestamp_ms,
        kind: kind.to_owned(),
        text: text.unwrap_or_default(),
        from_me: source.is_from_me,
        is_group: source.is_group,
        sender_phone: sender_phone.unwrap_or_default(),
        sender_lid: sender_lid.unwrap_or_default(),
    };
    NewEvent {
        dedup: DedupKey::Message {
            chat: chat.clone(),
            sender,
            message_id: info.id.clone(),
        },
        event: pb::WebhookEvent {
            id,
            company_id: company.to_string(),
            r#type: MESSAGE_RECEIVED.to_owned(),
            timestamp_ms,
            payload: Some(pb::webhook_event::Payload::Message(message)),
        },
        lane: chat,
    }
}

/// Builds the event of a session state change.
pub fn status_event(company: &CompanyId, change: pb::StatusChange) -> NewEvent {
    let at = change.at_ms.to_string();
    let id = stable_id(
        "sts",
        &[
            company.as_str(),
            &change.from,
            &change.to,
            &change.reason,
            &at,
        ],
    );
    NewEvent {
        dedup: DedupKey::Event(id.clone()),
        event: pb::WebhookEvent {
            id,
            company_id: company.to_string(),
            r#type: SESSION_STATUS.to_owned(),
            timestamp_ms: change.at_ms,
            payload: Some(pb::webhook_event::Payload::Status(change)),
        },
        lane: SESSION_LANE.to_owned(),
    }
}

/// `(phone digits, LID JID)` of a sender, each when known: a phone-number
/// JID gives the phone and its alternate the LID, and the reverse for a LID.
fn sender_identities(sender: &Jid, alt: Option<&Jid>) -> (Option<String>, Option<String>) {
    let mut phone = None;
    let mut lid = None;
    for jid in std::iter::once(sender).chain(alt) {
        if jid.is_pn() && phone.is_none() {
            phone = Some(jid.user_base().to_owned());
        } else if jid.is_lid() && lid.is_none() {
            lid = Some(jid.to_non_ad_string());
        }
    }
    (phone, lid)
}

/// Whether a message is protocol plumbing rather than something a person
/// sent (history-sync and app-state key shares from the own phone, revokes
/// handled elsewhere, bare sender-key distributions): these produce no event.
pub fn is_protocol_only(message: &wa::Message) -> bool {
    message.protocol_message.is_set()
        || (content(message).0 == "other"
            && (message.sender_key_distribution_message.is_set()
                || message.message_context_info.is_set()))
}

/// The kind of a message and its text (the text itself, or a media caption).
pub fn content(message: &wa::Message) -> (&'static str, Option<String>) {
    // Wrappers carry the real message inside.
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
            return content(inner);
        }
    }
    if let Some(inner) = message
        .device_sent_message
        .as_option()
        .and_then(|sent| sent.message.as_option())
    {
        return content(inner);
    }
    if let Some(text) = &message.conversation {
        return ("text", Some(text.clone()));
    }
    if let Some(extended) = message.extended_text_message.as_option() {
        return ("text", extended.text.clone());
    }
    if let Some(image) = message.image_message.as_option() {
        return ("image", image.caption.clone());
    }
    if let Some(video) = message
        .video_message
        .as_option()
        .or(message.ptv_message.as_option())
    {
        return ("video", video.caption.clone());
    }
    if let Some(document) = message.document_message.as_option() {
        return ("document", document.caption.clone());
    }
    let kind = if message.audio_message.is_set() {
        "audio"
    } else if message.sticker_message.is_set() {
        "sticker"
    } else if message.reaction_message.is_set() {
        "reaction"
    } else if message.location_message.is_set() || message.live_location_message.is_set() {
        "location"
    } else if message.contact_message.is_set() || message.contacts_array_message.is_set() {
        "contact"
    } else {
        "other"
    };
    (kind, None)
}

/// The JSON body of an event, as webhooks and SSE carry it.
///
/// ```json
/// {"id":"msg_…","type":"message.received","company":"acme","timestamp":1700000000000,
///  "data":{"message_id":"3EB0…","chat":"15550003333@s.whatsapp.net", …}}
/// ```
pub fn to_json(event: &pb::WebhookEvent) -> Value {
    let data = match &event.payload {
        Some(pb::webhook_event::Payload::Message(m)) => json!({
            "message_id": m.message_id,
            "chat": m.chat,
            "sender": m.sender,
            "sender_phone": non_empty(&m.sender_phone),
            "sender_lid": non_empty(&m.sender_lid),
            "push_name": non_empty(&m.push_name),
            "kind": m.kind,
            "text": non_empty(&m.text),
            "from_me": m.from_me,
            "is_group": m.is_group,
        }),
        Some(pb::webhook_event::Payload::Status(s)) => json!({
            "from": s.from,
            "to": s.to,
            "reason": s.reason,
            "at": s.at_ms,
        }),
        None => Value::Null,
    };
    json!({
        "id": event.id,
        "type": event.r#type,
        "company": event.company_id,
        "timestamp": event.timestamp_ms,
        "data": data,
    })
}

/// The serialized body (see [`to_json`]).
pub fn to_body(event: &pb::WebhookEvent) -> Vec<u8> {
    // Serializing a `Value` cannot fail (string keys only).
    serde_json::to_vec(&to_json(event)).unwrap_or_default()
}

fn non_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wacore::types::message::{MessageInfo, MessageSource};

    use super::*;
    use waproto::buffa;

    fn company() -> CompanyId {
        CompanyId::parse("acme").unwrap()
    }

    fn inbound(message: wa::Message, sender: &str, alt: Option<&str>) -> InboundMessage {
        let sender: Jid = sender.parse().unwrap();
        let info = MessageInfo {
            source: MessageSource {
                chat: sender.to_non_ad(),
                sender: sender.clone(),
                sender_alt: alt.map(|a| a.parse().unwrap()),
                ..Default::default()
            },
            id: "3EB0CAROL0000001".into(),
            push_name: "Carol".into(),
            timestamp: wacore::chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            ..Default::default()
        };
        InboundMessage::builder()
            .message(Arc::new(message))
            .info(Arc::new(info))
            .build()
    }

    fn text(s: &str) -> wa::Message {
        wa::Message {
            conversation: Some(s.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_text_from_a_phone_jid_carries_phone_lid_and_text() {
        let msg = inbound(
            text("hello"),
            "15550003333:2@s.whatsapp.net",
            Some("123456789@lid"),
        );
        let new = message_event(&company(), &msg);
        let json = to_json(&new.event);
        assert_eq!(json["type"], "message.received");
        assert_eq!(json["timestamp"], 1_700_000_000_000i64);
        assert_eq!(json["data"]["chat"], "15550003333@s.whatsapp.net");
        assert_eq!(json["data"]["sender"], "15550003333@s.whatsapp.net");
        assert_eq!(json["data"]["sender_phone"], "15550003333");
        assert_eq!(json["data"]["sender_lid"], "123456789@lid");
        assert_eq!(json["data"]["push_name"], "Carol");
        assert_eq!(json["data"]["kind"], "text");
        assert_eq!(json["data"]["text"], "hello");
        assert_eq!(new.lane, "15550003333@s.whatsapp.net");
    }

    #[test]
    fn a_lid_sender_gets_its_phone_from_the_alternate_jid() {
        let msg = inbound(
            text("x"),
            "123456789@lid",
            Some("15550003333@s.whatsapp.net"),
        );
        let json = to_json(&message_event(&company(), &msg).event);
        assert_eq!(json["data"]["sender"], "123456789@lid");
        assert_eq!(json["data"]["sender_phone"], "15550003333");
        assert_eq!(json["data"]["sender_lid"], "123456789@lid");
        let unknown = inbound(text("x"), "123456789@lid", None);
        let json = to_json(&message_event(&company(), &unknown).event);
        assert_eq!(json["data"]["sender_phone"], Value::Null);
    }

    #[test]
    fn the_event_id_is_stable_and_depends_on_the_whole_key() {
        let a = message_event(
            &company(),
            &inbound(text("one"), "15550003333@s.whatsapp.net", None),
        );
        let b = message_event(
            &company(),
            &inbound(text("two"), "15550003333@s.whatsapp.net", None),
        );
        // Same (company, chat, sender, id): same event, whatever the content.
        assert_eq!(a.event.id, b.event.id);
        assert!(a.event.id.starts_with("msg_") && a.event.id.len() == 36);
        let other = message_event(
            &company(),
            &inbound(text("one"), "15550004444@s.whatsapp.net", None),
        );
        assert_ne!(a.event.id, other.event.id);
        assert_ne!(stable_id("x", &["ab", "c"]), stable_id("x", &["a", "bc"]));
    }

    #[test]
    fn kinds_and_captions() {
        let extended = wa::Message {
            extended_text_message: buffa::MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("linked".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(content(&extended), ("text", Some("linked".into())));
        let image = wa::Message {
            image_message: buffa::MessageField::some(wa::message::ImageMessage {
                caption: Some("look".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(content(&image), ("image", Some("look".into())));
        let ephemeral = wa::Message {
            ephemeral_message: buffa::MessageField::some(wa::message::FutureProofMessage {
                message: buffa::MessageField::some(text("inner")),
            }),
            ..Default::default()
        };
        assert_eq!(content(&ephemeral), ("text", Some("inner".into())));
        let audio = wa::Message {
            audio_message: buffa::MessageField::some(Default::default()),
            ..Default::default()
        };
        assert_eq!(content(&audio), ("audio", None));
        assert_eq!(content(&wa::Message::default()), ("other", None));
    }

    #[test]
    fn protocol_messages_are_recognised() {
        let protocol = wa::Message {
            protocol_message: buffa::MessageField::some(Default::default()),
            ..Default::default()
        };
        assert!(is_protocol_only(&protocol));
        assert!(!is_protocol_only(&text("hi")));
        let skdm_with_text = wa::Message {
            sender_key_distribution_message: buffa::MessageField::some(Default::default()),
            ..text("hi")
        };
        assert!(!is_protocol_only(&skdm_with_text));
    }

    #[test]
    fn status_events_have_stable_ids_and_the_session_lane() {
        let change = pb::StatusChange {
            company_id: "acme".into(),
            from: "connecting".into(),
            to: "connected".into(),
            reason: "login".into(),
            at_ms: 5,
        };
        let a = status_event(&company(), change.clone());
        let b = status_event(&company(), change);
        assert_eq!(a.event.id, b.event.id);
        assert_eq!(a.lane, SESSION_LANE);
        assert_eq!(to_json(&a.event)["data"]["to"], "connected");
    }
}
