//! wagate — a self-hosted, multi-tenant WhatsApp gateway.
//!
//! Crate map (each module's own docs say what it owns):
//! - [`app`]: wiring of the binary (store, admin key, pool, HTTP, restore, graceful shutdown).
//! - [`auth`]: the admin key and company tokens, and the extractors that check them.
//! - [`config`]: flags and `WAGATE_*` environment variables.
//! - [`domain`]: validated newtypes (`CompanyId`, `PhoneNumber`) parsed at the edge.
//! - [`store`]: the sled database: registry, per-company credentials, transitions, idempotency keys.
//! - [`http`]: the HTTP API v1 (axum router, one file per resource, the JSON error envelope, OpenAPI).
//! - [`metrics`]: Prometheus metrics (`GET /metrics`) and the names wagate records.
//! - [`open_files`]: the open-file limit, raised at start (one socket per connected session).
//! - [`outbound`]: the one guard on addresses the gateway connects to for tenants (webhook and media URLs).
//! - [`pairing`]: pairing links: signed, expiring links to the web page where a company's staff link its number (QR code or pair code).
//! - [`pb`]: prost types generated from `proto/wagate.proto` (stored records, emitted events).
//! - `sandbox` (feature `sandbox` only): `wagate --sandbox`, the fake WhatsApp server in this process.
//! - [`pool`]: the session pool: one actor per company owning its whatsapp-rust client, the state machine and stream-error policy.
//! - [`token`]: company API tokens (generation, SHA-256 hashing).
//! - [`wa`]: everything that touches whatsapp-rust (the sled storage `Backend`, client building, outgoing messages, media upload).
//! - [`webhook`]: inbound events: the durable outbox (via whatsapp-rust's inbound durability hook), signing, and the webhook dispatcher.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod open_files;
pub mod outbound;
pub mod pairing;
pub mod pb;
pub mod pool;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod store;
pub mod token;
pub mod wa;
pub mod webhook;
