//! Per-session sizes of whatsapp-rust's in-memory caches ([`WaCacheOptions`],
//! turned into the crate's `CacheConfig` for every client wagate builds), and
//! the one correctness rule a bounded LID↔phone cache needs
//! ([`rewarm_lid_mapping`]).
//!
//! whatsapp-rust sizes its caches for one bot with many chats
//! (`CacheConfig::default`): 5,000 chat lanes (each an idle worker task),
//! 10,000 Signal session locks, 5,000 device lists and a LID↔phone cache
//! with no bound at all. A gateway runs one client per business number —
//! tens of thousands in one process — so those defaults would let one
//! tenant with many contacts grow without limit. Every cache below only
//! mirrors state that lives elsewhere:
//! - chat lanes and session locks are coordination objects; whatsapp-rust
//!   never evicts one a task is using (its eviction guard), so a small bound
//!   drops idle ones only and costs a task spawn when the chat speaks again;
//! - device lists are read back from the store on a miss;
//! - LID↔phone mappings are persisted in the store (`Backend::put_lid_mapping`)
//!   when learned live, and warmed from it at connect. Most of whatsapp-rust's
//!   hot paths read only the cache, though: an evicted mapping makes a send to
//!   the phone number use the phone-number Signal address instead of the LID
//!   one (the "downgrade" its docs warn about). wagate therefore looks the
//!   mapping up through the cache-aside path, which falls back to the store
//!   and puts it back, before each operation on a chat
//!   ([`rewarm_lid_mapping`]).
//!
//! Time-based expiry frees nothing by itself in whatsapp-rust's cache (an
//! expired entry goes when its key is read again or capacity evicts it), so
//! the capacities are the memory bound; the LID idle time only bounds how
//! stale a mapping may get.

use std::time::Duration;

use wacore_binary::Jid;
use whatsapp_rust::{CacheConfig, CacheEntryConfig, Client};

/// Default of [`WaCacheOptions::wa_lid_cache_capacity`].
pub const DEFAULT_LID_CACHE_CAPACITY: u64 = 1_000;
/// Default of [`WaCacheOptions::wa_chat_lanes`].
pub const DEFAULT_CHAT_LANES: u64 = 64;
/// Default of [`WaCacheOptions::wa_session_locks`].
pub const DEFAULT_SESSION_LOCKS: u64 = 256;
/// Default of [`WaCacheOptions::wa_device_cache_capacity`].
pub const DEFAULT_DEVICE_CACHE_CAPACITY: u64 = 500;

/// How long a cached device list is trusted (whatsapp-rust's own TTL).
const DEVICE_CACHE_TTL: Duration = Duration::from_secs(3600);

/// Sizes of each session's whatsapp-rust caches (flags and `WAGATE_WA_*`
/// variables); every linked session gets its own caches of these sizes.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct WaCacheOptions {
    /// LID↔phone-number mappings each session keeps in memory (0 = no
    /// bound, whatsapp-rust's own default). Mappings are also in the store:
    /// one evicted is read back when the gateway next sends to that chat.
    #[arg(long, env = "WAGATE_WA_LID_CACHE_CAPACITY", default_value_t = DEFAULT_LID_CACHE_CAPACITY)]
    pub wa_lid_cache_capacity: u64,

    /// Minutes a LID↔phone mapping stays cached without being used (0 =
    /// until evicted by capacity, whatsapp-rust's own default).
    #[arg(long, env = "WAGATE_WA_LID_CACHE_IDLE_MINS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=525_600))]
    pub wa_lid_cache_idle_mins: u64,

    /// Idle per-chat message lanes (a worker task each) each session keeps;
    /// a lane with messages in flight is never dropped, so this bounds
    /// memory, not how many chats are handled at once.
    #[arg(long, env = "WAGATE_WA_CHAT_LANES", default_value_t = DEFAULT_CHAT_LANES, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub wa_chat_lanes: u64,

    /// Idle per-device Signal session locks each session keeps (a lock in
    /// use is never dropped).
    #[arg(long, env = "WAGATE_WA_SESSION_LOCKS", default_value_t = DEFAULT_SESSION_LOCKS, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub wa_session_locks: u64,

    /// Contacts' device lists each session caches for an hour (a miss reads
    /// the store, then WhatsApp).
    #[arg(long, env = "WAGATE_WA_DEVICE_CACHE_CAPACITY", default_value_t = DEFAULT_DEVICE_CACHE_CAPACITY, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub wa_device_cache_capacity: u64,
}

impl Default for WaCacheOptions {
    fn default() -> Self {
        Self {
            wa_lid_cache_capacity: DEFAULT_LID_CACHE_CAPACITY,
            wa_lid_cache_idle_mins: 0,
            wa_chat_lanes: DEFAULT_CHAT_LANES,
            wa_session_locks: DEFAULT_SESSION_LOCKS,
            wa_device_cache_capacity: DEFAULT_DEVICE_CACHE_CAPACITY,
        }
    }
}

