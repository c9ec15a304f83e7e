//! Messages between clients and the server-held Signal peers: contact
//! text to client devices (encryption, queueing, offline delivery), the
//! phone's key share, and what clients send (decryption, acks, receipts).
//!
//! Invariants:
//! - queued contact messages are delivered in order, after the client's
//!   `passive/active` IQ and before the `<ib><offline>` marker, and stay
//!   queued until the device's receipt names them (then they are dropped);
//! - a client device's uploaded one-time prekeys are popped when used, so
//!   each is handed out at most once;
//! - deliveries hold the Signal world lock, which keeps every device's
//!   messages in order.

use std::sync::Arc;

use wacore::libsignal::protocol::{
    DeviceId, IdentityKey, PreKeyBundle, PreKeyId, PreKeySignalMessage, PublicKey, SignedPreKeyId,
};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID, Server};
use waproto::whatsapp as wa;

use crate::accounts::{DeviceKey, Outbound};
use crate::codec::{self, attr, now_secs};
use crate::contacts::{self, device_address, lid_device_address};
use crate::control::{SentMessage, Shared};
use crate::error::{FakeError, Result};
use crate::phone;
use crate::rich;
use crate::router::{ConnCtx, jid_attr, phone_of};

/// Takes a bundle of a client device's uploaded keys, popping one one-time
/// prekey (each is handed out once).
pub(crate) fn take_device_bundle(shared: &Shared, key: &DeviceKey) -> Result<Option<PreKeyBundle>> {
    let mut reg = shared.reg.lock();
    let Some(bundle) = reg.device_mut(key).and_then(|d| d.bundle.as_mut()) else {
        return Ok(None);
    };
    let otk = bundle.prekeys.pop_front();
    let pk = |b: &[u8]| PublicKey::from_djb_public_key_bytes(b).map_err(FakeError::signal);
    let one_time = match otk {
        Some((id, value)) => Some((PreKeyId::from(id), pk(&value)?)),
        None => None,
    };
    PreKeyBundle::new(
        bundle.registration_id,
        DeviceId::from(u32::from(key.device)),
        one_time,
        SignedPreKeyId::from(bundle.signed_prekey_id),
        pk(&bundle.signed_prekey)?,
        bundle.signed_prekey_sig.clone(),
        IdentityKey::new(pk(&bundle.identity)?),
    )
    .map(Some)
    .map_err(FakeError::signal)
}

/// Encrypts `message` from peer `from` to a client device, starting a
/// session from the device's bundle when needed. `world` must be the locked
/// Signal world.
async fn encrypt_to_device(
    shared: &Shared,
    world: &mut contacts::SignalWorld,
    from: &str,
    key: &DeviceKey,
    message: &wa::Message,
) -> Result<(&'static str, Vec<u8>)> {
    encrypt_to_device_as(shared, world, from, key, message, false).await
}

/// Like [`encrypt_to_device`]; `as_lid` uses the session the contact keeps
/// for sending as its LID (a separate one: the client sees another sender).
async fn encrypt_to_device_as(
    shared: &Shared,
    world: &mut contacts::SignalWorld,
    from: &str,
    key: &DeviceKey,
    message: &wa::Message,
    as_lid: bool,
) -> Result<(&'static str, Vec<u8>)> {
    let address = if as_lid {
        lid_device_address(&key.phone, key.device)
    } else {
        device_address(&key.phone, key.device)
    };
    let peer = world.peer(from)?;
    if !peer.has_session(&address) {
        let bundle = take_device_bundle(shared, key)?
            .ok_or_else(|| FakeError::Signal("device has not uploaded prekeys yet".into()))?;
        peer.start_session(&address, &bundle).await?;
    }
    peer.encrypt(&address, message).await
}

