//! The gateway's configuration: command-line flags, each with a `WAGATE_*`
//! environment variable (the flag wins), validated before anything starts.
//!
//! The names and defaults are DESIGN.md's "Configuration" table; the extra
//! knobs (`--wa-version`, `--push-name`, `--shutdown-timeout`) are what a
//! deployment or a test needs to run without reaching WhatsApp's web site.
//!
//! Secrets: the admin key and the store key are never printed by `--help`
//! (`hide_env_values`) nor by `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::store::StoreKey;

/// wagate — a self-hosted, multi-tenant WhatsApp gateway.
#[derive(Clone, Parser)]
#[command(name = "wagate", version, about, long_about = None)]
pub struct Config {
    /// HTTP address to listen on.
    #[arg(long, env = "WAGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory of the sled database (sessions, credentials, queues).
    #[arg(long, env = "WAGATE_DATA_DIR", default_value = "sessions")]
    pub data_dir: PathBuf,

    /// Memory the store may use to cache database pages, in MiB. Idle linked
    /// sessions need a few KiB each; pages beyond this are read back from
    /// the file through the OS page cache.
    #[arg(long, env = "WAGATE_STORE_CACHE_MIB", default_value_t = crate::store::DEFAULT_CACHE_MIB, value_parser = clap::value_parser!(u64).range(4..=1_048_576))]
    pub store_cache_mib: u64,

    /// How long a send's `Idempotency-Key` is remembered, in hours: a retry
    /// with the same key within this time returns the first message id,
    /// after it the key is forgotten (pruned every 10 minutes).
    #[arg(long, env = "WAGATE_IDEMPOTENCY_TTL_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub idempotency_ttl_hours: u64,

    /// Admin API key (at least 32 characters). When absent, one is generated
    /// on first start, stored hashed in the data directory and shown once (on
    /// a terminal, else in the file `admin-key` in the data directory).
    #[arg(long, env = "WAGATE_ADMIN_KEY", hide_env_values = true, value_parser = parse_admin_key)]
    pub admin_key: Option<String>,

    /// Key that seals credentials at rest (device keys, Signal state,
    /// webhook secrets, the pairing-link key): 32 bytes as 64 hexadecimal
    /// characters (`openssl rand -hex 32`). Give it by environment or
    /// `--store-key-file`: a flag's value is visible to every local user in
    /// `ps`. Once a data directory is sealed, it opens only with this key;
    /// losing it means relinking every company.
    #[arg(long, env = "WAGATE_STORE_KEY", hide_env_values = true, value_parser = StoreKey::parse, conflicts_with = "store_key_file")]
    pub store_key: Option<StoreKey>,

    /// File holding the store key (64 hexadecimal characters), e.g. a
    /// systemd credential (`$CREDENTIALS_DIRECTORY/store-key`).
    #[arg(long, env = "WAGATE_STORE_KEY_FILE")]
    pub store_key_file: Option<PathBuf>,

    /// Public base URL of this gateway (base of pairing links). When absent,
    /// a pairing link is based on `http://` and the `Host` its request used.
    #[arg(long, env = "WAGATE_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Log output format.
    #[arg(long, env = "WAGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// WebSocket endpoint of WhatsApp; a fake server's URL in tests and
    /// benchmarks. Defaults to WhatsApp's own endpoint.
    #[arg(long, env = "WAGATE_WA_URL", value_parser = parse_ws_url)]
    pub wa_url: Option<String>,

    /// WhatsApp Web client version to announce, `MAJOR.MINOR.PATCH`
    /// (e.g. `2.3000.1023456789`). When absent the current one is fetched
    /// once for the process (cached in the store, refreshed daily).
    #[arg(long, env = "WAGATE_WA_VERSION", value_parser = parse_wa_version)]
    pub wa_version: Option<(u32, u32, u32)>,

    /// Where the current WhatsApp Web version is fetched from when
    /// `--wa-version` is absent. Defaults to WhatsApp's own
    /// (`https://web.whatsapp.com/sw.js`); a fake server's in tests.
    #[arg(long, env = "WAGATE_WA_VERSION_URL", value_parser = parse_public_url)]
    pub wa_version_url: Option<String>,

