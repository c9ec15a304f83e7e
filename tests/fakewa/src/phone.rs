//! The fake primary phone: ADV identities for pairing (`pair-success`), the
//! key-index list served in usync, the app-state key share, and the phone's
//! half of pair-code linking.
//!
//! All functions here are pure crypto/encoding; the router decides when to
//! send what. Invariant: the ADV account key is the phone's Signal identity
//! (the account's [`crate::contacts::Peer`] identity), so the signatures a
//! client checks at pairing match the identity it sees for device 0.

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use buffa::Message as _;
use hmac::{Hmac, KeyInit, Mac as _};
use rand::RngExt as _;
use sha2::Sha256;
use wacore::libsignal::protocol::{IdentityKeyPair, KeyPair, PublicKey};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, SERVER_JID};
use waproto::whatsapp as wa;

use crate::codec::{self, now_secs};
use crate::error::{FakeError, Result};

const ADV_PREFIX_ACCOUNT_SIGNATURE: [u8; 2] = [6, 0];
const ADV_PREFIX_DEVICE_SIGNATURE: [u8; 2] = [6, 1];

/// The parts of a client's QR string the phone needs.
#[derive(Debug, Clone)]
pub(crate) struct ScannedQr {
    pub(crate) noise_pub: [u8; 32],
    pub(crate) identity_pub: [u8; 32],
    pub(crate) adv_secret: [u8; 32],
}

/// Parses `ref,noise,identity,adv,type` (spec §4.2).
pub(crate) fn parse_qr(qr: &str) -> Result<ScannedQr> {
    let qr = qr.trim();
    let parts: Vec<&str> = qr.split(',').collect();
    if parts.len() < 4 {
        return Err(FakeError::InvalidInput(
            "QR string must have at least 4 comma-separated fields".into(),
        ));
    }
    let key = |i: usize, what: &str| -> Result<[u8; 32]> {
        BASE64_STANDARD
            .decode(parts[i])
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| FakeError::InvalidInput(format!("QR {what} is not 32 base64 bytes")))
    };
    Ok(ScannedQr {
        noise_pub: key(1, "noise key")?,
        identity_pub: key(2, "identity key")?,
        adv_secret: key(3, "adv secret")?,
    })
}

/// Inputs for a `pair-success` IQ.
pub(crate) struct PairSuccess<'a> {
    pub(crate) iq_id: &'a str,
    pub(crate) account_identity: &'a IdentityKeyPair,
    pub(crate) raw_id: u32,
    pub(crate) key_index: u32,
    pub(crate) phone: &'a str,
    pub(crate) lid: &'a str,
    pub(crate) device: u16,
    pub(crate) companion_identity_pub: &'a [u8; 32],
    pub(crate) adv_secret: &'a [u8; 32],
}

/// Builds the `pair-success` IQ with a valid ADV identity (spec §4.3).
pub(crate) fn pair_success_node(p: &PairSuccess<'_>) -> Result<Node> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(p.raw_id),
        timestamp: Some(now_secs()),
        key_index: Some(p.key_index),
        ..Default::default()
    }
    .encode_to_vec();
    let mut msg = Vec::with_capacity(2 + details.len() + 32);
    msg.extend_from_slice(&ADV_PREFIX_ACCOUNT_SIGNATURE);
    msg.extend_from_slice(&details);
    msg.extend_from_slice(p.companion_identity_pub);
    let account_sig = p
        .account_identity
        .private_key()
        .calculate_signature(&msg, &mut rand::make_rng::<rand::rngs::StdRng>())
        .map_err(FakeError::signal)?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(p.account_identity.public_key().public_key_bytes().to_vec()),
        account_signature: Some(account_sig.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(p.adv_secret)
        .map_err(|e| FakeError::Protocol(e.to_string()))?;
    mac.update(&signed);
    let hmac = mac.finalize().into_bytes().to_vec();
    let container = wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac),
        account_type: None,
    }
    .encode_to_vec();
    Ok(NodeBuilder::new("iq")
        .attrs([
            ("from", SERVER_JID.to_string()),
            ("id", p.iq_id.to_string()),
            ("type", "set".to_string()),
            ("xmlns", "md".to_string()),
        ])
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(container).build(),
                NodeBuilder::new("device")
                    .attrs([
                        ("jid", format!("{}:{}@s.whatsapp.net", p.phone, p.device)),
                        ("lid", format!("{}:{}@lid", p.lid, p.device)),
                    ])
                    .build(),
                NodeBuilder::new("platform")
                    .attr("name", "android".to_string())
                    .build(),
            ])
            .build()])
        .build())
}