/// A copy the client cannot decrypt: the bare `msg` inside a fresh prekey
/// message, on a session the client never saw (it answers with a retry
/// receipt, which makes the contact start over; see [`handle_receipt`]).
async fn undecryptable_copy(
    shared: &Shared,
    world: &mut contacts::SignalWorld,
    from: &str,
    key: &DeviceKey,
    message: &wa::Message,
) -> Result<(&'static str, Vec<u8>)> {
    let address = device_address(&key.phone, key.device);
    let peer = world.peer(from)?;
    peer.forget_session(&address);
    let (_, bytes) = encrypt_to_device(shared, world, from, key, message).await?;
    world.peer(from)?.forget_session(&address);
    let prekey_message =
        PreKeySignalMessage::try_from(bytes.as_slice()).map_err(FakeError::signal)?;
    Ok(("msg", prekey_message.message().serialized().to_vec()))
}

fn enc_node(kind: &str, bytes: Vec<u8>) -> Node {
    NodeBuilder::new("enc")
        .attrs([("v", "2".to_string()), ("type", kind.to_string())])
        .bytes(bytes)
        .build()
}

pub(crate) async fn send_key_share(shared: &Arc<Shared>, ctx: &ConnCtx) {
    let Some(key) = ctx.device.clone() else {
        return;
    };
    let raw_id = match shared.reg.lock().accounts.get(&key.phone) {
        Some(a) => a.raw_id,
        None => return,
    };
    let message = phone::app_state_key_share(raw_id);
    let mut world = shared.world.lock().await;
    match encrypt_to_device(shared, &mut world, &key.phone, &key, &message).await {
        Ok((kind, bytes)) => ctx.send(
            NodeBuilder::new("message")
                .attrs([
                    ("from", format!("{}@s.whatsapp.net", key.phone)),
                    ("id", codec::new_message_id()),
                    ("type", "text".to_string()),
                    ("category", "peer".to_string()),
                    ("t", now_secs().to_string()),
                ])
                .children([enc_node(kind, bytes)])
                .build(),
        ),
        Err(e) => tracing::warn!(conn.id = ctx.id, error = %e, "app-state key share not sent"),
    }
}

/// One queued message waiting for encryption.
struct Pending {
    id: String,
    from: String,
    text: String,
    push_name: Option<String>,
    undecryptable: bool,
    content: Option<Arc<wa::Message>>,
    as_lid: bool,
    sender_pn: bool,
    stanza_type: &'static str,
}

