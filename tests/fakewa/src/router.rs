//! Stanza routing: login (the ClientPayload decision) and what the fake
//! answers to each client stanza; message traffic is in [`crate::messaging`].
//!
//! Invariants:
//! - every IQ gets exactly one reply; unknown IQs get `501
//!   feature-not-implemented` (spec §6.2 "generic rule");
//! - an unknown top-level stanza is a protocol error: the caller logs it and
//!   closes that one connection.

use std::sync::Arc;
use std::time::Duration;

use buffa::Message as _;
use tokio::sync::mpsc;
use wacore::iq::prekeys::PreKeyBundleUserNode;
use wacore::protocol::ProtocolNode as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID, Server};
use waproto::whatsapp as wa;

use crate::accounts::{ConnId, Device, DeviceKey, Outbound, PendingCode, UploadedBundle};
use crate::codec::{self, attr, child_bytes, iq_error, iq_result, now_secs};
use crate::control::{Linked, Shared, linked};
use crate::error::{FakeError, Result};
use crate::messaging;
use crate::phone;

/// Delay before the 515 that follows `pair-device-sign` (spec §4.5: avoids
/// racing the client's own bookkeeping of the expected disconnect).
const RESTART_AFTER_PAIRING: Duration = Duration::from_millis(100);

/// Per-connection context the router works with.
pub(crate) struct ConnCtx {
    pub(crate) id: ConnId,
    pub(crate) tx: mpsc::UnboundedSender<Outbound>,
    pub(crate) device: Option<DeviceKey>,
}

impl ConnCtx {
    pub(crate) fn send(&self, node: Node) {
        // A closed channel means the connection is going away; nothing to do.
        let _ = self.tx.send(Outbound::Node(Box::new(node)));
    }

    fn fatal(&self, node: Node) {
        let _ = self.tx.send(Outbound::Fatal(Box::new(node)));
    }
}

/// Handles the ClientPayload that ends the handshake: registration
/// (→ `pair-device`), login of a linked device (→ `<success>`), or an
/// unknown/removed device (→ `<failure reason="401">`).
pub(crate) fn on_login(
    shared: &Arc<Shared>,
    ctx: &mut ConnCtx,
    payload: &[u8],
    client_static: &[u8],
) -> Result<()> {
    let payload = wa::ClientPayload::decode_from_slice(payload).map_err(FakeError::protocol)?;
    shared.web_version.record_login(&payload);
    if payload.device_pairing_data.is_set() {
        let noise_pub: [u8; 32] = client_static
            .try_into()
            .map_err(|_| FakeError::Protocol("client static key is not 32 bytes".into()))?;
        shared.reg.lock().registrations.insert(noise_pub, ctx.id);
        let refs = (0..3).map(|_| {
            NodeBuilder::new("ref")
                .bytes(crate::noise::new_pairing_ref().into_bytes())
                .build()
        });
        ctx.send(
            NodeBuilder::new("iq")
                .attrs([
                    ("from", SERVER_JID.to_string()),
                    ("id", format!("pair-device-{}", ctx.id)),
                    ("type", "set".to_string()),
                    ("xmlns", "md".to_string()),
                ])
                .children([NodeBuilder::new("pair-device").children(refs).build()])
                .build(),
        );
        tracing::debug!(
            conn.id = ctx.id,
            "registration connection: pair-device sent"
        );
        return Ok(());
    }
    let (Some(user), Some(device)) = (payload.username, payload.device) else {
        return Err(FakeError::Protocol(
            "login payload without username/device".into(),
        ));
    };
    let key = DeviceKey {
        phone: user.to_string(),
        device: u16::try_from(device).map_err(FakeError::protocol)?,
    };
    let mut reg = shared.reg.lock();
    let lid = match reg.accounts.get(&key.phone) {
        Some(account) if account.devices.get(&key.device).is_some_and(|d| !d.removed) => {
            account.lid.clone()
        }
        _ => {
            drop(reg);
            tracing::info!(
                conn.id = ctx.id,
                "login of an unknown or removed device: failure 401"
            );
            ctx.fatal(
                NodeBuilder::new("failure")
                    .attrs([
                        ("reason", "401".to_string()),
                        ("location", "fake".to_string()),
                    ])
                    .build(),
            );
            return Ok(());
        }
    };
    // A second login of the same device replaces the first, like WhatsApp.
    for (old, tx) in reg.conns_of(&key) {
        tracing::info!(
            conn.id = old,
            "device logged in again: old connection replaced"
        );
        let _ = tx.send(Outbound::Fatal(Box::new(codec::stream_error(
            None,
            Some("replaced"),
        ))));
    }
    reg.attach(ctx.id, &key);
    drop(reg);
    shared.notify();
    ctx.device = Some(key.clone());
    ctx.send(
        NodeBuilder::new("success")
            .attrs([
                ("t", now_secs().to_string()),
                ("lid", format!("{lid}:{}@lid", key.device)),
                ("location", "fake".to_string()),
                ("props", "1".to_string()),
                ("abprops", "1".to_string()),
            ])
            .build(),
    );
    tracing::debug!(conn.id = ctx.id, device = key.device, "device logged in");
    Ok(())
}

