//! Failed authentication slows down the address it came from, and only that
//! address: after a few free failures, each further failure blocks the
//! address for an exponentially growing time (capped), during which its
//! requests are answered 429 `rate_limited` with `Retry-After` **before**
//! any credential is checked, so a guess made while blocked is never
//! evaluated. Other addresses are not affected, and a request with valid
//! credentials counts nothing.
//!
//! IPv6 addresses are grouped by their /64 (one host usually holds a whole
//! /64). The table is bounded: entries whose last failure is older than the
//! window are dropped, and when it is full the quietest entries go first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Failures from one address that cost nothing (typos, a rotated token), by
/// default (`--http-auth-free-failures`).
pub const FREE_FAILURES: u32 = 10;
/// First block after the free failures; doubles with each further failure.
const BASE_BLOCK: Duration = Duration::from_secs(1);
/// Longest block.
const MAX_BLOCK: Duration = Duration::from_secs(300);
/// An address with no failure for this long starts over.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most addresses tracked at once.
const MAX_ENTRIES: usize = 100_000;

/// Per-address failure counts and blocks.
#[derive(Debug)]
pub struct AuthBackoff {
    // parking_lot: held for a map lookup or update only, never across `.await`.
    entries: Mutex<HashMap<IpAddr, Entry>>,
    free_failures: u32,
}

impl Default for AuthBackoff {
    fn default() -> Self {
        Self::with_free_failures(FREE_FAILURES)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

impl AuthBackoff {
    /// A table that lets `free_failures` failures per address pass before it
    /// blocks.
    pub fn with_free_failures(free_failures: u32) -> Self {
        Self {
            entries: Mutex::default(),
            free_failures,
        }
    }

    /// How long `peer` must still wait, if it is blocked now.
    pub fn blocked_for(&self, peer: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        self.entries
            .lock()
            .get(&group(peer))
            .map(|e| e.blocked_until.saturating_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// Records a failed authentication from `peer`.
    pub fn failed(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            make_room(&mut entries, now);
        }
        let entry = entries.entry(group(peer)).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: now,
        });
        if now.duration_since(entry.last_failure) > WINDOW {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if let Some(over) = entry
            .failures
            .checked_sub(self.free_failures.saturating_add(1))
        {
            let block = BASE_BLOCK
                .checked_mul(1u32 << over.min(16))
                .unwrap_or(MAX_BLOCK)
                .min(MAX_BLOCK);
            entry.blocked_until = now + block;
        }
    }
}

/// The key of `peer`: the address, or its /64 for IPv6 (IPv4-mapped
/// addresses count as the IPv4 address).
fn group(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// Drops expired entries, then, if still full, the half with the oldest
/// last failure among those not blocked.
fn make_room(entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
    entries.retain(|_, e| now.duration_since(e.last_failure) <= WINDOW);
    if entries.len() < MAX_ENTRIES {
        return;
    }
    let mut quiet: Vec<(Instant, IpAddr)> = entries
        .iter()
        .filter(|(_, e)| e.blocked_until <= now)
        .map(|(ip, e)| (e.last_failure, *ip))
        .collect();
    quiet.sort_unstable();
    for (_, ip) in quiet.iter().take(MAX_ENTRIES / 2) {
        entries.remove(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_beyond_the_free_ones_block_that_address_only() {
        let backoff = AuthBackoff::default();
        let attacker: IpAddr = "127.0.0.7".parse().unwrap();
        let neighbour: IpAddr = "127.0.0.8".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            backoff.failed(attacker);
        }
        assert_eq!(backoff.blocked_for(attacker), None, "free failures");
        backoff.failed(attacker);
        assert_eq!(backoff.blocked_for(attacker), Some(BASE_BLOCK));
        backoff.failed(attacker);
        assert_eq!(
            backoff.blocked_for(attacker),
            Some(BASE_BLOCK * 2),
            "doubles"
        );
        assert_eq!(
            backoff.blocked_for(neighbour),
            None,
            "others are not affected"
        );

        tokio::time::advance(BASE_BLOCK * 2).await;
        assert_eq!(backoff.blocked_for(attacker), None, "the block ends");
        for _ in 0..40 {
            backoff.failed(attacker);
        }
        assert_eq!(backoff.blocked_for(attacker), Some(MAX_BLOCK), "capped");

        tokio::time::advance(WINDOW + MAX_BLOCK).await;
        backoff.failed(attacker);
        assert_eq!(
            backoff.blocked_for(attacker),
            None,
            "a quiet address starts over"
        );
    }

    #[test]
    fn ipv6_hosts_are_grouped_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(group(a), group(b));
        assert_ne!(group(a), group(other));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(group(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
