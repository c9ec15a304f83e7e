//! What the actor reports: state transitions (recorded, counted, emitted),
//! the linked identity, reconnect counts and QR clearing.

use std::sync::Arc;

use tokio::time::Instant;
use whatsapp_rust::Client;

use crate::domain::now_ms;
use crate::pool::PoolEvent;
use crate::pool::state::{SessionEvent, SessionState, Transition};

use super::{DAY, SessionActor};

impl SessionActor {
    pub(super) fn refresh_identity(&self, client: &Client) {
        let pn = client.pn();
        let lid = client.lid();
        let push_name = client.push_name();
        self.status.send_if_modified(|s| {
            let jid = pn.as_ref().map(std::string::ToString::to_string);
            let phone = pn.as_ref().map(|j| j.user.to_string());
            let lid = lid.as_ref().map(std::string::ToString::to_string);
            let push_name = (!push_name.is_empty()).then(|| push_name.clone());
            let changed =
                s.jid != jid || s.phone != phone || s.lid != lid || s.push_name != push_name;
            s.jid = jid;
            s.phone = phone;
            s.lid = lid;
            s.push_name = push_name;
            changed
        });
    }

    pub(super) fn clear_identity(&self) {
        self.status.send_modify(|s| {
            s.jid = None;
            s.phone = None;
            s.lid = None;
            s.connected_since_ms = None;
        });
    }

    /// An automatic (or hurried) reconnect starts: count it.
    pub(super) fn reconnect_attempt(&mut self) {
        let now = Instant::now();
        self.reconnect_times.push_back(now);
        while self
            .reconnect_times
            .front()
            .is_some_and(|at| now.duration_since(*at) > DAY)
        {
            self.reconnect_times.pop_front();
        }
        let recent = self.reconnect_times.len() as u64;
        self.status.send_modify(|s| {
            s.reconnect_count += 1;
            s.reconnects_24h = recent;
        });
        crate::metrics::reconnect_attempt(&self.company);
    }

    pub(super) fn clear_qr(&self) {
        self.qr.send_if_modified(|qr| qr.take().is_some());
    }

    /// Record a state change (store + broadcast). A same-state "change" only
    /// updates the reason.
    pub(super) fn transition(&mut self, to: SessionState, reason: &str) {
        let now = now_ms();
        let from = self.state();
        if from == to {
            self.status.send_modify(|s| s.reason = reason.to_owned());
            return;
        }
        tracing::info!(from = %from, to = %to, reason, "session state changed");
        crate::metrics::transition(&self.company, from.as_str(), to.as_str(), reason);
        let record = crate::pb::StateTransition {
            from: from.as_str().to_owned(),
            to: to.as_str().to_owned(),
            reason: reason.to_owned(),
            at_ms: now,
        };
        if let Err(e) = self.store.record_transition(&self.company, &record) {
            tracing::error!(error = %e, "recording a state transition failed");
        }
        self.recent.push(Transition {
            from,
            to,
            reason: reason.to_owned(),
            at_ms: now,
        });
        let keep = self.config.transition_history.max(1);
        if self.recent.len() > keep {
            let excess = self.recent.len() - keep;
            self.recent.drain(..excess);
        }
        let recent = self.recent.clone();
        self.status.send_modify(|s| {
            s.state = to;
            s.reason = reason.to_owned();
            s.since_ms = now;
            s.last_activity_ms = now;
            s.recent_transitions = recent;
        });
        self.emit(SessionEvent::StatusChanged(Arc::new(
            self.status.borrow().clone(),
        )));
    }

    /// Broadcast to the session's subscribers and to the pool-wide stream.
    /// Nobody listening is fine.
    pub(super) fn emit(&self, event: SessionEvent) {
        let _ = self.pool_events.send(PoolEvent {
            company: self.company.clone(),
            event: event.clone(),
        });
        let _ = self.events.send(event);
    }
}
