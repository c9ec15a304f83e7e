//! The exact rules of every request input in `/openapi.json`: path, query
//! and header parameters and request-body fields carry the pattern, length,
//! range or enum their parser checks, written once here from the domain
//! types' own rules, so a client (or a property-based test) can tell a
//! request the server accepts from one it refuses without trying it.
//!
//! utoipa derives types and shapes from the Rust types; what the parsers
//! check beyond the type (`PhoneNumber::parse`, `Recipient::parse`,
//! `MessageId::parse`, the webhook secret's base64, …) is applied here to
//! the generated JSON, by parameter name and by component property.

use serde_json::{Value, json};

use crate::domain::{CompanyId, IdempotencyKey, MessageId, MessageText, PhoneNumber, Recipient};
use crate::webhook::event::EVENT_TYPES;

/// The largest `limit` of the webhook log and replays.
const MAX_LIMIT: u64 = 10_000;

/// Constraints of a parameter `name` (in `location`) of the route `path`.
pub fn parameter_schema(path: &str, location: &str, name: &str) -> Option<Value> {
    let schema = match (location, name) {
        ("path", "company") => json!({
            "type": "string", "pattern": CompanyId::PATTERN,
            "minLength": 1, "maxLength": CompanyId::MAX_LEN,
        }),
        ("path", "id") if path.contains("/messages/{id}") => message_id(),
        ("path", "id") if path.contains("/deliveries/{id}") => json!({
            "type": "string", "pattern": "^\\+?[0-9]{1,20}-(?:company|global)$",
            "minLength": 9, "maxLength": 28,
        }),
        ("path", "token") => json!({
            "type": "string", "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
            "minLength": 3, "maxLength": crate::pairing::token::MAX_TOKEN_LEN,
        }),
        ("path" | "query", "chat") => recipient(),
        ("query", "state") if path.ends_with("/deliveries") => json!({
            "type": "string", "enum": ["queued", "delivered", "dead"],
        }),
        ("query", "limit") => limit(),
        ("query", "max_duration_s") => json!({
            "type": "integer", "minimum": 1,
            "maximum": super::limits::MAX_STREAM_DURATION_S,
        }),
        ("header", "Idempotency-Key") => json!({
            "type": "string", "pattern": IdempotencyKey::PATTERN,
            "minLength": 1, "maxLength": IdempotencyKey::MAX_LEN,
        }),
        _ => return None,
    };
    Some(schema)
}

/// Completes the request-body schemas of `doc`'s components in place;
/// `ttl_range_s` is the pairing links' configured lifetime range.
pub fn complete_bodies(doc: &mut Value, ttl_range_s: (u64, u64)) {
    super::openapi_send::form_body(doc);
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut set = |schema: &str, property: &str, constraint: Value| {
        if let Some(slot) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(property))
        {
            *slot = merge(slot.take(), constraint);
        }
    };
    set("PairCodeRequest", "phone", phone());
    set("PairCodeForm", "phone", phone());
    set("ReadRequest", "message_ids", list(message_id(), 1, 100));
    set(
        "PresenceRequest",
        "state",
        json!({"type": "string", "enum": ["composing", "recording", "paused"]}),
    );
    set("CheckRequest", "phones", list(phone(), 1, 50));
    set("ReactionRequest", "chat", recipient());
    set("ReactionRequest", "emoji", emoji());
    set("EditRequest", "chat", recipient());
    set("EditRequest", "text", text(MessageText::MAX_CHARS));
    set("PutWebhookRequest", "url", nullable(webhook_url()));
    set("PutWebhookRequest", "secret", nullable(webhook_secret()));
    set(
        "PutWebhookRequest",
        "events",
        json!({"type": "array", "items": {"type": "string", "enum": EVENT_TYPES}}),
    );
    set(
        "ReplayRequest",
        "since_ms",
        json!({"type": ["integer", "null"], "format": "int64"}),
    );
    set("ReplayRequest", "limit", nullable(limit()));
    set(
        "CreatePairingLinkRequest",
        "ttl_seconds",
        json!({"type": ["integer", "null"], "minimum": ttl_range_s.0, "maximum": ttl_range_s.1}),
    );
    super::openapi_send::complete(schemas);
}

/// `schema` with `constraint`'s keys added (a constraint wins over a
/// derived key; a derived `description` or `example` stays).
fn merge(schema: Value, constraint: Value) -> Value {
    let mut out = match schema {
        Value::Object(map) => map,
        _ => Default::default(),
    };
    // A nullable derived type (`["string","null"]`, `oneOf`) is replaced.
    out.remove("oneOf");
    if let Value::Object(constraint) = constraint {
        for (key, value) in constraint {
            out.insert(key, value);
        }
    }
    Value::Object(out)
}

pub(super) fn nullable(mut schema: Value) -> Value {
    if let Some(kind) = schema.get("type").cloned() {
        schema["type"] = json!([kind, "null"]);
    }
    schema
}

pub(super) fn list(items: Value, min: usize, max: usize) -> Value {
    json!({"type": "array", "items": items, "minItems": min, "maxItems": max})
}

pub(super) fn phone() -> Value {
    json!({"type": "string", "pattern": PhoneNumber::PATTERN, "example": "+15550002222"})
}

pub(super) fn recipient() -> Value {
    json!({"type": "string", "pattern": Recipient::PATTERN, "example": "+15550002222"})
}

pub(super) fn message_id() -> Value {
    json!({
        "type": "string", "pattern": MessageId::PATTERN,
        "minLength": 1, "maxLength": MessageId::MAX_LEN,
    })
}

/// Text that is not only whitespace, of 1 to `max` characters.
pub(super) fn text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S"})
}

/// `crate::domain::outgoing::parse_emoji`: empty, or up to 8 characters
/// (32 bytes of UTF-8 at most) without control characters or ASCII letters
/// and digits.
fn emoji() -> Value {
    json!({
        "type": "string", "maxLength": crate::domain::outgoing::MAX_EMOJI_CHARS,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f0-9A-Za-z]*$", "example": "👍",
    })
}

/// `?limit=` and `limit` of the webhook log and replays: 1 to 10,000.
fn limit() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})
}

/// An `http(s)` URL to a named host. The server takes any absolute `http(s)`
/// URL with a host and no credentials (`outbound::Guard::check_url`); the
/// document describes the part of that a client should use: lowercase DNS
/// names (a label never starts with a digit, so the host is never read as
/// an IPv4 address) and plain paths.
fn webhook_url() -> Value {
    json!({
        "type": "string",
        "pattern": "^https?://(?!xn--)[a-z][a-z0-9-]{0,30}(?:\\.(?!xn--)[a-z][a-z0-9-]{0,30}){0,4}(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~-]*){0,8}$",
        "example": "https://hooks.example.com/whatsapp",
    })
}

/// `webhook::sign::parse_secret`: `whsec_` and canonical standard base64 of
/// at least one byte, or any other non-empty string.
fn webhook_secret() -> Value {
    json!({
        "type": "string",
        "pattern": "^(?:whsec_(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)|(?!whsec_)[\\s\\S]+)$",
        "minLength": 1,
    })
}
