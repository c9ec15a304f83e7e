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

use sha2::{Digest as _, Sha256};
use wacore::types::events::InboundMessage;
use wacore_binary::jid::Jid;

use super::content::{self, Content};
use crate::domain::CompanyId;
use crate::domain::delivery::{DeliveryStatus, StatusUpdate};
use crate::pb;
use crate::store::outbox::{DedupKey, NewEvent};

pub use super::json::{to_body, to_json, to_sandbox_body};

/// Event type of a received message (any kind a person sends).
pub const MESSAGE_RECEIVED: &str = "message.received";
/// Event type of a reaction (added, changed or removed).
pub const MESSAGE_REACTION: &str = "message.reaction";
/// Event type of an edit of an earlier message.
pub const MESSAGE_EDITED: &str = "message.edited";
/// Event type of a "delete for everyone".
pub const MESSAGE_REVOKED: &str = "message.revoked";
/// Event type of a sent message's status for one recipient.
pub const MESSAGE_STATUS: &str = "message.status";
/// Event type of a session state change.
pub const SESSION_STATUS: &str = "session.status";
/// Event type of a test event asked for through the API or the console. Not
/// a filter choice: it goes to the company's webhook whatever its filter.
pub const WEBHOOK_TEST: &str = "webhook.test";
/// Every event type, for validating webhook filters.
pub const EVENT_TYPES: [&str; 6] = [
    MESSAGE_RECEIVED,
    MESSAGE_REACTION,
    MESSAGE_EDITED,
    MESSAGE_REVOKED,
    MESSAGE_STATUS,
    SESSION_STATUS,
];

/// The ordering lane of test events: a test that cannot be delivered holds up
/// only later tests, never messages or status changes.
pub const TEST_LANE: &str = "webhook.test";

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

/// Builds the event of one inbound message: `message.received`,
/// `message.reaction`, `message.edited` or `message.revoked`; `None` for
/// protocol plumbing, which produces no event.
pub fn message_event(company: &CompanyId, inbound: &InboundMessage) -> Option<NewEvent> {
    let info = &inbound.info;
    let source = &info.source;
    let chat = source.chat.to_non_ad_string();
    let sender = source.sender.to_non_ad_string();
    let (sender_phone, sender_lid) = sender_identities(&source.sender, source.sender_alt.as_ref());
    let id = message_event_id(company, &chat, &sender, &info.id);
    let timestamp_ms = info.timestamp.timestamp_millis();
    let mut message = pb::InboundMessage {
        company_id: company.to_string(),
        message_id: info.id.clone(),
        chat: chat.clone(),
        sender: sender.clone(),
        push_name: info.push_name.clone(),
        timestamp_ms,
        from_me: source.is_from_me,
        is_group: source.is_group,
        sender_phone: sender_phone.unwrap_or_default(),
        sender_lid: sender_lid.unwrap_or_default(),
        ..Default::default()
    };
    let event_type = match content::read(&inbound.message) {
        Content::Plumbing => return None,
        Content::Message(received) => {
            let received = *received;
            message.kind = received.kind.to_owned();
            message.text = received.text.unwrap_or_default();
            message.quoted_id = received.quoted_id.unwrap_or_default();
            message.media = received.media;
            message.location = received.location;
            message.contacts = received.contacts;
            MESSAGE_RECEIVED
        }
        Content::Reaction { target_id, emoji } => {
            message.kind = "reaction".to_owned();
            message.target_id = target_id;
            message.emoji = emoji;
            MESSAGE_REACTION
        }
        Content::Edited { target_id, text } => {
            message.kind = "edit".to_owned();
            message.target_id = target_id;
            message.text = text;
            MESSAGE_EDITED
        }
        Content::Revoked { target_id } => {
            message.kind = "revoke".to_owned();
            message.target_id = target_id;
            MESSAGE_REVOKED
        }
    };
    Some(NewEvent {
        dedup: DedupKey::Message {
            chat: chat.clone(),
            sender,
            message_id: info.id.clone(),
        },
        event: pb::WebhookEvent {
            id,
            company_id: company.to_string(),
            r#type: event_type.to_owned(),
            timestamp_ms,
            payload: Some(pb::webhook_event::Payload::Message(message)),
        },
        lane: chat,
    })
}

/// The event id of a sent message's status for one recipient: a hash of
/// `(company, message id, recipient, status)`, so a repeated receipt (or one
/// replayed after a crash) maps to the same event.
pub fn delivery_event_id(
    company: &CompanyId,
    message_id: &str,
    recipient: &str,
    status: DeliveryStatus,
) -> String {
    stable_id(
        "dst",
        &[company.as_str(), message_id, recipient, status.as_str()],
    )
}

