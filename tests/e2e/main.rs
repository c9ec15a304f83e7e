//! The end-to-end test binary: the gateway against the fake WhatsApp server
//! (`fakewa`) with the real, unmodified whatsapp-rust client. One binary for
//! the whole repository (one link step); each area of the gateway is a module.
//! The harness (the fake, a gateway, the `wagate` binary, a webhook receiver,
//! the waits) is the test support crate, [`test_support`] (`tests/support`).

/// The `wagate` binary cargo built for these tests (for
/// [`test_support::process::GatewayProcess`]).
const WAGATE: &str = env!("CARGO_BIN_EXE_wagate");

mod api;
mod browser;
mod caches;
mod console;
mod credentials;
mod deletion;
mod limits;
mod messaging;
mod ops;
mod outbound;
mod pairing;
mod pool;
mod sandbox;
mod status;
mod store;
mod store_key;
mod tenancy;
mod version;
mod webhooks;
