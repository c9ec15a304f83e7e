//! [`WaConfig`]: how sessions talk to WhatsApp (endpoint, version, hooks,
//! HTTP client, status sink, removal listener) and the pool's timing knobs.

use std::sync::Arc;
use std::time::Duration;

use super::{BackoffConfig, InboundHookFactory, LiveClients, WatchdogConfig};
use crate::domain::CompanyId;
use crate::wa::client::ClientOptions;
use crate::wa::version::WaVersion;

/// Default of [`WaConfig::restore_concurrency`].
pub const DEFAULT_RESTORE_CONCURRENCY: u16 = 500;

/// Told when a company has been removed from the store
/// ([`SessionPool::delete`](super::SessionPool::delete)): called after the
/// removal, synchronously, whatever its outcome, so that a cache of the
/// company's records (the webhook endpoints) is dropped only once nothing
/// can load it again. The session's `deleted` status event is no substitute:
/// it is sent before the registry row goes, and a lagging subscriber may
/// miss it.
pub trait RemovalListener: Send + Sync {
    /// `company`'s rows are gone (or their removal failed: re-read them).
    fn company_removed(&self, company: &CompanyId);
}

/// How sessions talk to WhatsApp, and the pool's timing knobs.
#[derive(Clone)]
pub struct WaConfig {
    /// WebSocket endpoint; `None` = WhatsApp's own.
    pub url: Option<String>,
    /// WhatsApp Web version every client announces: fixed, or resolved once
    /// for the process and kept fresh ([`WaVersion`]).
    pub version: WaVersion,
    /// Device name shown on the phone's "Linked devices" list.
    pub push_name: String,
    /// Reconnect delays for transient failures.
    pub backoff: BackoffConfig,
    /// How many recent transitions a status carries.
    pub transition_history: usize,
    /// How long to wait for a client to close before aborting it.
    pub stop_timeout: Duration,
    /// Upper bound of one send / pair-code request.
    pub op_timeout: Duration,
    /// Least time between two pair-code requests of one session.
    pub pair_code_interval: Duration,
    /// Liveness checks of connected sessions.
    pub watchdog: WatchdogConfig,
    /// The inbound durability hook of each company's client.
    pub inbound_hook: Option<Arc<dyn InboundHookFactory>>,
    /// HTTP client for version fetches and media; `None` = one shared
    /// [`ReqwestHttpClient`](crate::wa::client::ReqwestHttpClient), built by
    /// [`SessionPool::new`].
    pub http_client: Option<Arc<dyn whatsapp_rust::http::HttpClient>>,
    /// Where acks and receipts of sent messages go (`message.status`).
    pub status_sink: Option<crate::wa::receipts::SharedStatusSink>,
    /// Who is told when a company has been deleted.
    pub removal_listener: Option<Arc<dyn RemovalListener>>,
    /// Each company's live client (media downloads); set by the pool.
    pub live: LiveClients,
    /// Most linked sessions a restore connects at once: each holds its slot
    /// until it is logged in or has failed, so a restore of tens of thousands
    /// neither stampedes WhatsApp's servers nor starves the machine.
    pub restore_concurrency: usize,
    /// Sizes of each session's whatsapp-rust caches.
    pub cache: crate::wa::cache::WaCacheOptions,
}

impl Default for WaConfig {
    fn default() -> Self {
        Self {
            url: None,
            version: WaVersion::default(),
            push_name: "wagate".to_owned(),
            backoff: BackoffConfig::default(),
            transition_history: 20,
            stop_timeout: Duration::from_secs(10),
            op_timeout: Duration::from_secs(60),
            pair_code_interval: Duration::from_secs(10),
            watchdog: WatchdogConfig::default(),
            inbound_hook: None,
            http_client: None,
            status_sink: None,
            removal_listener: None,
            live: LiveClients::default(),
            restore_concurrency: usize::from(DEFAULT_RESTORE_CONCURRENCY),
            cache: crate::wa::cache::WaCacheOptions::default(),
        }
    }
}

impl std::fmt::Debug for WaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaConfig")
            .field("url", &self.url)
            .field("version", &self.version)
            .field("push_name", &self.push_name)
            .field("backoff", &self.backoff)
            .field("transition_history", &self.transition_history)
            .field("stop_timeout", &self.stop_timeout)
            .field("op_timeout", &self.op_timeout)
            .field("pair_code_interval", &self.pair_code_interval)
            .field("watchdog", &self.watchdog)
            .field("inbound_hook", &self.inbound_hook.is_some())
            .field("http_client", &self.http_client.is_some())
            .field("status_sink", &self.status_sink.is_some())
            .field("removal_listener", &self.removal_listener.is_some())
            .field("restore_concurrency", &self.restore_concurrency)
            .field("cache", &self.cache)
            .finish()
    }
}

impl WaConfig {
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions {
            url: self.url.clone(),
            // Always explicit: whatsapp-rust would otherwise fetch it per device.
            version: Some(self.version.current()),
            push_name: self.push_name.clone(),
            inbound_hook: self.inbound_hook.clone(),
            http_client: self.http_client.clone(),
            cache: self.cache.clone(),
        }
    }
}