/// Checks the client's `pair-device-sign` and returns the signed device
/// identity bytes (to serve later as `<device-identity>`).
pub(crate) fn verify_device_sign(
    sign: &Node,
    companion_identity_pub: &[u8; 32],
    account_pub: &[u8],
) -> Result<Vec<u8>> {
    let identity = sign
        .get_optional_child("device-identity")
        .and_then(codec::content_bytes)
        .ok_or_else(|| {
            FakeError::PairingFailed("pair-device-sign without device-identity".into())
        })?;
    let signed = wa::ADVSignedDeviceIdentity::decode_from_slice(identity)
        .map_err(|e| FakeError::PairingFailed(format!("bad device identity: {e}")))?;
    let details = signed.details.as_deref().unwrap_or_default();
    let device_sig = signed.device_signature.as_deref().unwrap_or_default();
    let mut msg = Vec::with_capacity(2 + details.len() + 64);
    msg.extend_from_slice(&ADV_PREFIX_DEVICE_SIGNATURE);
    msg.extend_from_slice(details);
    msg.extend_from_slice(companion_identity_pub);
    msg.extend_from_slice(account_pub);
    let key = PublicKey::from_djb_public_key_bytes(companion_identity_pub)
        .map_err(|e| FakeError::PairingFailed(e.to_string()))?;
    if !key.verify_signature(&msg, device_sig) {
        return Err(FakeError::PairingFailed("device signature mismatch".into()));
    }
    Ok(identity.to_vec())
}

/// `ADVSignedKeyIndexList` bytes for usync (the signature is not verified
/// by clients, spec §7.2, but is made valid anyway).
pub(crate) fn key_index_list(
    account_identity: &IdentityKeyPair,
    raw_id: u32,
    valid_indexes: Vec<u32>,
) -> Vec<u8> {
    let current = valid_indexes.iter().copied().max().unwrap_or(0);
    let details = wa::ADVKeyIndexList {
        raw_id: Some(raw_id),
        timestamp: Some(now_secs()),
        current_index: Some(current),
        valid_indexes,
        account_type: None,
    }
    .encode_to_vec();
    let mut msg = vec![6u8, 2];
    msg.extend_from_slice(&details);
    let signature = account_identity
        .private_key()
        .calculate_signature(&msg, &mut rand::make_rng::<rand::rngs::StdRng>())
        .map(|s| s.to_vec())
        .ok();
    wa::ADVSignedKeyIndexList {
        details: Some(details),
        account_signature: signature,
        account_signature_key: Some(account_identity.public_key().public_key_bytes().to_vec()),
    }
    .encode_to_vec()
}

