//! The delivery status of a message the gateway sent, per recipient, and the
//! order statuses move in.
//!
//! # Invariant
//!
//! A recipient's status only moves forward ([`DeliveryStatus::advances`]):
//! `sent` → `delivered` → `read` → `played`; `failed` only before anything
//! reached the recipient. WhatsApp may repeat receipts or deliver them out of
//! order (a `delivered` drained from the offline queue after the `read`); the
//! ones that would move backwards are facts already superseded.

use std::fmt;

/// Where a sent message is, for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// The server accepted it (its ack).
    Sent,
    /// The server could not take it or the recipient could not receive it.
    Failed,
    /// A device of the recipient received it.
    Delivered,
    /// The recipient opened the chat.
    Read,
    /// The recipient played the voice note or video.
    Played,
}

impl DeliveryStatus {
    /// Every status, in the order they are reached.
    pub const ALL: [DeliveryStatus; 5] = [
        Self::Sent,
        Self::Failed,
        Self::Delivered,
        Self::Read,
        Self::Played,
    ];

    /// The stable code (`sent`, `delivered`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
        }
    }

    /// Parses a stable code.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == code)
    }

    fn rank(self) -> u8 {
        match self {
            Self::Sent => 1,
            Self::Failed => 2,
            Self::Delivered => 3,
            Self::Read => 4,
            Self::Played => 5,
        }
    }

    /// Whether moving from `current` (`None` = nothing yet) to `self` is a
    /// step forward (see the module invariant).
    pub fn advances(self, current: Option<DeliveryStatus>) -> bool {
        current.is_none_or(|c| self.rank() > c.rank())
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One status fact about a sent message, as WhatsApp reported it (a server
/// ack or a receipt), before it is checked against the stored status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The sent message's id.
    pub message_id: String,
    /// The chat the message went to (peer or group JID, non-device form).
    pub chat: String,
    /// The recipient (peer or participant JID, non-device form; the chat for
    /// `sent` and `failed`).
    pub recipient: String,
    /// How far the message got.
    pub status: DeliveryStatus,
    /// When WhatsApp says it happened, unix ms.
    pub at_ms: i64,
    /// `failed` only: a stable reason code.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(Sent.advances(None));
        assert!(Delivered.advances(Some(Sent)));
        assert!(Read.advances(Some(Delivered)));
        assert!(Read.advances(Some(Sent)));
        assert!(!Delivered.advances(Some(Read)));
        assert!(!Read.advances(Some(Read)));
        assert!(!Failed.advances(Some(Delivered)));
        assert!(Delivered.advances(Some(Failed)));
        assert!(Played.advances(Some(Read)));
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }
}
