//! Chat-level calls that send no message: read receipts, chat state
//! ("typing…") and contact checks. Each runs on its own task with the
//! operation timeout, so a slow answer never blocks the session.

use std::future::Future;

use tokio::sync::oneshot;
use wacore_binary::Jid;
use whatsapp_rust::features::ChatStateType;

use super::super::error::PoolError;
use super::super::handle::ChatRequest;
use super::super::state::SessionState;
use super::SessionActor;
use crate::domain::Recipient;
use crate::domain::outgoing::ChatState;
use crate::store::QuoteTarget;

impl SessionActor {
    pub(super) fn chat(&mut self, request: ChatRequest) {
        let state = self.state();
        let client = self.conn.as_ref().map(|c| c.client.clone());
        let (SessionState::Connected, Some(client)) = (state, client) else {
            let refused = PoolError::NotConnected { state };
            match request {
                ChatRequest::MarkRead { reply, .. } | ChatRequest::Presence { reply, .. } => {
                    let _ = reply.send(Err(refused));
                }
                ChatRequest::CheckContacts { reply, .. } => {
                    let _ = reply.send(Err(refused));
                }
            }
            return;
        };
        let timeout = self.config.op_timeout;
        match request {
            ChatRequest::MarkRead {
                chat,
                message_ids,
                reply,
            } => {
                // In a group, a receipt names the sender of each message.
                let mut by_sender: Vec<(Option<String>, Vec<String>)> = Vec::new();
                for id in message_ids {
                    let sender = if chat.is_group() {
                        match self
                            .store
                            .quote_target(&self.company, &chat.jid(), id.as_str())
                        {
                            Ok(Some(QuoteTarget::Received { sender })) => Some(sender),
                            Ok(_) => {
                                let _ = reply.send(Err(PoolError::MessageNotFound));
                                return;
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e.into()));
                                return;
                            }
                        }
                    } else {
                        None
                    };
                    match by_sender.iter_mut().find(|(s, _)| *s == sender) {
                        Some((_, ids)) => ids.push(id.to_string()),
                        None => by_sender.push((sender, vec![id.to_string()])),
                    }
                }
                spawn_answer(reply, timeout, async move {
                    let jid = chat_jid(&chat)?;
                    crate::wa::cache::rewarm_lid_mapping(&client, &jid).await;
                    for (sender, ids) in by_sender {
                        let sender: Option<Jid> = sender.and_then(|s| s.parse().ok());
                        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                        client
                            .mark_as_read(&jid, sender.as_ref(), &ids)
                            .await
                            .map_err(|e| PoolError::Send(e.to_string()))?;
                    }
                    Ok(())
                });
            }
            ChatRequest::Presence { chat, state, reply } => {
                spawn_answer(reply, timeout, async move {
                    let jid = chat_jid(&chat)?;
                    crate::wa::cache::rewarm_lid_mapping(&client, &jid).await;
                    let state = match state {
                        ChatState::Composing => ChatStateType::Composing,
                        ChatState::Recording => ChatStateType::Recording,
                        ChatState::Paused => ChatStateType::Paused,
                    };
                    client
                        .chatstate()
                        .send(&jid, state)
                        .await
                        .map_err(|e| PoolError::Send(e.to_string()))
                });
            }
            ChatRequest::CheckContacts { phones, reply } => {
                let registrations = self.registrations.clone();
                spawn_answer(reply, timeout, async move {
                    registrations.check(&client, &phones).await
                });
            }
        }
    }
}

fn chat_jid(chat: &Recipient) -> Result<Jid, PoolError> {
    chat.jid()
        .parse()
        .map_err(|_| PoolError::Send("invalid recipient".to_owned()))
}

/// Runs `work` on its own task, bounded by `timeout`, and answers `reply`.
fn spawn_answer<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, PoolError>>,
    timeout: std::time::Duration,
    work: impl Future<Output = Result<T, PoolError>> + Send + 'static,
) {
    tokio::spawn(async move {
        let result = tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(PoolError::Timeout));
        let _ = reply.send(result);
    });
}
