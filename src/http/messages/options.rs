//! [`MediaOptions`]: how large a media file may be and how media URLs are
//! fetched (`--media-*` flags; the address guard is `--allow-private-urls`,
//! `crate::outbound`).

/// Media sends: how large a file may be and how media URLs are fetched
/// (`src/http/messages/media.rs`).
#[derive(Clone, Debug, clap::Args)]
pub struct MediaOptions {
    /// Largest media file accepted, in MiB, for every kind. When absent,
    /// WhatsApp's own limit per kind applies (images and audio 16 MiB, video
    /// 64 MiB, documents 2 GiB, stickers 1 MiB).
    #[arg(long, env = "WAGATE_MEDIA_MAX_MIB", value_parser = clap::value_parser!(u64).range(1..=2048))]
    pub media_max_mib: Option<u64>,

    /// How long fetching one media URL may take, in seconds.
    #[arg(long, env = "WAGATE_MEDIA_URL_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub media_url_timeout: u64,
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            media_max_mib: None,
            media_url_timeout: 60,
        }
    }
}