/// Delivers a device's queued contact messages. With `flush_on` (the
/// login path) every unacknowledged message goes out on that connection
/// marked `offline`, followed by the `<ib><offline>` marker, and the
/// connection becomes ready; otherwise messages go to the device's ready
/// connection, if any.
pub(crate) async fn deliver_inbox(
    shared: &Arc<Shared>,
    key: &DeviceKey,
    flush_on: Option<&ConnCtx>,
) -> Result<()> {
    // Holding the world lock serializes deliveries to all devices, which
    // keeps each device's messages in order.
    let mut world = shared.world.lock().await;
    let todo: Vec<Pending> = {
        let reg = shared.reg.lock();
        let Some(dev) = reg.device(key) else {
            return Ok(());
        };
        dev.inbox
            .iter()
            .filter(|m| m.stanza.is_none())
            .map(|m| Pending {
                id: m.id.clone(),
                from: m.from.clone(),
                text: m.text.clone(),
                push_name: m.push_name.clone(),
                undecryptable: m.undecryptable,
                content: m.content.clone(),
                as_lid: m.as_lid,
                sender_pn: m.sender_pn,
                stanza_type: m.stanza_type,
            })
            .collect()
    };
    for p in todo {
        let Pending {
            id,
            from,
            text,
            push_name,
            undecryptable,
            content,
            as_lid,
            sender_pn,
            stanza_type,
        } = p;
        let message = match content {
            Some(m) => (*m).clone(),
            None => contacts::text_message(&text),
        };
        let encrypted = if undecryptable {
            undecryptable_copy(shared, &mut world, &from, key, &message).await
        } else {
            encrypt_to_device_as(shared, &mut world, &from, key, &message, as_lid).await
        };
        let (kind, bytes) = match encrypted {
            Ok(enc) => enc,
            Err(e) => {
                tracing::debug!(error = %e, "message stays queued");
                break;
            }
        };
        let from_jid = if as_lid {
            format!("{}@lid", shared.reg.lock().lid_for(&from))
        } else {
            format!("{from}@s.whatsapp.net")
        };
        let mut stanza = NodeBuilder::new("message")
            .attrs([
                ("from", from_jid),
                ("id", id.clone()),
                ("type", stanza_type.to_string()),
                ("t", now_secs().to_string()),
                (
                    "notify",
                    push_name.unwrap_or_else(|| format!("Contact {from}")),
                ),
            ])
            .children([enc_node(kind, bytes)])
            .build();
        if sender_pn {
            stanza
                .attrs
                .insert("sender_pn", format!("{from}@s.whatsapp.net"));
        }
        // By id, not position: receipts may have shortened the queue meanwhile.
        // From the back: messages waiting for encryption are the newest, and
        // a backlog of thousands must not make each delivery a full scan.
        if let Some(dev) = shared.reg.lock().device_mut(key)
            && let Some(m) = dev.inbox.iter_mut().rev().find(|m| m.id == id)
        {
            m.stanza = Some(stanza);
            m.undecryptable = false;
        }
    }
    let mut reg = shared.reg.lock();
    match flush_on {
        Some(ctx) => {
            let mut count = 0usize;
            if let Some(dev) = reg.device_mut(key) {
                for m in dev.inbox.iter_mut() {
                    if let Some(stanza) = &m.stanza {
                        let mut stanza = stanza.clone();
                        stanza.attrs.insert("offline", "1".to_string());
                        m.sent_on = Some(ctx.id);
                        ctx.send(stanza);
                        count += 1;
                    }
                }
            }
            ctx.send(
                NodeBuilder::new("ib")
                    .attr("from", SERVER_JID.to_string())
                    .children([NodeBuilder::new("offline")
                        .attr("count", count.to_string())
                        .build()])
                    .build(),
            );
            if let Some(entry) = reg.conns.get_mut(&ctx.id) {
                entry.ready = true;
            }
        }
        None => {
            let ready = reg
                .conns
                .iter()
                .find(|(_, c)| c.ready && c.device.as_ref() == Some(key))
                .map(|(id, c)| (*id, c.tx.clone()));
            if let Some((conn_id, tx)) = ready
                && let Some(dev) = reg.device_mut(key)
            {
                for m in dev.inbox.iter_mut() {
                    if let Some(stanza) = &m.stanza
                        && m.sent_on != Some(conn_id)
                    {
                        m.sent_on = Some(conn_id);
                        let _ = tx.send(Outbound::Node(Box::new(stanza.clone())));
                    }
                }
            }
        }
    }
    drop(reg);
    shared.notify();
    Ok(())
}

