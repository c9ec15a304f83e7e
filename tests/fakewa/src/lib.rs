//! fakewa — a fake WhatsApp server that speaks the real protocol, for
//! wagate's tests and benchmarks. The real, unmodified `whatsapp-rust`
//! client (and Baileys) connect to it over `ws://127.0.0.1:PORT/ws/chat`.
//!
//! What it plays: the WhatsApp server (Noise XX / IK / XX-fallback, login,
//! start-up IQs, keepalive, stream errors), the phones of many accounts (QR
//! and pair-code linking, app-state key share) and any number of fake
//! contacts with real Signal identities (they decrypt what clients send and
//! send text to clients). Protocol reference:
//! `protocol/fake-whatsapp-server.md` beside DESIGN.md.
//!
//! Crate map:
//! - [`control`]: [`FakeServer`], the Rust API tests use, and the shared state;
//! - `transport`: accept loop, HTTP/WebSocket sniffing, one task per connection;
//! - `noise`: server side of the Noise handshakes and the frame cipher;
//! - `codec`: stanza encoding and reply builders;
//! - `router`: what the server answers to each stanza; login; message delivery;
//! - `accounts`: accounts, devices, live connections, queues (the registry);
//! - `phone`: pairing crypto (ADV identities, pair codes), key share;
//! - `contacts`: server-held Signal peers (contacts and phones);
//! - `admin_http`: the admin HTTP API on the same port (binary `fakewa`).
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), fakewa::FakeError> {
//! use std::time::Duration;
//! let srv = fakewa::FakeServer::start(fakewa::Config::default()).await?;
//! let url = srv.ws_url(); // give this to the client
//! # let qr_from_client = String::new();
//! let linked = srv.scan_qr(&qr_from_client).await?; // fresh 1555000NNNN account
//! srv.contact_send_text("15550002222", &linked.phone, "hi").await?;
//! let sent = srv
//!     .wait_for_sent_message(|m| m.text == "hello", Duration::from_secs(5))
//!     .await?;
//! srv.inject_stream_error(&linked.jid, fakewa::StreamErrorKind::Code503).await?;
//! assert!(srv.max_concurrent_connections(&linked.phone) <= 1);
//! # let _ = (url, sent); Ok(()) }
//! ```
//!
//! Client-side requirements (spec §0): `danger-skip-cert-chain-verify`
//! enabled from `[dev-dependencies]` only, `with_version(..)`, a push name.

mod accounts;
mod admin_http;
mod codec;
mod contacts;
pub mod control;
mod error;
mod noise;
mod phone;
mod router;
mod transport;

pub use control::{Config, Direction, FakeServer, Linked, SentMessage, Stanza, StreamErrorKind};
pub use error::{FakeError, Result};
pub use noise::HandshakePattern;
/// The stanza type recorded in [`Stanza`] (re-exported so tests need no direct dependency).
pub use wacore_binary::Node;
