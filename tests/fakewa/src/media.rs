//! The fake media host: what the `w:m` `media_conn` IQ announces, and the
//! upload/download paths the real client requests, served as plain HTTP on
//! the fake's own port (HTTP and WebSocket share it; see `transport`).
//!
//! The client builds every media URL as `https://{hostname}…` from the
//! announced hostname, which is the fake's `127.0.0.1:PORT`; a test client
//! must map `https://` to `http://` for that host (an injected HTTP client).
//!
//! URL shapes (all on the fake's port):
//! - upload: `POST /mms/{type}/{token}?auth={auth}&token={token}` with the
//!   encrypted file as body, where `type` is `image` (also stickers),
//!   `video`, `audio`, `document`, … and `token` is the base64url (no
//!   padding) SHA-256 of the body. Answers `{"url","direct_path"}`;
//!   401 for a wrong `auth`, 400 when the body does not hash to `token`.
//! - download: `GET {direct_path}?auth=…&token=…` where `direct_path` is
//!   `/v/fakewa/{hex enc sha256}.enc` (what uploads return), and also
//!   `GET /mms/{type}/{token}`. Answers the encrypted blob, 404 when unknown,
//!   410 once expired.
//!
//! Invariants: blobs are keyed by their encrypted SHA-256 (what the URL
//! token names); an expired blob stays known (410) so tests can tell
//! "expired" from "never uploaded".

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use wacore::download::{DownloadUtils, MediaType};
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::codec::iq_result;
use crate::control::Shared;

/// The media auth token the fake hands out (and checks on upload).
pub(crate) const MEDIA_AUTH: &str = "fakewa-media-auth";

/// One stored (encrypted) upload.
pub(crate) struct Blob {
    pub(crate) data: Arc<Vec<u8>>,
    /// SHA-256 of the plaintext, once known (contact uploads, or after a
    /// contact decrypted a client's upload).
    pub(crate) file_sha256: Option<[u8; 32]>,
    pub(crate) expired: bool,
}

/// Uploads by encrypted SHA-256.
#[derive(Default)]
pub(crate) struct MediaStore {
    pub(crate) blobs: HashMap<[u8; 32], Blob>,
}

impl MediaStore {
    pub(crate) fn put(&mut self, data: Vec<u8>, file_sha256: Option<[u8; 32]>) -> [u8; 32] {
        let enc: [u8; 32] = Sha256::digest(&data).into();
        let blob = self.blobs.entry(enc).or_insert(Blob {
            data: Arc::new(Vec::new()),
            file_sha256: None,
            expired: false,
        });
        blob.data = Arc::new(data);
        blob.file_sha256 = file_sha256.or(blob.file_sha256);
        enc
    }

    /// Marks the blob named by `hash` (hex SHA-256 of the plaintext or of
    /// the encrypted file, or the base64url URL token) expired.
    pub(crate) fn expire(&mut self, hash: &str) -> bool {
        let wanted = parse_hash(hash);
        let mut found = false;
        for (enc, blob) in &mut self.blobs {
            if Some(*enc) == wanted || (wanted.is_some() && blob.file_sha256 == wanted) {
                blob.expired = true;
                found = true;
            }
        }
        found
    }
}

/// A 32-byte hash written as 64 hex digits or as base64url.
fn parse_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() == 64
        && let Ok(bytes) = hex::decode(s)
    {
        return bytes.try_into().ok();
    }
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
        .and_then(|b| b.try_into().ok())
}

/// `direct_path` of a blob: `/v/fakewa/{hex}.enc`.
pub(crate) fn direct_path(enc_sha256: &[u8; 32]) -> String {
    format!("/v/fakewa/{}.enc", hex::encode(enc_sha256))
}

/// Answer to `<iq xmlns="w:m" type="set"><media_conn/></iq>`: one primary
/// host, the fake itself.
pub(crate) fn media_conn_reply(shared: &Shared, id: &str) -> Node {
    iq_result(
        id,
        vec![
            NodeBuilder::new("media_conn")
                .attrs([
                    ("auth", MEDIA_AUTH.to_string()),
                    ("ttl", "3600".to_string()),
                    ("auth_ttl", "3600".to_string()),
                    ("max_buckets", "1".to_string()),
                ])
                .children([NodeBuilder::new("host")
                    .attrs([
                        ("hostname", shared.media_host()),
                        ("type", "primary".to_string()),
                    ])
                    .build()])
                .build(),
        ],
    )
}

/// The media type of an `mms` path segment (as the client names uploads).
pub(crate) fn media_type_of(kind: &str) -> MediaType {
    match kind {
        "video" => MediaType::Video,
        "audio" | "voice" | "ptt" => MediaType::Audio,
        "document" => MediaType::Document,
        "sticker" => MediaType::Sticker,
        _ => MediaType::Image,
    }
}