/// A client's outgoing message: ack it, let each addressed contact decrypt
/// its copy (recorded as a [`SentMessage`]), forward it to linked accounts,
/// and answer with a delivery receipt.
pub(crate) async fn handle_message(shared: &Arc<Shared>, ctx: &ConnCtx, msg: &Node) -> Result<()> {
    let Some(own) = ctx.device.clone() else {
        return Err(FakeError::Protocol("message before login".into()));
    };
    let id = attr(msg, "id");
    let Some(to) = jid_attr(msg, "to") else {
        return Err(FakeError::Protocol("message without to".into()));
    };
    // (recipient device JID, enc node) pairs.
    let mut copies: Vec<(Jid, &Node)> = Vec::new();
    if let Some(participants) = msg.get_optional_child("participants") {
        for to_node in participants.get_children_by_tag("to") {
            if let Some(jid) = jid_attr(to_node, "jid") {
                for enc in to_node.get_children_by_tag("enc") {
                    copies.push((jid.clone(), enc));
                }
            }
        }
    }
    for enc in msg.get_children_by_tag("enc") {
        copies.push((to.clone(), enc));
    }
    let is_dm = matches!(to.server, Server::Pn | Server::Lid);
    let group = (to.server == Server::Group).then(|| to.to_non_ad().to_string());
    let recipient = phone_of(shared, &to);
    let sender_address = device_address(&own.phone, own.device);
    let mut dm_message = None;
    let mut group_messages = Vec::new();
    {
        let mut world = shared.world.lock().await;
        let mut skmsg = None;
        for (jid, enc) in copies {
            let kind = attr(enc, "type");
            let Some(bytes) = codec::content_bytes(enc) else {
                continue;
            };
            if kind == "skmsg" {
                skmsg = Some(bytes);
                continue;
            }
            if jid.device != 0 || !(is_dm || group.is_some()) {
                continue; // companion devices are not decrypted
            }
            let phone = phone_of(shared, &jid);
            if shared.reg.lock().not_on_whatsapp.contains(&phone) {
                continue;
            }
            // The contact looks the sender up LID first, as a real device
            // does (and as whatsapp-rust does when it encrypts: "LID-first
            // lookup"): once the two have a session between their LIDs (the
            // contact wrote as its LID), every copy is on it, also one the
            // client addressed to the contact's phone number. Else the copy
            // is on the phone-number session the client started from the
            // contact's bundle.
            let lid_address = lid_device_address(&own.phone, own.device);
            let peer = world.peer(&phone)?;
            let address = if peer.has_session(&lid_address) {
                &lid_address
            } else {
                &sender_address
            };
            match peer.decrypt(address, &kind, bytes).await {
                Ok(message) => {
                    let skdm = message
                        .sender_key_distribution_message
                        .as_option()
                        .and_then(|d| d.axolotl_sender_key_distribution_message.as_deref());
                    if let (Some(g), Some(skdm)) = (&group, skdm) {
                        if let Err(e) = world
                            .peer(&phone)?
                            .process_sender_key(g, &sender_address, skdm)
                            .await
                        {
                            tracing::warn!(error = %e, "contact could not store a sender key");
                        }
                    } else if is_dm && phone != own.phone {
                        dm_message = Some(message);
                    }
                    // Otherwise: the own phone's copy (device-sent message).
                }
                Err(e) => {
                    tracing::warn!(conn.id = ctx.id, error = %e, "contact could not decrypt a message")
                }
            }
        }
        if let (Some(g), Some(bytes)) = (&group, skmsg) {
            let participants = group_participants(shared, &to.user, &own.phone);
            for phone in participants {
                match world
                    .peer(&phone)?
                    .group_decrypt(g, &sender_address, bytes)
                    .await
                {
                    Ok(message) => group_messages.push((phone, message)),
                    Err(e) => {
                        tracing::warn!(error = %e, "participant could not decrypt a group message")
                    }
                }
            }
        }
    }
    ctx.send(
        NodeBuilder::new("ack")
            .attrs([
                ("class", "message".to_string()),
                ("id", id.clone()),
                ("from", to.to_non_ad().to_string()),
                ("t", now_secs().to_string()),
            ])
            .build(),
    );
    if let (true, Some(message)) = (is_dm && recipient != own.phone, dm_message) {
        let mut sent = SentMessage {
            from: own.phone.clone(),
            to: recipient.clone(),
            id: id.clone(),
            ..SentMessage::default()
        };
        rich::describe(shared, &message, &mut sent);
        shared.record_sent(sent);
        if auto_receipts(shared, &recipient) {
            ctx.send(
                NodeBuilder::new("receipt")
                    .attrs([
                        ("from", to.to_non_ad().to_string()),
                        ("id", id.clone()),
                        ("t", now_secs().to_string()),
                    ])
                    .build(),
            );
        }
        // Between two linked accounts the message also reaches the recipient's devices.
        let recipient_linked = shared.reg.lock().accounts.contains_key(&recipient);
        if recipient_linked
            && let Err(e) = shared
                .queue_contact_message(&own.phone, &recipient, strip_dsm(message), None)
                .await
        {
            tracing::debug!(error = %e, "not forwarded to the linked recipient");
        }
    }
    for (phone, message) in group_messages {
        let mut sent = SentMessage {
            from: own.phone.clone(),
            to: phone.clone(),
            id: id.clone(),
            group: group.clone(),
            ..SentMessage::default()
        };
        rich::describe(shared, &message, &mut sent);
        shared.record_sent(sent);
        if auto_receipts(shared, &phone) {
            ctx.send(
                NodeBuilder::new("receipt")
                    .attrs([
                        ("from", to.to_non_ad().to_string()),
                        ("participant", format!("{phone}@s.whatsapp.net")),
                        ("id", id.clone()),
                        ("t", now_secs().to_string()),
                    ])
                    .build(),
            );
        }
    }
    Ok(())
}