/// Routes one client stanza.
pub(crate) async fn handle(shared: &Arc<Shared>, ctx: &mut ConnCtx, node: Node) -> Result<()> {
    match node.tag.as_ref() {
        "iq" => handle_iq(shared, ctx, &node).await,
        "message" => messaging::handle_message(shared, ctx, &node).await,
        "receipt" => messaging::handle_receipt(shared, ctx, &node).await,
        // Fire-and-forget stanzas: nothing to answer; chat states and the
        // client's own presence are recorded for tests.
        "chatstate" => crate::chat_states::record_chat_state(shared, ctx, &node),
        "presence" => crate::chat_states::record_presence(shared, ctx, &node),
        "ib" | "ack" | "call" | "notification" => Ok(()),
        "xmlstreamend" => {
            let _ = ctx.tx.send(Outbound::Close);
            Ok(())
        }
        other => Err(FakeError::Protocol(format!("unknown stanza <{other}>"))),
    }
}

fn first_child_tag(node: &Node) -> &str {
    node.children()
        .and_then(|c| c.first())
        .map(|c| c.tag.as_ref())
        .unwrap_or("")
}

async fn handle_iq(shared: &Arc<Shared>, ctx: &mut ConnCtx, iq: &Node) -> Result<()> {
    let id = attr(iq, "id");
    let xmlns = attr(iq, "xmlns");
    let kind = attr(iq, "type");
    if kind == "result" || kind == "error" {
        return handle_iq_reply(shared, ctx, iq, &id, &kind);
    }
    if id.is_empty() {
        return Err(FakeError::Protocol("iq without id".into()));
    }
    let child = first_child_tag(iq);
    match (xmlns.as_str(), kind.as_str(), child) {
        ("w:p", _, _) => {
            if ping_replies_enabled(shared, ctx) {
                ctx.send(iq_result(&id, vec![]));
            }
        }
        ("passive", "set", _) => {
            ctx.send(iq_result(&id, vec![]));
            if let Some(key) = ctx.device.clone() {
                messaging::deliver_inbox(shared, &key, Some(ctx)).await?;
            }
        }
        ("encrypt", "set", "rotate") => {
            store_rotated_skey(shared, ctx, iq);
            ctx.send(iq_result(&id, vec![]));
        }
        ("encrypt", "set", _) => {
            store_upload(shared, ctx, iq)?;
            ctx.send(iq_result(&id, vec![]));
            if shared.config.app_state_key_share {
                messaging::send_key_share(shared, ctx).await;
            }
            // Messages queued before the device had keys can go out now.
            if let Some(key) = ctx.device.clone() {
                messaging::deliver_inbox(shared, &key, None).await?;
            }
        }
        ("encrypt", "get", "key") => {
            let reply = prekey_fetch(shared, iq, &id).await?;
            ctx.send(reply);
        }
        ("encrypt", "get", "count") => {
            let count = ctx
                .device
                .as_ref()
                .and_then(|k| {
                    shared
                        .reg
                        .lock()
                        .device(k)
                        .and_then(|d| d.bundle.as_ref().map(|b| b.prekeys.len()))
                })
                .unwrap_or(0);
            ctx.send(iq_result(
                &id,
                vec![
                    NodeBuilder::new("count")
                        .attr("value", count.to_string())
                        .build(),
                ],
            ));
        }
        // 503, never 404: a 404 makes the client re-upload all prekeys (spec §6.2 #9).
        ("encrypt", "get", "digest") => ctx.send(iq_error(&id, 503, "service-unavailable")),
        ("usync", "get", _) => {
            let reply = usync(shared, ctx, iq, &id);
            ctx.send(reply);
        }
        ("w:sync:app:state", "set", _) => ctx.send(app_state(iq, &id)),
        ("w:m", "set", "media_conn") => ctx.send(crate::media::media_conn_reply(shared, &id)),
        ("w:g2", "get", "query") => ctx.send(group_info(shared, ctx, iq, &id)),
        ("abt", "get", _) => ctx.send(iq_result(
            &id,
            vec![
                NodeBuilder::new("props")
                    .attrs([
                        ("protocol", "1".to_string()),
                        ("hash", "fakewa".to_string()),
                    ])
                    .build(),
            ],
        )),
        ("blocklist", "get", _) => ctx.send(iq_result(&id, vec![NodeBuilder::new("list").build()])),
        ("privacy", "get", _) => {
            ctx.send(iq_result(&id, vec![NodeBuilder::new("privacy").build()]))
        }
        ("privacy", "set", _) => ctx.send(iq_result(&id, vec![])),
        ("md", "set", "remove-companion-device") => logout(shared, ctx, iq, &id),
        ("md", "set", "link_code_companion_reg") => pair_code_stage(shared, ctx, iq, &id)?,
        _ => {
            tracing::debug!(
                conn.id = ctx.id,
                xmlns,
                child,
                "unimplemented iq answered with 501"
            );
            ctx.send(iq_error(&id, 501, "feature-not-implemented"));
        }
    }
    Ok(())
}

