//! Everything that touches whatsapp-rust: the sled storage `Backend` each
//! company's client runs on, and building the client itself.

pub mod client;
pub mod sled_backend;
