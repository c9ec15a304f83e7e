//! Read and played receipts that linked clients send for messages they
//! received from fake contacts (`Client::mark_as_read` /
//! `mark_as_played`), recorded as the contact would see them.
//!
//! Wire format (whatsapp-rust 0.7 `receipt.rs` `build_read_receipt_node`,
//! the same as WhatsApp Web and whatsmeow's `MarkRead`):
//! `<receipt to="CHAT" type="read" id="FIRST" t="…" [participant="SENDER"]>
//! [<list><item id="…"/>…</list>]</receipt>` — the first id on the stanza,
//! the others (at most 255 more) in `<list>`; `participant` names the
//! sender of a group message. `read-self` / `played-self` are the variants
//! that do not notify the sender (read receipts switched off in privacy,
//! newsletters); they are recorded too, so a test can tell them apart.
//!
//! The real server relays a receipt to the sender's devices; here the
//! sender is a server-held contact, so "relaying" is recording it, with the
//! ids the contact cannot match (it never sent them to that account) listed
//! separately, as a phone would ignore them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wacore_binary::{Node, Server};

use crate::codec::{attr, opt_attr};
use crate::control::{FakeServer, Shared};
use crate::error::Result;
use crate::router::{ConnCtx, jid_attr, phone_of};

/// Receipt types that report reading or playing (delivery, `retry`,
/// `peer_msg`, `sender`, `inactive` are the client's own bookkeeping).
const RECORDED_TYPES: [&str; 4] = ["read", "read-self", "played", "played-self"];

/// A read or played receipt a linked client sent (entries of
/// `GET /admin/receipts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReceipt {
    /// The account that read (phone number).
    pub from: String,
    /// The chat: the contact's phone number (also when the client addressed
    /// its LID), or the group JID (`…@g.us`).
    pub to: String,
    /// Every message id the receipt names, in order (the stanza's `id`
    /// first, then its `<list>`).
    pub ids: Vec<String>,
    /// `read`, `read-self`, `played` or `played-self`.
    #[serde(rename = "type")]
    pub kind: String,
    /// In a group: the phone number of the sender of the messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Ids of `ids` the contact (`to`, or `participant` in a group) never
    /// sent to `from`: it cannot match them to a message of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_ids: Vec<String>,
}

/// Records a client's `<receipt>` if it is a read or played receipt; every
/// other type is ignored here (the caller acknowledges all of them).
pub(crate) fn record(shared: &Arc<Shared>, ctx: &ConnCtx, receipt: &Node) -> Result<()> {
    let (Some(kind), Some(own)) = (opt_attr(receipt, "type"), ctx.device.as_ref()) else {
        return Ok(());
    };
    if !RECORDED_TYPES.contains(&kind.as_str()) {
        return Ok(());
    }
    let Some(chat) = jid_attr(receipt, "to") else {
        tracing::warn!(conn.id = ctx.id, "read receipt without `to`: not recorded");
        return Ok(());
    };
    let to = match chat.server {
        Server::Pn | Server::Lid => phone_of(shared, &chat),
        _ => chat.to_non_ad().to_string(),
    };
    let participant = jid_attr(receipt, "participant").map(|p| phone_of(shared, &p));
    let mut ids = vec![attr(receipt, "id")];
    if let Some(list) = receipt.get_optional_child("list") {
        ids.extend(list.get_children_by_tag("item").map(|i| attr(i, "id")));
    }
    // The contact whose messages these are: in a group, the participant.
    let sender = participant.as_deref().unwrap_or(&to);
    let unknown_ids = ids
        .iter()
        .filter(|id| !shared.contact_sent(sender, &own.phone, id))
        .cloned()
        .collect();
    let entry = ClientReceipt {
        from: own.phone.clone(),
        to,
        ids,
        kind,
        participant,
        unknown_ids,
    };
    shared.journal.lock().read_receipts.push(entry);
    shared.notify();
    Ok(())
}

impl FakeServer {
    /// Read and played receipts clients sent for contacts' messages, in
    /// arrival order (one entry per `<receipt>` stanza).
    pub fn read_receipts(&self) -> Vec<ClientReceipt> {
        self.shared.journal.lock().read_receipts.clone()
    }

    /// Waits until at least `count` recorded read/played receipts match
    /// `pred` (receipts recorded before the call count too); returns them.
    pub async fn wait_for_read_receipts(
        &self,
        pred: impl Fn(&ClientReceipt) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ClientReceipt>> {
        self.shared
            .wait_for_entries(|j| &j.read_receipts, pred, count, timeout)
            .await
    }
}
