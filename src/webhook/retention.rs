//! Retention of the webhook outbox: a background sweep that bounds what the
//! outbox keeps on disk (and the per-message rows beside it:
//! `crate::store::messages`).
//!
//! Every [`Retention::sweep_every`] it records a time mark (so later sweeps
//! can date what was committed before it), removes events, dedup keys and
//! delivered rows committed more than [`Retention::keep_for`] ago (never an
//! event a queued or dead delivery still needs; see
//! [`crate::store::outbox`]'s retention notes), and caps each company's
//! delivered log at [`Retention::delivered_kept`] rows.
//!
//! Why a sweep and not work on the delivery path: each pass scans the
//! trees, which is cheap every few minutes and would be costly per message.
//! The dedup window is `keep_for`: a message WhatsApp redelivers later than
//! that after its commit would be a new event. WhatsApp redelivers what was
//! not acknowledged, and the gateway acknowledges right after the commit,
//! so redeliveries come within minutes; the default window is a week.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::messages::Messages;
use crate::store::outbox::Outbox;

/// How long the outbox keeps what it no longer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Events, dedup keys and delivered rows older than this (since their
    /// commit) are removed.
    pub keep_for: Duration,
    /// Delivered-log rows kept per company at most.
    pub delivered_kept: usize,
    /// Time between sweeps.
    pub sweep_every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep_for: Duration::from_secs(7 * 24 * 3600),
            delivered_kept: 10_000,
            sweep_every: Duration::from_secs(600),
        }
    }
}

/// The background sweep; aborted when dropped (it holds the store open).
#[derive(Debug)]
pub struct Sweeper(JoinHandle<()>);

impl Sweeper {
    /// Sweeps now and then every `retention.sweep_every`.
    pub fn spawn(outbox: Outbox, messages: Messages, retention: Retention) -> Self {
        Self(crate::store::spawn_sweep(
            retention.sweep_every,
            "webhook retention",
            move || {
                sweep(&outbox, retention);
                sweep_messages(&messages, retention);
            },
        ))
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sent messages' statuses and inbound media references live as long as
/// the events they explain ([`Retention::keep_for`] since their last change).
pub fn sweep_messages(messages: &Messages, retention: Retention) {
    let keep_ms = i64::try_from(retention.keep_for.as_millis()).unwrap_or(i64::MAX);
    match messages.prune_before(crate::domain::now_ms().saturating_sub(keep_ms)) {
        Ok(removed) => tracing::debug!(removed, "message status and media retention applied"),
        Err(error) => tracing::error!(%error, "cannot prune message statuses and media references"),
    }
}

/// One sweep (see the module docs); errors are logged, the next sweep retries.
pub fn sweep(outbox: &Outbox, retention: Retention) {
    let now = crate::domain::now_ms();
    if let Err(error) = outbox.mark_time(now) {
        tracing::error!(%error, "cannot record a webhook retention mark");
    }
    let keep_ms = i64::try_from(retention.keep_for.as_millis()).unwrap_or(i64::MAX);
    match outbox.prune_before(now.saturating_sub(keep_ms)) {
        Ok(pruned) => tracing::debug!(?pruned, "webhook outbox retention applied"),
        Err(error) => tracing::error!(%error, "cannot prune the webhook outbox"),
    }
    match outbox.prune_delivered(retention.delivered_kept) {
        Ok(removed) if removed > 0 => tracing::debug!(removed, "capped the webhook delivery log"),
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "cannot cap the webhook delivery log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CompanyId;
    use crate::pb;
    use crate::store::Store;
    use crate::store::outbox::{DedupKey, DeliveryState, NewEvent, Target};

    #[test]
    fn a_sweep_removes_delivered_events_past_retention_and_caps_the_log() {
        let store = Store::open_temporary().unwrap();
        let outbox = store.outbox().unwrap();
        let acme = CompanyId::parse("acme").unwrap();
        let events: Vec<NewEvent> = (0..3)
            .map(|i| NewEvent {
                dedup: DedupKey::Event(format!("e{i}")),
                event: pb::WebhookEvent {
                    id: format!("e{i}"),
                    ..Default::default()
                },
                lane: "session".into(),
            })
            .collect();
        for committed in outbox.commit(&acme, &events, &[Target::Company]).unwrap() {
            let key = &committed.queued[0];
            let delivery = outbox.get_queued(key).unwrap().unwrap();
            outbox
                .finish(key, &delivery, DeliveryState::Delivered)
                .unwrap();
        }
        let keep_a_week = Retention {
            delivered_kept: 1,
            ..Retention::default()
        };
        sweep(&outbox, keep_a_week);
        assert_eq!(outbox.event_count(&acme), 3, "younger than the retention");
        assert_eq!(
            outbox
                .list(&acme, DeliveryState::Delivered, 10)
                .unwrap()
                .len(),
            1
        );
        let keep_nothing = Retention {
            keep_for: Duration::ZERO,
            ..keep_a_week
        };
        sweep(&outbox, keep_nothing);
        assert_eq!(outbox.event_count(&acme), 0);
        assert!(
            outbox
                .list(&acme, DeliveryState::Delivered, 10)
                .unwrap()
                .is_empty()
        );
    }
}
