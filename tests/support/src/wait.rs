//! The one time limit and the waiting helpers.
//!
//! Tests wait on events, never on fixed sleeps: a watched value
//! ([`watch_until`]), an event stream, a recorder. [`WAIT`] bounds every such
//! wait; it is generous because it is only reached when a test fails (a
//! debug build on a busy 2-core machine can be slow, never 60 s slow).
//!
//! [`poll`] is the exception, for conditions that nothing signals (sled's
//! file lock being released, a figure on a status page): it re-checks at an
//! interval, bounded by [`WAIT`].

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Upper bound for anything a test or bench waits for.
pub const WAIT: Duration = Duration::from_secs(60);

/// Waits until the value in `rx` satisfies `pred` (the current value counts),
/// for at most `limit`. Returns a clone of the value that satisfied it;
/// `None` on timeout or when the sender is gone.
///
/// # Cancel safety
///
/// Cancel safe: dropping the future leaves `rx` usable.
pub async fn watch_until<T: Clone>(
    rx: &mut watch::Receiver<T>,
    limit: Duration,
    mut pred: impl FnMut(&T) -> bool,
) -> Option<T> {
    match tokio::time::timeout(limit, rx.wait_for(|value| pred(value))).await {
        Ok(Ok(value)) => Some(value.clone()),
        _ => None,
    }
}

/// Calls `check` every `interval` until it returns `Some`, and returns that;
/// panics, naming `what`, when [`WAIT`] runs out first.
///
/// Only for conditions nothing signals; everything else is awaited on its
/// event.
pub async fn poll<T, F, Fut>(what: &str, interval: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(interval).await;
    }
}
