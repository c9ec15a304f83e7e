//! wagate's test support: one place that starts the fake WhatsApp server, a
//! gateway and a webhook receiver, used by the end-to-end tests
//! (`tests/e2e`), the benches (`benches/`) and the fake server's own tests
//! (`tests/fakewa/tests`, `tests/fakewa/examples`).
//!
//! | module | owns |
//! |---|---|
//! | [`wait`] | the one time limit, [`WAIT`], and the waiting helpers |
//! | [`fake`] | the fake server, and a real whatsapp-rust client ([`fake::TestClient`]) with its events recorded |
//! | [`gateway`] | a gateway in this process ([`gateway::spawn_app`]), its configuration, company ids, reopening a store |
//! | [`process`] | the `wagate` binary as a child process ([`process::GatewayProcess`]) |
//! | [`api`] | the HTTP client of the gateway's API ([`api::Api`]) and its event stream ([`api::Events`]) |
//! | [`webhook`] | a webhook receiver ([`webhook::Receiver`]): signatures, refusals, arrival times |
//!
//! Waiting is event-driven: session states and QR codes on the API's event
//! stream or the pool's status channel, a child's start on its log lines,
//! webhooks on the receiver's own notification, client events on the
//! client's recorder. [`wait::poll`] is for the few conditions nothing
//! signals; every caller says why.
//!
//! # Features
//!
//! `gateway` (default) builds the modules that start or talk to a gateway;
//! the fake's own tests turn it off and build without wagate.
//!
//! The client talks to the fake only when whatsapp-rust's
//! `danger-skip-cert-chain-verify` feature is on. This crate never enables it
//! (it is a workspace member: the feature would reach the release gateway);
//! each consumer's `[dev-dependencies]` does, for test, bench and example
//! builds only.

pub mod bench;
pub mod fake;
pub mod wait;

#[cfg(feature = "gateway")]
pub mod api;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "gateway")]
pub mod process;
#[cfg(feature = "gateway")]
pub mod webhook;

pub use wait::WAIT;
