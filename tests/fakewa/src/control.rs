//! The control surface: [`FakeServer`] (what tests hold) and [`Shared`] (the
//! state every connection task and control call works on).
//!
//! Lock order, when both are needed: the Signal world (`tokio::sync::Mutex`,
//! held across crypto awaits) first, then the registry (`parking_lot::Mutex`,
//! never held across an `.await`). Every state change tests may wait for
//! (stanza recorded, message decrypted, connection opened/closed) bumps the
//! `changed` watch so waiters re-check without polling.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use wacore::libsignal::protocol::IdentityKeyPair;
use wacore_binary::Node;

use crate::accounts::{ConnId, Device, DeviceKey, Inbound, Outbound, PendingSign, Registry};
use crate::codec;
use crate::contacts::SignalWorld;
use crate::error::{FakeError, Result};
use crate::media::MediaStore;
use crate::noise::{HandshakePattern, ServerKeys};
use crate::phone::{self, PairSuccess};
use crate::rich::ContactContent;

/// Server configuration. `Config::default()` binds `127.0.0.1:0`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (WebSocket at `/ws/chat` and the admin API).
    pub listen: SocketAddr,
    /// Seed of the Noise static key: keep it fixed so clients resume with IK
    /// across fake restarts.
    pub noise_seed: Vec<u8>,
    /// Keep a transcript of every stanza (for `wait_for_stanza`); turn off
    /// for memory benchmarks.
    pub record_stanzas: bool,
    /// Contacts answer a client's message with a delivery receipt.
    pub contact_receipts: bool,
    /// The phone sends the app-state key share after the first prekey upload
    /// (lets a fresh pairing reach `Connected` without a 10 s wait).
    pub app_state_key_share: bool,
    /// How long `scan_qr` / `enter_pair_code` wait for the client to finish.
    pub pairing_timeout: Duration,
    /// Answer LID lookups for every number (Baileys 7 needs a LID for each
    /// recipient); when off, only the asking account's own LID is served.
    pub contact_lids: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            noise_seed: b"fakewa noise static key v1".to_vec(),
            record_stanzas: true,
            contact_receipts: true,
            app_state_key_share: true,
            pairing_timeout: Duration::from_secs(30),
            contact_lids: true,
        }
    }
}

/// A device linked by a QR scan or pair code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    /// Phone number, digits only.
    pub phone: String,
    /// Device JID, `PHONE:DEV@s.whatsapp.net`.
    pub jid: String,
    /// Device LID, `LID:DEV@lid`.
    pub lid: String,
}

/// A message a client sent to a fake contact, decrypted by that contact.
///
/// Optional fields are present (in JSON) only where they apply to `kind`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    /// Sender phone number (the linked account).
    pub from: String,
    /// Recipient phone number (the contact; for groups, one participant).
    pub to: String,
    /// Message id from the client's stanza.
    pub id: String,
    /// The decrypted text (`text` and `edit` kinds; empty otherwise).
    pub text: String,
    /// `text`, `image`, `video`, `audio`, `voice` (push-to-talk audio),
    /// `document`, `sticker`, `location`, `contact`, `reaction`, `edit`,
    /// `revoke`, `protocol` (other protocol messages), `other`.
    #[serde(default)]
    pub kind: String,
    /// Hex SHA-256 of the decrypted media file; set only when the blob was
    /// on the media host and its `file_enc_sha256`, MAC and `file_sha256`
    /// all checked out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_sha256: Option<String>,
    /// Why a media check failed (then `media_sha256` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_error: Option<String>,
    /// Media MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Document file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Media caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The quoted message id (`ContextInfo.stanza_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_id: Option<String>,
    /// Reaction emoji and target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    /// Id of the message an `edit` replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_of: Option<String>,
    /// Id of the message a `revoke` deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_of: Option<String>,
    /// Location latitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Location longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Location name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_name: Option<String>,
    /// Location address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// vCards of a contact message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcards: Vec<String>,
    /// Group JID when the message was sent to a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A reaction's emoji (empty = reaction removed) and the message it targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// Id of the message reacted to.
    pub target_id: String,
}

/// Stream errors that can be injected into a device's live connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorKind {
    /// `<stream:error code="401"/>`: logged out; the device is marked removed.
    Code401,
    /// `<conflict type="device_removed"/>`: the device is marked removed.
    DeviceRemoved,
    /// `<conflict type="replaced"/>`: another session took over.
    Replaced,
    /// `<stream:error code="515"/>`: restart required.
    Code515,
    /// `<stream:error code="503"/>`: service unavailable, reconnect.
    Code503,
    /// `<failure reason="405"/>`: the client's version is outdated.
    Outdated,
}

impl StreamErrorKind {
    fn node(self) -> Node {
        match self {
            Self::Code401 => codec::stream_error(Some("401"), None),
            Self::DeviceRemoved => codec::stream_error(None, Some("device_removed")),
            Self::Replaced => codec::stream_error(None, Some("replaced")),
            Self::Code515 => codec::stream_error(Some("515"), None),
            Self::Code503 => codec::stream_error(Some("503"), None),
            Self::Outdated => wacore_binary::builder::NodeBuilder::new("failure")
                .attr("reason", "405")
                .build(),
        }
    }

    fn removes_device(self) -> bool {
        matches!(self, Self::Code401 | Self::DeviceRemoved)
    }
}

impl FromStr for StreamErrorKind {
    type Err = FakeError;