/// Whether the device behind `ctx` is muted (see `FakeServer::set_device_muted`).
pub(crate) fn is_muted(shared: &Shared, ctx: &ConnCtx) -> bool {
    let reg = shared.reg.lock();
    ctx.device
        .as_ref()
        .and_then(|k| reg.device(k))
        .is_some_and(|d| d.muted)
}

fn ping_replies_enabled(shared: &Shared, ctx: &ConnCtx) -> bool {
    let reg = shared.reg.lock();
    if reg.ping_replies_off {
        return false;
    }
    ctx.device
        .as_ref()
        .and_then(|k| reg.device(k))
        .is_none_or(|d| d.ping_replies)
}

/// Replies to the fake's own IQs: only `pair-success` needs handling.
fn handle_iq_reply(
    shared: &Arc<Shared>,
    ctx: &ConnCtx,
    iq: &Node,
    id: &str,
    kind: &str,
) -> Result<()> {
    let Some(pending) = shared.reg.lock().pending_signs.remove(id) else {
        return Ok(());
    };
    let outcome = (|| {
        if kind != "result" {
            let err = iq.get_optional_child("error");
            return Err(FakeError::PairingFailed(format!(
                "client rejected pair-success: {} {}",
                err.map(|e| attr(e, "code")).unwrap_or_default(),
                err.map(|e| attr(e, "text")).unwrap_or_default()
            )));
        }
        let sign = iq.get_optional_child("pair-device-sign").ok_or_else(|| {
            FakeError::PairingFailed("pair-success reply without pair-device-sign".into())
        })?;
        let mut reg = shared.reg.lock();
        let account = reg
            .accounts
            .get_mut(&pending.phone)
            .ok_or_else(|| FakeError::UnknownDevice("account".into()))?;
        let account_pub = account.identity.public_key().public_key_bytes().to_vec();
        let device_identity = phone::verify_device_sign(sign, &pending.identity_pub, &account_pub)?;
        account.devices.insert(
            pending.device,
            Device {
                key_index: pending.key_index,
                removed: false,
                device_identity,
                bundle: None,
                live: 0,
                logins: 0,
                inbox: Default::default(),
                ping_replies: true,
                muted: false,
            },
        );
        let linked = linked(&account.phone, &account.lid, pending.device);
        reg.registrations.retain(|_, c| *c != pending.conn);
        Ok::<Linked, FakeError>(linked)
    })();
    match outcome {
        Ok(linked) => {
            tracing::info!(
                conn.id = ctx.id,
                "device linked; restarting the stream (515)"
            );
            let tx = ctx.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RESTART_AFTER_PAIRING).await;
                let _ = tx.send(Outbound::Fatal(Box::new(codec::stream_error(
                    Some("515"),
                    None,
                ))));
            });
            let _ = pending.done.send(Ok(linked));
        }
        Err(e) => {
            tracing::warn!(conn.id = ctx.id, error = %e, "pairing failed");
            let _ = pending.done.send(Err(e));
        }
    }
    shared.notify();
    Ok(())
}

