//! `message.status` events: the receipts and server acks of sent messages
//! (from every company's client, through [`StatusSink`]) checked against
//! each recipient's stored status and committed through the outbox.
//!
//! ```text
//! client event handler ─ StatusSink::record ─→ channel ─→ recorder task (one):
//!     batch → per company: Messages::advance (forward only) → events of the
//!     accepted updates → Messages::put_status → Webhooks::commit (dedup by
//!     event id, flushed with the status rows, then dispatched)
//! ```
//!
//! # Invariants
//!
//! - A status never goes backwards: only an update that moves its recipient
//!   forward becomes an event (`crate::store::messages`).
//! - An event's id is a hash of `(company, message id, recipient, status)`
//!   and the outbox deduplicates by it, so a repeated receipt is never a
//!   second event.
//! - The status rows are written before the events are committed, and the
//!   commit's flush makes both durable: a receiver that reads
//!   `GET …/messages/{id}` on a `message.status` event sees that status or a
//!   later one, never an earlier one.
//! - One task records every company's updates in arrival order, so a chat's
//!   statuses are committed (and delivered, lane by lane) in order.
//!
//! # Known window
//!
//! whatsapp-rust acknowledges a receipt to WhatsApp right after dispatching
//! it (there is no durability hook for receipts): a crash between that and
//! the commit's flush here loses that one receipt (its event, and perhaps
//! not its status row). A later receipt of the same message (e.g. `read`
//! after a lost `delivered`) still arrives and moves the status on. A
//! commit that fails (a storage error, logged) loses the events the same
//! way.

use std::sync::Weak;

use tokio::sync::mpsc;

use super::{Inner, Webhooks, event};
use crate::domain::delivery::StatusUpdate;
use crate::domain::{CompanyId, now_ms};
use crate::wa::receipts::{SharedStatusSink, StatusSink};

/// One company's updates, as the client reported them.
pub(super) type Batch = (CompanyId, Vec<StatusUpdate>);

/// Most queued batches the recorder takes into one commit round.
const MAX_BATCHES: usize = 512;

impl StatusSink for Webhooks {
    fn record(&self, company: &CompanyId, updates: Vec<StatusUpdate>) {
        // Fails only when the recorder has stopped (shutdown).
        if self
            .inner
            .statuses
            .send((company.clone(), updates))
            .is_err()
        {
            tracing::warn!(company.id = %company, "status update dropped: the recorder has stopped");
        }
    }
}

impl Webhooks {
    /// The sink to plug into the pool's `WaConfig::status_sink`.
    pub fn status_sink(&self) -> SharedStatusSink {
        std::sync::Arc::new(self.clone())
    }
}

/// The recorder task: runs until the webhook service is dropped.
pub(super) async fn run(inner: Weak<Inner>, mut batches: mpsc::UnboundedReceiver<Batch>) {
    let mut round = Vec::new();
    while batches.recv_many(&mut round, MAX_BATCHES).await > 0 {
        let Some(inner) = inner.upgrade() else {
            break;
        };
        let webhooks = Webhooks { inner };
        let mut by_company: Vec<(CompanyId, Vec<StatusUpdate>)> = Vec::new();
        for (company, updates) in round.drain(..) {
            match by_company.iter_mut().find(|(c, _)| *c == company) {
                Some((_, all)) => all.extend(updates),
                None => by_company.push((company, updates)),
            }
        }
        // Companies at once: one group commit (one flush) for the round.
        let records = by_company
            .into_iter()
            .map(|(company, updates)| record(&webhooks, company, updates));
        futures_util::future::join_all(records).await;
    }
}

/// Records one company's updates (see the module invariants); failures are
/// logged (the updates are lost, like a receipt that never arrived).
async fn record(webhooks: &Webhooks, company: CompanyId, updates: Vec<StatusUpdate>) {
    let messages = &webhooks.inner.messages;
    let (accepted, records) = match messages.advance(&company, updates, now_ms()) {
        Ok(result) => result,
        Err(error) => {
            tracing::error!(company.id = %company, %error, "cannot read message statuses");
            return;
        }
    };
    if accepted.is_empty() {
        return;
    }
    let events = accepted
        .iter()
        .map(|update| event::delivery_event(&company, update))
        .collect();
    // Rows first: the commit dispatches the events (see the module docs).
    if let Err(error) = messages.put_status(&company, &records) {
        tracing::error!(company.id = %company, %error, "cannot store message statuses");
    }
    if let Err(error) = webhooks.commit(&company, events).await {
        tracing::error!(company.id = %company, %error, "cannot record message.status events");
    }
}