/// The phone's app-state key share (spec §6.3): lets a freshly paired client
/// reach `Connected` without the 10 s grace wait.
pub(crate) fn app_state_key_share(raw_id: u32) -> wa::Message {
    let key_id: [u8; 6] = rand::rng().random();
    let key_data: [u8; 32] = rand::rng().random();
    let key = wa::message::AppStateSyncKey {
        key_id: buffa::MessageField::some(wa::message::AppStateSyncKeyId {
            key_id: Some(key_id.to_vec()),
        }),
        key_data: buffa::MessageField::some(wa::message::AppStateSyncKeyData {
            key_data: Some(key_data.to_vec()),
            fingerprint: buffa::MessageField::some(wa::message::AppStateSyncKeyFingerprint {
                raw_id: Some(raw_id),
                current_index: Some(0),
                device_indexes: vec![0, 1],
            }),
            timestamp: Some(i64::try_from(now_secs()).unwrap_or_default() * 1000),
        }),
    };
    wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            app_state_sync_key_share: buffa::MessageField::some(
                wa::message::AppStateSyncKeyShare { keys: vec![key] },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The phone's `primary_hello` notification for pair-code linking (spec §5
/// step 2). Runs PBKDF2 (slow): call from a blocking task.
pub(crate) fn primary_hello(
    code: &str,
    pairing_ref: &str,
    account_identity_pub: &[u8],
) -> (KeyPair, Node) {
    let ephemeral = KeyPair::generate(&mut rand::rng());
    let eph_pub: [u8; 32] = ephemeral
        .public_key
        .public_key_bytes()
        .try_into()
        .unwrap_or([0; 32]);
    let wrapped = wacore::pair_code::PairCodeUtils::encrypt_ephemeral_pub(&eph_pub, code);
    let node = NodeBuilder::new("notification")
        .attrs([
            ("from", SERVER_JID.to_string()),
            ("type", "link_code_companion_reg".to_string()),
            ("id", codec::new_message_id()),
            ("t", now_secs().to_string()),
        ])
        .children([NodeBuilder::new("link_code_companion_reg")
            .attr("stage", "primary_hello".to_string())
            .children([
                NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                    .bytes(wrapped.to_vec())
                    .build(),
                NodeBuilder::new("primary_identity_pub")
                    .bytes(account_identity_pub.to_vec())
                    .build(),
                NodeBuilder::new("link_code_pairing_ref")
                    .bytes(pairing_ref.as_bytes().to_vec())
                    .build(),
            ])
            .build()])
        .build();
    (ephemeral, node)
}

/// Opens the client's wrapped companion ephemeral key with `code` (PBKDF2:
/// call from a blocking task). A wrong code still yields 32 bytes; the real
/// check is the key-bundle decryption in [`adv_secret_with_companion_ephemeral`].
pub(crate) fn companion_ephemeral(wrapped: &[u8], code: &str) -> Result<[u8; 32]> {
    wacore::pair_code::PairCodeUtils::decrypt_primary_ephemeral_pub(wrapped, code)
        .map_err(|e| FakeError::PairingFailed(e.to_string()))
}

/// Derives the companion identity and the ADV secret from the client's
/// `companion_finish` (inverse of `PairCodeUtils::prepare_key_bundle`,
/// spec §5 step 3), given the companion ephemeral key from `companion_hello`.
pub(crate) fn adv_secret_with_companion_ephemeral(
    finish: &Node,
    primary_ephemeral: &KeyPair,
    companion_ephemeral: &[u8; 32],
    account_identity: &IdentityKeyPair,
) -> Result<([u8; 32], [u8; 32])> {
    let bad = |what: &str| FakeError::PairingFailed(format!("companion_finish: {what}"));
    let wrapped = codec::child_bytes(finish, "link_code_pairing_wrapped_key_bundle")
        .ok_or_else(|| bad("no key bundle"))?;
    let companion_identity: [u8; 32] = codec::child_bytes(finish, "companion_identity_public")
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("no companion identity"))?;
    if wrapped.len() < 32 + 12 + 16 {
        return Err(bad("key bundle too short"));
    }
    let (salt, rest) = wrapped.split_at(32);
    let (iv, ct) = rest.split_at(12);
    let companion_eph = PublicKey::from_djb_public_key_bytes(companion_ephemeral)
        .map_err(|_| bad("bad ephemeral"))?;
    let companion_id = PublicKey::from_djb_public_key_bytes(&companion_identity)
        .map_err(|_| bad("bad identity"))?;
    let eph_shared = primary_ephemeral
        .private_key
        .calculate_agreement(&companion_eph)
        .map_err(|_| bad("ephemeral agreement"))?;
    let id_shared = account_identity
        .private_key()
        .calculate_agreement(&companion_id)
        .map_err(|_| bad("identity agreement"))?;
    let mut enc_key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(
        &eph_shared,
        Some(salt),
        b"link_code_pairing_key_bundle_encryption_key",
        &mut enc_key,
    )
    .map_err(|_| bad("hkdf"))?;
    let iv: [u8; 12] = iv.try_into().map_err(|_| bad("iv"))?;
    let mut bundle = Vec::with_capacity(96);
    wacore::libsignal::crypto::aes_256_gcm_decrypt(&enc_key, &iv, b"", ct, &mut bundle)
        .map_err(|_| bad("key bundle does not decrypt (wrong code?)"))?;
    if bundle.len() != 96 || bundle[..32] != companion_identity {
        return Err(bad("key bundle content mismatch"));
    }
    let mut ikm = Vec::with_capacity(96);
    ikm.extend_from_slice(&eph_shared);
    ikm.extend_from_slice(&id_shared);
    ikm.extend_from_slice(&bundle[64..96]);
    let mut adv_secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&ikm, None, b"adv_secret", &mut adv_secret)
        .map_err(|_| bad("hkdf adv"))?;
    Ok((companion_identity, adv_secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_parsing_takes_the_adv_secret_from_the_fourth_field() {
        let k = |b: u8| BASE64_STANDARD.encode([b; 32]);
        let qr = format!("2@ref,{},{},{},9", k(1), k(2), k(3));
        let parsed = parse_qr(&qr).expect("valid QR");
        assert_eq!(parsed.noise_pub, [1; 32]);
        assert_eq!(parsed.identity_pub, [2; 32]);
        assert_eq!(parsed.adv_secret, [3; 32]);
        assert!(parse_qr("2@ref,abc").is_err());
        assert!(parse_qr(&format!("2@ref,{},short,{},9", k(1), k(3))).is_err());
    }

    #[test]
    fn pair_success_carries_an_hmac_over_the_signed_identity() {
        let account = IdentityKeyPair::generate(&mut rand::rng());
        let node = pair_success_node(&PairSuccess {
            iq_id: "ps-1",
            account_identity: &account,
            raw_id: 7,
            key_index: 1,
            phone: "15550001111",
            lid: "100000000000001",
            device: 1,
            companion_identity_pub: &[9; 32],
            adv_secret: &[4; 32],
        })
        .expect("node");
        let container = node
            .get_optional_child_by_tag(&["pair-success", "device-identity"])
            .and_then(codec::content_bytes)
            .expect("device-identity");
        let hmac = wa::ADVSignedDeviceIdentityHMAC::decode_from_slice(container).expect("decode");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[4; 32]).expect("key");
        mac.update(hmac.details.as_deref().expect("details"));
        mac.verify_slice(hmac.hmac.as_deref().expect("hmac"))
            .expect("hmac matches");
    }
}
