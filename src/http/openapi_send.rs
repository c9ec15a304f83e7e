//! The send body's exact shape in `/openapi.json`: one flat Rust type
//! (`SendMessageRequest`) is parsed, but which fields a message may carry
//! depends on its `type` (`messages::send::allowed_fields`), so the document
//! describes it as `oneOf` one schema per kind, each listing every field
//! (the ones a kind does not take as `null` only; media kinds other than
//! documents with the `mime_type` WhatsApp takes, given rather than
//! sniffed), plus the
//! `multipart/form-data` form (`SendMessageForm`: string fields and a binary
//! `file` part).

use serde_json::{Map, Value, json};

use super::messages::send::{FIELDS, KINDS, MAX_CARDS, allowed_fields};
use super::openapi_inputs::{list, message_id, nullable, phone, recipient, text};
use crate::domain::MessageText;
use crate::domain::media::MediaKind;

/// Control characters (Unicode `Cc`: Rust's `char::is_control`), for a
/// regex character class.
const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// Whitespace that is not a control character (the rest of Rust's
/// `char::is_whitespace`, which the server trims), for a regex character
/// class. Spelled out: a regex engine's `\S` would let a control
/// character pass as "not whitespace", and engines disagree on `\s`.
const SPACE: &str = " \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// Replaces the derived `SendMessageRequest` with the per-kind `oneOf`, and
/// adds `SendMessageForm`.
pub fn complete(schemas: &mut Map<String, Value>) {
    let branches: Vec<Value> = KINDS.iter().map(|kind| branch(kind, false)).collect();
    schemas.insert(
        "SendMessageRequest".into(),
        json!({
            "description": "A message to send; the fields it takes depend on `type` (`text` when absent)",
            "oneOf": branches,
        }),
    );
    let forms: Vec<Value> = KINDS.iter().map(|kind| branch(kind, true)).collect();
    schemas.insert(
        "SendMessageForm".into(),
        json!({
            "description": "The multipart form of a send: the same fields as form fields (media as a binary `file` part)",
            "oneOf": forms,
        }),
    );
}

/// Points the send's `multipart/form-data` body at `SendMessageForm`.
pub fn form_body(doc: &mut Value) {
    if let Some(form) = doc.pointer_mut(
        "/paths/~1v1~1sessions~1{company}~1messages/post/requestBody/content/multipart~1form-data",
    ) {
        *form = json!({"schema": {"$ref": "#/components/schemas/SendMessageForm"}});
    }
}

