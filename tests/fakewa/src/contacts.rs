//! Server-held Signal identities: fake contacts and the phones (primary
//! devices) of linked accounts.
//!
//! Every phone number the fake knows has exactly one [`Peer`] — device 0 of
//! that number — created on demand. A linked account's phone reuses its peer's
//! identity as the ADV account key, so "the phone" and "the contact with that
//! number" are the same Signal party.
//!
//! Invariants:
//! - each one-time prekey a peer hands out is fresh (generated per bundle), so
//!   none is ever handed out twice;
//! - sessions are keyed by the client device's `ProtocolAddress`
//!   (`"{phone}"`, device id), the same key for encrypting and decrypting.

use std::collections::HashMap;

use async_trait::async_trait;
use wacore::libsignal::protocol::{
    self as sig, CiphertextMessage, CiphertextMessageType, DeviceId, Direction,
    GenericSignedPreKey, IdentityChange, IdentityKey, IdentityKeyPair, KeyPair, PreKeyBundle,
    PreKeyId, PreKeyRecord, PreKeySignalMessage, ProtocolAddress, SessionRecord, SignalMessage,
    SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, Timestamp, UsePQRatchet,
};
use wacore::messages::MessageUtils;
use waproto::whatsapp as wa;

use crate::codec::now_secs;
use crate::error::{FakeError, Result};

type SigResult<T> = std::result::Result<T, SignalProtocolError>;

/// The Signal address of a client companion device, as peers name it.
pub(crate) fn device_address(phone: &str, device: u16) -> ProtocolAddress {
    ProtocolAddress::new(phone, DeviceId::from(u32::from(device)))
}

/// The address under which a peer keeps the session it uses as its LID with
/// a client device: the client keys that session by the peer's `@lid` JID,
/// apart from the one with its phone JID, so the peer keeps it apart too.
pub(crate) fn lid_device_address(phone: &str, device: u16) -> ProtocolAddress {
    device_address(&format!("{phone}.lid"), device)
}

#[derive(Default)]
struct Sessions(HashMap<ProtocolAddress, SessionRecord>);

#[async_trait]
impl sig::SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SigResult<Option<SessionRecord>> {
        Ok(self.0.get(address).cloned())
    }
    async fn has_session(&self, address: &ProtocolAddress) -> SigResult<bool> {
        Ok(self.0.contains_key(address))
    }
    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SigResult<()> {
        self.0.insert(address.clone(), record);
        Ok(())
    }
}

struct Identities {
    own: IdentityKeyPair,
    registration_id: u32,
    known: HashMap<ProtocolAddress, IdentityKey>,
}

#[async_trait]
impl sig::IdentityKeyStore for Identities {
    async fn get_identity_key_pair(&self) -> SigResult<IdentityKeyPair> {
        Ok(self.own.clone())
    }
    async fn get_local_registration_id(&self) -> SigResult<u32> {
        Ok(self.registration_id)
    }
    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SigResult<IdentityChange> {
        let previous = self.known.insert(address.clone(), *identity);
        Ok(match previous {
            Some(p) if p != *identity => IdentityChange::ReplacedExisting,
            _ => IdentityChange::NewOrUnchanged,
        })
    }
    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> SigResult<bool> {
        // A re-paired client device gets a new identity; the fake trusts it
        // like a phone that accepts a safety-number change.
        Ok(true)
    }
    async fn get_identity(&self, address: &ProtocolAddress) -> SigResult<Option<IdentityKey>> {
        Ok(self.known.get(address).copied())
    }
}

#[derive(Default)]
struct PreKeys(HashMap<PreKeyId, PreKeyRecord>);

#[async_trait]
impl sig::PreKeyStore for PreKeys {
    async fn get_pre_key(&self, id: PreKeyId) -> SigResult<PreKeyRecord> {
        self.0
            .get(&id)
            .cloned()
            .ok_or(SignalProtocolError::InvalidPreKeyId)
    }
    async fn save_pre_key(&mut self, id: PreKeyId, record: &PreKeyRecord) -> SigResult<()> {
        self.0.insert(id, record.clone());
        Ok(())
    }
    async fn remove_pre_key(&mut self, id: PreKeyId) -> SigResult<()> {
        self.0.remove(&id);
        Ok(())
    }
}

#[derive(Default)]
struct SignedPreKeys(HashMap<SignedPreKeyId, SignedPreKeyRecord>);

