//! Server (responder) side of WhatsApp's Noise handshakes: XX, IK and
//! XX-fallback, plus the transport cipher used after the handshake.
//!
//! wacore-noise only ships initiators; the responder steps here mirror them
//! (protocol spec §2). Invariants:
//! - the server's static key pair is derived from a fixed seed, so a client
//!   that cached the fake's certificate chain can resume with IK even after
//!   the fake restarts;
//! - an IK hello the server cannot decrypt (the client holds a different
//!   static key) is answered with XX-fallback, never with an error;
//! - transport counters are per direction, start at 0 and grow by one per
//!   frame (spec §1.4).

use buffa::Message as _;
use rand::RngExt as _;
use sha2::{Digest, Sha256};
use wacore::handshake::{NoiseCipher, NoiseHandshake};
use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore_binary::consts::{
    NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_XXFALLBACK, WA_CONN_HEADER,
};
use waproto::whatsapp as wa;
use waproto::whatsapp::cert_chain::noise_certificate;

use crate::error::{FakeError, Result};

/// The fake's long-lived Noise identity and the certificate chain it serves.
pub(crate) struct ServerKeys {
    static_kp: KeyPair,
    static_pub: [u8; 32],
    cert_chain: Vec<u8>,
}

impl ServerKeys {
    /// Derives the static key pair from `seed` (SHA-256 of the seed is the
    /// X25519 private key) and builds a matching certificate chain.
    pub(crate) fn from_seed(seed: &[u8]) -> Result<Self> {
        let digest: [u8; 32] = Sha256::digest(seed).into();
        let private = PrivateKey::deserialize(&digest).map_err(FakeError::protocol)?;
        let public = private.public_key().map_err(FakeError::protocol)?;
        let static_pub: [u8; 32] = public
            .public_key_bytes()
            .try_into()
            .map_err(|_| FakeError::Protocol("server static key is not 32 bytes".into()))?;
        Ok(Self {
            static_kp: KeyPair::new(public, private),
            static_pub,
            cert_chain: build_cert_chain(&static_pub),
        })
    }

    /// The server's static public key (the leaf certificate's key).
    pub(crate) fn static_pub(&self) -> [u8; 32] {
        self.static_pub
    }
}

/// A certificate chain whose leaf key is the server static key. Signatures
/// are zeros: clients must enable `danger-skip-cert-chain-verify`; every
/// structural check the client still performs (spec §2.4) passes.
fn build_cert_chain(server_static_pub: &[u8; 32]) -> Vec<u8> {
    let intermediate = noise_certificate::Details {
        serial: Some(1),
        issuer_serial: Some(0),
        key: Some(vec![0xCC; 32]),
        not_before: Some(1_700_000_000),
        not_after: Some(1_900_000_000),
    };
    let leaf = noise_certificate::Details {
        serial: Some(2),
        issuer_serial: Some(1),
        key: Some(server_static_pub.to_vec()),
        not_before: Some(1_700_000_500),
        not_after: Some(1_899_999_500),
    };
    wa::CertChain {
        leaf: buffa::MessageField::some(wa::cert_chain::NoiseCertificate {
            details: Some(leaf.encode_to_vec()),
            signature: Some(vec![0u8; 64]),
        }),
        intermediate: buffa::MessageField::some(wa::cert_chain::NoiseCertificate {
            details: Some(intermediate.encode_to_vec()),
            signature: Some(vec![0u8; 64]),
        }),
    }
    .encode_to_vec()
}

/// Which Noise pattern a connection completed with (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakePattern {
    /// Full handshake (first connect, pairing, after an IK failure).
    Xx,
    /// Resumption with the cached server key (every reconnect of a linked device).
    Ik,
    /// IK attempt the server could not accept, completed as XX-fallback.
    XxFallback,
}