impl WaCacheOptions {
    /// whatsapp-rust's own defaults (one bot, many chats), for comparison.
    pub fn whatsapp_rust_defaults() -> Self {
        let crate_defaults = CacheConfig::default();
        Self {
            wa_lid_cache_capacity: 0,
            wa_lid_cache_idle_mins: 0,
            wa_chat_lanes: crate_defaults.chat_lanes_capacity,
            wa_session_locks: crate_defaults.session_locks_capacity,
            wa_device_cache_capacity: crate_defaults.device_registry_cache.capacity,
        }
    }

    /// The `CacheConfig` of one client: these sizes, whatsapp-rust's
    /// defaults for everything else.
    pub fn cache_config(&self) -> CacheConfig {
        let lid_capacity = match self.wa_lid_cache_capacity {
            0 => u64::MAX,
            n => n,
        };
        let lid_idle = match self.wa_lid_cache_idle_mins {
            0 => None,
            mins => Some(Duration::from_secs(mins * 60)),
        };
        CacheConfig {
            lid_pn_cache: CacheEntryConfig::new(lid_idle, lid_capacity),
            chat_lanes_capacity: self.wa_chat_lanes,
            session_locks_capacity: self.wa_session_locks,
            device_registry_cache: CacheEntryConfig::new(
                Some(DEVICE_CACHE_TTL),
                self.wa_device_cache_capacity,
            ),
            ..CacheConfig::default()
        }
    }
}

/// Puts `chat`'s LID↔phone mapping back into `client`'s cache from the store
/// when a bounded cache evicted it, so that what follows (a send, a receipt)
/// addresses the contact's LID Signal session as it would have with the
/// mapping cached. A hit costs one cache lookup; groups and other servers
/// are left alone. A store error only means the operation runs without the
/// mapping, as it would for a contact never seen.
pub async fn rewarm_lid_mapping(client: &Client, chat: &Jid) {
    if !(chat.is_pn() || chat.is_lid()) {
        return;
    }
    if let Err(error) = client.get_lid_pn_entry(chat).await {
        tracing::debug!(%error, "LID mapping lookup in the store failed");
    }
}

/// How many entries one client's bounded caches hold now (diagnostics,
/// tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheEntries {
    /// LID → mapping entries.
    pub lid_pn: u64,
    /// Phone number → mapping entries.
    pub pn_lid: u64,
    /// Per-chat message lanes.
    pub chat_lanes: u64,
    /// Per-device Signal session locks.
    pub session_locks: u64,
    /// Cached device lists.
    pub device_registry: u64,
}

/// What `client`'s bounded caches hold now.
pub async fn cache_entries(client: &Client) -> CacheEntries {
    let report = client.memory_report().await;
    CacheEntries {
        lid_pn: report.lid_pn_lid_entries.entries,
        pn_lid: report.lid_pn_pn_entries.entries,
        chat_lanes: report.chat_lanes,
        session_locks: report.session_locks,
        device_registry: report.device_registry_cache.entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_bound_every_per_session_cache() {
        let config = WaCacheOptions::default().cache_config();
        assert_eq!(config.lid_pn_cache.capacity, DEFAULT_LID_CACHE_CAPACITY);
        assert_eq!(config.lid_pn_cache.timeout, None);
        assert_eq!(config.chat_lanes_capacity, DEFAULT_CHAT_LANES);
        assert_eq!(config.session_locks_capacity, DEFAULT_SESSION_LOCKS);
        assert_eq!(
            config.device_registry_cache.capacity,
            DEFAULT_DEVICE_CACHE_CAPACITY
        );
        assert_eq!(config.device_registry_cache.timeout, Some(DEVICE_CACHE_TTL));
        let crate_defaults = CacheConfig::default();
        assert!(config.chat_lanes_capacity < crate_defaults.chat_lanes_capacity);
        assert!(config.session_locks_capacity < crate_defaults.session_locks_capacity);
        assert!(config.lid_pn_cache.capacity < crate_defaults.lid_pn_cache.capacity);
        // Everything wagate does not size stays whatsapp-rust's.
        assert_eq!(
            config.group_cache.capacity,
            crate_defaults.group_cache.capacity
        );
        assert_eq!(
            config.sent_message_ttl_secs,
            crate_defaults.sent_message_ttl_secs
        );
    }

    #[test]
    fn zero_means_whatsapp_rusts_unbounded_lid_cache() {
        let options = WaCacheOptions {
            wa_lid_cache_capacity: 0,
            wa_lid_cache_idle_mins: 30,
            ..WaCacheOptions::default()
        };
        let config = options.cache_config();
        assert_eq!(config.lid_pn_cache.capacity, u64::MAX);
        assert_eq!(
            config.lid_pn_cache.timeout,
            Some(Duration::from_secs(30 * 60))
        );
        let crate_like = WaCacheOptions::whatsapp_rust_defaults().cache_config();
        let crate_defaults = CacheConfig::default();
        assert_eq!(
            crate_like.lid_pn_cache.capacity,
            crate_defaults.lid_pn_cache.capacity
        );
        assert_eq!(crate_like.lid_pn_cache.timeout, None);
        assert_eq!(
            crate_like.chat_lanes_capacity,
            crate_defaults.chat_lanes_capacity
        );
        assert_eq!(
            crate_like.session_locks_capacity,
            crate_defaults.session_locks_capacity
        );
        assert_eq!(
            crate_like.device_registry_cache.capacity,
            crate_defaults.device_registry_cache.capacity
        );
    }
}
