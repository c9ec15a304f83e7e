//! OpenAPI components of the event bodies webhooks and the SSE stream carry
//! (documentation only: the bodies are built by `crate::webhook::json`; the
//! test below checks the two agree on the field names of `message.status`).

use serde::Serialize;
use utoipa::ToSchema;

/// One event: a stable `id` (the receiver's deduplication key; the
/// `webhook-id` header) and a `data` object whose shape depends on `type`.
#[derive(Serialize, ToSchema)]
pub struct WebhookEvent {
    #[schema(example = "dst_5f0c…")]
    pub id: String,
    /// `message.received`, `message.reaction`, `message.edited`,
    /// `message.revoked`, `message.status`, `session.status`, `webhook.test`.
    #[schema(example = "message.status")]
    pub r#type: String,
    #[schema(example = "acme")]
    pub company: String,
    /// Unix ms: the message's time, or the status's.
    pub timestamp: i64,
    pub data: EventData,
    /// `true` on every webhook body of a gateway started with `--sandbox`
    /// (simulated WhatsApp); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
}

/// The `data` of each event type.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, clippy::large_enum_variant)] // documentation only: never built
#[serde(untagged)]
pub enum EventData {
    MessageReceived(MessageReceived),
    MessageReaction(MessageReaction),
    MessageEdited(MessageEdited),
    MessageRevoked(MessageRevoked),
    MessageStatus(MessageStatus),
    SessionStatus(SessionStatus),
    WebhookTest(WebhookTest),
}

/// Fields every inbound event (`message.*` except `message.status`) has.
#[derive(Serialize, ToSchema)]
pub struct InboundEnvelope {
    pub message_id: String,
    /// The peer's JID, or the group's.
    pub chat: String,
    /// The sender's JID (`…@s.whatsapp.net` or `…@lid`).
    pub sender: String,
    /// The sender's phone number (digits) when the gateway knows it.
    pub sender_phone: Option<String>,
    /// The sender's LID JID when the gateway knows it.
    pub sender_lid: Option<String>,
    pub push_name: Option<String>,
    pub from_me: bool,
    pub is_group: bool,
    /// The group JID (group messages only).
    pub group: Option<String>,
    /// The participant who sent it (group messages only).
    pub participant: Option<String>,
}

/// `message.received`: text, media, location, contact cards; replies carry `quoted_id`.
#[derive(Serialize, ToSchema)]
pub struct MessageReceived {
    #[serde(flatten)]
    pub envelope: InboundEnvelope,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location`, `contact`, `other`.
    pub kind: String,
    /// The text, or a media caption.
    pub text: Option<String>,
    pub quoted_id: Option<String>,
    pub media: Option<MediaMetadata>,
    pub location: Option<Location>,
    pub contacts: Option<Vec<ContactCard>>,
}

/// A file's metadata; the file itself is at `GET …/messages/{id}/media`.
#[derive(Serialize, ToSchema)]
pub struct MediaMetadata {
    pub mime_type: Option<String>,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256 of the decrypted file.
    pub sha256: String,
    pub file_name: Option<String>,
    pub caption: Option<String>,
    pub duration_s: Option<u32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactCard {
    pub display_name: Option<String>,
    pub vcard: String,
}

/// `message.reaction`: an empty `emoji` (`removed: true`) removes the reaction.
#[derive(Serialize, ToSchema)]
pub struct MessageReaction {
    #[serde(flatten)]
    pub envelope: InboundEnvelope,
    pub target_id: String,
    pub emoji: String,
    pub removed: bool,
}

/// `message.edited`: the new text of `target_id`.
#[derive(Serialize, ToSchema)]
pub struct MessageEdited {
    #[serde(flatten)]
    pub envelope: InboundEnvelope,
    pub target_id: String,
    pub text: String,
}

/// `message.revoked`: `target_id` was deleted for everyone.
#[derive(Serialize, ToSchema)]
pub struct MessageRevoked {
    #[serde(flatten)]
    pub envelope: InboundEnvelope,
    pub target_id: String,
}

/// `message.status`: a message the gateway sent reached a new status for one
/// recipient. Never backwards; the id hashes (company, message, recipient, status).
#[derive(Serialize, ToSchema)]
pub struct MessageStatus {
    pub message_id: String,
    pub chat: String,
    /// The peer, the group participant, or the chat for `sent`/`failed`.
    pub recipient: String,
    /// `sent`, `delivered`, `read`, `played`, `failed`.
    pub status: String,
    /// Unix ms, as WhatsApp reported it.
    pub at: i64,
    /// `failed` only: `server_error_<code>`, `server_error`.
    pub reason: Option<String>,
}

/// `session.status`: the session changed state.
#[derive(Serialize, ToSchema)]
pub struct SessionStatus {
    pub from: String,
    pub to: String,
    pub reason: String,
    pub at: i64,
}

/// `webhook.test`: asked for with `POST …/webhook/test` (or the console);
/// no message behind it.
#[derive(Serialize, ToSchema)]
pub struct WebhookTest {
    /// Always `true`.
    pub test: bool,
    /// Unix ms of the request.
    pub requested_at: i64,
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{Object, RefOr};

    use crate::domain::CompanyId;
    use crate::domain::delivery::{DeliveryStatus, StatusUpdate};

    fn properties(name: &str) -> Vec<String> {
        let doc = super::super::openapi::api_router().into_openapi();
        let schema = doc.components.unwrap().schemas.remove(name).unwrap();
        let RefOr::T(Schema::Object(Object { properties, .. })) = schema else {
            panic!("{name} is an object schema");
        };
        let mut names: Vec<String> = properties.into_keys().collect();
        names.sort();
        names
    }

    #[test]
    fn the_message_status_component_matches_the_emitted_body() {
        let update = StatusUpdate {
            message_id: "M".into(),
            chat: "c".into(),
            recipient: "r".into(),
            status: DeliveryStatus::Sent,
            at_ms: 1,
            reason: String::new(),
        };
        let event =
            crate::webhook::event::delivery_event(&CompanyId::parse("acme").unwrap(), &update);
        let json = crate::webhook::json::to_json(&event.event);
        let mut keys: Vec<String> = json["data"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(properties("MessageStatus"), keys);
        let mut envelope: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        envelope.sort();
        assert_eq!(properties("WebhookEvent"), envelope);
    }

    #[test]
    fn the_webhook_test_component_matches_the_emitted_body() {
        let event = crate::webhook::event::test_event(&CompanyId::parse("acme").unwrap(), 7, "n");
        let json = crate::webhook::json::to_json(&event.event);
        assert_eq!(json["type"], "webhook.test");
        assert_eq!(json["data"]["test"], true);
        assert_eq!(json["data"]["requested_at"], 7);
        let mut keys: Vec<String> = json["data"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(properties("WebhookTest"), keys);
    }
}
