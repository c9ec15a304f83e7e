//! The outbox's records: what is committed ([`NewEvent`], deduplicated by
//! [`DedupKey`]), what a commit answers ([`Committed`]), and the delivery rows
//! ([`DeliveryKey`], [`DeliveryState`], [`Settled`]). Their key encodings are
//! in [`crate::store::keys`].

use crate::domain::CompanyId;
use crate::pb;

/// Which endpoint a delivery is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The company's own webhook.
    Company,
    /// The gateway-wide webhook (configured at start).
    Global,
}

impl Target {
    /// The byte in keys: part of the on-disk format, never change it.
    pub(crate) fn byte(self) -> u8 {
        match self {
            Target::Company => b'c',
            Target::Global => b'g',
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'c' => Some(Target::Company),
            b'g' => Some(Target::Global),
            _ => None,
        }
    }

    /// The stable name used in delivery ids and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Company => "company",
            Target::Global => "global",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Target::Company, Target::Global]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// What makes two events "the same" for deduplication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DedupKey {
    /// An inbound message: `(chat, sender, message id)` within the company
    /// (stanza ids are unique only within a chat and sender).
    Message {
        /// The chat JID.
        chat: String,
        /// The sender JID.
        sender: String,
        /// The stanza id.
        message_id: String,
    },
    /// Any other event: its stable event id.
    Event(String),
}

/// An event to commit.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// What makes it the same event as an earlier one.
    pub dedup: DedupKey,
    /// The event as delivered.
    pub event: pb::WebhookEvent,
    /// The ordering lane within the company (the chat JID; a fixed name for
    /// session events).
    pub lane: String,
}

/// Identifies one delivery row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    /// The company the delivery belongs to.
    pub company: CompanyId,
    /// Its sequence number within the company (delivery order).
    pub seq: u64,
    /// The endpoint it goes to.
    pub target: Target,
}

impl DeliveryKey {
    /// The public id of the delivery (`{seq}-{target}`), unique per company.
    pub fn public_id(&self) -> String {
        format!("{}-{}", self.seq, self.target.as_str())
    }

    /// Parses [`DeliveryKey::public_id`] for `company`.
    pub fn parse_public_id(company: &CompanyId, id: &str) -> Option<Self> {
        let (seq, target) = id.split_once('-')?;
        Some(Self {
            company: company.clone(),
            seq: seq.parse().ok()?,
            target: Target::parse(target)?,
        })
    }
}

/// The result of committing one [`NewEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Sequence number of the stored event (the earlier one for a duplicate).
    pub event_seq: u64,
    /// Whether the event was already stored (nothing was written for it).
    pub duplicate: bool,
    /// Deliveries queued by this commit (empty for a duplicate).
    pub queued: Vec<DeliveryKey>,
}

/// One company's events to commit ([`Outbox::commit_all`]).
#[derive(Clone, Copy, Debug)]
pub struct CommitRequest<'a> {
    /// The company whose events these are.
    pub company: &'a CompanyId,
    /// The events, in order.
    pub events: &'a [NewEvent],
    /// The endpoints each new event is queued for.
    pub targets: &'a [Target],
}

/// A delivery attempt's outcome to record ([`Outbox::finish_all`]).
#[derive(Clone, Debug)]
pub struct Settled {
    /// The delivery settled.
    pub key: DeliveryKey,
    /// The delivery row as it should be stored (attempts, last status, ...).
    pub delivery: pb::OutboxDelivery,
    /// Where it goes: `Delivered`, `Dead`, or `Queued` (a retry later).
    pub to: DeliveryState,
}

/// Which delivery list to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting to be sent (or retried).
    Queued,
    /// Accepted by the endpoint.
    Delivered,
    /// Given up after the last attempt (a dead letter; can be retried).
    Dead,
}

impl DeliveryState {
    /// The stable name used in listings and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}
