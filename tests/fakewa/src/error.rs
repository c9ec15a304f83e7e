//! The fake server's error type.
//!
//! One enum for the whole crate: the fake is small and its callers (tests,
//! the admin HTTP API) only need to tell "you asked for something that does
//! not exist" from "the protocol exchange failed" and "it timed out".

use std::time::Duration;

/// Errors returned by the fake server's control API and protocol handlers.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// Binding or accepting on the listening socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A QR string or pair code that cannot be parsed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No client connection is waiting for the QR scan / pair code given.
    #[error("no client is waiting for this {0}")]
    NoPendingPairing(&'static str),
    /// The phone number or device JID is not a linked account/device.
    #[error("unknown account or device: {0}")]
    UnknownDevice(String),
    /// No stored media blob has this hash.
    #[error("unknown media: {0}")]
    UnknownMedia(String),
    /// The target has no live connection to act on.
    #[error("no live connection for {0}")]
    NotConnected(String),
    /// The client rejected or never finished a pairing step.
    #[error("pairing failed: {0}")]
    PairingFailed(String),
    /// A wait in the control API expired.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A protocol frame or stanza from a client could not be handled.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A Signal-protocol (libsignal) operation failed.
    #[error("signal error: {0}")]
    Signal(String),
}

impl FakeError {
    pub(crate) fn protocol(e: impl std::fmt::Display) -> Self {
        Self::Protocol(e.to_string())
    }

    pub(crate) fn signal(e: impl std::fmt::Display) -> Self {
        Self::Signal(e.to_string())
    }
}

/// Result alias of the crate.
pub type Result<T, E = FakeError> = std::result::Result<T, E>;