#[async_trait]
impl sig::SignedPreKeyStore for SignedPreKeys {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SigResult<SignedPreKeyRecord> {
        self.0
            .get(&id)
            .cloned()
            .ok_or(SignalProtocolError::InvalidSignedPreKeyId)
    }
    async fn save_signed_pre_key(
        &mut self,
        id: SignedPreKeyId,
        record: &SignedPreKeyRecord,
    ) -> SigResult<()> {
        self.0.insert(id, record.clone());
        Ok(())
    }
}

#[derive(Default)]
struct SenderKeys(HashMap<sig::SenderKeyName, sig::SenderKeyRecord>);

#[async_trait]
impl sig::SenderKeyStore for SenderKeys {
    async fn store_sender_key(
        &mut self,
        name: &sig::SenderKeyName,
        record: sig::SenderKeyRecord,
    ) -> SigResult<()> {
        self.0.insert(name.clone(), record);
        Ok(())
    }
    async fn load_sender_key(
        &self,
        name: &sig::SenderKeyName,
    ) -> SigResult<Option<sig::SenderKeyRecord>> {
        Ok(self.0.get(name).cloned())
    }
}

/// One server-held Signal party (device 0 of a phone number).
pub(crate) struct Peer {
    sender_keys: SenderKeys,
    registration_id: u32,
    signed_prekey_id: u32,
    signed_prekey_pub: sig::PublicKey,
    signed_prekey_sig: Vec<u8>,
    next_prekey_id: u32,
    sessions: Sessions,
    identities: Identities,
    prekeys: PreKeys,
    signed_prekeys: SignedPreKeys,
}

impl Peer {
    fn new() -> Result<Self> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let identity = IdentityKeyPair::generate(&mut rng);
        let registration_id = (rand::random::<u32>() % 16_380) + 1;
        let spk = KeyPair::generate(&mut rng);
        let spk_sig = identity
            .private_key()
            .calculate_signature(&spk.public_key.serialize(), &mut rng)
            .map_err(FakeError::signal)?;
        let spk_id = 1u32;
        let mut signed_prekeys = SignedPreKeys::default();
        signed_prekeys.0.insert(
            SignedPreKeyId::from(spk_id),
            SignedPreKeyRecord::new(
                SignedPreKeyId::from(spk_id),
                Timestamp::from_epoch_millis(now_secs() * 1000),
                &spk,
                &spk_sig,
            ),
        );
        Ok(Self {
            registration_id,
            signed_prekey_id: spk_id,
            signed_prekey_pub: spk.public_key,
            signed_prekey_sig: spk_sig.to_vec(),
            next_prekey_id: 1,
            sessions: Sessions::default(),
            identities: Identities {
                own: identity,
                registration_id,
                known: HashMap::new(),
            },
            prekeys: PreKeys::default(),
            signed_prekeys,
            sender_keys: SenderKeys::default(),
        })
    }

    /// The peer's identity key pair (the ADV account key when the number is linked).
    pub(crate) fn identity(&self) -> &IdentityKeyPair {
        &self.identities.own
    }

    /// A prekey bundle with a freshly generated one-time prekey (never reused).
    pub(crate) fn fresh_bundle(&mut self) -> Result<PreKeyBundle> {
        let otk = KeyPair::generate(&mut rand::rng());
        let id = PreKeyId::from(self.next_prekey_id);
        self.next_prekey_id += 1;
        self.prekeys.0.insert(id, PreKeyRecord::new(id, &otk));
        PreKeyBundle::new(
            self.registration_id,
            DeviceId::from(0u32),
            Some((id, otk.public_key)),
            SignedPreKeyId::from(self.signed_prekey_id),
            self.signed_prekey_pub,
            self.signed_prekey_sig.clone(),
            *self.identities.own.identity_key(),
        )
        .map_err(FakeError::signal)
    }

    /// Whether this peer already has a session with `address`.
    pub(crate) fn has_session(&self, address: &ProtocolAddress) -> bool {
        self.sessions.0.contains_key(address)
    }

    /// Drops the session with `address` (the next message starts a new one).
    pub(crate) fn forget_session(&mut self, address: &ProtocolAddress) {
        self.sessions.0.remove(address);
    }

    /// Starts a session from the client device's uploaded bundle.
    pub(crate) async fn start_session(
        &mut self,
        address: &ProtocolAddress,
        bundle: &PreKeyBundle,
    ) -> Result<()> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        sig::process_prekey_bundle(
            address,
            &mut self.sessions,
            &mut self.identities,
            bundle,
            &mut rng,
            UsePQRatchet::No,
        )
        .await
        .map_err(FakeError::signal)?;
        Ok(())
    }

    /// Encrypts `message` for `address` (a session must exist); returns the
    /// `<enc type>` (`pkmsg`/`msg`) and the ciphertext.
    pub(crate) async fn encrypt(
        &mut self,
        address: &ProtocolAddress,
        message: &wa::Message,
    ) -> Result<(&'static str, Vec<u8>)> {
        let padded = MessageUtils::encode_and_pad(message);
        let ct = sig::message_encrypt(&padded, address, &mut self.sessions, &mut self.identities)
            .await
            .map_err(FakeError::signal)?;
        let kind = match ct.message_type() {
            CiphertextMessageType::PreKey => "pkmsg",
            _ => "msg",
        };
        Ok((kind, ct.serialize().to_vec()))
    }

    /// Decrypts an `<enc>` payload the client device at `address` sent.
    pub(crate) async fn decrypt(
        &mut self,
        address: &ProtocolAddress,
        enc_type: &str,
        bytes: &[u8],
    ) -> Result<wa::Message> {
        let ct = match enc_type {
            "pkmsg" => CiphertextMessage::PreKeySignalMessage(
                PreKeySignalMessage::try_from(bytes).map_err(FakeError::signal)?,
            ),
            "msg" => CiphertextMessage::SignalMessage(
                SignalMessage::try_from(bytes).map_err(FakeError::signal)?,
            ),
            other => return Err(FakeError::Protocol(format!("unsupported enc type {other}"))),
        };
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let result = sig::message_decrypt(
            &ct,
            address,
            &mut self.sessions,
            &mut self.identities,
            &mut self.prekeys,
            &self.signed_prekeys,
            &mut rng,
            UsePQRatchet::No,
        )
        .await
        .map_err(FakeError::signal)?;
        if let Some(id) = result.consumed_prekey_id {
            // Each one-time prekey is single-use on the receiving side too.
            self.prekeys.0.remove(&id);
        }
        wacore::messages::decode_plaintext(&result.plaintext, 2).map_err(FakeError::signal)
    }
}

