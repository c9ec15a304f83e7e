//! What a linked client shows about itself: chat states ("typing…",
//! "recording audio…", paused) it sends to a chat, and its own presence
//! (available / unavailable). Both are fire-and-forget stanzas the real
//! server relays without answering; here the receivers are server-held
//! contacts, so relaying is recording.
//!
//! Wire formats (whatsapp-rust 0.7 `features/chatstate.rs` and
//! `features/presence.rs`, as WhatsApp Web and whatsmeow send them):
//! - `<chatstate to="CHAT"><composing/></chatstate>`; recording audio is
//!   `<composing media="audio"/>` (there is no `<recording/>` element on the
//!   wire); `<paused/>` ends either.
//! - `<presence type="available|unavailable" name="PUSH NAME"/>`; the client
//!   sends `available` by itself at every login that is not the first one
//!   after pairing. `subscribe` / `unsubscribe` presences (with `to`) ask
//!   for someone else's presence and are not recorded.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wacore_binary::{Node, Server};

use crate::codec::{attr, opt_attr};
use crate::control::{FakeServer, Shared};
use crate::error::Result;
use crate::router::{ConnCtx, jid_attr, phone_of};

/// A chat state a linked client sent (entries of `GET /admin/chatstates`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatState {
    /// The account (phone number).
    pub from: String,
    /// The chat: the contact's phone number (also when addressed by LID),
    /// or the group JID (`…@g.us`).
    pub to: String,
    /// `composing`, `recording` (`<composing media="audio"/>`) or `paused`.
    pub state: String,
}

/// A presence a linked client announced (entries of `GET /admin/presences`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceUpdate {
    /// The account (phone number).
    pub from: String,
    /// `available` or `unavailable`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The push name the client sent with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The state a `<chatstate>` carries, in the admin API's spelling.
fn state_of(chatstate: &Node) -> Option<&'static str> {
    let child = chatstate.children()?.first()?;
    match child.tag.as_ref() {
        "composing" if opt_attr(child, "media").as_deref() == Some("audio") => Some("recording"),
        "composing" => Some("composing"),
        "paused" => Some("paused"),
        _ => None,
    }
}

/// Records a client's `<chatstate>`. Malformed ones are logged and dropped,
/// as the real server drops them (there is nothing to answer).
pub(crate) fn record_chat_state(shared: &Arc<Shared>, ctx: &ConnCtx, node: &Node) -> Result<()> {
    let Some(own) = ctx.device.as_ref() else {
        return Ok(());
    };
    let (Some(chat), Some(state)) = (jid_attr(node, "to"), state_of(node)) else {
        tracing::warn!(conn.id = ctx.id, "malformed chatstate: not recorded");
        return Ok(());
    };
    let to = match chat.server {
        Server::Pn | Server::Lid => phone_of(shared, &chat),
        _ => chat.to_non_ad().to_string(),
    };
    shared.journal.lock().chat_states.push(ChatState {
        from: own.phone.clone(),
        to,
        state: state.to_string(),
    });
    shared.notify();
    Ok(())
}

/// Records a client's own `<presence type="available|unavailable">`.
pub(crate) fn record_presence(shared: &Arc<Shared>, ctx: &ConnCtx, node: &Node) -> Result<()> {
    let Some(own) = ctx.device.as_ref() else {
        return Ok(());
    };
    let kind = attr(node, "type");
    if !matches!(kind.as_str(), "available" | "unavailable") || node.attrs.get("to").is_some() {
        return Ok(());
    }
    shared.journal.lock().presences.push(PresenceUpdate {
        from: own.phone.clone(),
        kind,
        name: opt_attr(node, "name"),
    });
    shared.notify();
    Ok(())
}

impl FakeServer {
    /// Chat states clients sent, in arrival order.
    pub fn chat_states(&self) -> Vec<ChatState> {
        self.shared.journal.lock().chat_states.clone()
    }

    /// Waits until at least `count` recorded chat states match `pred`
    /// (states recorded before the call count too); returns them.
    pub async fn wait_for_chat_states(
        &self,
        pred: impl Fn(&ChatState) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ChatState>> {
        self.shared
            .wait_for_entries(|j| &j.chat_states, pred, count, timeout)
            .await
    }

    /// Presences clients announced, in arrival order.
    pub fn presences(&self) -> Vec<PresenceUpdate> {
        self.shared.journal.lock().presences.clone()
    }

    /// Waits for a recorded presence matching `pred` (earlier ones count too).
    pub async fn wait_for_presence(
        &self,
        pred: impl Fn(&PresenceUpdate) -> bool,
        timeout: Duration,
    ) -> Result<PresenceUpdate> {
        let shared = &self.shared;
        shared
            .wait_until(timeout, || {
                shared
                    .journal
                    .lock()
                    .presences
                    .iter()
                    .find(|p| pred(p))
                    .cloned()
            })
            .await
    }
}