/// What the server does after reading a ClientHello.
pub(crate) enum HelloOutcome {
    /// IK accepted: the handshake is complete.
    Done {
        server_hello: Vec<u8>,
        transport: NoiseTransport,
        client_payload: Vec<u8>,
        client_static: Vec<u8>,
    },
    /// XX or XX-fallback: send the ServerHello, then finish with the
    /// client's ClientFinish.
    AwaitFinish {
        server_hello: Vec<u8>,
        pending: PendingXx,
    },
}

/// Responder state between ServerHello and ClientFinish.
pub(crate) struct PendingXx {
    noise: NoiseHandshake,
    ephemeral: KeyPair,
    pub(crate) pattern: HandshakePattern,
}

/// Reads a ClientHello (protobuf bytes, header already stripped) and answers it.
pub(crate) fn accept_hello(keys: &ServerKeys, hello_bytes: &[u8]) -> Result<HelloOutcome> {
    let msg = wa::HandshakeMessage::decode_from_slice(hello_bytes).map_err(FakeError::protocol)?;
    let hello = msg
        .client_hello
        .into_option()
        .ok_or_else(|| FakeError::Protocol("handshake message without client_hello".into()))?;
    let client_eph: [u8; 32] = hello
        .ephemeral
        .as_deref()
        .and_then(|e| e.try_into().ok())
        .ok_or_else(|| FakeError::Protocol("client_hello without a 32-byte ephemeral".into()))?;
    match (hello.r#static.as_deref(), hello.payload.as_deref()) {
        (Some(enc_static), Some(enc_payload)) => {
            match accept_ik(keys, &client_eph, enc_static, enc_payload) {
                Ok(done) => Ok(done),
                Err(e) => {
                    tracing::debug!(error = %e, "IK hello not decryptable; answering with XX-fallback");
                    start_xx(keys, &client_eph, HandshakePattern::XxFallback)
                }
            }
        }
        _ => start_xx(keys, &client_eph, HandshakePattern::Xx),
    }
}

fn fresh_ephemeral() -> KeyPair {
    KeyPair::generate(&mut rand::rng())
}

fn pub32(kp: &KeyPair) -> Vec<u8> {
    kp.public_key.public_key_bytes().to_vec()
}

fn start_xx(
    keys: &ServerKeys,
    client_eph: &[u8; 32],
    pattern: HandshakePattern,
) -> Result<HelloOutcome> {
    let name = if pattern == HandshakePattern::XxFallback {
        NOISE_PATTERN_XXFALLBACK
    } else {
        NOISE_PATTERN_XX
    };
    let mut noise = NoiseHandshake::new(name, &WA_CONN_HEADER).map_err(FakeError::protocol)?;
    noise.authenticate(client_eph);
    let eph = fresh_ephemeral();
    noise.authenticate(eph.public_key.public_key_bytes());
    noise
        .mix_shared_secret(eph.private_key.serialize(), client_eph)
        .map_err(FakeError::protocol)?;
    let enc_static = noise
        .encrypt(&keys.static_pub)
        .map_err(FakeError::protocol)?;
    noise
        .mix_shared_secret(keys.static_kp.private_key.serialize(), client_eph)
        .map_err(FakeError::protocol)?;
    let enc_cert = noise
        .encrypt(&keys.cert_chain)
        .map_err(FakeError::protocol)?;
    let server_hello = server_hello(pub32(&eph), Some(enc_static), enc_cert);
    Ok(HelloOutcome::AwaitFinish {
        server_hello,
        pending: PendingXx {
            noise,
            ephemeral: eph,
            pattern,
        },
    })
}