fn parse_skey(skey: &Node) -> Option<(u32, [u8; 32], Vec<u8>)> {
    let id = codec::be_u32(child_bytes(skey, "id")?)?;
    let value: [u8; 32] = child_bytes(skey, "value")?.try_into().ok()?;
    let sig = child_bytes(skey, "signature")?.to_vec();
    Some((id, value, sig))
}

fn store_upload(shared: &Shared, ctx: &ConnCtx, iq: &Node) -> Result<()> {
    let key = ctx
        .device
        .as_ref()
        .ok_or_else(|| FakeError::Protocol("prekey upload before login".into()))?;
    let bad = |what: &str| FakeError::Protocol(format!("prekey upload: bad {what}"));
    let registration_id =
        codec::be_u32(child_bytes(iq, "registration").ok_or_else(|| bad("registration"))?)
            .ok_or_else(|| bad("registration"))?;
    let identity: [u8; 32] = child_bytes(iq, "identity")
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("identity"))?;
    let (skey_id, skey, skey_sig) = iq
        .get_optional_child("skey")
        .and_then(parse_skey)
        .ok_or_else(|| bad("skey"))?;
    let prekeys: Vec<(u32, [u8; 32])> = iq
        .get_optional_child("list")
        .map(|list| {
            let mut keys = Vec::with_capacity(list.children().map_or(0, <[Node]>::len));
            keys.extend(list.get_children_by_tag("key").filter_map(|k| {
                let id = codec::be_u32(child_bytes(k, "id")?)?;
                let value: [u8; 32] = child_bytes(k, "value")?.try_into().ok()?;
                Some((id, value))
            }));
            keys
        })
        .unwrap_or_default();
    let prekeys = prekeys.into();
    let mut reg = shared.reg.lock();
    let device = reg
        .device_mut(key)
        .ok_or_else(|| FakeError::UnknownDevice("device".into()))?;
    device.bundle = Some(UploadedBundle {
        registration_id,
        identity,
        signed_prekey_id: skey_id,
        signed_prekey: skey,
        signed_prekey_sig: skey_sig,
        prekeys,
    });
    Ok(())
}

fn store_rotated_skey(shared: &Shared, ctx: &ConnCtx, iq: &Node) {
    let Some(key) = &ctx.device else { return };
    let Some((id, value, sig)) = iq
        .get_optional_child_by_tag(&["rotate", "skey"])
        .and_then(parse_skey)
    else {
        return;
    };
    let mut reg = shared.reg.lock();
    if let Some(bundle) = reg.device_mut(key).and_then(|d| d.bundle.as_mut()) {
        bundle.signed_prekey_id = id;
        bundle.signed_prekey = value;
        bundle.signed_prekey_sig = sig;
    }
}

pub(crate) fn jid_attr(node: &Node, key: &str) -> Option<Jid> {
    node.attrs.get(key).and_then(|v| v.to_jid())
}

/// The phone a JID names (LID users of linked accounts map to their phone).
pub(crate) fn phone_of(shared: &Shared, jid: &Jid) -> String {
    shared
        .reg
        .lock()
        .phone_of_user(&jid.user, jid.server == Server::Lid)
}

