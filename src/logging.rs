//! The process's log setup: `tracing` to stderr (stdout is reserved for the
//! one-time admin key notice), filtered by `RUST_LOG` — except whatsapp-rust's
//! own targets, which are pinned at `warn` whatever `RUST_LOG` says.
//!
//! Why pinned: whatsapp-rust and its crates log pairing material (pair
//! codes, QR references, keys' identifiers, phone numbers) at `info` and
//! below, and an operator raising `RUST_LOG` to debug wagate must not put
//! them in a log collector. A second filter ([`pinned_at_warn`]) is combined
//! with the `RUST_LOG` filter, so even a directive naming one of those
//! targets cannot raise it.

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{FilterExt as _, FilterFn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Log filter when `RUST_LOG` is unset (or not a valid filter).
pub const DEFAULT_LOG_FILTER: &str = "warn,wagate=info";

/// whatsapp-rust's log targets: its crates' module paths, and the explicit
/// `target:`s its `log` calls use (`Client/PairCode`, `Bot/…`, …), found
/// in whatsapp-rust and wacore 0.7's sources. A target matches when it is
/// one of these or continues it with `::` or `/`.
pub const PINNED_TARGETS: &[&str] = &[
    // Crates (module paths of calls without an explicit target).
    "whatsapp_rust",
    "whatsapp_rust_tokio_transport",
    "wacore",
    "wacore_appstate",
    "wacore_binary",
    "wacore_libsignal",
    "wacore_noise",
    "waproto",
    // Explicit targets.
    "AppState",
    "Blocking",
    "Bot",
    "Chatstate",
    "ChatstateHandler",
    "Client",
    "MessageQueue",
    "Mex",
    "PresenceHandler",
    "TcToken",
    "UnifiedSession",
    "blocklist",
    "usync",
];

/// Whether `target` is one of whatsapp-rust's ([`PINNED_TARGETS`]).
pub fn is_pinned(target: &str) -> bool {
    PINNED_TARGETS.iter().any(|pinned| {
        target
            .strip_prefix(pinned)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('/'))
    })
}

/// Lets through everything but whatsapp-rust's events below `warn`.
pub fn pinned_at_warn() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    FilterFn::new(|meta: &Metadata<'_>| !is_pinned(meta.target()) || *meta.level() <= Level::WARN)
}

/// The `RUST_LOG` filter from `directives` (else [`DEFAULT_LOG_FILTER`]).
pub fn env_filter(directives: Option<&str>) -> EnvFilter {
    directives
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// Installs the global subscriber: `format` lines on stderr, filtered by
/// `RUST_LOG` and [`pinned_at_warn`].
pub fn init_logging(format: LogFormat) {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = env_filter(directives.as_deref()).and(pinned_at_warn());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Pretty => layer.boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    // `try_init` fails only if a subscriber is already installed (tests). It
    // also routes the `log` crate (whatsapp-rust logs through it) here.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log lines written into a buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn targets_match_whole_segments() {
        for pinned in [
            "Client/PairCode",
            "Bot/PairCode",
            "Client",
            "whatsapp_rust::pair",
            "wacore_noise::handshake",
            "wacore",
            "usync",
        ] {
            assert!(is_pinned(pinned), "{pinned}");
        }
        for free in [
            "wagate",
            "wagate::pool",
            "Clients",
            "wacorex",
            "reqwest::connect",
        ] {
            assert!(!is_pinned(free), "{free}");
        }
    }

    #[test]
    fn rust_log_cannot_raise_whatsapp_rust_targets() {
        let captured = Captured::default();
        let writer = captured.clone();
        for directives in ["trace", "Client/PairCode=trace,whatsapp_rust=debug,trace"] {
            captured.0.lock().unwrap().clear();
            let filter = env_filter(Some(directives)).and(pinned_at_warn());
            let subscriber = tracing_subscriber::registry().with(
                tracing_subscriber::fmt::layer()
                    .with_writer({
                        let writer = writer.clone();
                        move || writer.clone()
                    })
                    .with_ansi(false)
                    .with_filter(filter),
            );
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!(target: "Client/PairCode", "pair code SECRET-1");
                tracing::debug!(target: "whatsapp_rust::pair", "noise key SECRET-2");
                tracing::warn!(target: "Client/PairCode", "a warning is kept");
                tracing::debug!(target: "wagate::pool", "wagate's own debug line");
            });
            let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert!(!text.contains("SECRET"), "{directives}: {text}");
            assert!(text.contains("a warning is kept"), "{directives}: {text}");
            assert!(
                text.contains("wagate's own debug line"),
                "{directives}: {text}"
            );
        }
    }

    #[test]
    fn the_default_applies_without_rust_log() {
        assert_eq!(
            env_filter(None).to_string(),
            EnvFilter::new(DEFAULT_LOG_FILTER).to_string()
        );
        assert_eq!(
            env_filter(Some("not a [filter")).to_string(),
            EnvFilter::new(DEFAULT_LOG_FILTER).to_string()
        );
    }
}