fn accept_ik(
    keys: &ServerKeys,
    client_eph: &[u8; 32],
    enc_static: &[u8],
    enc_payload: &[u8],
) -> Result<HelloOutcome> {
    let server_priv = keys.static_kp.private_key.serialize();
    let mut noise =
        NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER).map_err(FakeError::protocol)?;
    noise.authenticate(&keys.static_pub);
    noise.authenticate(client_eph);
    noise
        .mix_shared_secret(server_priv, client_eph)
        .map_err(FakeError::protocol)?;
    let client_static = noise.decrypt(enc_static).map_err(FakeError::protocol)?;
    noise
        .mix_shared_secret(server_priv, &client_static)
        .map_err(FakeError::protocol)?;
    let client_payload = noise.decrypt(enc_payload).map_err(FakeError::protocol)?;
    let eph = fresh_ephemeral();
    noise.authenticate(eph.public_key.public_key_bytes());
    noise
        .mix_shared_secret(eph.private_key.serialize(), client_eph)
        .map_err(FakeError::protocol)?;
    noise
        .mix_shared_secret(eph.private_key.serialize(), &client_static)
        .map_err(FakeError::protocol)?;
    let enc_cert = noise
        .encrypt(&keys.cert_chain)
        .map_err(FakeError::protocol)?;
    let server_hello = server_hello(pub32(&eph), None, enc_cert);
    let (read, write) = noise.finish().map_err(FakeError::protocol)?;
    Ok(HelloOutcome::Done {
        server_hello,
        transport: NoiseTransport::new(read, write),
        client_payload,
        client_static,
    })
}

fn server_hello(ephemeral: Vec<u8>, enc_static: Option<Vec<u8>>, payload: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral),
            r#static: enc_static,
            payload: Some(payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

impl PendingXx {
    /// Reads the ClientFinish; returns the transport, the decrypted
    /// ClientPayload bytes and the client's static key.
    pub(crate) fn finish(
        mut self,
        finish_bytes: &[u8],
    ) -> Result<(NoiseTransport, Vec<u8>, Vec<u8>)> {
        let msg =
            wa::HandshakeMessage::decode_from_slice(finish_bytes).map_err(FakeError::protocol)?;
        let finish = msg
            .client_finish
            .into_option()
            .ok_or_else(|| FakeError::Protocol("expected client_finish".into()))?;
        let enc_static = finish
            .r#static
            .ok_or_else(|| FakeError::Protocol("client_finish without static".into()))?;
        let enc_payload = finish
            .payload
            .ok_or_else(|| FakeError::Protocol("client_finish without payload".into()))?;
        let client_static = self
            .noise
            .decrypt(&enc_static)
            .map_err(FakeError::protocol)?;
        self.noise
            .mix_shared_secret(self.ephemeral.private_key.serialize(), &client_static)
            .map_err(FakeError::protocol)?;
        let payload = self
            .noise
            .decrypt(&enc_payload)
            .map_err(FakeError::protocol)?;
        let (read, write) = self.noise.finish().map_err(FakeError::protocol)?;
        Ok((NoiseTransport::new(read, write), payload, client_static))
    }
}

/// Post-handshake frame cipher (AES-256-GCM, counter IVs, empty AAD).
pub(crate) struct NoiseTransport {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl NoiseTransport {
    fn new(read: NoiseCipher, write: NoiseCipher) -> Self {
        Self {
            read,
            write,
            read_counter: 0,
            write_counter: 0,
        }
    }

    /// Encrypts one outgoing frame payload.
    pub(crate) fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let out = self
            .write
            .encrypt_with_counter(self.write_counter, plaintext)
            .map_err(FakeError::protocol)?;
        self.write_counter = self.write_counter.wrapping_add(1);
        Ok(out)
    }

    /// Decrypts one incoming frame payload in place.
    pub(crate) fn decrypt(&mut self, frame: &mut Vec<u8>) -> Result<()> {
        self.read
            .decrypt_in_place_with_counter(self.read_counter, frame)
            .map_err(FakeError::protocol)?;
        self.read_counter = self.read_counter.wrapping_add(1);
        Ok(())
    }
}

/// A random 2@… pairing ref for `pair-device`.
pub(crate) fn new_pairing_ref() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    let mut s = String::from("2@");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
