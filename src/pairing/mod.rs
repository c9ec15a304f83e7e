//! Pairing links: signed, expiring links to a web page where a company's own
//! staff link its WhatsApp number (scan the live QR code, or type a pair
//! code), without an API key.
//!
//! - [`token`]: the link's token (HMAC-SHA256, expiry, bound to one company).
//! - [`strings`]: every word of the page, in one place (localisation).
//! - [`page`]: the page's HTML and its live view of a session.
//! - [`PairingLinks`] (here): the signing key and the link policy (lifetimes,
//!   public base URL), shared by the HTTP handlers in `crate::http::pair`.
//!
//! # Invariants
//!
//! - A link grants its page and the page's live updates for **one** company,
//!   until it expires, and nothing else: it is not an API credential (the
//!   `/v1` authenticator knows only the admin key and company tokens).
//! - The signing key is 32 random bytes generated on first start and stored
//!   in the database ([`SIGNING_KEY_SETTING`]), so links survive a restart.
//!   It never leaves the process: not logged, not returned, `Debug` redacted.
//! - A link dies with its company: the company's creation time is signed into
//!   the token and compared with the registry ([`PairingLinks::check_company`]),
//!   so a deleted company's links stop working, even if the id is reused.
//! - A company's links can be revoked at once ([`PairingLinks::revoke`]): the
//!   record's `pairing_generation` is signed into every link and bumped, so
//!   every link issued before is refused; open live feeds are told through
//!   [`PairingLinks::revocations`] and end.
//! - Tokens, QR codes, pair codes and phone numbers are never logged.

pub mod page;
pub mod strings;
pub mod token;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::CompanyId;
use crate::pb::CompanyRecord;
use crate::store::{Store, StoreError};
use token::{Claims, SigningKey, TokenError};

/// Setting under which the link signing key is stored.
pub const SIGNING_KEY_SETTING: &str = "pairing_link_key";

/// Shortest lifetime a link may have.
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// Longest lifetime any link may have, whatever the configuration says.
pub const MAX_TTL_CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

/// Path prefix of the pairing page (`/pair/{token}`).
pub const PAGE_PREFIX: &str = "/pair/";

/// Lifetimes of pairing links (flags and `WAGATE_PAIRING_*` environment).
#[derive(Clone, Debug, clap::Args)]
pub struct PairingOptions {
    /// How long a pairing link works when its request does not say (seconds).
    #[arg(long = "pairing-link-ttl", value_name = "SECONDS", env = "WAGATE_PAIRING_LINK_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub link_ttl_s: u64,

    /// The longest lifetime a request may ask for (`ttl_seconds`), in seconds.
    #[arg(long = "pairing-link-max-ttl", value_name = "SECONDS", env = "WAGATE_PAIRING_LINK_MAX_TTL", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub link_max_ttl_s: u64,
}

impl Default for PairingOptions {
    fn default() -> Self {
        Self {
            link_ttl_s: 900,
            link_max_ttl_s: 86_400,
        }
    }
}

/// Why pairing links could not be set up, issued or honoured.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// Reading or writing the signing key, or the company record, failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The stored key has the wrong length.
    #[error(
        "the stored pairing link key is damaged ({0} bytes instead of 32); remove the setting `{SIGNING_KEY_SETTING}` (this revokes every open link)"
    )]
    CorruptKey(usize),
    /// The system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// The default lifetime is longer than the maximum.
    #[error("--pairing-link-ttl ({ttl_s} s) must not exceed --pairing-link-max-ttl ({max_s} s)")]
    TtlAboveMax {
        /// The requested lifetime, seconds.
        ttl_s: u64,
        /// The longest allowed, seconds.
        max_s: u64,
    },
    /// A request asked for a lifetime outside the allowed range.
    #[error("ttl_seconds must be between {min_s} and {max_s}")]
    TtlOutOfRange {
        /// The shortest allowed, seconds.
        min_s: u64,
        /// The longest allowed, seconds.
        max_s: u64,
    },
}

/// Why a link does not lead to its page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    /// The token itself is refused (malformed, tampered, expired).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The company no longer exists, or was deleted and created again.
    #[error("the company of this link no longer exists")]
    UnknownCompany,
    /// The company's links were revoked after this one was issued.
    #[error("the link was revoked")]
    Revoked,
}

