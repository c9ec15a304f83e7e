//! The end-to-end test binary: the gateway against the fake WhatsApp server
//! (`fakewa`) with the real, unmodified whatsapp-rust client. One binary for
//! the whole repository (one link step); each area of the gateway is a module.
//! The harness is in [`support`].

mod support;

mod api;
mod ops;
mod pairing;
mod pool;
mod store;
mod webhooks;
