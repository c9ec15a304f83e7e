//! Errors of the session pool layer.
//!
//! Each variant has a stable snake_case [`PoolError::code`] that the HTTP layer
//! maps to a status and returns to API clients; the `Display` text is for
//! humans and never contains secrets (phone numbers, codes, bodies).

use super::state::SessionState;

/// Why a pool or session operation was refused or failed; each variant has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The operation needs a `connected` session (HTTP 409).
    #[error("the session is not connected (state: {state})")]
    NotConnected {
        /// The session's state.
        state: SessionState,
    },
    /// The operation needs a session in another state, e.g. a pair code while
    /// already linked (HTTP 409).
    #[error("not possible while the session is {state}")]
    InvalidState {
        /// The session's state.
        state: SessionState,
    },
    /// No such company in the registry (HTTP 404).
    #[error("unknown company")]
    UnknownCompany,
    /// A pair code was requested too soon after the previous one (HTTP 429,
    /// with `Retry-After`).
    #[error("a pair code was just requested; ask again in {}s", retry_after.as_secs().max(1))]
    TooSoon {
        /// How long until a new code may be asked for.
        retry_after: std::time::Duration,
    },
    /// Another operation on this company is in progress (a delete) (HTTP 409).
    #[error("another operation on this company is in progress")]
    Busy,
    /// The session's actor has stopped (the company is being deleted or the
    /// gateway is shutting down) (HTTP 503).
    #[error("the session is shutting down")]
    Gone,
    /// The operation did not finish in time (HTTP 504).
    #[error("the operation timed out")]
    Timeout,
    /// The phone number has no WhatsApp account (HTTP 422).
    #[error("this number is not on WhatsApp")]
    NotOnWhatsApp,
    /// The message id names no message the gateway sent or received in that
    /// chat (HTTP 404).
    #[error("no such message in this chat")]
    MessageNotFound,
    /// Edits and deletes apply only to messages the gateway sent (HTTP 422).
    #[error("only messages this number sent can be edited or deleted")]
    NotOwnMessage,
    /// Sending failed on WhatsApp's side or in the client (HTTP 502).
    #[error("sending failed: {0}")]
    Send(String),
    /// WhatsApp or the client refused a pairing step (HTTP 502).
    #[error("pairing failed: {0}")]
    Pairing(String),
    /// Building or driving the whatsapp-rust client failed (HTTP 500).
    #[error("whatsapp client error: {0}")]
    Client(String),
    /// The store failed (HTTP 500).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// No random token could be generated (HTTP 500).
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
}

impl PoolError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConnected { .. } => "not_connected",
            Self::InvalidState { .. } => "invalid_state",
            Self::UnknownCompany => "unknown_company",
            Self::Busy => "busy",
            Self::TooSoon { .. } => "rate_limited",
            Self::Gone => "session_gone",
            Self::Timeout => "timeout",
            Self::NotOnWhatsApp => "not_on_whatsapp",
            Self::MessageNotFound => "unknown_message",
            Self::NotOwnMessage => "not_own_message",
            Self::Send(_) => "send_failed",
            Self::Pairing(_) => "pairing_failed",
            Self::Client(_) => "client_error",
            Self::Store(_) => "store_error",
            Self::Token(_) => "token_error",
        }
    }
}