/// `encrypt get <key>`: bundles for phones/contacts (device 0, fresh
/// one-time prekey each time) and for companion devices (their upload).
async fn prekey_fetch(shared: &Arc<Shared>, iq: &Node, id: &str) -> Result<Node> {
    let users: Vec<Jid> = iq
        .get_optional_child("key")
        .map(|k| {
            k.get_children_by_tag("user")
                .filter_map(|u| jid_attr(u, "jid"))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(users.len());
    let mut world = shared.world.lock().await;
    for jid in users {
        let phone = phone_of(shared, &jid);
        let node = if jid.device == 0 {
            let bundle = world.peer(&phone)?.fresh_bundle()?;
            Some(
                PreKeyBundleUserNode::from_bundle(jid.clone(), &bundle, None)
                    .map_err(FakeError::signal)?,
            )
        } else {
            let key = DeviceKey {
                phone,
                device: jid.device,
            };
            let identity = shared
                .reg
                .lock()
                .device(&key)
                .filter(|d| !d.removed)
                .map(|d| d.device_identity.clone());
            match (identity, messaging::take_device_bundle(shared, &key)?) {
                (Some(identity), Some(bundle)) => Some(
                    PreKeyBundleUserNode::from_bundle(jid.clone(), &bundle, Some(identity))
                        .map_err(FakeError::signal)?,
                ),
                _ => None,
            }
        };
        out.push(match node {
            Some(n) => n.into_node(),
            None => NodeBuilder::new("user")
                .attr("jid", jid)
                .children([NodeBuilder::new("error")
                    .attrs([
                        ("code", "406".to_string()),
                        ("text", "not-acceptable".to_string()),
                    ])
                    .build()])
                .build(),
        });
    }
    drop(world);
    Ok(iq_result(
        id,
        vec![NodeBuilder::new("list").children(out).build()],
    ))
}

/// `usync`: device lists (own account: phone + the asking device, with a
/// key-index list; anyone else: the phone only), LIDs (only the own
/// account has one on the wire) and contact checks (everyone is "in").
fn usync(shared: &Shared, ctx: &ConnCtx, iq: &Node, id: &str) -> Node {
    let Some(req) = iq.get_optional_child("usync") else {
        return iq_error(id, 400, "bad-request");
    };
    let queries: Vec<String> = req
        .get_optional_child("query")
        .and_then(|q| q.children())
        .map(|c| c.iter().map(|n| n.tag.to_string()).collect())
        .unwrap_or_default();
    let users: Vec<&Node> = req
        .get_optional_child("list")
        .map(|l| l.get_children_by_tag("user").collect())
        .unwrap_or_default();
    let mut reg = shared.reg.lock();
    let own = ctx.device.as_ref();
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        let jid = jid_attr(user, "jid").or_else(|| {
            user.get_optional_child("contact")
                .and_then(codec::content_bytes)
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(|s| Jid::pn(s.trim_start_matches('+')))
        });
        let Some(jid) = jid else { continue };
        let phone = reg.phone_of_user(&jid.user, jid.server == Server::Lid);
        let is_own = own.is_some_and(|k| k.phone == phone);
        let not_on_wa = reg.not_on_whatsapp.contains(&phone);
        let business = reg.business.contains(&phone);
        let lid = if not_on_wa {
            None
        } else if is_own || shared.config.contact_lids {
            Some(reg.lid_for(&phone))
        } else {
            // Contacts given a LID explicitly (`FakeServer::contact_lid`).
            reg.lid_by_phone.get(&phone).cloned()
        };
        let account = reg.accounts.get(&phone);
        let mut children = Vec::new();
        for query in &queries {
            match query.as_str() {
                "devices" if not_on_wa => children.push(
                    NodeBuilder::new("devices")
                        .children([NodeBuilder::new("device-list").build()])
                        .build(),
                ),
                "devices" => {
                    let mut list = vec![
                        NodeBuilder::new("device")
                            .attr("id", "0".to_string())
                            .build(),
                    ];
                    let mut devices = vec![];
                    if let (true, Some(key), Some(account)) = (is_own, own, account) {
                        if let Some(dev) = account.devices.get(&key.device) {
                            list.push(
                                NodeBuilder::new("device")
                                    .attrs([
                                        ("id", key.device.to_string()),
                                        ("key-index", dev.key_index.to_string()),
                                    ])
                                    .build(),
                            );
                        }
                        devices.push(
                            NodeBuilder::new("key-index-list")
                                .attr("ts", now_secs().to_string())
                                .bytes(phone::key_index_list(
                                    &account.identity,
                                    account.raw_id,
                                    account.valid_key_indexes(),
                                ))
                                .build(),
                        );
                    }
                    devices.insert(0, NodeBuilder::new("device-list").children(list).build());
                    children.push(NodeBuilder::new("devices").children(devices).build());
                }
                "lid" => {
                    children.push(match &lid {
                        Some(user) => NodeBuilder::new("lid")
                            .attr("val", format!("{user}@lid"))
                            .build(),
                        None => NodeBuilder::new("lid").build(),
                    });
                }
                "contact" => children.push(
                    NodeBuilder::new("contact")
                        .attr("type", if not_on_wa { "out" } else { "in" }.to_string())
                        .build(),
                ),
                "business" if business => children.push(NodeBuilder::new("business").build()),
                _ => {}
            }
        }
        out.push(
            NodeBuilder::new("user")
                .attr("jid", jid)
                .children(children)
                .build(),
        );
    }
    let mut usync = NodeBuilder::new("usync");
    for key in ["sid", "mode", "last", "index", "context"] {
        if let Some(v) = codec::opt_attr(req, key) {
            usync = usync.attr(key, v);
        }
    }
    iq_result(
        id,
        vec![
            usync
                .children([NodeBuilder::new("list").children(out).build()])
                .build(),
        ],
    )
}

/// `w:g2` group info: the group's subject and participants; the asking
/// account is always listed, as an admin (it is implicitly a member of
/// every group the fake knows). Unknown groups: 404.
fn group_info(shared: &Shared, ctx: &ConnCtx, iq: &Node, id: &str) -> Node {
    let Some(to) = jid_attr(iq, "to") else {
        return iq_error(id, 400, "bad-request");
    };
    let reg = shared.reg.lock();
    let Some(group) = reg.groups.get(to.user.as_str()) else {
        return iq_error(id, 404, "item-not-found");
    };
    let own = ctx.device.as_ref().map(|k| k.phone.clone());
    let creator = own.clone().or_else(|| group.participants.first().cloned());
    let mut participants: Vec<Node> = Vec::new();
    if let Some(own) = &own
        && !group.participants.contains(own)
    {
        participants.push(
            NodeBuilder::new("participant")
                .attrs([
                    ("jid", format!("{own}@s.whatsapp.net")),
                    ("type", "admin".to_string()),
                ])
                .build(),
        );
    }
    for phone in &group.participants {
        let mut p = NodeBuilder::new("participant").attr("jid", format!("{phone}@s.whatsapp.net"));
        if own.as_deref() == Some(phone.as_str()) {
            p = p.attr("type", "admin".to_string());
        }
        participants.push(p.build());
    }
    let mut node = NodeBuilder::new("group").attrs([
        ("id", to.user.to_string()),
        ("subject", group.subject.clone()),
        ("creation", group.creation.to_string()),
        ("s_t", group.creation.to_string()),
        ("addressing_mode", "pn".to_string()),
        ("size", participants.len().to_string()),
    ]);
    if let Some(c) = creator {
        node = node
            .attr("creator", format!("{c}@s.whatsapp.net"))
            .attr("s_o", format!("{c}@s.whatsapp.net"));
    }
    iq_result(id, vec![node.children(participants).build()])
}

/// App-state sync: every requested collection is empty at version 0, which
/// the client treats as fully synced.
fn app_state(iq: &Node, id: &str) -> Node {
    let collections: Vec<Node> = iq
        .get_optional_child("sync")
        .map(|s| {
            s.get_children_by_tag("collection")
                .map(|c| {
                    NodeBuilder::new("collection")
                        .attrs([("name", attr(c, "name")), ("version", "0".to_string())])
                        .build()
                })
                .collect()
        })
        .unwrap_or_default();
    iq_result(
        id,
        vec![NodeBuilder::new("sync").children(collections).build()],
    )
}

/// `remove-companion-device`: the client logs itself out.
fn logout(shared: &Arc<Shared>, ctx: &ConnCtx, iq: &Node, id: &str) {
    let target = iq
        .get_optional_child("remove-companion-device")
        .and_then(|n| jid_attr(n, "jid"));
    if let Some(jid) = target {
        let key = DeviceKey {
            phone: phone_of(shared, &jid),
            device: jid.device,
        };
        let mut reg = shared.reg.lock();
        if let Some(dev) = reg.device_mut(&key) {
            dev.removed = true;
        }
        // Other sessions of that device are told it was removed.
        for (conn, tx) in reg.conns_of(&key) {
            if conn != ctx.id {
                let removed = codec::stream_error(None, Some("device_removed"));
                let _ = tx.send(Outbound::Fatal(Box::new(removed)));
            }
        }
    }
    ctx.send(iq_result(id, vec![]));
    let tx = ctx.tx.clone();
    tokio::spawn(async move {
        // The client disconnects by itself; close anyway in case it does not.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = tx.send(Outbound::Close);
    });
    shared.notify();
}

/// Pair-code stages the client drives (`companion_hello`, `companion_finish`).
fn pair_code_stage(shared: &Arc<Shared>, ctx: &ConnCtx, iq: &Node, id: &str) -> Result<()> {
    let Some(reg_node) = iq.get_optional_child("link_code_companion_reg") else {
        ctx.send(iq_error(id, 400, "bad-request"));
        return Ok(());
    };
    let phone = jid_attr(reg_node, "jid")
        .map(|j| j.user.to_string())
        .unwrap_or_default();
    match attr(reg_node, "stage").as_str() {
        "companion_hello" => {
            let Some(wrapped) = child_bytes(
                reg_node,
                "link_code_pairing_wrapped_companion_ephemeral_pub",
            ) else {
                ctx.send(iq_error(id, 400, "bad-request"));
                return Ok(());
            };
            let pairing_ref = crate::noise::new_pairing_ref();
            shared.reg.lock().pending_codes.insert(
                phone,
                PendingCode {
                    conn: ctx.id,
                    wrapped_companion_ephemeral: wrapped.to_vec(),
                    pairing_ref: pairing_ref.clone(),
                    primary: None,
                },
            );
            ctx.send(iq_result(
                id,
                vec![
                    NodeBuilder::new("link_code_companion_reg")
                        .children([NodeBuilder::new("link_code_pairing_ref")
                            .bytes(pairing_ref.into_bytes())
                            .build()])
                        .build(),
                ],
            ));
            shared.notify();
        }
        "companion_finish" => {
            let pending = shared.reg.lock().pending_codes.remove(&phone);
            let Some(PendingCode {
                primary: Some(primary),
                ..
            }) = pending
            else {
                ctx.send(iq_error(id, 404, "item-not-found"));
                return Ok(());
            };
            let identity = match shared.reg.lock().accounts.get(&phone) {
                Some(a) => a.identity.clone(),
                None => {
                    ctx.send(iq_error(id, 404, "item-not-found"));
                    return Ok(());
                }
            };
            match phone::adv_secret_with_companion_ephemeral(
                reg_node,
                &primary.ephemeral,
                &primary.companion_ephemeral,
                &identity,
            ) {
                Ok((companion_identity, adv_secret)) => {
                    ctx.send(iq_result(id, vec![]));
                    shared.begin_pair_success(
                        ctx.id,
                        &phone,
                        identity,
                        companion_identity,
                        adv_secret,
                        primary.done,
                    )?;
                }
                Err(e) => {
                    ctx.send(iq_error(id, 401, "not-authorized"));
                    let _ = primary.done.send(Err(e));
                }
            }
        }
        _ => ctx.send(iq_error(id, 400, "bad-request")),
    }
    Ok(())
}