    /// Device name shown on the linked phone ("Linked devices").
    #[arg(long, env = "WAGATE_PUSH_NAME", default_value = "wagate")]
    pub push_name: String,

    /// Seconds allowed for a graceful shutdown (HTTP drain, then every
    /// session disconnected) before the process exits anyway.
    #[arg(long, env = "WAGATE_SHUTDOWN_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub shutdown_timeout: u64,

    /// Allow webhook and media URLs on private, loopback, link-local and
    /// other non-public addresses (`crate::outbound`). Off by default: a
    /// tenant must not reach the gateway's own network. For tests and
    /// single-tenant deployments only.
    #[arg(long, env = "WAGATE_ALLOW_PRIVATE_URLS", default_value_t = false)]
    pub allow_private_urls: bool,

    /// Webhook delivery (global webhook, retries).
    #[command(flatten)]
    pub webhooks: crate::webhook::WebhookOptions,

    /// Metrics and the liveness watchdog.
    #[command(flatten)]
    pub ops: OpsOptions,

    /// Pairing links (lifetimes).
    #[command(flatten)]
    pub pairing: crate::pairing::PairingOptions,

    /// HTTP server limits (timeouts, connections, open event streams).
    #[command(flatten)]
    pub http: crate::http::limits::HttpLimits,

    /// Media sends (size limit, URL fetching).
    #[command(flatten)]
    pub media: crate::http::MediaOptions,

    /// The per-company send rate limit.
    #[command(flatten)]
    pub sends: crate::http::send_rate::SendRateOptions,

    /// Sizes of each session's whatsapp-rust caches.
    #[command(flatten)]
    pub wa_cache: crate::wa::cache::WaCacheOptions,

    /// Sandbox mode: run a fake WhatsApp server in this process and connect
    /// to it instead of WhatsApp, with a simulated phone and contacts under
    /// `/v1/sandbox` (no phone needed). Only in a binary built with
    /// `--features sandbox`; the data directory defaults to
    /// `sessions-sandbox`, and webhooks may go to private addresses.
    #[arg(
        long,
        env = "WAGATE_SANDBOX",
        default_value_t = false,
        conflicts_with = "wa_url"
    )]
    pub sandbox: bool,
}

/// Metrics and the session liveness watchdog (`src/metrics.rs`,
/// `src/pool/watchdog.rs`). Timings are in milliseconds so tests can run
/// the watchdog in seconds.
#[derive(Clone, Debug, clap::Args)]
pub struct OpsOptions {
    /// Label per-session metrics with the company id. Off by default: one
    /// series per company multiplies the series count by the tenant count.
    #[arg(long, env = "WAGATE_METRICS_PER_COMPANY", default_value_t = false)]
    pub metrics_per_company: bool,

    /// How often the watchdog checks each connected session (ms).
    #[arg(long, env = "WAGATE_WATCHDOG_INTERVAL_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub watchdog_interval_ms: u64,

    /// Nothing received for this long → the watchdog sends a keepalive ping (ms).
    #[arg(long, env = "WAGATE_WATCHDOG_IDLE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub watchdog_idle_ms: u64,

    /// How long a watchdog ping may take (ms).
    #[arg(long, env = "WAGATE_WATCHDOG_PING_TIMEOUT_MS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub watchdog_ping_timeout_ms: u64,

    /// Consecutive failed pings that make a connected session reconnect
    /// (reason `keepalive_timeout`).
    #[arg(long, env = "WAGATE_WATCHDOG_MAX_FAILURES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub watchdog_max_failures: u32,

    /// Nothing received for this long makes a connected session reconnect
    /// (reason `stalled`) (ms).
    #[arg(long, env = "WAGATE_WATCHDOG_STALL_MS", default_value_t = 180_000, value_parser = clap::value_parser!(u64).range(500..=86_400_000))]
    pub watchdog_stall_ms: u64,

