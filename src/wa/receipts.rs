//! Delivery facts out of whatsapp-rust's events: a server ack of a sent
//! message (`sent`, or `failed` for a nack) and a receipt from a recipient
//! (`delivered`, `read`, `played`, `failed`), as [`StatusUpdate`]s, and the
//! [`StatusSink`] they are handed to.
//!
//! # Why here and not through the session actor
//!
//! Receipts are acknowledged to WhatsApp by the client right after it
//! dispatches the event, and there is no durability hook for them. The
//! client's event handler hands them to the sink inline, in dispatch order,
//! without a hop through the actor's queue, so the window between the ack and
//! the durable commit stays as short as the commit itself.

use std::sync::Arc;

use wacore::types::events::Event;
use wacore::types::presence::ReceiptType;

use crate::domain::CompanyId;
use crate::domain::delivery::{DeliveryStatus, StatusUpdate};

/// Receives the status updates of one company's sent messages. Called inline
/// on the client's event path: it must not block (queue and return).
pub trait StatusSink: Send + Sync {
    /// Takes `updates` of `company` (in the order WhatsApp reported them).
    fn record(&self, company: &CompanyId, updates: Vec<StatusUpdate>);
}

/// A shared sink.
pub type SharedStatusSink = Arc<dyn StatusSink>;

/// The status updates in `event`; empty for every other event.
pub fn status_updates(event: &Event) -> Vec<StatusUpdate> {
    match event {
        Event::ServerAck(ack) if ack.class.as_deref() == Some("message") => {
            let Some(chat) = ack.from.as_ref().map(|j| j.to_non_ad_string()) else {
                return Vec::new();
            };
            let at_ms = ack
                .timestamp
                .map_or_else(crate::domain::now_ms, |t| t.timestamp_millis());
            let (status, reason) = match &ack.error {
                None => (DeliveryStatus::Sent, String::new()),
                Some(code) => (DeliveryStatus::Failed, format!("server_error_{code}")),
            };
            vec![StatusUpdate {
                message_id: ack.id.clone(),
                recipient: chat.clone(),
                chat,
                status,
                at_ms,
                reason,
            }]
        }
        Event::Receipt(receipt) => {
            let (status, reason) = match &receipt.r#type {
                ReceiptType::Delivered => (DeliveryStatus::Delivered, ""),
                ReceiptType::Read => (DeliveryStatus::Read, ""),
                ReceiptType::Played => (DeliveryStatus::Played, ""),
                ReceiptType::ServerError => (DeliveryStatus::Failed, "server_error"),
                // Receipts of the own account's other devices (`read-self`,
                // `sender`, ...), retries and the rest are no recipient's status.
                _ => return Vec::new(),
            };
            let source = &receipt.source;
            let chat = source.chat.to_non_ad_string();
            let recipient = source.sender.to_non_ad_string();
            let at_ms = receipt.timestamp.timestamp_millis();
            receipt
                .message_ids
                .iter()
                .map(|id| StatusUpdate {
                    message_id: id.to_string(),
                    chat: chat.clone(),
                    recipient: recipient.clone(),
                    status,
                    at_ms,
                    reason: reason.to_owned(),
                })
                .collect()
        }
        _ => Vec::new(),
    }
}
