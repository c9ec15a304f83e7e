//! Everything that touches whatsapp-rust: the storage `Backend` each
//! company's client runs on (on sled or PostgreSQL rows of [`crate::store`],
//! which knows no whatsapp-rust type), building the client itself (and sizing its caches),
//! and reading delivery facts (acks, receipts) out of its events.

pub mod backend;
pub mod cache;
pub mod client;
pub mod media;
pub mod outgoing;
#[cfg(any(feature = "test-server", feature = "sandbox"))]
pub mod plain_loopback;
pub mod receipts;
pub mod version;

pub use backend::{PgBackend, RowBackend, SledBackend, is_linked};