    /// Most linked sessions a restart connects at once; each holds its slot
    /// until it is logged in or has failed (it then retries on its own).
    #[arg(long, env = "WAGATE_RESTORE_CONCURRENCY", default_value_t = u32::from(crate::pool::DEFAULT_RESTORE_CONCURRENCY), value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub restore_concurrency: u32,
}

impl Default for OpsOptions {
    fn default() -> Self {
        let watchdog = crate::pool::WatchdogConfig::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            metrics_per_company: false,
            watchdog_interval_ms: ms(watchdog.interval),
            watchdog_idle_ms: ms(watchdog.idle_after),
            watchdog_ping_timeout_ms: ms(watchdog.ping_timeout),
            watchdog_max_failures: watchdog.max_failures,
            watchdog_stall_ms: ms(watchdog.stall_after),
            restore_concurrency: u32::from(crate::pool::DEFAULT_RESTORE_CONCURRENCY),
        }
    }
}

impl OpsOptions {
    /// The watchdog's timings.
    pub fn watchdog(&self) -> crate::pool::WatchdogConfig {
        crate::pool::WatchdogConfig {
            interval: Duration::from_millis(self.watchdog_interval_ms),
            idle_after: Duration::from_millis(self.watchdog_idle_ms),
            ping_timeout: Duration::from_millis(self.watchdog_ping_timeout_ms),
            max_failures: self.watchdog_max_failures,
            stall_after: Duration::from_millis(self.watchdog_stall_ms),
        }
    }
}

/// How log lines are written (to stderr; stdout is reserved for the one-time
/// admin key announcement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Config {
    /// The command line and environment, parsed and validated; exits with
    /// clap's message on bad input. Unlike [`Parser::parse`], it applies the
    /// defaults that change with `--sandbox` (see [`Config::try_parse_args_from`]).
    pub fn parse_args() -> Self {
        Self::try_parse_args_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }

    /// Parses `args` (and the environment). With `--sandbox`, a data
    /// directory neither flag nor environment named is
    /// [`SANDBOX_DATA_DIR`]: sandbox links never land beside real ones.
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let matches = Self::command().try_get_matches_from(args)?;
        let mut config = Self::from_arg_matches(&matches)?;
        let dir_given =
            matches.value_source("data_dir") != Some(clap::parser::ValueSource::DefaultValue);
        if config.sandbox && !dir_given {
            config.data_dir = PathBuf::from(SANDBOX_DATA_DIR);
        }
        Ok(config)
    }

    /// Points the gateway at a sandbox's fake WhatsApp server (`wa_url`, and
    /// `version_url` unless a version source was configured), and lets
    /// webhooks reach loopback receivers (an integrator's test server).
    pub fn use_sandbox(&mut self, wa_url: String, version_url: String) {
        self.wa_url = Some(wa_url);
        if self.wa_version.is_none() && self.wa_version_url.is_none() {
            self.wa_version_url = Some(version_url);
        }
        self.allow_private_urls = true;
        self.webhooks.mark_sandbox = true;
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The guard on outbound addresses (webhooks, media URLs).
    pub fn outbound(&self) -> crate::outbound::Guard {
        crate::outbound::Guard::new(self.allow_private_urls)
    }

    /// The store key: `--store-key`, else read from `--store-key-file`.
    pub fn store_key(&self) -> Result<Option<StoreKey>, String> {
        if let Some(key) = &self.store_key {
            return Ok(Some(key.clone()));
        }
        let Some(path) = &self.store_key_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|error| {
            format!("cannot read the store key file {}: {error}", path.display())
        })?;
        StoreKey::parse(&text)
            .map(Some)
            .map_err(|error| format!("the store key file {}: {error}", path.display()))
    }

    /// The time allowed for each shutdown stage.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }
}

/// Redacts the admin key and the store key.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("store_cache_mib", &self.store_cache_mib)
            .field("idempotency_ttl_hours", &self.idempotency_ttl_hours)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("store_key", &self.store_key)
            .field("store_key_file", &self.store_key_file)
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("wa_url", &self.wa_url)
            .field("wa_version", &self.wa_version)
            .field("wa_version_url", &self.wa_version_url)
            .field("push_name", &self.push_name)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("allow_private_urls", &self.allow_private_urls)
            .field("webhooks", &self.webhooks)
            .field("ops", &self.ops)
            .field("pairing", &self.pairing)
            .field("media", &self.media)
            .field("sends", &self.sends)
            .field("wa_cache", &self.wa_cache)
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

