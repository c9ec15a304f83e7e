//! Linking by phone number: the actor's side of `POST …/pair-code` (one code
//! outstanding at a time, a new request withdraws it, at most one per interval).

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::domain::PhoneNumber;
use crate::pool::error::PoolError;
use crate::pool::state::SessionState;

use super::SessionActor;

impl SessionActor {
    pub(super) async fn pair_code(
        &mut self,
        phone: PhoneNumber,
        reply: oneshot::Sender<Result<String, PoolError>>,
    ) {
        let state = self.state();
        match state {
            SessionState::Stopped | SessionState::LoggedOut => {
                self.transition(SessionState::Connecting, "pair_code_requested");
                self.backoff.reset();
                self.connect().await;
            }
            SessionState::Pairing | SessionState::Connecting => {}
            _ => {
                let _ = reply.send(Err(PoolError::InvalidState { state }));
                return;
            }
        }
        let Some(client) = self
            .conn
            .as_ref()
            .filter(|c| c.run.is_some())
            .map(|c| c.client.clone())
        else {
            let _ = reply.send(Err(PoolError::InvalidState {
                state: self.state(),
            }));
            return;
        };
        if client.pn().is_some() {
            let _ = reply.send(Err(PoolError::InvalidState {
                state: self.state(),
            }));
            return;
        }
        // A new code replaces the earlier one (below), so a burst of requests
        // would keep invalidating the code someone is typing, and WhatsApp
        // throttles codes per number: at most one per interval.
        let now = Instant::now();
        if let Some(last) = self.last_pair_code {
            let ready_at = last + self.config.pair_code_interval;
            if now < ready_at {
                let _ = reply.send(Err(PoolError::TooSoon {
                    retry_after: ready_at - now,
                }));
                return;
            }
        }
        self.last_pair_code = Some(now);
        let timeout = self.config.op_timeout;
        // Off the actor: PBKDF2 and a server round trip take a while, and the
        // actor must keep handling events (the QR keeps rotating meanwhile).
        tokio::spawn(async move {
            let result = async {
                client
                    .wait_for_socket(timeout)
                    .await
                    .map_err(|e| PoolError::Pairing(e.to_string()))?;
                // A code still outstanding (a lost page, a mistyped number)
                // would make whatsapp-rust refuse the new request for its
                // whole validity window; the caller asked for a new code, so
                // the earlier one is withdrawn (it stops working).
                client.cancel_pair_code().await;
                let options = wacore::pair_code::PairCodeOptions {
                    phone_number: phone.digits().to_owned(),
                    ..Default::default()
                };
                tokio::time::timeout(timeout, client.pair_with_code(options))
                    .await
                    .map_err(|_| PoolError::Timeout)?
                    .map_err(|e| PoolError::Pairing(e.to_string()))
            }
            .await;
            let _ = reply.send(result);
        });
    }
}