/// The schema of one kind of message (`type`).
fn branch(kind: &str, form: bool) -> Value {
    let allowed = allowed_fields(kind);
    let media = MediaKind::from_name(kind);
    let mut properties = Map::new();
    let mut required = vec![json!("to")];
    for field in FIELDS {
        let schema = if field == "type" {
            json!({"type": "string", "enum": [kind]})
        } else if !allowed.contains(&field) {
            if form {
                continue;
            }
            json!({"type": "null"})
        } else {
            let schema = match (field, media) {
                // Sniffing is best effort: the document asks for the type.
                ("mime_type", Some(media)) if media != MediaKind::Document => {
                    json!({"type": "string", "enum": media.mime_types()})
                }
                _ => field_schema(field),
            };
            if form
                || matches!(
                    field,
                    "to" | "text" | "latitude" | "longitude" | "mime_type"
                )
            {
                schema
            } else {
                nullable(schema)
            }
        };
        properties.insert(field.into(), schema);
    }
    match kind {
        "text" => required.push(json!("text")),
        "location" => required.extend([json!("type"), json!("latitude"), json!("longitude")]),
        _ => required.push(json!("type")),
    }
    if media.is_some_and(|m| m != MediaKind::Document) {
        required.push(json!("mime_type"));
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    if media.is_some() && form {
        schema["properties"]["file"] =
            json!({"type": "string", "contentMediaType": "application/octet-stream"});
        if let Some(properties) = schema["properties"].as_object_mut() {
            properties.remove("base64");
            properties.remove("url");
        }
        if let Some(required) = schema["required"].as_array_mut() {
            required.push(json!("file"));
        }
    } else if media.is_some() {
        // Exactly one source of the file.
        schema["oneOf"] = json!([
            {"required": ["base64"], "properties": {"url": {"type": "null"}, "base64": {"type": "string"}}},
            {"required": ["url"], "properties": {"base64": {"type": "null"}, "url": {"type": "string"}}},
        ]);
    }
    if kind == "contact" {
        // 1 to 50 cards in all, `vcard` counting as one (`send::content`):
        // a `vcard` and at most 49 `contacts`, or `contacts` alone (in the
        // form, where `vcard` is a string, "null" means absent).
        schema["anyOf"] = json!([
            {"required": ["vcard"], "properties": {"vcard": {"type": "string"}, "contacts": {"maxItems": MAX_CARDS - 1}}},
            {"required": ["contacts"], "properties": {"contacts": {"type": "array"}, "vcard": {"type": "null"}}},
        ]);
    }
    schema
}

fn field_schema(field: &str) -> Value {
    match field {
        "to" => recipient(),
        "text" => text(MessageText::MAX_CHARS),
        "reply_to" => message_id(),
        // Canonical standard base64 of at least one byte.
        "base64" => json!({
            "type": "string", "contentEncoding": "base64",
            "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$",
        }),
        "url" => {
            json!({"type": "string", "pattern": "^https?://", "example": "https://example.com/invoice.pdf"})
        }
        "mime_type" => {
            json!({"type": "string", "pattern": "^[a-z0-9.+-]+/[a-z0-9.+-]+$", "maxLength": 255})
        }
        "caption" => json!({"type": "string", "maxLength": 4096}),
        // `media::parse_file_name`: no control character, `/` or `\`, and
        // not only whitespace.
        "file_name" => json!({
            "type": "string", "minLength": 1, "maxLength": 255,
            "pattern": format!("^[^/\\\\{CONTROL}]*[^/\\\\{CONTROL}{SPACE}][^/\\\\{CONTROL}]*$"),
        }),
        "latitude" => json!({"type": "number", "minimum": -90, "maximum": 90}),
        "longitude" => json!({"type": "number", "minimum": -180, "maximum": 180}),
        "name" | "address" => json!({"type": "string", "maxLength": 1024}),
        "vcard" => vcard(),
        "contacts" => list(
            json!({"oneOf": [
                {"type": "object", "properties": {"vcard": vcard()}, "required": ["vcard"], "additionalProperties": false},
                {"type": "object", "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$")},
                    "phones": {"type": "array", "items": phone(), "minItems": 1, "maxItems": 50},
                }, "required": ["name", "phones"], "additionalProperties": false},
            ]}),
            1,
            MAX_CARDS,
        ),
        _ => json!({"type": "string"}),
    }
}

/// `ContactCard::from_vcard`: `BEGIN:VCARD`, a first `FN:` line with a
/// name, `END:VCARD`; at most 64 KiB.
fn vcard() -> Value {
    json!({
        "type": "string", "maxLength": 16384,
        "pattern": "^\\s*BEGIN:VCARD[^\\n]*\\n(?:(?![ \\t]*FN:)[^\\n]*\\n)*[ \\t]*FN:[ \\t]*[^\\s][^\\n]*\\n[\\s\\S]*END:VCARD\\s*$",
        "example": "BEGIN:VCARD\nVERSION:3.0\nFN:Eve Example\nTEL;type=CELL:+15550005555\nEND:VCARD",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document counts cards as the server does: `vcard` and
    /// `contacts` together, in the JSON body and in the form.
    #[test]
    fn a_contact_message_carries_1_to_max_cards_in_all() {
        for form in [false, true] {
            let contact = branch("contact", form);
            let Some([with_vcard, without]) = contact["anyOf"].as_array().map(Vec::as_slice) else {
                panic!("two alternatives: {contact}");
            };
            assert_eq!(with_vcard["required"], json!(["vcard"]));
            assert_eq!(
                with_vcard["properties"]["contacts"]["maxItems"],
                MAX_CARDS - 1
            );
            assert_eq!(without["required"], json!(["contacts"]));
            assert_eq!(without["properties"]["vcard"]["type"], "null");
            assert_eq!(contact["properties"]["contacts"]["maxItems"], MAX_CARDS);
        }
    }
}