/// The data directory of `--sandbox` when none is given (the sandbox
/// module's `DATA_DIR`, named here so a default build knows it too).
pub const SANDBOX_DATA_DIR: &str = "sessions-sandbox";

/// The shortest admin key accepted: shorter keys are guessable.
pub const MIN_ADMIN_KEY_LEN: usize = 32;

fn parse_admin_key(raw: &str) -> Result<String, String> {
    if raw.len() < MIN_ADMIN_KEY_LEN {
        return Err(format!(
            "the admin key must be at least {MIN_ADMIN_KEY_LEN} characters long"
        ));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the admin key may contain only visible ASCII characters".into());
    }
    Ok(raw.to_owned())
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    parse_url(raw, ["http://", "https://"], "https://wa.example.com")
}

fn parse_ws_url(raw: &str) -> Result<String, String> {
    parse_url(raw, ["ws://", "wss://"], "ws://127.0.0.1:9000/ws/chat")
}

/// A URL with one of `schemes` and a host (no whitespace).
fn parse_url(raw: &str, schemes: [&str; 2], example: &str) -> Result<String, String> {
    let rest = schemes
        .iter()
        .find_map(|scheme| raw.strip_prefix(scheme))
        .ok_or_else(|| format!("the URL must start with {} or {}", schemes[0], schemes[1]))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(format!("the URL must name a host, e.g. {example}"));
    }
    Ok(raw.to_owned())
}