    /// Parses the admin API spelling: `401`, `device_removed`, `replaced`, `515`, `503`, `outdated` (`405`).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "401" => Ok(Self::Code401),
            "device_removed" => Ok(Self::DeviceRemoved),
            "replaced" | "440" => Ok(Self::Replaced),
            "515" => Ok(Self::Code515),
            "503" => Ok(Self::Code503),
            "405" | "outdated" => Ok(Self::Outdated),
            other => Err(FakeError::InvalidInput(format!(
                "unknown stream error kind {other:?}"
            ))),
        }
    }
}

/// The receipts a contact can send for a client's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// Delivered (a receipt without `type`).
    Delivered,
    /// `type="read"`.
    Read,
    /// `type="played"` (voice notes, videos).
    Played,
}

impl ReceiptKind {
    fn attr(self) -> Option<&'static str> {
        match self {
            Self::Delivered => None,
            Self::Read => Some("read"),
            Self::Played => Some("played"),
        }
    }
}

impl FromStr for ReceiptKind {
    type Err = FakeError;

    /// `delivered` (or `delivery`), `read`, `played`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "delivered" | "delivery" | "" => Ok(Self::Delivered),
            "read" => Ok(Self::Read),
            "played" => Ok(Self::Played),
            other => Err(FakeError::InvalidInput(format!(
                "unknown receipt type {other:?}"
            ))),
        }
    }
}

/// Direction of a recorded stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by a client to the fake.
    FromClient,
    /// Sent by the fake to a client.
    ToClient,
}

/// One recorded stanza.
#[derive(Debug, Clone)]
pub struct Stanza {
    /// Connection it travelled on.
    pub conn: u64,
    /// The logged-in device of that connection, if any (`PHONE:DEV@s.whatsapp.net`).
    pub device: Option<String>,
    /// Who sent it.
    pub direction: Direction,
    /// The stanza.
    pub node: Node,
}

#[derive(Default)]
pub(crate) struct Journal {
    pub(crate) stanzas: Vec<Stanza>,
    pub(crate) sent: Vec<SentMessage>,
    pub(crate) handshakes: Vec<HandshakePattern>,
    /// Every contact text queued, by message id, for [`FakeServer::redeliver`].
    pub(crate) contact_texts: HashMap<String, ContactText>,
    /// Read / played receipts clients sent (`crate::read_receipts`).
    pub(crate) read_receipts: Vec<crate::read_receipts::ClientReceipt>,
    /// Chat states and presences clients sent (`crate::chat_states`).
    pub(crate) chat_states: Vec<crate::chat_states::ChatState>,
    pub(crate) presences: Vec<crate::chat_states::PresenceUpdate>,
}

/// A contact text as first queued (what a redelivery sends again).
#[derive(Clone)]
pub(crate) struct ContactText {
    from: String,
    to: String,
    text: String,
    push_name: Option<String>,
    content: Option<Arc<waproto::whatsapp::Message>>,
    as_lid: bool,
    sender_pn: bool,
    stanza_type: &'static str,
}

/// State shared by the accept loop, every connection task and the control API.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) keys: ServerKeys,
    pub(crate) reg: Mutex<Registry>,
    pub(crate) world: tokio::sync::Mutex<SignalWorld>,
    pub(crate) journal: Mutex<Journal>,
    /// The media host's uploads.
    pub(crate) media: Mutex<MediaStore>,
    /// WhatsApp Web's version document and the versions clients announced.
    pub(crate) web_version: crate::web_version::WebVersion,
    /// The address the server listens on (announced as the media host).
    addr: SocketAddr,
    changed: watch::Sender<u64>,
    next_conn: AtomicU64,
}

impl Shared {
    /// Adds `phone` to (or, with `on` false, removes it from) one of the
    /// registry's sets of marked contacts (not on WhatsApp, business).
    pub(crate) fn mark_contact(
        &self,
        phone: &str,
        on: bool,
        set: impl FnOnce(&mut crate::accounts::Registry) -> &mut std::collections::HashSet<String>,
    ) -> Result<()> {
        let phone = normalize_phone(phone)?;
        let mut reg = self.reg.lock();
        let set = set(&mut reg);
        if on {
            set.insert(phone);
        } else {
            set.remove(&phone);
        }
        Ok(())
    }

    pub(crate) fn new(config: Config, addr: SocketAddr) -> Result<Self> {
        let keys = ServerKeys::from_seed(&config.noise_seed)?;
        Ok(Self {
            config,
            keys,
            media: Mutex::new(MediaStore::default()),
            web_version: Default::default(),
            addr,
            reg: Mutex::new(Registry::default()),
            world: tokio::sync::Mutex::new(SignalWorld::default()),
            journal: Mutex::new(Journal::default()),
            changed: watch::Sender::new(0),
            next_conn: AtomicU64::new(1),
        })
    }