impl Peer {
    /// Stores a sender key a client distributed for `group` (from the
    /// `sender_key_distribution_message` of a pairwise message).
    pub(crate) async fn process_sender_key(
        &mut self,
        group: &str,
        sender: &ProtocolAddress,
        skdm: &[u8],
    ) -> Result<()> {
        let skdm = sig::SenderKeyDistributionMessage::try_from(skdm).map_err(FakeError::signal)?;
        let name = sig::SenderKeyName::new(group.to_string(), sender.to_string());
        sig::process_sender_key_distribution_message(&name, &skdm, &mut self.sender_keys)
            .await
            .map_err(FakeError::signal)
    }

    /// Decrypts a group `skmsg` from `sender` with its distributed sender key.
    pub(crate) async fn group_decrypt(
        &mut self,
        group: &str,
        sender: &ProtocolAddress,
        bytes: &[u8],
    ) -> Result<wa::Message> {
        let name = sig::SenderKeyName::new(group.to_string(), sender.to_string());
        let plaintext = sig::group_decrypt(bytes, &mut self.sender_keys, &name)
            .await
            .map_err(FakeError::signal)?;
        wacore::messages::decode_plaintext(&plaintext, 2).map_err(FakeError::signal)
    }
}

/// All server-held Signal peers, by phone number (digits).
#[derive(Default)]
pub(crate) struct SignalWorld {
    peers: HashMap<String, Peer>,
}

impl SignalWorld {
    /// The peer for `phone`, created on first use.
    pub(crate) fn peer(&mut self, phone: &str) -> Result<&mut Peer> {
        if !self.peers.contains_key(phone) {
            self.peers.insert(phone.to_string(), Peer::new()?);
        }
        self.peers
            .get_mut(phone)
            .ok_or_else(|| FakeError::UnknownDevice(String::from("peer")))
    }

    /// Whether `phone` already has a peer.
    pub(crate) fn knows(&self, phone: &str) -> bool {
        self.peers.contains_key(phone)
    }
}

/// A text message protobuf.
pub(crate) fn text_message(text: &str) -> wa::Message {
    wa::Message {
        conversation: Some(text.to_string()),
        ..Default::default()
    }
}
