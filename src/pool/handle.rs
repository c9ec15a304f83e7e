//! [`SessionHandle`]: the cheap, cloneable way to talk to one company's
//! session actor.
//!
//! Reads (`status`, `current_qr`, `watch_status`, `subscribe`) never touch the
//! actor: they read `watch`/`broadcast` channels the actor writes. Every
//! operation that changes something is a [`Command`] the actor executes in
//! order, so two callers can never race each other on one company's client
//! (DESIGN.md invariant 1).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::error::PoolError;
use super::state::{Qr, SessionEvent, SessionStatus};
use crate::domain::outgoing::{Action, ChatState, Content};
use crate::domain::{CompanyId, MessageId, MessageText, PhoneNumber, Recipient};

/// A message accepted by WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// WhatsApp's id of the message.
    pub message_id: String,
    /// The recipient: a phone's digits (E.164 without `+`), else its JID.
    pub to: String,
    /// True when an earlier send with the same idempotency key already sent
    /// this message; nothing was sent this time.
    pub duplicate: bool,
}

/// Outcome of one step of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step ran and succeeded.
    Done,
    /// Nothing to do (e.g. no linked device to log out).
    Skipped {
        /// The stable reason code.
        reason: String,
    },
    /// The step failed; the other steps still ran.
    Failed {
        /// What failed.
        error: String,
    },
}

/// What the actor did for a delete, before the pool removes the registry
/// record and queues.
#[derive(Debug, Clone)]
pub(crate) struct ActorDeleteOutcome {
    pub logout: StepOutcome,
    pub credentials: StepOutcome,
}

/// Why a session is being started (becomes the transition's reason code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartReason {
    /// A new company was just created.
    Created,
    /// An ensure on an existing, idle session.
    Ensure,
    /// Gateway start with stored credentials.
    Restored,
}

impl StartReason {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Ensure => "ensure",
            Self::Restored => "restored",
        }
    }
}

/// Requests the actor executes one at a time.
pub(crate) enum Command {
    /// Open a connection unless one is open, opening or scheduled, or the
    /// session waits for an explicit reconnect (`replaced`, `banned`,
    /// `outdated`). Replies with the status after the decision.
    Start {
        reason: StartReason,
        reply: oneshot::Sender<SessionStatus>,
    },
    PairCode {
        phone: PhoneNumber,
        reply: oneshot::Sender<Result<String, PoolError>>,
    },
    Reconnect {
        reply: oneshot::Sender<Result<SessionStatus, PoolError>>,
    },
    Logout {
        reply: oneshot::Sender<Result<(), PoolError>>,
    },
    /// Boxed: every session's command queue preallocates a block of slots
    /// the size of the largest variant, and this one is by far the largest.
    Send(Box<SendRequest>),
    /// Read receipts, chat state, contact checks (boxed like `Send`).
    Chat(Box<ChatRequest>),
    /// Log out on WhatsApp, wipe credentials and stop the actor.
    Delete {
        reply: oneshot::Sender<ActorDeleteOutcome>,
    },
    /// Disconnect (never log out) and stop the actor.
    Shutdown { reply: oneshot::Sender<()> },
}

/// The payload of [`Command::Send`]: anything that sends a message, so every
/// one of them honours the idempotency key the same way.
pub(crate) struct SendRequest {
    pub chat: Recipient,
    pub op: SendOp,
    pub idempotency_key: Option<String>,
    pub reply: oneshot::Sender<Result<Sent, PoolError>>,
}

/// What a [`SendRequest`] sends.
pub(crate) enum SendOp {
    /// A new message, optionally quoting `reply_to` (a message of the chat).
    Message {
        content: Content,
        reply_to: Option<MessageId>,
    },
    /// A reaction, edit or delete of `target` (a message of the chat).
    Action { target: MessageId, action: Action },
}

/// The payload of [`Command::Chat`].
pub(crate) enum ChatRequest {
    MarkRead {
        chat: Recipient,
        message_ids: Vec<MessageId>,
        reply: oneshot::Sender<Result<(), PoolError>>,
    },
    Presence {
        chat: Recipient,
        state: ChatState,
        reply: oneshot::Sender<Result<(), PoolError>>,
    },
    CheckContacts {
        phones: Vec<PhoneNumber>,
        reply: oneshot::Sender<Result<Vec<ContactCheck>, PoolError>>,
    },
}

/// Whether a phone number is on WhatsApp, as WhatsApp answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactCheck {
    /// The number asked about (digits).
    pub phone: String,
    /// It has a WhatsApp account.
    pub on_whatsapp: bool,
    /// Its phone JID, when on WhatsApp.
    pub jid: Option<String>,
    /// Its LID (`…@lid`), when WhatsApp told it.
    pub lid: Option<String>,
    /// It is a WhatsApp Business account.
    pub business: bool,
}

/// A handle to one company's session. Cheap to clone.
///
/// # Cancel safety
///
/// Every `async` method is cancel-safe in the sense that matters here: a
/// command that has been queued runs to completion in the actor even if the
/// caller's future is dropped (only the reply is lost), and a command dropped
/// before it was queued (while the bounded queue was full) never runs. A
/// cancelled `send_text` may therefore still send; retry it with the same
/// idempotency key.
#[derive(Clone)]
pub struct SessionHandle {
    inner: Arc<Inner>,
}

struct Inner {
    company: CompanyId,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<SessionStatus>,
    qr: watch::Receiver<Option<Qr>>,
    events: broadcast::Sender<SessionEvent>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("company", &self.inner.company)
            .finish_non_exhaustive()
    }
}

