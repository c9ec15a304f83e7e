//! The registry: phone accounts, their linked (companion) devices, live
//! connections, pending pairings and per-device inbound queues.
//!
//! Everything here is plain data behind one `parking_lot::Mutex` in
//! [`crate::control::Shared`]; the lock is never held across an `.await`
//! (all methods are synchronous). Invariants:
//! - a phone number has at most one account; a LID maps to exactly one phone;
//! - a removed device stays in the registry (so its next login is answered
//!   with `<failure reason="401">`) until the account is re-linked;
//! - `Account::live` counts logged-in connections of all the account's
//!   devices, and `max_live` is its high-water mark (never decreases);
//! - an uploaded one-time prekey is popped when handed out, so it is handed
//!   out at most once.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tokio::sync::{mpsc, oneshot};
use wacore::libsignal::protocol::{IdentityKeyPair, KeyPair};
use wacore_binary::Node;

use crate::control::Linked;
use crate::error::Result;

/// Identifies one WebSocket connection for the fake's lifetime.
pub(crate) type ConnId = u64;

/// What a connection task is asked to do. Stanzas are boxed so the
/// channel's slot blocks stay small on idle connections.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Send this stanza.
    Node(Box<Node>),
    /// Send this `<stream:error>` (or `<failure>`), then close the socket.
    Fatal(Box<Node>),
    /// Close the socket without a stanza.
    Close,
}

/// A phone account's device, `(phone, device id)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DeviceKey {
    pub(crate) phone: String,
    pub(crate) device: u16,
}

impl DeviceKey {
    /// `PHONE:DEV@s.whatsapp.net`.
    pub(crate) fn jid(&self) -> String {
        format!("{}:{}@s.whatsapp.net", self.phone, self.device)
    }
}

/// A live connection as the registry sees it.
pub(crate) struct ConnEntry {
    pub(crate) tx: mpsc::UnboundedSender<Outbound>,
    /// Set once the connection logged in as a linked device.
    pub(crate) device: Option<DeviceKey>,
    /// Set once the offline marker was sent: live messages go out directly.
    pub(crate) ready: bool,
}

/// The prekey bundle a client device uploaded.
pub(crate) struct UploadedBundle {
    pub(crate) registration_id: u32,
    pub(crate) identity: [u8; 32],
    pub(crate) signed_prekey_id: u32,
    pub(crate) signed_prekey: [u8; 32],
    pub(crate) signed_prekey_sig: Vec<u8>,
    pub(crate) prekeys: VecDeque<(u32, [u8; 32])>,
}

/// A message from a fake contact waiting for (or awaiting the receipt of) a device.
pub(crate) struct Inbound {
    pub(crate) id: String,
    pub(crate) from: String,
    pub(crate) text: String,
    pub(crate) push_name: Option<String>,
    /// The encrypted stanza once built; redelivered byte-for-byte.
    pub(crate) stanza: Option<Node>,
    /// The connection it was last sent on (sent again on a new connection
    /// until a receipt arrives).
    pub(crate) sent_on: Option<ConnId>,
    /// Send the first copy so that the client cannot decrypt it (retry tests).
    pub(crate) undecryptable: bool,
    /// The message itself when it is not plain `text`.
    pub(crate) content: Option<std::sync::Arc<waproto::whatsapp::Message>>,
    /// Sent from the contact's LID (`LID@lid`).
    pub(crate) as_lid: bool,
    /// With `as_lid`: the stanza names the phone number (`sender_pn`).
    pub(crate) sender_pn: bool,
    /// The stanza's `type` (`text`, `media`, `reaction`).
    pub(crate) stanza_type: &'static str,
}

/// A linked companion device.
pub(crate) struct Device {
    pub(crate) key_index: u32,
    pub(crate) removed: bool,
    /// The signed device identity the client returned in `pair-device-sign`.
    pub(crate) device_identity: Vec<u8>,
    pub(crate) bundle: Option<UploadedBundle>,
    pub(crate) live: usize,
    pub(crate) logins: usize,
    /// Messages not yet acknowledged by a receipt from this device.
    pub(crate) inbox: VecDeque<Inbound>,
    pub(crate) ping_replies: bool,
    /// Nothing is sent to this device's connections (they stay open and
    /// keep reading): a socket that silently stopped delivering.
    pub(crate) muted: bool,
}

/// A phone account (the fake "phone" plus its linked devices).
pub(crate) struct Account {
    pub(crate) phone: String,
    pub(crate) lid: String,
    pub(crate) raw_id: u32,
    /// The phone's Signal identity = ADV account key.
    pub(crate) identity: IdentityKeyPair,
    pub(crate) next_device: u16,
    pub(crate) next_key_index: u32,
    pub(crate) devices: BTreeMap<u16, Device>,
    pub(crate) live: usize,
    pub(crate) max_live: usize,
    pub(crate) logins: usize,
}

impl Account {
    /// Indexes of devices that are linked and not removed (for key-index lists).
    pub(crate) fn valid_key_indexes(&self) -> Vec<u32> {
        self.devices
            .values()
            .filter(|d| !d.removed)
            .map(|d| d.key_index)
            .collect()
    }
}

