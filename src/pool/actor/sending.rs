//! Sending through the live client: every kind of message and every action
//! on one (reaction, edit, delete), one send at a time per idempotency key,
//! with a timeout, answered to the caller when it finishes.
//!
//! The actor checks synchronously what it can refuse without the network
//! (state, idempotency key, that a `reply_to` or action target exists in the
//! chat) and then spawns the send, so a slow upload never blocks the
//! session's other commands. The spawned task checks that a phone recipient
//! is on WhatsApp (cached in [`Registrations`]), uploads media, sends, and
//! records the sent message id (`crate::store::sent`).

use std::sync::Arc;
use std::time::Duration;

use wacore_binary::Jid;
use waproto::whatsapp as wa;
use whatsapp_rust::Client;

use crate::domain::outgoing::{Action, Content};
use crate::domain::{CompanyId, MessageId, Recipient};
use crate::pool::error::PoolError;
use crate::pool::handle::{SendOp, SendRequest, Sent};
use crate::pool::registered::Registrations;
use crate::pool::state::SessionState;
use crate::store::{QuoteTarget, Store};
use crate::wa::outgoing::{Quote, Uploaded};

use super::{SessionActor, Signal};

/// A send the actor validated, ready to run on its own task.
struct Job {
    client: Arc<Client>,
    store: Store,
    company: CompanyId,
    registrations: Arc<Registrations>,
    chat: Recipient,
    op: SendOp,
    /// The `reply_to` or action target, found in the chat.
    target: Option<(MessageId, QuoteTarget)>,
    timeout: Duration,
}

impl SessionActor {
    pub(super) fn send(&mut self, request: SendRequest) {
        let SendRequest {
            chat,
            op,
            idempotency_key: key,
            reply,
        } = request;
        let state = self.state();
        let client = self.conn.as_ref().map(|c| c.client.clone());
        let (SessionState::Connected, Some(client)) = (state, client) else {
            let _ = reply.send(Err(PoolError::NotConnected { state }));
            return;
        };
        if let Some(key) = &key {
            match self.store.idempotent_message_id(&self.company, key) {
                Ok(Some(message_id)) => {
                    let _ = reply.send(Ok(Sent {
                        message_id,
                        to: chat.display(),
                        duplicate: true,
                    }));
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
            }
            if let Some(waiters) = self.in_flight.get_mut(key) {
                waiters.push(reply);
                return;
            }
        }
        let target = match self.find_target(&chat, &op) {
            Ok(target) => target,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let job = Job {
            client,
            store: self.store.clone(),
            company: self.company.clone(),
            registrations: self.registrations.clone(),
            chat,
            op,
            target,
            timeout: self.config.op_timeout,
        };
        let signals = self.signals_tx.clone();
        match key {
            Some(key) => {
                // The first caller waits like the later ones: the actor
                // answers all of them once the id is remembered.
                self.in_flight.insert(key.clone(), vec![reply]);
                tokio::spawn(async move {
                    let result = job.run().await;
                    let _ = signals.send(Signal::SendDone { key, result });
                });
            }
            None => {
                tokio::spawn(async move {
                    let _ = reply.send(job.run().await);
                });
            }
        }
    }

    /// The message a reply quotes or an action applies to, which must be in
    /// the chat; edits and deletes only of the gateway's own messages.
    fn find_target(
        &self,
        chat: &Recipient,
        op: &SendOp,
    ) -> Result<Option<(MessageId, QuoteTarget)>, PoolError> {
        let (id, own_only) = match op {
            SendOp::Message { reply_to: None, .. } => return Ok(None),
            SendOp::Message {
                reply_to: Some(id), ..
            } => (id, false),
            SendOp::Action { target, action } => (
                target,
                matches!(action, Action::Edit { .. } | Action::Revoke),
            ),
        };
        let found = self
            .store
            .quote_target(&self.company, &chat.jid(), id.as_str())?
            .ok_or(PoolError::MessageNotFound)?;
        if own_only && found != QuoteTarget::Sent {
            return Err(PoolError::NotOwnMessage);
        }
        Ok(Some((id.clone(), found)))
    }

    /// A keyed send finished: remember its id and answer the callers that
    /// waited on the same key.
    pub(super) fn finish_send(&mut self, key: String, result: Result<Sent, PoolError>) {
        if let Ok(sent) = &result
            && let Err(e) =
                self.store
                    .remember_idempotent_message_id(&self.company, &key, &sent.message_id)
        {
            tracing::error!(error = %e, "remembering an idempotency key failed");
        }
        let mut waiters = self.in_flight.remove(&key).unwrap_or_default().into_iter();
        let first = waiters.next();
        for waiter in waiters {
            let _ = waiter.send(match &result {
                Ok(sent) => Ok(Sent {
                    duplicate: true,
                    ..sent.clone()
                }),
                Err(e) => Err(PoolError::Send(e.to_string())),
            });
        }
        if let Some(first) = first {
            let _ = first.send(result);
        }
    }
}

impl Job {
    async fn run(self) -> Result<Sent, PoolError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.perform())
            .await
            .map_err(|_| PoolError::Timeout)?
    }