/// A link, freshly issued.
#[derive(Clone)]
pub struct IssuedLink {
    /// The token (the last path segment of the URL). A secret.
    pub token: String,
    /// When it expires (unix ms).
    pub expires_at_ms: i64,
}

crate::domain::redacted_debug!(IssuedLink { expires_at_ms });

/// The signing key and the link policy. One per process, shared by handlers.
#[derive(Debug)]
pub struct PairingLinks {
    key: SigningKey,
    options: PairingOptions,
    public_url: Option<String>,
    /// Counts revocations (of any company): open feeds re-check their link
    /// when it moves.
    revocations: tokio::sync::watch::Sender<u64>,
}

impl PairingLinks {
    /// Loads the signing key from `store`, generating and storing one on
    /// first start; `public_url` is the configured base of links (`None`: each
    /// link is based on the `Host` its request was sent to).
    pub fn load(
        store: &Store,
        options: &PairingOptions,
        public_url: Option<&str>,
    ) -> Result<Self, PairingError> {
        if options.link_ttl_s > options.link_max_ttl_s {
            return Err(PairingError::TtlAboveMax {
                ttl_s: options.link_ttl_s,
                max_s: options.link_max_ttl_s,
            });
        }
        let key = if let Some(stored) = store.get_setting(SIGNING_KEY_SETTING)? {
            SigningKey::from_bytes(
                stored
                    .as_slice()
                    .try_into()
                    .map_err(|_| PairingError::CorruptKey(stored.len()))?,
            )
        } else {
            let mut bytes = [0u8; SigningKey::LEN];
            getrandom::fill(&mut bytes).map_err(|e| PairingError::Random(e.to_string()))?;
            store.put_setting(SIGNING_KEY_SETTING, &bytes)?;
            SigningKey::from_bytes(bytes)
        };
        Ok(Self {
            key,
            options: options.clone(),
            public_url: public_url.map(|url| url.trim_end_matches('/').to_owned()),
            revocations: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The configured public base URL, without a trailing `/`.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The lifetimes a link may be asked for, in seconds (inclusive).
    pub fn ttl_range_s(&self) -> (u64, u64) {
        (
            MIN_TTL.as_secs(),
            self.options.link_max_ttl_s.min(MAX_TTL_CEILING.as_secs()),
        )
    }

    /// The lifetime of a link: `requested` (seconds) if given and allowed,
    /// else the configured default.
    pub fn ttl(&self, requested_s: Option<u64>) -> Result<Duration, PairingError> {
        let (_, max_s) = self.ttl_range_s();
        match requested_s {
            None => Ok(Duration::from_secs(self.options.link_ttl_s)),
            Some(s) if (MIN_TTL.as_secs()..=max_s).contains(&s) => Ok(Duration::from_secs(s)),
            Some(_) => Err(PairingError::TtlOutOfRange {
                min_s: MIN_TTL.as_secs(),
                max_s,
            }),
        }
    }

    /// Issues a link to `company` (whose registry record is `record`) that
    /// works for `ttl` from `now_ms`.
    pub fn issue(
        &self,
        record: &CompanyRecord,
        company: &CompanyId,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<IssuedLink, PairingError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| PairingError::Random(e.to_string()))?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let claims = Claims {
            company: company.clone(),
            company_created_ms: record.created_at_ms,
            generation: record.pairing_generation,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        Ok(IssuedLink {
            token: token::sign(&self.key, &claims, nonce),
            expires_at_ms: claims.expires_at_ms,
        })
    }

    /// Signs arbitrary claims (tests mint expired links with it; [`issue`]
    /// is the way to make a link).
    ///
    /// [`issue`]: Self::issue
    pub fn sign(&self, claims: &Claims) -> String {
        token::sign(&self.key, claims, [0; 8])
    }

    /// Checks a token at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        token::verify(&self.key, token, now_ms)
    }

    /// The company's registry record, if `claims` still designate it (the
    /// company exists and is the same incarnation the link was made for).
    pub fn check_company(
        &self,
        store: &Store,
        claims: &Claims,
    ) -> Result<Result<CompanyRecord, LinkRefusal>, StoreError> {
        Ok(match store.get_company(&claims.company)? {
            Some(record) if record.created_at_ms != claims.company_created_ms => {
                Err(LinkRefusal::UnknownCompany)
            }
            Some(record) if record.pairing_generation != claims.generation => {
                Err(LinkRefusal::Revoked)
            }
            Some(record) => Ok(record),
            None => Err(LinkRefusal::UnknownCompany),
        })
    }

    /// Revokes every link issued to `company` so far (links issued after
    /// work) and tells open feeds. `None` when the company does not exist.
    pub fn revoke(&self, store: &Store, company: &CompanyId) -> Result<Option<u64>, StoreError> {
        let updated = store.update_company(company, |record| {
            record.pairing_generation = record.pairing_generation.wrapping_add(1);
        })?;
        if updated.is_some() {
            self.revocations
                .send_modify(|count| *count = count.wrapping_add(1));
        }
        Ok(updated.map(|record| record.pairing_generation))
    }

    /// Moves on every revocation (of any company): a feed re-checks its link
    /// with [`check_company`](Self::check_company) when it does.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }
}

/// The path of a link's page: `/pair/{token}`.
pub fn page_path(token: &str) -> String {
    format!("{PAGE_PREFIX}{token}")
}

/// A short, non-secret fingerprint of a token, for debugging without logging
/// the token: the first 6 bytes of its MAC part, base64url. Lets an operator
/// match a user's complaint ("my link ends in …") with a log line, while the
/// token itself cannot be rebuilt from it.
pub fn fingerprint(token: &str) -> String {
    let tag = token.rsplit('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD.decode(tag).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len().min(6)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(company: &str, created_at_ms: i64) -> CompanyRecord {
        CompanyRecord {
            company_id: company.to_owned(),
            created_at_ms,
            ..Default::default()
        }
    }

    #[test]
    fn the_key_is_generated_once_stored_and_reused() {
        let store = Store::open_temporary().unwrap();
        let options = PairingOptions::default();
        let first = PairingLinks::load(&store, &options, None).unwrap();
        let stored = store.get_setting(SIGNING_KEY_SETTING).unwrap().unwrap();
        assert_eq!(stored.len(), 32);

        let acme = CompanyId::parse("acme").unwrap();
        let link = first
            .issue(&record("acme", 5), &acme, Duration::from_secs(900), 1_000)
            .unwrap();
        assert_eq!(link.expires_at_ms, 1_000 + 900_000);

        // A restart: same store, same key, the link still works.
        let again = PairingLinks::load(&store, &options, Some("https://wa.example.com/")).unwrap();
        let claims = again.verify(&link.token, 2_000).unwrap();
        assert_eq!(claims.company, acme);
        assert_eq!(claims.company_created_ms, 5);
        assert_eq!(again.public_url(), Some("https://wa.example.com"));
        assert!(!format!("{again:?}").contains(&format!("{:?}", &stored[..4])));

        // Another gateway (another key) refuses it.
        let other = PairingLinks::load(&Store::open_temporary().unwrap(), &options, None).unwrap();
        assert_eq!(
            other.verify(&link.token, 2_000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_damaged_key_is_reported_not_replaced() {
        let store = Store::open_temporary().unwrap();
        store.put_setting(SIGNING_KEY_SETTING, b"short").unwrap();
        let err = PairingLinks::load(&store, &PairingOptions::default(), None).unwrap_err();
        assert!(matches!(err, PairingError::CorruptKey(5)), "{err}");
    }

    #[test]
    fn lifetimes_are_bounded() {
        let store = Store::open_temporary().unwrap();
        let links = PairingLinks::load(&store, &PairingOptions::default(), None).unwrap();
        assert_eq!(links.ttl(None).unwrap(), Duration::from_secs(900));
        assert_eq!(links.ttl(Some(60)).unwrap(), Duration::from_secs(60));
        assert_eq!(
            links.ttl(Some(86_400)).unwrap(),
            Duration::from_secs(86_400)
        );
        for bad in [0, 59, 86_401, u64::MAX] {
            assert!(
                matches!(
                    links.ttl(Some(bad)),
                    Err(PairingError::TtlOutOfRange { .. })
                ),
                "{bad}"
            );
        }
        let inverted = PairingOptions {
            link_ttl_s: 7200,
            link_max_ttl_s: 3600,
        };
        assert!(matches!(
            PairingLinks::load(&store, &inverted, None),
            Err(PairingError::TtlAboveMax { .. })
        ));
    }

    #[test]
    fn a_link_dies_with_its_company() {
        let store = Store::open_temporary().unwrap();
        let links = PairingLinks::load(&store, &PairingOptions::default(), None).unwrap();
        let acme = CompanyId::parse("acme").unwrap();
        let original = record("acme", 1_000);
        store.put_company(&original).unwrap();
        let link = links
            .issue(&original, &acme, Duration::from_secs(900), 2_000)
            .unwrap();
        let claims = links.verify(&link.token, 3_000).unwrap();
        assert_eq!(
            links
                .check_company(&store, &claims)
                .unwrap()
                .unwrap()
                .created_at_ms,
            1_000
        );

        // Deleted, then created again under the same id: still refused.
        store.remove_company(&acme).unwrap();
        assert_eq!(
            links.check_company(&store, &claims).unwrap(),
            Err(LinkRefusal::UnknownCompany)
        );
        store.put_company(&record("acme", 9_000)).unwrap();
        assert_eq!(
            links.check_company(&store, &claims).unwrap(),
            Err(LinkRefusal::UnknownCompany)
        );
    }

    #[test]
    fn revoking_refuses_earlier_links_of_that_company_only() {
        let store = Store::open_temporary().unwrap();
        let links = PairingLinks::load(&store, &PairingOptions::default(), None).unwrap();
        let (acme, globex) = (
            CompanyId::parse("acme").unwrap(),
            CompanyId::parse("globex").unwrap(),
        );
        store.put_company(&record("acme", 1)).unwrap();
        store.put_company(&record("globex", 1)).unwrap();
        let ttl = Duration::from_secs(900);
        let issue = |company: &CompanyId| {
            let record = store.get_company(company).unwrap().unwrap();
            let link = links.issue(&record, company, ttl, 0).unwrap();
            links.verify(&link.token, 1).unwrap()
        };
        let (old, other) = (issue(&acme), issue(&globex));
        let feed = links.revocations();

        assert_eq!(links.revoke(&store, &acme).unwrap(), Some(1));
        assert!(feed.has_changed().unwrap(), "open feeds are told");
        assert_eq!(
            links.check_company(&store, &old).unwrap(),
            Err(LinkRefusal::Revoked)
        );
        assert!(links.check_company(&store, &issue(&acme)).unwrap().is_ok());
        assert!(links.check_company(&store, &other).unwrap().is_ok());
        assert_eq!(
            links
                .revoke(&store, &CompanyId::parse("initech").unwrap())
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_link_is_for_one_company() {
        let store = Store::open_temporary().unwrap();
        let links = PairingLinks::load(&store, &PairingOptions::default(), None).unwrap();
        let acme = CompanyId::parse("acme").unwrap();
        store.put_company(&record("acme", 1)).unwrap();
        store.put_company(&record("globex", 1)).unwrap();
        let link = links
            .issue(&record("acme", 1), &acme, Duration::from_secs(900), 0)
            .unwrap();
        let claims = links.verify(&link.token, 1).unwrap();
        assert_eq!(claims.company.as_str(), "acme");
        let record = links.check_company(&store, &claims).unwrap().unwrap();
        assert_eq!(record.company_id, "acme");
    }

    #[test]
    fn fingerprints_do_not_reveal_the_token() {
        let store = Store::open_temporary().unwrap();
        let links = PairingLinks::load(&store, &PairingOptions::default(), None).unwrap();
        let acme = CompanyId::parse("acme").unwrap();
        let link = links
            .issue(&record("acme", 1), &acme, Duration::from_secs(900), 0)
            .unwrap();
        let print = fingerprint(&link.token);
        assert_eq!(print.len(), 8);
        assert!(!link.token.starts_with(&print));
        assert_eq!(fingerprint("garbage"), "");
        assert_eq!(page_path("t"), "/pair/t");
    }
}