    /// The media hostname announced in `media_conn`: `127.0.0.1:PORT`.
    pub(crate) fn media_host(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether contact `contact` sent message `id` to the linked account
    /// `account` (a phone number): what a contact can match a receipt to.
    pub(crate) fn contact_sent(&self, contact: &str, account: &str, id: &str) -> bool {
        let Some(message) = self.journal.lock().contact_texts.get(id).cloned() else {
            return false;
        };
        message.from == contact
            && self
                .reg
                .lock()
                .resolve(&message.to)
                .is_some_and(|(phone, _)| phone == account)
    }

    /// Wakes every waiter (call after any state change tests may observe).
    pub(crate) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn record(
        &self,
        conn: ConnId,
        device: Option<&DeviceKey>,
        direction: Direction,
        node: &Node,
    ) {
        if !self.config.record_stanzas {
            return;
        }
        self.journal.lock().stanzas.push(Stanza {
            conn,
            device: device.map(DeviceKey::jid),
            direction,
            node: node.clone(),
        });
        self.notify();
    }

    pub(crate) fn record_handshake(&self, pattern: HandshakePattern) {
        self.journal.lock().handshakes.push(pattern);
        self.notify();
    }

    pub(crate) fn record_sent(&self, message: SentMessage) {
        self.journal.lock().sent.push(message);
        self.notify();
    }

    /// Waits until at least `count` entries of one journal list (`list`)
    /// match `pred` (entries recorded before the call count too); returns
    /// them. The one shape behind every `wait_for_*` of the journal.
    pub(crate) async fn wait_for_entries<T: Clone>(
        &self,
        list: impl Fn(&Journal) -> &Vec<T>,
        pred: impl Fn(&T) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<T>> {
        self.wait_until(timeout, || {
            let journal = self.journal.lock();
            let matching: Vec<T> = list(&journal).iter().filter(|e| pred(e)).cloned().collect();
            (matching.len() >= count).then_some(matching)
        })
        .await
    }

    /// Re-evaluates `check` after every state change until it yields or `timeout` passes.
    pub(crate) async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                rx.borrow_and_update();
                if let Some(v) = check() {
                    return v;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| FakeError::Timeout(timeout))
    }

    /// See [`FakeServer::inject_stream_error`].
    pub(crate) fn inject_stream_error(&self, target: &str, kind: StreamErrorKind) -> Result<()> {
        let mut reg = self.reg.lock();
        let devices = reg.devices_of(target);
        if devices.is_empty() {
            return Err(FakeError::UnknownDevice("target".into()));
        }
        let mut sent = 0;
        for key in &devices {
            for (_, tx) in reg.conns_of(key) {
                if tx.send(Outbound::Fatal(Box::new(kind.node()))).is_ok() {
                    sent += 1;
                }
            }
            if kind.removes_device()
                && let Some(dev) = reg.device_mut(key)
            {
                dev.removed = true;
            }
        }
        drop(reg);
        self.notify();
        if sent == 0 && !kind.removes_device() {
            return Err(FakeError::NotConnected("target".into()));
        }
        Ok(())
    }

    /// See [`FakeServer::connections`].
    pub(crate) fn connections(&self) -> Vec<(String, usize)> {
        let reg = self.reg.lock();
        let mut out: Vec<(String, usize)> = reg
            .accounts
            .values()
            .flat_map(|a| {
                a.devices.iter().map(|(d, dev)| {
                    (
                        DeviceKey {
                            phone: a.phone.clone(),
                            device: *d,
                        }
                        .jid(),
                        dev.live,
                    )
                })
            })
            .collect();
        out.sort();
        out
    }

    /// Linked (not removed) devices.
    pub(crate) fn linked_devices(&self) -> Vec<Linked> {
        let reg = self.reg.lock();
        let mut out: Vec<Linked> = reg
            .accounts
            .values()
            .flat_map(|a| {
                a.devices
                    .iter()
                    .filter(|(_, d)| !d.removed)
                    .map(|(id, _)| linked(&a.phone, &a.lid, *id))
            })
            .collect();
        out.sort_by(|a, b| a.jid.cmp(&b.jid));
        out
    }

    /// Sends `pair-success` to a registration connection and registers the
    /// pending sign; `done` resolves when the client's `pair-device-sign`
    /// arrives (or fails).
    pub(crate) fn begin_pair_success(
        &self,
        conn: ConnId,
        phone: &str,
        identity: IdentityKeyPair,
        companion_identity_pub: [u8; 32],
        adv_secret: [u8; 32],
        done: oneshot::Sender<Result<Linked>>,
    ) -> Result<()> {
        let mut reg = self.reg.lock();
        let tx = reg
            .conns
            .get(&conn)
            .map(|c| c.tx.clone())
            .ok_or(FakeError::NoPendingPairing("pairing connection"))?;
        let account = reg.ensure_account(phone, identity);
        let device = account.next_device;
        account.next_device += 1;
        let key_index = account.next_key_index;
        account.next_key_index += 1;
        let iq_id = format!("pair-success-{}", codec::new_message_id());
        let node = phone::pair_success_node(&PairSuccess {
            iq_id: &iq_id,
            account_identity: &account.identity,
            raw_id: account.raw_id,
            key_index,
            phone,
            lid: &account.lid,
            device,
            companion_identity_pub: &companion_identity_pub,
            adv_secret: &adv_secret,
        })?;
        reg.pending_signs.insert(
            iq_id,
            PendingSign {
                conn,
                phone: phone.to_string(),
                device,
                key_index,
                identity_pub: companion_identity_pub,
                done,
            },
        );
        tx.send(Outbound::Node(Box::new(node)))
            .map_err(|_| FakeError::NoPendingPairing("pairing connection"))?;
        Ok(())
    }

    /// The Signal identity of `phone`'s peer (created on demand).
    pub(crate) async fn identity_of(&self, phone: &str) -> Result<IdentityKeyPair> {
        let mut world = self.world.lock().await;
        Ok(world.peer(phone)?.identity().clone())
    }

    /// Queues a contact's text for every linked device of `to` and delivers
    /// it to the devices that are online now.
    pub(crate) async fn queue_contact_text(
        self: &Arc<Self>,
        from: &str,
        to: &str,
        text: &str,
        push_name: Option<String>,
        undecryptable: bool,
    ) -> Result<String> {
        let id = codec::new_message_id();
        let message = ContactText {
            from: from.to_string(),
            to: to.to_string(),
            text: text.to_string(),
            push_name,
            content: None,
            as_lid: false,
            sender_pn: false,
            stanza_type: "text",
        };
        self.journal_and_queue(&id, message, undecryptable).await?;
        Ok(id)
    }

    /// Queues an arbitrary message from `from` (like [`Self::queue_contact_text`]).
    pub(crate) async fn queue_contact_message(
        self: &Arc<Self>,
        from: &str,
        to: &str,
        message: waproto::whatsapp::Message,
        push_name: Option<String>,
    ) -> Result<String> {
        let id = codec::new_message_id();
        let message = ContactText {
            from: from.to_string(),
            to: to.to_string(),
            text: String::new(),
            push_name,
            content: Some(Arc::new(message)),
            as_lid: false,
            sender_pn: false,
            stanza_type: "text",
        };
        self.journal_and_queue(&id, message, false).await?;
        Ok(id)
    }

    /// Records a new contact message under `id` (for redelivery and the
    /// transcript) and queues it for the recipient's devices.
    async fn journal_and_queue(
        self: &Arc<Self>,
        id: &str,
        message: ContactText,
        undecryptable: bool,
    ) -> Result<()> {
        self.journal
            .lock()
            .contact_texts
            .insert(id.to_owned(), message.clone());
        self.queue_contact_text_as(id, &message, undecryptable, false)
            .await
    }

    /// Contact `from` sends `content` (any kind) to `to`; see [`ContactContent`].
    pub(crate) async fn queue_contact_content(
        self: &Arc<Self>,
        from: &str,
        to: &str,
        content: &ContactContent,
    ) -> Result<String> {
        if self.reg.lock().resolve(to).is_none() {
            return Err(FakeError::UnknownDevice("recipient".into()));
        }
        let from_jid = format!("{from}@s.whatsapp.net");
        let built = content.build(self, &from_jid)?;
        if content.as_lid {
            self.reg.lock().lid_for(from);
        }
        let id = codec::new_message_id();
        let message = ContactText {
            from: from.to_string(),
            to: to.to_string(),
            text: String::new(),
            push_name: None,
            content: Some(Arc::new(built)),
            as_lid: content.as_lid,
            sender_pn: content.as_lid && content.sender_pn,
            stanza_type: content.stanza_type(),
        };
        self.journal
            .lock()
            .contact_texts
            .insert(id.clone(), message.clone());
        self.queue_contact_text_as(&id, &message, false, false)
            .await?;
        Ok(id)
    }

    /// Contact `from` sends a receipt of `kind` for `ids` (messages a
    /// linked account sent it) to every live device of `to` (or, when
    /// `None`, of the account that sent the first of `ids`).
    pub(crate) fn contact_receipt(
        &self,
        from: &str,
        to: Option<&str>,
        ids: &[String],
        kind: ReceiptKind,
    ) -> Result<()> {
        let Some(first) = ids.first() else {
            return Err(FakeError::InvalidInput("no message ids".into()));
        };
        let to = match to {
            Some(t) => t.to_string(),
            None => self
                .journal
                .lock()
                .sent
                .iter()
                .find(|m| &m.id == first && m.to == from)
                .map(|m| m.from.clone())
                .ok_or_else(|| {
                    FakeError::InvalidInput(format!("{from} received no message {first}"))
                })?,
        };
        let group = self
            .journal
            .lock()
            .sent
            .iter()
            .find(|m| &m.id == first && m.to == from)
            .and_then(|m| m.group.clone());
        let mut receipt = wacore_binary::builder::NodeBuilder::new("receipt")
            .attrs([("id", first.clone()), ("t", codec::now_secs().to_string())]);
        receipt = match &group {
            Some(g) => receipt
                .attr("from", g.clone())
                .attr("participant", format!("{from}@s.whatsapp.net")),
            None => receipt.attr("from", format!("{from}@s.whatsapp.net")),
        };
        if let Some(t) = kind.attr() {
            receipt = receipt.attr("type", t.to_string());
        }
        if ids.len() > 1 {
            let items = ids[1..].iter().map(|id| {
                wacore_binary::builder::NodeBuilder::new("item")
                    .attr("id", id.clone())
                    .build()
            });
            receipt = receipt.children([wacore_binary::builder::NodeBuilder::new("list")
                .children(items)
                .build()]);
        }
        let receipt = receipt.build();
        let reg = self.reg.lock();
        let devices = reg.devices_of(&to);
        if devices.is_empty() {
            return Err(FakeError::UnknownDevice("recipient".into()));
        }
        let mut sent = 0;
        for key in &devices {
            for (_, tx) in reg.conns_of(key) {
                if tx.send(Outbound::Node(Box::new(receipt.clone()))).is_ok() {
                    sent += 1;
                }
            }
        }
        if sent == 0 {
            return Err(FakeError::NotConnected("recipient".into()));
        }
        Ok(())
    }

    /// See [`FakeServer::create_group`].
    pub(crate) fn create_group<S: AsRef<str>>(
        &self,
        subject: &str,
        participants: &[S],
    ) -> Result<String> {
        let participants = participants
            .iter()
            .map(|p| normalize_phone(p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let mut reg = self.reg.lock();
        reg.seq += 1;
        let user = format!("120363{:012}", reg.seq);
        reg.groups.insert(
            user.clone(),
            crate::accounts::Group {
                subject: subject.to_string(),
                participants,
                creation: codec::now_secs(),
            },
        );
        Ok(format!("{user}@g.us"))
    }

    /// See [`FakeServer::set_auto_receipts`].
    pub(crate) fn set_auto_receipts(&self, contact: Option<&str>, enabled: bool) -> Result<()> {
        let mut reg = self.reg.lock();
        match contact {
            None => reg.auto_receipts_off = !enabled,
            Some(phone) => {
                let phone = normalize_phone(phone)?;
                if enabled {
                    reg.no_auto_receipts.remove(&phone);
                } else {
                    reg.no_auto_receipts.insert(phone);
                }
            }
        }
        Ok(())
    }

    /// Queues contact text `id` for every linked device of its recipient
    /// (or the one device it names) and delivers it to those online.
    async fn queue_contact_text_as(
        self: &Arc<Self>,
        id: &str,
        message: &ContactText,
        undecryptable: bool,
        redelivery: bool,
    ) -> Result<()> {
        let keys = {
            let mut reg = self.reg.lock();
            let (phone, device) = reg
                .resolve(&message.to)
                .ok_or_else(|| FakeError::UnknownDevice("recipient".into()))?;
            let account = reg
                .accounts
                .get_mut(&phone)
                .ok_or_else(|| FakeError::UnknownDevice("recipient".into()))?;
            let mut keys = Vec::new();
            for (dev_id, dev) in account.devices.iter_mut() {
                if dev.removed || device.is_some_and(|d| d != *dev_id) {
                    continue;
                }
                // A redelivered copy supersedes one still waiting for its
                // receipt (fresh ids skip the scan: backlogs can be long).
                if redelivery {
                    dev.inbox.retain(|m| m.id != id);
                }
                dev.inbox.push_back(Inbound {
                    id: id.to_string(),
                    from: message.from.clone(),
                    text: message.text.clone(),
                    push_name: message.push_name.clone(),
                    stanza: None,
                    sent_on: None,
                    undecryptable,
                    content: message.content.clone(),
                    as_lid: message.as_lid,
                    sender_pn: message.sender_pn,
                    stanza_type: message.stanza_type,
                });
                keys.push(DeviceKey {
                    phone: phone.clone(),
                    device: *dev_id,
                });
            }
            keys
        };
        if keys.is_empty() {
            return Err(FakeError::UnknownDevice(
                "recipient has no linked device".into(),
            ));
        }
        for key in keys {
            crate::messaging::deliver_inbox(self, &key, None).await?;
        }
        Ok(())
    }

    /// See [`FakeServer::redeliver`].
    pub(crate) async fn redeliver(self: &Arc<Self>, id: &str) -> Result<()> {
        let original = self.journal.lock().contact_texts.get(id).cloned();
        let Some(message) = original else {
            return Err(FakeError::InvalidInput("unknown message id".into()));
        };
        self.queue_contact_text_as(id, &message, false, true).await
    }

    /// See [`FakeServer::set_device_muted`].
    pub(crate) fn set_device_muted(&self, target: &str, muted: bool) -> Result<()> {
        self.update_devices(target, |dev| dev.muted = muted)
    }

    /// Applies `change` to every device `target` names; unknown targets are an error.
    fn update_devices(&self, target: &str, change: impl Fn(&mut Device)) -> Result<()> {
        let mut reg = self.reg.lock();
        let devices = reg.devices_of(target);
        if devices.is_empty() {
            return Err(FakeError::UnknownDevice("target".into()));
        }
        for key in devices {
            if let Some(dev) = reg.device_mut(&key) {
                change(dev);
            }
        }
        Ok(())
    }
}

/// A running fake WhatsApp server. Dropping it stops the listener and closes
/// every connection.
pub struct FakeServer {
    /// Crate-visible so each feature module can add its own API block.
    pub(crate) shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeServer {
    /// Binds `config.listen` and starts serving WebSocket + admin HTTP.
    pub async fn start(config: Config) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config, addr)?);
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(crate::transport::accept_loop(
            shared.clone(),
            listener,
            shutdown_rx,
        ));
        tracing::info!(%addr, "fake WhatsApp server listening");
        Ok(Self {
            shared,
            addr,
            shutdown,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/ws/chat`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// `http://127.0.0.1:PORT` (admin API base).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Noise static public key (the leaf of the served certificate chain).
    pub fn server_static_pub(&self) -> [u8; 32] {
        self.shared.keys.static_pub()
    }

    /// The phone scans a client's QR string; a fresh fictitious account
    /// (`1555000NNNN`) is linked. Resolves once the client signed the pairing.
    pub async fn scan_qr(&self, qr: &str) -> Result<Linked> {
        scan(&self.shared, None, qr).await
    }

    /// Like [`Self::scan_qr`], as the phone of `phone` (digits).
    pub async fn scan_qr_as(&self, phone: &str, qr: &str) -> Result<Linked> {
        scan(&self.shared, Some(phone), qr).await
    }

    /// The phone of `phone` enters the pair `code` a client displays
    /// (the client must have requested a code for that number).
    pub async fn enter_pair_code(&self, phone: &str, code: &str) -> Result<Linked> {
        enter_pair_code(&self.shared, phone, code).await
    }

    /// Fake contact `from_phone` sends `text` to the linked account
    /// `to_phone` (phone, device JID or LID JID). Delivered now to online
    /// devices, queued for offline ones. Returns the message id.
    pub async fn contact_send_text(
        &self,
        from_phone: &str,
        to_phone: &str,
        text: &str,
    ) -> Result<String> {
        let from = from_phone.trim_start_matches('+');
        if from.is_empty() || !from.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FakeError::InvalidInput(
                "sender must be a phone number".into(),
            ));
        }
        self.shared
            .queue_contact_text(from, to_phone, text, None, false)
            .await
    }

    /// Like [`Self::contact_send_text`], but the first copy is one the client
    /// cannot decrypt (as after a lost session): the client answers with a
    /// retry receipt and the contact re-sends on a new session.
    pub async fn contact_send_undecryptable_text(
        &self,
        from_phone: &str,
        to_phone: &str,
        text: &str,
    ) -> Result<String> {
        let from = normalize_phone(from_phone)?;
        self.shared
            .queue_contact_text(&from, to_phone, text, None, true)
            .await
    }

    /// WhatsApp delivers contact message `id` again, with the same id (as it
    /// does when it did not see the ack, or after a reconnect): queued anew
    /// for every linked device of its recipient, freshly encrypted.
    pub async fn redeliver(&self, id: &str) -> Result<()> {
        self.shared.redeliver(id).await
    }

    /// Mutes (or unmutes) `target`'s devices: their sockets stay open and the
    /// server keeps reading them, but sends nothing (no pongs, no IQ results,
    /// no messages) — a connection that silently stopped delivering.
    pub fn set_device_muted(&self, target: &str, muted: bool) -> Result<()> {
        self.shared.set_device_muted(target, muted)
    }

    /// Contact `from_phone` reports that it read the message `id` the linked
    /// account `to` sent it: a `<receipt type="read">` to every live device of
    /// `to`. (Delivery receipts are sent automatically when
    /// `Config::contact_receipts` is on.)
    pub fn contact_read(&self, from_phone: &str, to: &str, id: &str) -> Result<()> {
        let from = normalize_phone(from_phone)?;
        let reg = self.shared.reg.lock();
        let devices = reg.devices_of(to);
        if devices.is_empty() {
            return Err(FakeError::UnknownDevice("recipient".into()));
        }
        let receipt = wacore_binary::builder::NodeBuilder::new("receipt")
            .attrs([
                ("from", format!("{from}@s.whatsapp.net")),
                ("id", id.to_string()),
                ("t", codec::now_secs().to_string()),
                ("type", "read".to_string()),
            ])
            .build();
        let mut sent = 0;
        for key in &devices {
            for (_, tx) in reg.conns_of(key) {
                if tx.send(Outbound::Node(Box::new(receipt.clone()))).is_ok() {
                    sent += 1;
                }
            }
        }
        if sent == 0 {
            return Err(FakeError::NotConnected("recipient".into()));
        }
        Ok(())
    }

    /// Contact `from_phone` sends `content` (any kind: text, media, reaction,
    /// edit, revoke, location, contact card; quoted; optionally from its
    /// LID) to the linked account `to`. Media is encrypted with a fresh key
    /// and stored on the fake media host first. Returns the message id.
    pub async fn contact_send(
        &self,
        from_phone: &str,
        to: &str,
        content: ContactContent,
    ) -> Result<String> {
        let from = normalize_phone(from_phone)?;
        self.shared.queue_contact_content(&from, to, &content).await
    }

    /// Contact `from_phone` acknowledges messages a linked account sent it:
    /// one `<receipt>` (`ids[0]`, the rest in `<list>`) of `kind` to every
    /// live device of `to`, or of the account that sent `ids[0]` when `to`
    /// is `None`.
    pub fn contact_receipt(
        &self,
        from_phone: &str,
        to: Option<&str>,
        ids: &[String],
        kind: ReceiptKind,
    ) -> Result<()> {
        let from = normalize_phone(from_phone)?;
        self.shared.contact_receipt(&from, to, ids, kind)
    }

    /// Turns the automatic delivery receipt (sent when a contact decrypts a
    /// client's message) on or off, for one contact or (`None`) for all.
    /// Off by `Config::contact_receipts = false` stays off.
    pub fn set_auto_receipts(&self, contact: Option<&str>, enabled: bool) -> Result<()> {
        self.shared.set_auto_receipts(contact, enabled)
    }

    /// Gives contact `phone` a LID (allocated once, stable) and returns it
    /// as `NNN@lid`. usync answers it from now on (also with
    /// `Config::contact_lids` off), and messages a client addresses to it
    /// reach the contact.
    pub fn contact_lid(&self, phone: &str) -> Result<String> {
        let phone = normalize_phone(phone)?;
        Ok(format!("{}@lid", self.shared.reg.lock().lid_for(&phone)))
    }

    /// Marks `phone` as not on WhatsApp (or back on it): usync answers
    /// `contact type="out"`, no LID and an empty device list.
    pub fn set_not_on_whatsapp(&self, phone: &str, out: bool) -> Result<()> {
        self.shared
            .mark_contact(phone, out, |reg| &mut reg.not_on_whatsapp)
    }

    /// Marks `phone` as a business account (usync `<business/>`, which the
    /// client reports as `is_business`).
    pub fn set_business(&self, phone: &str, business: bool) -> Result<()> {
        self.shared
            .mark_contact(phone, business, |reg| &mut reg.business)
    }

    /// Creates a group of fake contacts; returns its JID (`120363…@g.us`).
    /// Every linked account that asks for the group's metadata is listed
    /// as an admin member; messages clients send to it are decrypted by
    /// each participant (one [`SentMessage`] per participant, `group` set).
    pub fn create_group(&self, subject: &str, participants: &[&str]) -> Result<String> {
        self.shared.create_group(subject, participants)
    }

    /// The media host announced to clients (`127.0.0.1:PORT`): clients
    /// request `https://{media_host}/…`, which tests must map to `http://`.
    pub fn media_host(&self) -> String {
        self.shared.media_host()
    }

    /// Expires a stored media blob, named by the hex SHA-256 of the
    /// plaintext file or of the encrypted blob (or the base64url token):
    /// downloads answer 410 from now on.
    pub fn expire_media(&self, sha256: &str) -> Result<()> {
        if self.shared.media.lock().expire(sha256) {
            Ok(())
        } else {
            Err(FakeError::UnknownMedia(sha256.to_string()))
        }
    }

    /// Messages clients sent to fake contacts, decrypted, in arrival order.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.journal.lock().sent.clone()
    }

    /// Waits for a sent message matching `pred` (messages that arrived
    /// before the call count too).
    pub async fn wait_for_sent_message(
        &self,
        pred: impl Fn(&SentMessage) -> bool,
        timeout: Duration,
    ) -> Result<SentMessage> {
        let shared = &self.shared;
        shared
            .wait_until(timeout, || {
                shared.journal.lock().sent.iter().find(|m| pred(m)).cloned()
            })
            .await
    }

    /// Waits until at least `count` sent messages match `pred`; returns them
    /// (e.g. one entry per participant of a group message).
    pub async fn wait_for_sent_messages(
        &self,
        pred: impl Fn(&SentMessage) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<SentMessage>> {
        self.shared
            .wait_for_entries(|j| &j.sent, pred, count, timeout)
            .await
    }

    /// The Noise pattern of every completed handshake, in order.
    pub fn handshakes(&self) -> Vec<HandshakePattern> {
        self.shared.journal.lock().handshakes.clone()
    }

    /// Every recorded stanza (empty when `record_stanzas` is off).
    pub fn stanzas(&self) -> Vec<Stanza> {
        self.shared.journal.lock().stanzas.clone()
    }

    /// Waits for a stanza matching `pred` (stanzas recorded before the call count too).
    pub async fn wait_for_stanza(
        &self,
        pred: impl Fn(&Stanza) -> bool,
        timeout: Duration,
    ) -> Result<Stanza> {
        let shared = &self.shared;
        shared
            .wait_until(timeout, || {
                shared
                    .journal
                    .lock()
                    .stanzas
                    .iter()
                    .find(|s| pred(s))
                    .cloned()
            })
            .await
    }

    /// Sends a stream error to every live connection of `target` (phone or
    /// device JID) and closes them. `Code401`/`DeviceRemoved` also mark the
    /// device(s) removed, so their next login fails with 401.
    ///
    /// Errors: [`FakeError::UnknownDevice`] if `target` is not linked;
    /// [`FakeError::NotConnected`] if it has no live connection (except for
    /// the two kinds that remove the device, which apply offline too).
    pub async fn inject_stream_error(&self, target: &str, kind: StreamErrorKind) -> Result<()> {
        self.shared.inject_stream_error(target, kind)
    }

    /// The phone unlinks `target` (phone = all its devices, or one device
    /// JID): live connections get `<conflict type="device_removed"/>`, and
    /// later logins fail with `<failure reason="401">`.
    pub async fn remove_device(&self, target: &str) -> Result<()> {
        self.inject_stream_error(target, StreamErrorKind::DeviceRemoved)
            .await
    }

    /// How often the version document (`GET /sw.js`) was served, and the
    /// versions clients announced at login.
    pub fn web_version(&self) -> crate::web_version::WebVersionReport {
        self.shared.web_version.report()
    }

    /// Sets the revision `GET /sw.js` announces (`2.3000.REVISION`).
    pub fn set_web_revision(&self, revision: u32) {
        self.shared.web_version.set_revision(revision);
    }

    /// Live (logged-in) connections per linked device: `(device JID, count)`,
    /// sorted by JID; devices with no connection are listed with 0.
    pub fn connections(&self) -> Vec<(String, usize)> {
        self.shared.connections()
    }

    /// Live connections of `target` (phone: all its devices; or a device JID).
    pub fn connection_count(&self, target: &str) -> usize {
        let reg = self.shared.reg.lock();
        reg.devices_of(target)
            .iter()
            .filter_map(|k| reg.device(k))
            .map(|d| d.live)
            .sum()
    }

    /// High-water mark of simultaneous live connections of the account of
    /// `target` (assert it is 1 to prove there never were two sockets).
    pub fn max_concurrent_connections(&self, target: &str) -> usize {
        let reg = self.shared.reg.lock();
        reg.resolve(target)
            .and_then(|(phone, _)| reg.accounts.get(&phone))
            .map_or(0, |a| a.max_live)
    }

    /// Successful logins of `target` (phone: all devices; or a device JID).
    pub fn login_count(&self, target: &str) -> usize {
        let reg = self.shared.reg.lock();
        reg.devices_of(target)
            .iter()
            .filter_map(|k| reg.device(k))
            .map(|d| d.logins)
            .sum()
    }

    /// Whether `target` (a device JID, or a phone whose every device is removed) is removed.
    pub fn is_removed(&self, target: &str) -> bool {
        let reg = self.shared.reg.lock();
        let devices = reg.devices_of(target);
        !devices.is_empty()
            && devices
                .iter()
                .filter_map(|k| reg.device(k))
                .all(|d| d.removed)
    }

    /// Linked (not removed) devices.
    pub fn linked_devices(&self) -> Vec<Linked> {
        self.shared.linked_devices()
    }

    /// Waits until `target` has exactly `count` live connections.
    pub async fn wait_for_connection_count(
        &self,
        target: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<()> {
        self.shared
            .wait_until(timeout, || {
                (self.connection_count(target) == count).then_some(())
            })
            .await
    }

    /// Stops (or resumes) answering keepalive pings for every device.
    pub fn set_ping_replies(&self, enabled: bool) {
        self.shared.reg.lock().ping_replies_off = !enabled;
    }

    /// Stops (or resumes) answering keepalive pings of `target`'s devices.
    pub fn set_device_ping_replies(&self, target: &str, enabled: bool) -> Result<()> {
        self.shared
            .update_devices(target, |dev| dev.ping_replies = enabled)
    }
}

pub(crate) fn linked(phone: &str, lid: &str, device: u16) -> Linked {
    Linked {
        phone: phone.to_string(),
        jid: format!("{phone}:{device}@s.whatsapp.net"),
        lid: format!("{lid}:{device}@lid"),
    }
}

pub(crate) async fn scan(shared: &Arc<Shared>, phone: Option<&str>, qr: &str) -> Result<Linked> {
    let scanned = phone::parse_qr(qr)?;
    let conn = shared
        .reg
        .lock()
        .registrations
        .get(&scanned.noise_pub)
        .copied()
        .ok_or(FakeError::NoPendingPairing("QR code"))?;
    let phone = match phone {
        Some(p) => normalize_phone(p)?,
        None => {
            let world = shared.world.lock().await;
            shared.reg.lock().fresh_phone(|p| world.knows(p))
        }
    };
    let identity = shared.identity_of(&phone).await?;
    let (done, rx) = oneshot::channel();
    shared.begin_pair_success(
        conn,
        &phone,
        identity,
        scanned.identity_pub,
        scanned.adv_secret,
        done,
    )?;
    await_pairing(shared, rx).await
}

async fn await_pairing(shared: &Shared, rx: oneshot::Receiver<Result<Linked>>) -> Result<Linked> {
    let timeout = shared.config.pairing_timeout;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(FakeError::PairingFailed(
            "the client connection closed before pairing finished".into(),
        )),
        Err(_) => Err(FakeError::Timeout(timeout)),
    }
}

pub(crate) fn normalize_phone(phone: &str) -> Result<String> {
    let digits = phone.trim().trim_start_matches('+');
    let digits = digits.split('@').next().unwrap_or_default();
    if digits.len() < 6 || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FakeError::InvalidInput("not a phone number".into()));
    }
    Ok(digits.to_string())
}

