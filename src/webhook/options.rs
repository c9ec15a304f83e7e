//! [`WebhookOptions`]: the gateway-wide webhook settings from the
//! configuration, and what they mean for the dispatcher, retention and URL
//! checks.

use std::time::Duration;

use super::{DispatcherConfig, Endpoint, Retention, WebhookError, endpoint, sign, validate_events};

/// Webhook configuration (flags and environment).
#[derive(Clone, clap::Args)]
pub struct WebhookOptions {
    /// Gateway-wide webhook receiving every company's events (besides each
    /// company's own webhook).
    #[arg(long = "webhook-url", env = "WAGATE_WEBHOOK_URL")]
    pub global_url: Option<String>,
    /// Signing secret of the global webhook (`whsec_<base64>` or any string).
    #[arg(
        long = "webhook-secret",
        env = "WAGATE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub global_secret: Option<String>,
    /// Event types for the global webhook, comma-separated (default: all).
    #[arg(
        long = "webhook-events",
        env = "WAGATE_WEBHOOK_EVENTS",
        value_delimiter = ','
    )]
    pub global_events: Vec<String>,
    /// Attempts before a delivery becomes a dead letter.
    #[arg(long, env = "WAGATE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,
    /// Per-request timeout, milliseconds.
    #[arg(long, env = "WAGATE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub webhook_timeout_ms: u64,
    /// First retry delay, milliseconds (doubles per attempt, jittered).
    #[arg(long, env = "WAGATE_WEBHOOK_BACKOFF_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub webhook_backoff_ms: u64,
    /// Longest retry delay, milliseconds.
    #[arg(long, env = "WAGATE_WEBHOOK_BACKOFF_MAX_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub webhook_backoff_max_ms: u64,
    /// Requests in flight per webhook endpoint.
    #[arg(long, env = "WAGATE_WEBHOOK_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub webhook_concurrency: u64,
    /// Hours the outbox keeps delivered events and their dedup keys (a
    /// message redelivered later than this after its commit is a new event).
    #[arg(long, env = "WAGATE_WEBHOOK_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=8_760))]
    pub webhook_retention_hours: u64,
    /// Every event body says `"sandbox": true` (set by `--sandbox`, not a
    /// flag of its own), so a receiver can never take a simulated message
    /// for a real one.
    #[arg(skip)]
    pub mark_sandbox: bool,
}

/// Redacts the global secret and the global URL's path (it may carry a token).
impl std::fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("global_url", &self.global_url.as_ref().map(|_| "<set>"))
            .field(
                "global_secret",
                &self.global_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("global_events", &self.global_events)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("webhook_timeout_ms", &self.webhook_timeout_ms)
            .field("webhook_backoff_ms", &self.webhook_backoff_ms)
            .field("webhook_backoff_max_ms", &self.webhook_backoff_max_ms)
            .field("webhook_concurrency", &self.webhook_concurrency)
            .field("webhook_retention_hours", &self.webhook_retention_hours)
            .field("mark_sandbox", &self.mark_sandbox)
            .finish()
    }
}

impl Default for WebhookOptions {
    fn default() -> Self {
        let config = DispatcherConfig::default();
        Self {
            global_url: None,
            global_secret: None,
            global_events: Vec::new(),
            webhook_max_attempts: config.max_attempts,
            webhook_timeout_ms: config.timeout.as_millis() as u64,
            webhook_backoff_ms: config.backoff_base.as_millis() as u64,
            webhook_backoff_max_ms: config.backoff_max.as_millis() as u64,
            webhook_concurrency: config.concurrency as u64,
            webhook_retention_hours: Retention::default().keep_for.as_secs() / 3600,
            mark_sandbox: false,
        }
    }
}

impl WebhookOptions {
    pub(super) fn dispatcher_config(&self) -> DispatcherConfig {
        DispatcherConfig {
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            max_attempts: self.webhook_max_attempts,
            backoff_base: Duration::from_millis(self.webhook_backoff_ms),
            backoff_max: Duration::from_millis(
                self.webhook_backoff_max_ms.max(self.webhook_backoff_ms),
            ),
            concurrency: usize::try_from(self.webhook_concurrency).unwrap_or(16),
            mark_sandbox: self.mark_sandbox,
        }
    }

    pub(super) fn retention(&self) -> Retention {
        Retention {
            keep_for: Duration::from_secs(self.webhook_retention_hours.saturating_mul(3600)),
            ..Retention::default()
        }
    }

    pub(super) fn global_endpoint(
        &self,
        guard: crate::outbound::Guard,
    ) -> Result<Option<Endpoint>, WebhookError> {
        let Some(url) = &self.global_url else {
            return Ok(None);
        };
        let secret = match &self.global_secret {
            Some(secret) => sign::parse_secret(secret).ok_or(WebhookError::InvalidSecret)?,
            None => return Err(WebhookError::InvalidSecret),
        };
        Ok(Some(Endpoint {
            url: endpoint::validate_url(guard, url)?,
            secret,
            events: validate_events(&self.global_events)?,
        }))
    }
}