/// The content of a message as a recipient sees it (device-sent wrappers
/// are the sender's own copies).
fn strip_dsm(mut message: wa::Message) -> wa::Message {
    match message.device_sent_message.take() {
        Some(dsm) => dsm.message.into_option().unwrap_or_default(),
        None => message,
    }
}

/// Whether contact `phone` acknowledges delivery by itself.
pub(crate) fn auto_receipts(shared: &Shared, phone: &str) -> bool {
    let reg = shared.reg.lock();
    shared.config.contact_receipts
        && !reg.auto_receipts_off
        && !reg.no_auto_receipts.contains(phone)
}

/// Participants of group `user` other than `own` (unknown groups: none).
fn group_participants(shared: &Shared, user: &str, own: &str) -> Vec<String> {
    shared
        .reg
        .lock()
        .groups
        .get(user)
        .map(|g| {
            g.participants
                .iter()
                .filter(|p| p.as_str() != own)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// A client's receipt: acknowledge it (whatsapp-rust does not wait for the
/// ack, but the real server sends one), record it when it reports reading
/// ([`crate::read_receipts`]) and drop the named messages from the device's
/// queue. A retry receipt (the client could not decrypt) makes the
/// contact drop its session and send the message again as a fresh `pkmsg`.
pub(crate) async fn handle_receipt(
    shared: &Arc<Shared>,
    ctx: &ConnCtx,
    receipt: &Node,
) -> Result<()> {
    let id = attr(receipt, "id");
    let kind = codec::opt_attr(receipt, "type");
    let mut ack = NodeBuilder::new("ack").attrs([
        ("class", "receipt".to_string()),
        ("id", id.clone()),
        ("from", attr(receipt, "to")),
    ]);
    if let Some(k) = &kind {
        ack = ack.attr("type", k.clone());
    }
    ctx.send(ack.build());
    let Some(key) = ctx.device.clone() else {
        return Ok(());
    };
    if kind.as_deref() == Some("retry") {
        return resend_after_retry(shared, &key, &id).await;
    }
    crate::read_receipts::record(shared, ctx, receipt)?;
    let mut ids = vec![id];
    if let Some(list) = receipt.get_optional_child("list") {
        ids.extend(list.get_children_by_tag("item").map(|i| attr(i, "id")));
    }
    let mut reg = shared.reg.lock();
    if let Some(dev) = reg.device_mut(&key) {
        // Receipts come roughly in queue order, so each id is found near the
        // front; `retain` would move the whole backlog once per receipt.
        for id in &ids {
            if let Some(at) = dev.inbox.iter().position(|m| &m.id == id) {
                dev.inbox.remove(at);
            }
        }
    }
    Ok(())
}

/// Re-encrypts a queued message on a new session after a retry receipt.
async fn resend_after_retry(shared: &Arc<Shared>, key: &DeviceKey, id: &str) -> Result<()> {
    let (from, as_lid) = {
        let mut reg = shared.reg.lock();
        let Some(message) = reg
            .device_mut(key)
            .and_then(|d| d.inbox.iter_mut().find(|m| m.id == id))
        else {
            return Ok(());
        };
        message.stanza = None;
        message.sent_on = None;
        (message.from.clone(), message.as_lid)
    };
    let address = if as_lid {
        lid_device_address(&key.phone, key.device)
    } else {
        device_address(&key.phone, key.device)
    };
    shared
        .world
        .lock()
        .await
        .peer(&from)?
        .forget_session(&address);
    tracing::debug!(
        device = key.device,
        "retry receipt: message re-encrypted on a new session"
    );
    deliver_inbox(shared, key, None).await
}