pub(crate) async fn enter_pair_code(
    shared: &Arc<Shared>,
    phone: &str,
    code: &str,
) -> Result<Linked> {
    let phone = normalize_phone(phone)?;
    let code = code.trim().replace('-', "").to_uppercase();
    if code.len() != 8 {
        return Err(FakeError::InvalidInput(
            "pair codes have 8 characters".into(),
        ));
    }
    let (wrapped, pairing_ref, conn) = {
        let reg = shared.reg.lock();
        let pending = reg
            .pending_codes
            .get(&phone)
            .ok_or(FakeError::NoPendingPairing("pair code"))?;
        (
            pending.wrapped_companion_ephemeral.clone(),
            pending.pairing_ref.clone(),
            pending.conn,
        )
    };
    let identity = shared.identity_of(&phone).await?;
    shared.reg.lock().ensure_account(&phone, identity.clone());
    let identity_pub = identity.public_key().public_key_bytes().to_vec();
    let code_for_task = code.clone();
    // Two PBKDF2 runs (131 072 rounds each): keep them off the async workers.
    let (companion_ephemeral, (ephemeral, hello)) = tokio::task::spawn_blocking(move || {
        let companion = phone::companion_ephemeral(&wrapped, &code_for_task)?;
        Ok::<_, FakeError>((
            companion,
            phone::primary_hello(&code_for_task, &pairing_ref, &identity_pub),
        ))
    })
    .await
    .map_err(|e| FakeError::PairingFailed(e.to_string()))??;
    let (done, rx) = oneshot::channel();
    {
        let mut reg = shared.reg.lock();
        let tx = reg
            .conns
            .get(&conn)
            .map(|c| c.tx.clone())
            .ok_or(FakeError::NoPendingPairing("pair code"))?;
        let pending = reg
            .pending_codes
            .get_mut(&phone)
            .ok_or(FakeError::NoPendingPairing("pair code"))?;
        pending.primary = Some(crate::accounts::PrimaryHello {
            ephemeral,
            companion_ephemeral,
            done,
        });
        tx.send(Outbound::Node(Box::new(hello)))
            .map_err(|_| FakeError::NoPendingPairing("pair code"))?;
    }
    await_pairing(shared, rx).await
}
