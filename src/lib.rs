//! wagate — a self-hosted, multi-tenant WhatsApp gateway.
//!
//! Crate map (each module's own docs say what it owns):
//! - [`domain`]: validated newtypes (`CompanyId`, `PhoneNumber`) parsed at the edge.
//! - [`store`]: the sled database: registry, per-company credentials, transitions, idempotency keys.
//! - [`pb`]: prost types generated from `proto/wagate.proto` (stored records, emitted events).
//! - [`wa`]: everything that touches whatsapp-rust (the sled storage `Backend`, client building).

pub mod domain;
pub mod pb;
pub mod store;
pub mod wa;