/// Builds the `message.status` event of an accepted status update. Its lane
/// is the message's chat, so a chat's statuses arrive in order.
pub fn delivery_event(company: &CompanyId, update: &StatusUpdate) -> NewEvent {
    let id = delivery_event_id(
        company,
        &update.message_id,
        &update.recipient,
        update.status,
    );
    NewEvent {
        dedup: DedupKey::Event(id.clone()),
        event: pb::WebhookEvent {
            id,
            company_id: company.to_string(),
            r#type: MESSAGE_STATUS.to_owned(),
            timestamp_ms: update.at_ms,
            payload: Some(pb::webhook_event::Payload::Delivery(pb::DeliveryStatus {
                message_id: update.message_id.clone(),
                chat: update.chat.clone(),
                recipient: update.recipient.clone(),
                status: update.status.as_str().to_owned(),
                at_ms: update.at_ms,
                reason: update.reason.clone(),
            })),
        },
        lane: update.chat.clone(),
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

/// Builds a `webhook.test` event; `nonce` makes every request its own event.
pub fn test_event(company: &CompanyId, at_ms: i64, nonce: &str) -> NewEvent {
    let id = stable_id("tst", &[company.as_str(), &at_ms.to_string(), nonce]);
    NewEvent {
        dedup: DedupKey::Event(id.clone()),
        event: pb::WebhookEvent {
            id,
            company_id: company.to_string(),
            r#type: WEBHOOK_TEST.to_owned(),
            timestamp_ms: at_ms,
            payload: Some(pb::webhook_event::Payload::Test(pb::WebhookTest {
                requested_at_ms: at_ms,
            })),
        },
        lane: TEST_LANE.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wacore::types::message::{MessageInfo, MessageSource};

    use super::*;
    use serde_json::Value;
    use waproto::buffa;
    use waproto::whatsapp as wa;
    use waproto::whatsapp::message::protocol_message::Type as ProtocolType;

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

    fn event_of(message: wa::Message) -> NewEvent {
        message_event(
            &company(),
            &inbound(message, "15550003333@s.whatsapp.net", None),
        )
        .expect("an event")
    }

    #[test]
    fn a_sandbox_body_is_the_body_marked_sandbox() {
        let msg = inbound(text("hi"), "15550003333:2@s.whatsapp.net", None);
        let new = message_event(&company(), &msg).unwrap();
        let plain: Value = serde_json::from_slice(&to_body(&new.event)).unwrap();
        let mut marked: Value = serde_json::from_slice(&to_sandbox_body(&new.event)).unwrap();
        assert!(plain.get("sandbox").is_none(), "real events say nothing");
        assert_eq!(marked["sandbox"], true);
        marked.as_object_mut().unwrap().remove("sandbox");
        assert_eq!(marked, plain, "nothing else differs");
    }

    #[test]
    fn a_text_from_a_phone_jid_carries_phone_lid_and_text() {
        let msg = inbound(
            text("hello"),
            "15550003333:2@s.whatsapp.net",
            Some("123456789@lid"),
        );
        let new = message_event(&company(), &msg).unwrap();
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
        assert_eq!(json["data"]["group"], Value::Null);
        assert_eq!(new.lane, "15550003333@s.whatsapp.net");
    }

    #[test]
    fn a_lid_sender_gets_its_phone_from_the_alternate_jid() {
        let msg = inbound(
            text("x"),
            "123456789@lid",
            Some("15550003333@s.whatsapp.net"),
        );
        let json = to_json(&message_event(&company(), &msg).unwrap().event);
        assert_eq!(json["data"]["sender"], "123456789@lid");
        assert_eq!(json["data"]["sender_phone"], "15550003333");
        assert_eq!(json["data"]["sender_lid"], "123456789@lid");
        let unknown = inbound(text("x"), "123456789@lid", None);
        let json = to_json(&message_event(&company(), &unknown).unwrap().event);
        assert_eq!(json["data"]["sender_phone"], Value::Null);
    }

    #[test]
    fn the_event_id_is_stable_and_depends_on_the_whole_key() {
        let a = event_of(text("one"));
        let b = event_of(text("two"));
        // Same (company, chat, sender, id): same event, whatever the content.
        assert_eq!(a.event.id, b.event.id);
        assert!(a.event.id.starts_with("msg_") && a.event.id.len() == 36);
        let other = message_event(
            &company(),
            &inbound(text("one"), "15550004444@s.whatsapp.net", None),
        )
        .unwrap();
        assert_ne!(a.event.id, other.event.id);
        assert_ne!(stable_id("x", &["ab", "c"]), stable_id("x", &["a", "bc"]));
    }

    #[test]
    fn media_metadata_is_emitted_and_key_material_is_not() {
        let image = wa::Message {
            image_message: buffa::MessageField::some(wa::message::ImageMessage {
                caption: Some("look".into()),
                mimetype: Some("image/png".into()),
                file_length: Some(42),
                file_sha256: Some(vec![0xab; 32]),
                media_key: Some(vec![7; 32]),
                direct_path: Some("/v/secret".into()),
                width: Some(640),
                height: Some(480),
                ..Default::default()
            }),
            ..Default::default()
        };
        let new = event_of(image);
        let body = String::from_utf8(to_body(&new.event)).unwrap();
        let json: Value = serde_json::from_str(&body).unwrap();
        let media = &json["data"]["media"];
        assert_eq!(json["data"]["kind"], "image");
        assert_eq!(json["data"]["text"], "look");
        assert_eq!(media["mime_type"], "image/png");
        assert_eq!(media["size"], 42);
        assert_eq!(media["sha256"], "ab".repeat(32));
        assert_eq!(media["caption"], "look");
        assert_eq!(media["width"], 640);
        assert_eq!(media["duration_s"], Value::Null);
        assert!(!body.contains("/v/secret") && !body.contains("media_key"));
        let Some(pb::webhook_event::Payload::Message(stored)) = &new.event.payload else {
            panic!("a message payload");
        };
        let stored = stored.media.as_ref().unwrap();
        assert_eq!(stored.direct_path, "/v/secret");
        assert_eq!(stored.media_key, vec![7; 32]);
    }

    #[test]
    fn reactions_edits_and_revokes_are_their_own_event_types() {
        let key = |id: &str| {
            buffa::MessageField::some(wa::MessageKey {
                id: Some(id.into()),
                ..Default::default()
            })
        };
        let reaction = event_of(wa::Message {
            reaction_message: buffa::MessageField::some(wa::message::ReactionMessage {
                key: key("T1"),
                text: Some(String::new()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let json = to_json(&reaction.event);
        assert_eq!(json["type"], MESSAGE_REACTION);
        assert_eq!(json["data"]["target_id"], "T1");
        assert_eq!(json["data"]["removed"], true);

        let edit = event_of(wa::Message {
            protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
                key: key("T2"),
                r#type: Some(ProtocolType::MESSAGE_EDIT),
                edited_message: buffa::MessageField::some(text("new text")),
                ..Default::default()
            }),
            ..Default::default()
        });
        let json = to_json(&edit.event);
        assert_eq!(json["type"], MESSAGE_EDITED);
        assert_eq!(json["data"]["text"], "new text");
        assert_eq!(json["data"]["target_id"], "T2");

        let revoke = event_of(wa::Message {
            protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
                key: key("T3"),
                r#type: Some(ProtocolType::REVOKE),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(to_json(&revoke.event)["type"], MESSAGE_REVOKED);

        let plumbing = wa::Message {
            protocol_message: buffa::MessageField::some(Default::default()),
            ..Default::default()
        };
        assert!(
            message_event(
                &company(),
                &inbound(plumbing, "15550003333@s.whatsapp.net", None)
            )
            .is_none()
        );
    }

    #[test]
    fn locations_contacts_and_quotes() {
        let quoted = wa::Message {
            extended_text_message: buffa::MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("reply".into()),
                context_info: buffa::MessageField::some(wa::ContextInfo {
                    stanza_id: Some("Q1".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(to_json(&event_of(quoted).event)["data"]["quoted_id"], "Q1");
        let location = wa::Message {
            location_message: buffa::MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(48.85),
                degrees_longitude: Some(2.35),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = to_json(&event_of(location).event);
        assert_eq!(json["data"]["kind"], "location");
        assert_eq!(json["data"]["location"]["latitude"], 48.85);
        let card = wa::Message {
            contact_message: buffa::MessageField::some(wa::message::ContactMessage {
                display_name: Some("Frank".into()),
                vcard: Some("BEGIN:VCARD".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = to_json(&event_of(card).event);
        assert_eq!(json["data"]["contacts"][0]["display_name"], "Frank");
    }

    #[test]
    fn delivery_events_have_stable_ids_per_recipient_and_status() {
        let update = StatusUpdate {
            message_id: "M1".into(),
            chat: "120363000000000001@g.us".into(),
            recipient: "15550003333@s.whatsapp.net".into(),
            status: DeliveryStatus::Read,
            at_ms: 9,
            reason: String::new(),
        };
        let a = delivery_event(&company(), &update);
        assert_eq!(a.event.id, delivery_event(&company(), &update).event.id);
        assert!(a.event.id.starts_with("dst_"));
        let delivered = StatusUpdate {
            status: DeliveryStatus::Delivered,
            ..update.clone()
        };
        assert_ne!(a.event.id, delivery_event(&company(), &delivered).event.id);
        assert_eq!(a.lane, "120363000000000001@g.us");
        let json = to_json(&a.event);
        assert_eq!(json["type"], MESSAGE_STATUS);
        assert_eq!(json["data"]["status"], "read");
        assert_eq!(json["data"]["recipient"], "15550003333@s.whatsapp.net");
        assert_eq!(json["data"]["reason"], Value::Null);
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
