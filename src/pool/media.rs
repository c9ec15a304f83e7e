//! Downloading an inbound file through the company's live client: the
//! client asks WhatsApp for the media hosts and their credentials, fetches
//! the encrypted blob and decrypts it, checking its MAC and hashes.

use whatsapp_rust::download::{DownloadParams, MediaType};
use whatsapp_rust::error::ErrorChainExt as _;

use super::SessionPool;
use crate::domain::CompanyId;

/// What a download needs (stored with the inbound event).
#[derive(Debug, Clone)]
pub struct MediaRef {
    /// Where the media host keeps the encrypted file.
    pub direct_path: String,
    /// The key the file was encrypted with.
    pub media_key: Vec<u8>,
    /// SHA-256 of the decrypted file (checked before anything is served).
    pub file_sha256: Vec<u8>,
    /// SHA-256 of the encrypted file.
    pub file_enc_sha256: Vec<u8>,
    /// Size of the decrypted file, bytes.
    pub size: u64,
    /// `image`, `video`, `audio`, `document`, `sticker`.
    pub media_type: String,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The session has no live client (409 `not_connected`).
    #[error("the session is not connected")]
    NotConnected,
    /// WhatsApp's media host no longer holds the file (410 `media_expired`).
    #[error("the media host no longer holds the file")]
    Expired,
    /// The file did not match its hashes or MAC (502 `media_corrupt`).
    #[error("the downloaded file does not match its hashes")]
    Corrupt,
    /// Any other failure (502 `media_unavailable`).
    #[error("the media download failed: {0}")]
    Failed(String),
}

impl SessionPool {
    /// Downloads and decrypts `company`'s inbound file `media`. The bytes are
    /// returned only after whatsapp-rust checked the blob's MAC and the
    /// file's SHA-256.
    pub async fn download_media(
        &self,
        company: &CompanyId,
        media: &MediaRef,
    ) -> Result<Vec<u8>, MediaError> {
        let client = self
            .inner
            .config
            .live
            .get(company)
            .filter(|c| c.is_connected())
            .ok_or(MediaError::NotConnected)?;
        let media_type = match media.media_type.as_str() {
            "image" => MediaType::Image,
            "video" => MediaType::Video,
            "audio" => MediaType::Audio,
            "sticker" => MediaType::Sticker,
            _ => MediaType::Document,
        };
        let params = DownloadParams::encrypted(
            media.direct_path.clone(),
            &media.media_key,
            &media.file_sha256,
            &media.file_enc_sha256,
            media.size,
            media_type,
        );
        client.download_from_params(&params).await.map_err(|error| {
            let chain: &(dyn std::error::Error + Send + Sync + 'static) = error.as_ref();
            match chain.http_status() {
                Some(404 | 410) => MediaError::Expired,
                _ => {
                    let text = format!("{error:#}");
                    if text.contains("mismatch") {
                        MediaError::Corrupt
                    } else {
                        MediaError::Failed(text)
                    }
                }
            }
        })
    }
}
