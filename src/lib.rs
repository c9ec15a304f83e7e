//! wagate — a self-hosted, multi-tenant WhatsApp gateway.
//!
//! Crate map (each module's own docs say what it owns):
//! - [`domain`]: validated newtypes (`CompanyId`, `PhoneNumber`) parsed at the edge.

pub mod domain;