/// Fetches, checks and decrypts a blob a message references; `Err` names
/// the check that failed. On success the plaintext SHA-256 is remembered
/// (so `expire` accepts it).
pub(crate) fn fetch_and_decrypt(
    shared: &Shared,
    media_type: MediaType,
    media_key: &[u8],
    file_enc_sha256: &[u8],
    file_sha256: &[u8],
) -> Result<Vec<u8>, String> {
    let enc: [u8; 32] = file_enc_sha256
        .try_into()
        .map_err(|_| "file_enc_sha256 is not 32 bytes".to_string())?;
    let data = {
        let store = shared.media.lock();
        let blob = store
            .blobs
            .get(&enc)
            .ok_or_else(|| "blob not on the media host".to_string())?;
        blob.data.clone()
    };
    let actual: [u8; 32] = Sha256::digest(data.as_slice()).into();
    if actual != enc {
        return Err("file_enc_sha256 mismatch".into());
    }
    let plain = DownloadUtils::verify_and_decrypt(&data, media_key, media_type)
        .map_err(|e| format!("decryption failed: {e}"))?;
    let plain_hash: [u8; 32] = Sha256::digest(&plain).into();
    if plain_hash.as_slice() != file_sha256 {
        return Err("file_sha256 mismatch".into());
    }
    if let Some(blob) = shared.media.lock().blobs.get_mut(&enc) {
        blob.file_sha256 = Some(plain_hash);
    }
    Ok(plain)
}

/// What a contact's upload yields: the fields a media message carries.
pub(crate) struct Uploaded {
    pub(crate) url: String,
    pub(crate) direct_path: String,
    pub(crate) media_key: [u8; 32],
    pub(crate) file_sha256: [u8; 32],
    pub(crate) file_enc_sha256: [u8; 32],
    pub(crate) file_length: u64,
}

/// Encrypts `plaintext` with a fresh media key and stores it, as a real
/// phone's upload would.
pub(crate) fn upload_as_contact(
    shared: &Shared,
    plaintext: &[u8],
    media_type: MediaType,
) -> crate::Result<Uploaded> {
    let enc = wacore::upload::encrypt_media(plaintext, media_type)
        .map_err(|e| crate::FakeError::InvalidInput(format!("media encryption failed: {e}")))?;
    let key = shared
        .media
        .lock()
        .put(enc.data_to_upload, Some(enc.file_sha256));
    let direct_path = direct_path(&key);
    Ok(Uploaded {
        url: format!("https://{}{direct_path}", shared.media_host()),
        direct_path,
        media_key: enc.media_key,
        file_sha256: enc.file_sha256,
        file_enc_sha256: enc.file_enc_sha256,
        file_length: plaintext.len() as u64,
    })
}

#[derive(Deserialize)]
pub(crate) struct UploadQuery {
    auth: Option<String>,
    /// `resume=1`: the client asks whether a (large) upload already exists.
    resume: Option<String>,
}

/// `POST /mms/{type}/{token}?auth=…&token=…`.
pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    Path((_kind, token)): Path<(String, String)>,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> Response {
    if query.auth.as_deref() != Some(MEDIA_AUTH) {
        return (StatusCode::UNAUTHORIZED, "bad media auth").into_response();
    }
    if query.resume.is_some() {
        // Resume check before a large upload: complete if stored, else start over.
        let wanted = parse_hash(&token);
        let known = wanted.is_some_and(|h| shared.media.lock().blobs.contains_key(&h));
        return match (known, wanted) {
            (true, Some(h)) => Json(serde_json::json!({
                "resume": "complete",
                "url": format!("https://{}{}", shared.media_host(), direct_path(&h)),
                "direct_path": direct_path(&h),
            }))
            .into_response(),
            _ => Json(serde_json::json!({"resume": "0"})).into_response(),
        };
    }
    let actual: [u8; 32] = Sha256::digest(&body).into();
    if parse_hash(&token) != Some(actual) {
        return (StatusCode::BAD_REQUEST, "body does not hash to the token").into_response();
    }
    let key = shared.media.lock().put(body.to_vec(), None);
    shared.notify();
    let direct_path = direct_path(&key);
    Json(serde_json::json!({
        "url": format!("https://{}{direct_path}", shared.media_host()),
        "direct_path": direct_path,
    }))
    .into_response()
}

fn serve_blob(shared: &Shared, enc: Option<[u8; 32]>) -> Response {
    let store = shared.media.lock();
    match enc.and_then(|e| store.blobs.get(&e)) {
        None => (StatusCode::NOT_FOUND, "no such media").into_response(),
        Some(blob) if blob.expired => (StatusCode::GONE, "media expired").into_response(),
        Some(blob) => (
            [("content-type", "application/octet-stream")],
            blob.data.as_ref().clone(),
        )
            .into_response(),
    }
}

/// `GET /v/fakewa/{hex}.enc` (the direct path).
pub(crate) async fn download_direct(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
) -> Response {
    serve_blob(&shared, parse_hash(file.trim_end_matches(".enc")))
}

/// `GET /mms/{type}/{token}`.
pub(crate) async fn download_mms(
    State(shared): State<Arc<Shared>>,
    Path((_kind, token)): Path<(String, String)>,
) -> Response {
    serve_blob(&shared, parse_hash(&token))
}
