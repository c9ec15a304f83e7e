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
            let Some(chat) = ack.from.as_ref().map(wacore_binary::Jid::to_non_ad_string) else {
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
                    message_id: id.clone(),
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

#[cfg(test)]
mod tests {
    use wacore::types::events::{Receipt, ServerAck};
    use wacore::types::message::MessageSource;
    use wacore_binary::Jid;

    use super::*;

    fn receipt(chat: &str, sender: &str, kind: ReceiptType, ids: &[&str]) -> Event {
        Event::Receipt(
            Receipt::builder()
                .source(MessageSource {
                    chat: chat.parse::<Jid>().unwrap(),
                    sender: sender.parse::<Jid>().unwrap(),
                    ..Default::default()
                })
                .message_ids(ids.iter().map(|id| (*id).into()).collect())
                .timestamp(wacore::chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap())
                .r#type(kind)
                .offline(false)
                .build(),
        )
    }

    #[test]
    fn group_receipts_are_per_participant_and_lists_fan_out() {
        let group = "120363000000000001@g.us";
        let updates = status_updates(&receipt(
            group,
            "15550003333:4@s.whatsapp.net",
            ReceiptType::Read,
            &["A", "B"],
        ));
        assert_eq!(updates.len(), 2);
        assert!(updates.iter().all(|u| u.chat == group
            && u.recipient == "15550003333@s.whatsapp.net"
            && u.status == DeliveryStatus::Read
            && u.at_ms == 1_700_000_000_000));
        assert_eq!(updates[1].message_id, "B");
        // The own account's other devices' receipts are no recipient's status.
        assert!(
            status_updates(&receipt(
                group,
                "15550001111@s.whatsapp.net",
                ReceiptType::ReadSelf,
                &["A"]
            ))
            .is_empty()
        );
    }

    #[test]
    fn server_acks_of_messages_are_sent_or_failed() {
        let ack = |error: Option<&str>, class: &str| {
            Event::ServerAck(
                ServerAck::builder()
                    .id("M1".to_owned())
                    .class(class.to_owned())
                    .from("15550002222@s.whatsapp.net".parse::<Jid>().unwrap())
                    .maybe_error(error.map(str::to_owned))
                    .build(),
            )
        };
        let sent = status_updates(&ack(None, "message"));
        assert_eq!(sent[0].status, DeliveryStatus::Sent);
        assert_eq!(sent[0].recipient, "15550002222@s.whatsapp.net");
        let failed = status_updates(&ack(Some("479"), "message"));
        assert_eq!(failed[0].status, DeliveryStatus::Failed);
        assert_eq!(failed[0].reason, "server_error_479");
        assert!(status_updates(&ack(None, "receipt")).is_empty());
    }
}