impl SessionHandle {
    pub(crate) fn new(
        company: CompanyId,
        commands: mpsc::Sender<Command>,
        status: watch::Receiver<SessionStatus>,
        qr: watch::Receiver<Option<Qr>>,
        events: broadcast::Sender<SessionEvent>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                company,
                commands,
                status,
                qr,
                events,
            }),
        }
    }

    /// The company this session belongs to.
    pub fn company(&self) -> &CompanyId {
        &self.inner.company
    }

    /// The current status snapshot.
    pub fn status(&self) -> SessionStatus {
        self.inner.status.borrow().clone()
    }

    /// A receiver that sees every status the actor publishes (latest wins).
    pub fn watch_status(&self) -> watch::Receiver<SessionStatus> {
        self.inner.status.clone()
    }

    /// Every event from now on (status changes, QR rotations, ...). A slow
    /// subscriber that falls behind gets `RecvError::Lagged` and continues.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.inner.events.subscribe()
    }

    /// The QR code to show, if the session is pairing and the code has not
    /// expired.
    pub fn current_qr(&self) -> Option<Qr> {
        let qr = self.inner.qr.borrow().clone()?;
        (qr.expires_at_ms > super::now_ms()).then_some(qr)
    }

    /// Whether the actor has stopped (deleted or shut down).
    pub fn is_closed(&self) -> bool {
        self.inner.commands.is_closed()
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, PoolError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .commands
            .send(make(reply))
            .await
            .map_err(|_| PoolError::Gone)?;
        rx.await.map_err(|_| PoolError::Gone)
    }

    pub(crate) async fn start(&self, reason: StartReason) -> Result<SessionStatus, PoolError> {
        self.call(|reply| Command::Start { reason, reply }).await
    }

    /// Link by phone number: returns the 8-character code the user types on
    /// the phone. Opens a connection first if none is open. Refused with
    /// `invalid_state` when the session is already linked.
    pub async fn pair_code(&self, phone: PhoneNumber) -> Result<String, PoolError> {
        self.call(|reply| Command::PairCode { phone, reply })
            .await?
    }

    /// Take the number back after `replaced` (or `banned`/`outdated`/
    /// `stopped`), or retry now while `reconnecting`. Returns once the new
    /// connection is being opened; watch the status for `connected`.
    pub async fn reconnect(&self) -> Result<SessionStatus, PoolError> {
        self.call(|reply| Command::Reconnect { reply }).await?
    }

    /// Unlink the device on WhatsApp, wipe its credentials, keep the company.
    pub async fn logout(&self) -> Result<(), PoolError> {
        self.call(|reply| Command::Logout { reply }).await?
    }

    /// Send a text message. With an `idempotency_key`, a repeated call returns
    /// the first call's message id (`duplicate: true`) and sends nothing.
    /// Fails with `not_connected` (and changes nothing) unless `connected`.
    pub async fn send_text(
        &self,
        to: PhoneNumber,
        text: String,
        idempotency_key: Option<String>,
    ) -> Result<Sent, PoolError> {
        let text = MessageText::parse(text).map_err(|e| PoolError::Send(e.message))?;
        self.send_message(to.into(), Content::Text(text), None, idempotency_key)
            .await
    }

    /// Send any kind of message to `chat`, quoting `reply_to` (a message of
    /// that chat the gateway sent or received: else `unknown_message`).
    /// Idempotent with a key, like [`SessionHandle::send_text`]. Phone
    /// recipients that are not on WhatsApp are refused (`not_on_whatsapp`).
    pub async fn send_message(
        &self,
        chat: Recipient,
        content: Content,
        reply_to: Option<MessageId>,
        idempotency_key: Option<String>,
    ) -> Result<Sent, PoolError> {
        self.send(chat, SendOp::Message { content, reply_to }, idempotency_key)
            .await
    }

    /// React to, edit or delete `target` in `chat` (idempotent with a key).
    /// Edits and deletes apply only to messages the gateway sent.
    pub async fn act(
        &self,
        chat: Recipient,
        target: MessageId,
        action: Action,
        idempotency_key: Option<String>,
    ) -> Result<Sent, PoolError> {
        self.send(chat, SendOp::Action { target, action }, idempotency_key)
            .await
    }

    async fn send(
        &self,
        chat: Recipient,
        op: SendOp,
        idempotency_key: Option<String>,
    ) -> Result<Sent, PoolError> {
        self.call(|reply| {
            Command::Send(Box::new(SendRequest {
                chat,
                op,
                idempotency_key,
                reply,
            }))
        })
        .await?
    }

    /// Send read receipts for `message_ids` of `chat`.
    pub async fn mark_read(
        &self,
        chat: Recipient,
        message_ids: Vec<MessageId>,
    ) -> Result<(), PoolError> {
        self.call(|reply| {
            Command::Chat(Box::new(ChatRequest::MarkRead {
                chat,
                message_ids,
                reply,
            }))
        })
        .await?
    }

    /// Show `state` (typing, recording, paused) in `chat`.
    pub async fn set_chat_state(&self, chat: Recipient, state: ChatState) -> Result<(), PoolError> {
        self.call(|reply| Command::Chat(Box::new(ChatRequest::Presence { chat, state, reply })))
            .await?
    }

    /// Ask WhatsApp which of `phones` are on WhatsApp.
    pub async fn check_contacts(
        &self,
        phones: Vec<PhoneNumber>,
    ) -> Result<Vec<ContactCheck>, PoolError> {
        self.call(|reply| Command::Chat(Box::new(ChatRequest::CheckContacts { phones, reply })))
            .await?
    }

    pub(crate) async fn delete(&self) -> Result<ActorDeleteOutcome, PoolError> {
        self.call(|reply| Command::Delete { reply }).await
    }

    pub(crate) async fn shutdown(&self) -> Result<(), PoolError> {
        self.call(|reply| Command::Shutdown { reply }).await
    }
}
