//! Media input: a file arriving as a multipart `file` part, as `base64` in
//! JSON, or as a `url` the gateway fetches, spooled to an anonymous
//! temporary file ([`Spool`]) with the size limit enforced while it streams
//! in, then typed: the MIME type given by the client or sniffed from the
//! first bytes, checked against what WhatsApp accepts for the kind.
//!
//! Refusals: 413 `media_too_large` (over `--media-max-mib`, else WhatsApp's
//! limit for the kind), 415 `invalid_media_type` (a type WhatsApp rejects for
//! the kind, or one that cannot be told), 400 `invalid_media` (empty, bad
//! base64). The temporary file has no name on disk, so a refusal leaves
//! nothing behind.

use axum::http::StatusCode;
use tokio::io::AsyncWriteExt as _;

use super::super::error::ApiError;
use super::options::MediaOptions;
use crate::domain::media::{MediaFile, MediaKind, mime_essence};

/// Bytes kept from the start of a file for MIME sniffing.
const SNIFF_BYTES: usize = 8192;

/// The size limit for `kind` (`None`: the largest of all kinds, used while
/// the kind is not known yet).
pub(super) fn max_bytes(options: &MediaOptions, kind: Option<MediaKind>) -> u64 {
    let whatsapp = match kind {
        Some(kind) => kind.whatsapp_max_bytes(),
        None => MediaKind::ALL
            .iter()
            .map(|k| k.whatsapp_max_bytes())
            .max()
            .unwrap_or(0),
    };
    match options.media_max_mib {
        Some(mib) => (mib << 20).min(whatsapp),
        None => whatsapp,
    }
}

/// 413 `media_too_large`.
pub(super) fn too_large(limit: u64) -> ApiError {
    ApiError::refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "media_too_large",
        format!("the media file is larger than the limit of {limit} bytes for this kind"),
    )
}

fn invalid_media(message: &str) -> ApiError {
    ApiError::refused(StatusCode::BAD_REQUEST, "invalid_media", message)
}

/// A file being received: an anonymous temporary file, its length so far
/// and its first bytes.
pub(super) struct Spool {
    file: tokio::fs::File,
    len: u64,
    head: Vec<u8>,
    limit: u64,
}

impl Spool {
    /// An empty spool refusing more than `limit` bytes.
    pub(super) async fn new(limit: u64) -> Result<Self, ApiError> {
        let file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            len: 0,
            head: Vec::new(),
            limit,
        })
    }

    /// Lowers the limit (once the kind is known).
    pub(super) fn limit_to(&mut self, limit: u64) -> Result<(), ApiError> {
        self.limit = self.limit.min(limit);
        if self.len > self.limit {
            return Err(too_large(self.limit));
        }
        Ok(())
    }

    /// Appends `chunk`; 413 as soon as the limit is passed.
    pub(super) async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            return Err(too_large(self.limit));
        }
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.file.write_all(chunk).await.map_err(ApiError::internal)
    }

    /// The file, typed for `kind`: `mime` when the client gave one (a
    /// generic `application/octet-stream` counts as none), else sniffed.
    pub(super) async fn finish(
        mut self,
        kind: MediaKind,
        mime: Option<String>,
    ) -> Result<MediaFile, ApiError> {
        if self.len == 0 {
            return Err(invalid_media("the media file is empty"));
        }
        self.file.flush().await.map_err(ApiError::internal)?;
        let given = mime.filter(|m| mime_essence(m) != "application/octet-stream");
        let sniffed = infer::get(&self.head).map(|t| t.mime_type().to_owned());
        let mime = match (given, sniffed) {
            (Some(given), _) => given,
            (None, Some(sniffed)) => sniffed,
            (None, None) if kind == MediaKind::Document => "application/octet-stream".to_owned(),
            (None, None) => {
                return Err(ApiError::refused(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_media_type",
                    format!(
                        "the file's type could not be told; give `mime_type` for this {}",
                        kind.as_str()
                    ),
                ));
            }
        };
        if !kind.accepts_mime(&mime) {
            return Err(ApiError::refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_media_type",
                format!("WhatsApp does not accept {mime} as {}", kind.as_str()),
            ));
        }
        Ok(MediaFile {
            file: self.file.into_std().await,
            len: self.len,
            mime,
        })
    }
}

/// Decodes standard base64 (a `data:…;base64,` prefix and whitespace
/// allowed) into `spool`.
pub(super) async fn spool_base64(spool: &mut Spool, encoded: &str) -> Result<(), ApiError> {
    use base64::Engine as _;
    let encoded = match encoded.split_once(";base64,") {
        Some((prefix, rest)) if prefix.starts_with("data:") => rest,
        _ => encoded,
    };
    // Checked before decoding: base64 is 4 characters per 3 bytes.
    let estimate = (encoded.len() as u64 / 4) * 3;
    if estimate > spool.limit + 3 {
        return Err(too_large(spool.limit));
    }
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| invalid_media("`base64` is not valid standard base64"))?;
    spool.write(&bytes).await
}