/// A `pair-success` sent to a client, waiting for its `pair-device-sign`.
pub(crate) struct PendingSign {
    pub(crate) conn: ConnId,
    pub(crate) phone: String,
    pub(crate) device: u16,
    pub(crate) key_index: u32,
    pub(crate) identity_pub: [u8; 32],
    pub(crate) done: oneshot::Sender<Result<Linked>>,
}

/// A pair-code flow started by a client (`companion_hello`).
pub(crate) struct PendingCode {
    pub(crate) conn: ConnId,
    pub(crate) wrapped_companion_ephemeral: Vec<u8>,
    pub(crate) pairing_ref: String,
    /// Set once the phone "entered" the code (`primary_hello` sent).
    pub(crate) primary: Option<PrimaryHello>,
}

/// The phone's half of the pair-code exchange.
pub(crate) struct PrimaryHello {
    pub(crate) ephemeral: KeyPair,
    /// The client's ephemeral key, unwrapped with the code.
    pub(crate) companion_ephemeral: [u8; 32],
    pub(crate) done: oneshot::Sender<Result<Linked>>,
}

/// All mutable protocol state of the fake.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) accounts: HashMap<String, Account>,
    /// LID user → phone (accounts, and contacts once their LID was served).
    pub(crate) lids: HashMap<String, String>,
    /// Phone → LID user (the inverse of `lids`).
    pub(crate) lid_by_phone: HashMap<String, String>,
    pub(crate) conns: HashMap<ConnId, ConnEntry>,
    /// Registration (unpaired) connections by the client's Noise static key.
    pub(crate) registrations: HashMap<[u8; 32], ConnId>,
    /// By the id of the `pair-success` IQ.
    pub(crate) pending_signs: HashMap<String, PendingSign>,
    /// By phone number.
    pub(crate) pending_codes: HashMap<String, PendingCode>,
    /// Sequence for fresh accounts, LIDs and raw ids.
    pub(crate) seq: u32,
    /// Global switch for keepalive replies (per-device switch on `Device`).
    pub(crate) ping_replies_off: bool,
    /// Numbers that are not on WhatsApp (usync `contact type="out"`).
    pub(crate) not_on_whatsapp: std::collections::HashSet<String>,
    /// Numbers that are business accounts (usync `<business>`).
    pub(crate) business: std::collections::HashSet<String>,
    /// Contacts whose automatic delivery receipt is off.
    pub(crate) no_auto_receipts: std::collections::HashSet<String>,
    /// Global switch for automatic delivery receipts (on unless set).
    pub(crate) auto_receipts_off: bool,
    /// Groups by JID user (`NNNN-NNNN`).
    pub(crate) groups: BTreeMap<String, Group>,
}

/// A group created through the control API.
pub(crate) struct Group {
    pub(crate) subject: String,
    /// Participant phone numbers (linked accounts that query the group are
    /// implicitly members too, as admins).
    pub(crate) participants: Vec<String>,
    pub(crate) creation: u64,
}

impl Registry {
    /// Resolves a phone number, `PHONE@s.whatsapp.net`, `PHONE:DEV@…` or a
    /// `LID@lid` user to the account's phone, plus the device if one was named.
    pub(crate) fn resolve(&self, target: &str) -> Option<(String, Option<u16>)> {
        let (user_dev, server) = target.split_once('@').unwrap_or((target, ""));
        let (user, device) = match user_dev.split_once(':') {
            Some((u, d)) => (u, d.parse::<u16>().ok()),
            None => (user_dev, None),
        };
        let user = user.trim_start_matches('+');
        let phone = if server == "lid" {
            self.lids.get(user)?.clone()
        } else {
            user.to_string()
        };
        self.accounts
            .contains_key(&phone)
            .then_some((phone, device))
    }

    /// Maps a JID user (phone or LID) to a phone number, if it is a LID we know.
    pub(crate) fn phone_of_user(&self, user: &str, is_lid: bool) -> String {
        if is_lid {
            self.lids
                .get(user)
                .cloned()
                .unwrap_or_else(|| user.to_string())
        } else {
            user.to_string()
        }
    }

    /// The device keys a target names: one device, or all devices of an account.
    pub(crate) fn devices_of(&self, target: &str) -> Vec<DeviceKey> {
        let Some((phone, device)) = self.resolve(target) else {
            return Vec::new();
        };
        let Some(account) = self.accounts.get(&phone) else {
            return Vec::new();
        };
        account
            .devices
            .keys()
            .filter(|d| device.is_none_or(|want| want == **d))
            .map(|d| DeviceKey {
                phone: phone.clone(),
                device: *d,
            })
            .collect()
    }

    pub(crate) fn device(&self, key: &DeviceKey) -> Option<&Device> {
        self.accounts.get(&key.phone)?.devices.get(&key.device)
    }

