//! Everything that touches whatsapp-rust: the sled storage `Backend` each
//! company's client runs on (built on top of [`crate::store`], which knows no
//! whatsapp-rust type), and building the client itself.

pub mod backend;
pub mod client;
pub mod media;
pub mod outgoing;

pub use backend::{SledBackend, is_linked};
