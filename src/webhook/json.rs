//! The JSON body of an event, as webhooks and SSE carry it, one shape per
//! event type (the OpenAPI components in `crate::http::openapi` describe the
//! same shapes).
//!
//! # Invariants
//!
//! - The body is a pure function of the stored event: a retry or replay
//!   sends the same bytes, so signatures and receivers' dedup agree.
//! - Media key material (media key, direct path, encrypted hash) is stored
//!   with the event for the media endpoint and never emitted.

use serde_json::{Map, Value, json};

use super::event::{MESSAGE_EDITED, MESSAGE_REACTION, MESSAGE_REVOKED};
use crate::pb;

/// The JSON body of an event.
///
/// ```json
/// {"id":"msg_…","type":"message.received","company":"acme","timestamp":1700000000000,
///  "data":{"message_id":"3EB0…","chat":"15550003333@s.whatsapp.net", …}}
/// ```
pub fn to_json(event: &pb::WebhookEvent) -> Value {
    let data = match &event.payload {
        Some(pb::webhook_event::Payload::Message(m)) => message(&event.r#type, m),
        Some(pb::webhook_event::Payload::Status(s)) => json!({
            "from": s.from,
            "to": s.to,
            "reason": s.reason,
            "at": s.at_ms,
        }),
        Some(pb::webhook_event::Payload::Delivery(d)) => json!({
            "message_id": d.message_id,
            "chat": d.chat,
            "recipient": d.recipient,
            "status": d.status,
            "at": d.at_ms,
            "reason": non_empty(&d.reason),
        }),
        Some(pb::webhook_event::Payload::Test(t)) => json!({
            "test": true,
            "requested_at": t.requested_at_ms,
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

/// [`to_body`] with `"sandbox": true` beside `id` (`wagate --sandbox`): a
/// receiver can tell simulated events from real ones. Pure too.
pub fn to_sandbox_body(event: &pb::WebhookEvent) -> Vec<u8> {
    let mut json = to_json(event);
    if let Some(object) = json.as_object_mut() {
        object.insert("sandbox".into(), Value::Bool(true));
    }
    serde_json::to_vec(&json).unwrap_or_default()
}

/// The data of an inbound message event: the envelope every inbound event
/// shares, then what its type adds.
fn message(event_type: &str, m: &pb::InboundMessage) -> Value {
    let mut data = Map::new();
    let mut put = |k: &str, v: Value| {
        data.insert(k.to_owned(), v);
    };
    put("message_id", m.message_id.clone().into());
    put("chat", m.chat.clone().into());
    put("sender", m.sender.clone().into());
    put("sender_phone", non_empty(&m.sender_phone));
    put("sender_lid", non_empty(&m.sender_lid));
    put("push_name", non_empty(&m.push_name));
    put("from_me", m.from_me.into());
    put("is_group", m.is_group.into());
    put(
        "group",
        if m.is_group {
            m.chat.clone().into()
        } else {
            Value::Null
        },
    );
    put(
        "participant",
        if m.is_group {
            m.sender.clone().into()
        } else {
            Value::Null
        },
    );
    match event_type {
        MESSAGE_REACTION => {
            put("target_id", m.target_id.clone().into());
            put("emoji", m.emoji.clone().into());
            put("removed", m.emoji.is_empty().into());
        }
        MESSAGE_EDITED => {
            put("target_id", m.target_id.clone().into());
            put("text", m.text.clone().into());
        }
        MESSAGE_REVOKED => put("target_id", m.target_id.clone().into()),
        _ => {
            put("kind", m.kind.clone().into());
            put("text", non_empty(&m.text));
            put("quoted_id", non_empty(&m.quoted_id));
            put(
                "media",
                m.media
                    .as_ref()
                    .map_or(Value::Null, |media| media_json(media, &m.text)),
            );
            put(
                "location",
                m.location.as_ref().map_or(Value::Null, |l| {
                    json!({
                        "latitude": l.latitude,
                        "longitude": l.longitude,
                        "name": non_empty(&l.name),
                        "address": non_empty(&l.address),
                    })
                }),
            );
            put(
                "contacts",
                if m.contacts.is_empty() {
                    Value::Null
                } else {
                    m.contacts
                        .iter()
                        .map(|c| json!({"display_name": non_empty(&c.display_name), "vcard": c.vcard}))
                        .collect()
                },
            );
        }
    }
    Value::Object(data)
}

/// A file's public metadata (no key material).
fn media_json(media: &pb::MediaInfo, caption: &str) -> Value {
    let positive = |n: u32| if n == 0 { Value::Null } else { n.into() };
    json!({
        "mime_type": non_empty(&media.mime_type),
        "size": media.size,
        "sha256": hex(&media.file_sha256),
        "file_name": non_empty(&media.file_name),
        "caption": non_empty(caption),
        "duration_s": positive(media.duration_s),
        "width": positive(media.width),
        "height": positive(media.height),
    })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn non_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}
