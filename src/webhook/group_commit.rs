//! Group commit: one task commits every request waiting at that moment and
//! makes them durable with one flush, so N concurrent commits (many chats,
//! many companies) cost one fsync instead of N.

use tokio::sync::{mpsc, oneshot};

use crate::domain::CompanyId;
use crate::store::Store;
use crate::store::outbox::{CommitRequest, Committed, NewEvent, Outbox, Target};

use super::WebhookError;

/// Group commit: one task commits every request waiting at that moment and
/// makes them durable with one flush, so N concurrent commits (many chats,
/// many companies) cost one fsync instead of N.
#[derive(Clone)]
pub(super) struct GroupCommitter {
    requests: mpsc::UnboundedSender<PendingCommit>,
}

/// A commit waiting for the group committer.
pub(super) struct PendingCommit {
    pub(super) company: CompanyId,
    pub(super) events: Vec<NewEvent>,
    pub(super) targets: Vec<Target>,
    /// Gets the events back with their outcome.
    pub(super) done: oneshot::Sender<(Vec<NewEvent>, CommitResult)>,
}

pub(super) type CommitResult = Result<Vec<Committed>, WebhookError>;

impl GroupCommitter {
    pub(super) fn spawn(store: Store, outbox: Outbox) -> Self {
        let (requests, mut rx) = mpsc::unbounded_channel::<PendingCommit>();
        tokio::spawn(async move {
            let mut waiting = Vec::new();
            while let Some(first) = rx.recv().await {
                waiting.push(first);
                // Everyone who asked while the previous group ran joins this one.
                while let Ok(next) = rx.try_recv() {
                    waiting.push(next);
                }
                let started = std::time::Instant::now();
                let mut results = commit_group(&outbox, &waiting);
                if results.iter().any(Result::is_ok)
                    && let Err(error) = store.flush().await
                {
                    let error = error.to_string();
                    for result in &mut results {
                        if result.is_ok() {
                            *result = Err(WebhookError::Flush(error.clone()));
                        }
                    }
                }
                crate::metrics::outbox_flush(started.elapsed(), waiting.len());
                for (pending, result) in waiting.drain(..).zip(results) {
                    // The caller may have gone (cancelled); its commit stands.
                    let _ = pending.done.send((pending.events, result));
                }
            }
        });
        Self { requests }
    }

    /// Commits `events` of `company`, queued for `targets`, and returns once
    /// the commit is durable, with the events handed back.
    pub(super) async fn commit(
        &self,
        company: &CompanyId,
        events: Vec<NewEvent>,
        targets: Vec<Target>,
    ) -> (Vec<NewEvent>, CommitResult) {
        let (done, rx) = oneshot::channel();
        let pending = PendingCommit {
            company: company.clone(),
            events,
            targets,
            done,
        };
        if let Err(mpsc::error::SendError(pending)) = self.requests.send(pending) {
            return (pending.events, Err(WebhookError::Stopped));
        }
        rx.await
            .unwrap_or_else(|_| (Vec::new(), Err(WebhookError::Stopped)))
    }
}

/// Commits `group`, one result per request: one company's unreadable rows
/// never fail another company's commit.
pub(super) fn commit_group(outbox: &Outbox, group: &[PendingCommit]) -> Vec<CommitResult> {
    let requests: Vec<CommitRequest<'_>> = group
        .iter()
        .map(|p| CommitRequest {
            company: &p.company,
            events: &p.events,
            targets: &p.targets,
        })
        .collect();
    outbox
        .commit_all(&requests)
        .into_iter()
        .map(|result| Ok(result?))
        .collect()
}