fn parse_wa_version(raw: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<&str> = raw.split('.').collect();
    let [major, minor, patch] = parts.as_slice() else {
        return Err("expected MAJOR.MINOR.PATCH, e.g. 2.3000.1023456789".into());
    };
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("`{s}` is not a version number"))
    };
    Ok((num(major)?, num(minor)?, num(patch)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("wagate").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_design() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("sessions"));
        assert_eq!(config.store_cache_mib, crate::store::DEFAULT_CACHE_MIB);
        assert_eq!(config.idempotency_ttl_hours, 24);
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        assert!(
            config.admin_key.is_none() && config.wa_url.is_none() && config.wa_version.is_none()
        );
        assert_eq!(
            config.ops.watchdog(),
            crate::pool::WatchdogConfig::default(),
            "one source of defaults"
        );
        assert!(!config.ops.metrics_per_company);
        assert!(
            !config.outbound().allows_private(),
            "private addresses are refused unless allowed"
        );
        assert!(
            parse(&["--allow-private-urls"])
                .unwrap()
                .outbound()
                .allows_private()
        );
        assert!(
            parse(&["--webhook-refuse-private"]).is_err(),
            "the old flag is gone"
        );
    }

    #[test]
    fn sandbox_has_its_own_data_dir_unless_one_is_given() {
        let args = |extra: &[&'static str]| {
            std::iter::once("wagate")
                .chain(extra.iter().copied())
                .collect::<Vec<_>>()
        };
        let sandbox = Config::try_parse_args_from(args(&["--sandbox"])).unwrap();
        assert!(sandbox.sandbox);
        assert_eq!(sandbox.data_dir, PathBuf::from(SANDBOX_DATA_DIR));
        let chosen =
            Config::try_parse_args_from(args(&["--sandbox", "--data-dir", "sessions"])).unwrap();
        assert_eq!(
            chosen.data_dir,
            PathBuf::from("sessions"),
            "an explicit dir wins"
        );
        let real = Config::try_parse_args_from(args(&[])).unwrap();
        assert!(!real.sandbox);
        assert_eq!(real.data_dir, PathBuf::from("sessions"));
        assert!(
            Config::try_parse_args_from(args(&["--sandbox", "--wa-url", "ws://127.0.0.1:9/ws"]))
                .is_err(),
            "the sandbox runs its own WhatsApp"
        );
    }

    #[test]
    fn flags_are_validated() {
        let config = parse(&[
            "--admin-key",
            "0123456789abcdef0123456789abcdef",
            "--wa-url",
            "ws://127.0.0.1:9/ws/chat",
            "--wa-version",
            "2.3000.7",
            "--log-format",
            "json",
            "--public-url",
            "https://wa.example.com/",
        ])
        .unwrap();
        assert_eq!(config.wa_version, Some((2, 3000, 7)));
        assert_eq!(config.public_url(), "https://wa.example.com");
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(
            !format!("{config:?}").contains("0123456789abcdef"),
            "Debug must redact the admin key"
        );
        assert!(config.store_key().unwrap().is_none());

        for bad in [
            &["--admin-key", "short"][..],
            &["--admin-key", "0123456789abcdef0123456789abcde"],
            &["--wa-url", "http://x"],
            &["--wa-version", "2.3000"],
            &["--public-url", "wa.example.com"],
            &["--listen", "nope"],
            &["--log-format", "xml"],
            &["--shutdown-timeout", "0"],
            &["--store-cache-mib", "0"],
            &["--store-cache-mib", "lots"],
            &["--idempotency-ttl-hours", "0"],
            &["--idempotency-ttl-hours", "9000"],
            &["--store-key", "not-hex"],
            &["--store-key", &"ab".repeat(31)],
            &["--store-key", KEY_HEX, "--store-key-file", "/k"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn whatsapp_cache_sizes_are_settings_with_bounded_defaults() {
        use crate::wa::cache::WaCacheOptions;
        assert_eq!(parse(&[]).unwrap().wa_cache, WaCacheOptions::default());
        let config = parse(&[
            "--wa-lid-cache-capacity",
            "0",
            "--wa-lid-cache-idle-mins",
            "90",
            "--wa-chat-lanes",
            "8",
            "--wa-session-locks",
            "16",
            "--wa-device-cache-capacity",
            "32",
        ])
        .unwrap();
        assert_eq!(
            config.wa_cache,
            WaCacheOptions {
                wa_lid_cache_capacity: 0,
                wa_lid_cache_idle_mins: 90,
                wa_chat_lanes: 8,
                wa_session_locks: 16,
                wa_device_cache_capacity: 32,
            }
        );
        for bad in [
            &["--wa-chat-lanes", "0"][..],
            &["--wa-session-locks", "0"],
            &["--wa-device-cache-capacity", "0"],
            &["--wa-lid-cache-capacity", "-1"],
            &["--wa-lid-cache-idle-mins", "lots"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
        // Each has its documented environment variable.
        use clap::CommandFactory as _;
        let command = Config::command();
        let envs: Vec<String> = command
            .get_arguments()
            .filter(|a| a.get_id().as_str().starts_with("wa_") && a.get_id() != "wa_url")
            .filter(|a| !a.get_id().as_str().starts_with("wa_version"))
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            envs,
            [
                "WAGATE_WA_LID_CACHE_CAPACITY",
                "WAGATE_WA_LID_CACHE_IDLE_MINS",
                "WAGATE_WA_CHAT_LANES",
                "WAGATE_WA_SESSION_LOCKS",
                "WAGATE_WA_DEVICE_CACHE_CAPACITY",
            ]
        );
    }

    #[test]
    fn the_store_key_comes_from_the_flag_or_a_file_and_is_never_printed() {
        let config = parse(&["--store-key", KEY_HEX]).unwrap();
        assert!(config.store_key().unwrap().is_some());
        assert!(!format!("{config:?}").contains("aabbccdd"), "{config:?}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store-key");
        std::fs::write(&file, format!("{KEY_HEX}\n")).unwrap();
        let config = parse(&["--store-key-file", file.to_str().unwrap()]).unwrap();
        assert!(
            config.store_key().unwrap().is_some(),
            "a trailing newline is fine"
        );

        std::fs::write(&file, "short\n").unwrap();
        let error = config.store_key().unwrap_err();
        assert!(error.contains("64 hexadecimal characters"), "{error}");
        let missing = parse(&["--store-key-file", "/nonexistent/store-key"]).unwrap();
        assert!(missing.store_key().unwrap_err().contains("cannot read"));
    }
}
