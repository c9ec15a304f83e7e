//! Replays, one at a time per company ([`ReplayGate`]), and which endpoints
//! a caller may make a replay or a retry reach ([`Reach`]).
//!
//! A replay queues up to `limit` stored events per event type again. Without
//! a gate a tenant could replay in a loop and fill the queue faster than it
//! drains, delaying every other company's deliveries; so a company's replay
//! is refused (`replay_in_progress`) while any delivery its previous replay
//! queued is still queued, or while another replay of it is being queued.
//!
//! The gateway-wide webhook belongs to the operator: a company token's
//! replay or retry reaches only the company's own webhook; the admin's
//! reaches both.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::WebhookError;
use crate::domain::CompanyId;
use crate::store::outbox::{DeliveryKey, Outbox, Target};

/// Which endpoints of a company a replay or retry may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The company's own webhook only (a company token).
    CompanyOnly,
    /// The company's webhook and the gateway-wide one (the admin).
    CompanyAndGlobal,
}

impl Reach {
    /// Whether deliveries to `target` may be queued.
    pub fn allows(self, target: Target) -> bool {
        target == Target::Company || self == Self::CompanyAndGlobal
    }
}

enum Replay {
    /// Being queued now.
    Queuing,
    /// Queued: these deliveries (those not yet seen finished).
    Queued(Vec<DeliveryKey>),
}

/// The replays in progress, per company.
#[derive(Default)]
pub(super) struct ReplayGate {
    /// Lock choice: `parking_lot::Mutex`, taken briefly per replay request;
    /// never held across an `.await`.
    replays: Mutex<HashMap<CompanyId, Replay>>,
}

impl ReplayGate {
    /// Marks `company`'s replay as started, unless one is in progress.
    pub(super) fn begin(&self, outbox: &Outbox, company: &CompanyId) -> Result<(), WebhookError> {
        let mut replays = self.replays.lock();
        match replays.get_mut(company) {
            Some(Replay::Queuing) => return Err(WebhookError::ReplayInProgress),
            Some(Replay::Queued(keys)) => {
                // Forget finished deliveries until one is still queued.
                while let Some(key) = keys.last() {
                    if outbox.get_queued(key)?.is_some() {
                        return Err(WebhookError::ReplayInProgress);
                    }
                    keys.pop();
                }
            }
            None => {}
        }
        replays.insert(company.clone(), Replay::Queuing);
        Ok(())
    }

    /// Records what `company`'s replay queued (nothing: it is over).
    pub(super) fn finish(&self, company: &CompanyId, queued: Vec<DeliveryKey>) {
        let mut replays = self.replays.lock();
        if queued.is_empty() {
            replays.remove(company);
        } else {
            replays.insert(company.clone(), Replay::Queued(queued));
        }
    }

    /// Forgets `company` (deleted).
    pub(super) fn forget(&self, company: &CompanyId) {
        self.replays.lock().remove(company);
    }
}