    pub(crate) fn device_mut(&mut self, key: &DeviceKey) -> Option<&mut Device> {
        self.accounts
            .get_mut(&key.phone)?
            .devices
            .get_mut(&key.device)
    }

    /// Live connections of a device.
    pub(crate) fn conns_of(
        &self,
        key: &DeviceKey,
    ) -> Vec<(ConnId, mpsc::UnboundedSender<Outbound>)> {
        self.conns
            .iter()
            .filter(|(_, c)| c.device.as_ref() == Some(key))
            .map(|(id, c)| (*id, c.tx.clone()))
            .collect()
    }

    /// A phone number not used by any account or known peer.
    pub(crate) fn fresh_phone(&mut self, taken: impl Fn(&str) -> bool) -> String {
        loop {
            self.seq += 1;
            let phone = format!("1555000{:04}", self.seq % 10_000);
            if !self.accounts.contains_key(&phone) && !taken(&phone) {
                return phone;
            }
        }
    }

    /// The LID user of `phone`, allocated on first use (a number keeps its
    /// LID when it later becomes a linked account).
    pub(crate) fn lid_for(&mut self, phone: &str) -> String {
        if let Some(lid) = self.lid_by_phone.get(phone) {
            return lid.clone();
        }
        self.seq += 1;
        let lid = format!("{}", 100_000_000_000_000u64 + u64::from(self.seq));
        self.lids.insert(lid.clone(), phone.to_string());
        self.lid_by_phone.insert(phone.to_string(), lid.clone());
        lid
    }

    /// Creates the account for `phone` if absent and returns it.
    pub(crate) fn ensure_account(
        &mut self,
        phone: &str,
        identity: IdentityKeyPair,
    ) -> &mut Account {
        if !self.accounts.contains_key(phone) {
            let lid = self.lid_for(phone);
            self.seq += 1;
            self.accounts.insert(
                phone.to_string(),
                Account {
                    phone: phone.to_string(),
                    lid,
                    raw_id: 1_000 + self.seq,
                    identity,
                    next_device: 1,
                    next_key_index: 1,
                    devices: BTreeMap::new(),
                    live: 0,
                    max_live: 0,
                    logins: 0,
                },
            );
        }
        // Invariant: inserted just above when absent.
        self.accounts
            .get_mut(phone)
            .expect("account exists after insert")
    }

    /// Records that connection `conn` logged in as `key`.
    pub(crate) fn attach(&mut self, conn: ConnId, key: &DeviceKey) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.device = Some(key.clone());
        }
        if let Some(account) = self.accounts.get_mut(&key.phone) {
            account.live += 1;
            account.max_live = account.max_live.max(account.live);
            account.logins += 1;
            if let Some(device) = account.devices.get_mut(&key.device) {
                device.live += 1;
                device.logins += 1;
            }
        }
    }

    /// Forgets a closed connection, updating live counts.
    pub(crate) fn detach(&mut self, conn: ConnId) {
        let Some(entry) = self.conns.remove(&conn) else {
            return;
        };
        self.registrations.retain(|_, c| *c != conn);
        self.pending_codes.retain(|_, p| p.conn != conn);
        if let Some(key) = entry.device
            && let Some(account) = self.accounts.get_mut(&key.phone)
        {
            account.live = account.live.saturating_sub(1);
            if let Some(device) = account.devices.get_mut(&key.device) {
                device.live = device.live.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> IdentityKeyPair {
        IdentityKeyPair::generate(&mut rand::rng())
    }

    #[test]
    fn resolve_accepts_phone_jid_device_jid_and_lid() {
        let mut reg = Registry::default();
        let lid = reg.ensure_account("15550001111", identity()).lid.clone();
        assert_eq!(
            reg.resolve("15550001111"),
            Some(("15550001111".into(), None))
        );
        assert_eq!(
            reg.resolve("15550001111:3@s.whatsapp.net"),
            Some(("15550001111".into(), Some(3)))
        );
        assert_eq!(
            reg.resolve(&format!("{lid}@lid")),
            Some(("15550001111".into(), None))
        );
        assert_eq!(reg.resolve("15559999999"), None);
    }

    #[test]
    fn live_counts_keep_a_high_water_mark() {
        let mut reg = Registry::default();
        reg.ensure_account("15550001111", identity());
        let key = DeviceKey {
            phone: "15550001111".into(),
            device: 1,
        };
        for conn in [1, 2] {
            let (tx, _rx) = mpsc::unbounded_channel();
            reg.conns.insert(
                conn,
                ConnEntry {
                    tx,
                    device: None,
                    ready: false,
                },
            );
            reg.attach(conn, &key);
        }
        reg.detach(1);
        reg.detach(2);
        let account = &reg.accounts["15550001111"];
        assert_eq!(account.live, 0);
        assert_eq!(account.max_live, 2);
        assert_eq!(account.logins, 2);
    }

    #[test]
    fn fresh_phones_skip_taken_numbers() {
        let mut reg = Registry::default();
        let first = reg.fresh_phone(|p| p == "15550000001");
        assert_eq!(first, "15550000002");
    }
}
