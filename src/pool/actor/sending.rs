//! Sending through the live client: one send at a time per idempotency key,
//! with a timeout, answered to the caller when it finishes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use whatsapp_rust::Client;

use crate::domain::PhoneNumber;
use crate::pool::error::PoolError;
use crate::pool::handle::Sent;
use crate::pool::state::SessionState;

use super::{SessionActor, Signal};

impl SessionActor {
    pub(super) fn send(
        &mut self,
        to: PhoneNumber,
        text: String,
        key: Option<String>,
        reply: oneshot::Sender<Result<Sent, PoolError>>,
    ) {
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
                        to: to.digits().to_owned(),
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
        let timeout = self.config.op_timeout;
        let signals = self.signals_tx.clone();
        match key {
            Some(key) => {
                // The first caller waits like the later ones: the actor
                // answers all of them once the id is remembered.
                self.in_flight.insert(key.clone(), vec![reply]);
                tokio::spawn(async move {
                    let result = send_text(&client, &to, text, timeout).await;
                    let _ = signals.send(Signal::SendDone { key, result });
                });
            }
            None => {
                tokio::spawn(async move {
                    let _ = reply.send(send_text(&client, &to, text, timeout).await);
                });
            }
        }
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

    // ----- status ----------------------------------------------------------------
}

async fn send_text(
    client: &Arc<Client>,
    to: &PhoneNumber,
    text: String,
    timeout: Duration,
) -> Result<Sent, PoolError> {
    use wacore::proto_helpers::MessageBuilderExt as _;
    let jid: wacore_binary::Jid = to
        .jid()
        .parse()
        .map_err(|_| PoolError::Send("invalid recipient".to_owned()))?;
    let message_id = client.generate_message_id();
    let options = whatsapp_rust::SendOptions::default().with_message_id(message_id);
    let sent = tokio::time::timeout(
        timeout,
        client.send_message_with_options(jid, waproto::whatsapp::Message::text(text), options),
    )
    .await
    .map_err(|_| PoolError::Timeout)?
    .map_err(|e| PoolError::Send(e.to_string()))?;
    Ok(Sent {
        message_id: sent.message_id,
        to: to.digits().to_owned(),
        duplicate: false,
    })
}