    async fn perform(self) -> Result<Sent, PoolError> {
        let chat_jid = self.chat.jid();
        let jid: Jid = chat_jid
            .parse()
            .map_err(|_| PoolError::Send("invalid recipient".to_owned()))?;
        if let Some(phone) = self.chat.phone() {
            let answer = self
                .registrations
                .check(&self.client, std::slice::from_ref(phone))
                .await?;
            if !answer.first().is_some_and(|a| a.on_whatsapp) {
                return Err(PoolError::NotOnWhatsApp);
            }
        }
        // A bounded LID↔phone cache may have dropped this chat's mapping.
        crate::wa::cache::rewarm_lid_mapping(&self.client, &jid).await;
        let to = self.chat.display();
        let message_id = match &self.op {
            SendOp::Message { content, .. } => {
                let quote = self.target.as_ref().map(|(id, found)| Quote {
                    message_id: id.to_string(),
                    sender: sender_jid(&self.client, found),
                });
                let uploaded = match content {
                    Content::Media { kind, file, .. } => Some(Uploaded {
                        response: crate::wa::media::upload(&self.client, file, *kind)
                            .await
                            .map_err(|e| PoolError::Send(format!("media upload failed: {e}")))?,
                    }),
                    _ => None,
                };
                let message =
                    crate::wa::outgoing::build(content, uploaded.as_ref(), quote.as_ref());
                let id = self.client.generate_message_id();
                let options = whatsapp_rust::SendOptions::default().with_message_id(id);
                let sent = self
                    .client
                    .send_message_with_options(jid, message, options)
                    .await
                    .map_err(|e| PoolError::Send(e.to_string()))?;
                self.remember(&chat_jid, &sent.message_id, content.kind_name());
                sent.message_id.clone()
            }
            SendOp::Action { target, action } => {
                let found = self.target.as_ref().map(|(_, found)| found.clone());
                match action {
                    Action::React { emoji } => {
                        let from_me = found == Some(QuoteTarget::Sent);
                        let participant = match &found {
                            Some(QuoteTarget::Received { sender }) if self.chat.is_group() => {
                                Some(sender.clone())
                            }
                            _ => None,
                        };
                        let key = wa::MessageKey {
                            remote_jid: Some(chat_jid.clone()),
                            from_me: Some(from_me),
                            id: Some(target.to_string()),
                            participant,
                        };
                        let sent = self
                            .client
                            .send_reaction(jid, key, emoji)
                            .await
                            .map_err(|e| PoolError::Send(e.to_string()))?;
                        sent.message_id.clone()
                    }
                    Action::Edit { text } => {
                        let content = wa::Message {
                            conversation: Some(text.as_str().to_owned()),
                            ..Default::default()
                        };
                        self.client
                            .edit_message(jid, target.to_string(), content)
                            .await
                            .map_err(|e| PoolError::Send(e.to_string()))?;
                        // An edit keeps the message's id.
                        target.to_string()
                    }
                    Action::Revoke => {
                        self.client
                            .revoke_message(jid, target.to_string(), Default::default())
                            .await
                            .map_err(|e| PoolError::Send(e.to_string()))?;
                        target.to_string()
                    }
                }
            }
        };
        Ok(Sent {
            message_id,
            to,
            duplicate: false,
        })
    }

    fn remember(&self, chat: &str, message_id: &str, kind: &str) {
        if let Err(error) = self
            .store
            .remember_sent_message(&self.company, chat, message_id, kind)
        {
            // The message is sent; only replies to it will not find it.
            tracing::error!(%error, "recording a sent message failed");
        }
    }
}

/// The JID a quote names as the quoted message's author.
fn sender_jid(client: &Client, found: &QuoteTarget) -> String {
    match found {
        QuoteTarget::Sent => client
            .pn()
            .map(|jid| jid.to_non_ad().to_string())
            .unwrap_or_default(),
        QuoteTarget::Received { sender } => sender.clone(),
    }
}
