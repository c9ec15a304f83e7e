//! Uploading a [`MediaFile`] to WhatsApp's media host with bounded memory:
//! the plaintext (already spooled to an anonymous temporary file) is
//! encrypted in a blocking task into a second anonymous temporary file, which
//! whatsapp-rust's `upload_stream` then sends through the HTTP client's
//! streaming upload ([`super::client::ReqwestHttpClient`] streams it in
//! 64 KiB chunks). Neither file has a name on disk: both vanish when dropped,
//! whatever happens.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write as _};
use std::sync::Arc;

use whatsapp_rust::Client;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::upload::UploadResponse;

use crate::domain::media::{MediaFile, MediaKind};

/// whatsapp-rust's media type (it picks the upload path and the key
/// derivation) for a kind.
fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio | MediaKind::Voice => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
        MediaKind::Sticker => MediaType::Sticker,
    }
}

/// The encrypted blob, read from its temporary file for each upload attempt.
struct EncryptedFile {
    file: File,
    len: u64,
}

impl wacore::upload::UploadSource for EncryptedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader_from(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        // A fresh handle per attempt; attempts never overlap, so sharing the
        // file offset with the clone is harmless.
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(BufReader::with_capacity(64 * 1024, file)))
    }
}

/// Encrypts and uploads `file` as `kind`.
pub async fn upload(
    client: &Arc<Client>,
    file: &MediaFile,
    kind: MediaKind,
) -> anyhow::Result<UploadResponse> {
    let media_type = media_type(kind);
    let plain = file.file.try_clone()?;
    let (info, encrypted) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut plain = plain;
        plain.seek(SeekFrom::Start(0))?;
        let mut encrypted = tempfile::tempfile()?;
        let info = {
            let mut writer = BufWriter::with_capacity(64 * 1024, &mut encrypted);
            let info = wacore::upload::encrypt_media_streaming(
                BufReader::with_capacity(64 * 1024, plain),
                &mut writer,
                media_type,
            )?;
            writer.flush()?;
            info
        };
        let len = encrypted.metadata()?.len();
        Ok((
            info,
            EncryptedFile {
                file: encrypted,
                len,
            },
        ))
    })
    .await??;
    client.upload_stream(encrypted, info, media_type).await
}
