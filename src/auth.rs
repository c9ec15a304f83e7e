//! Who is calling: the admin key and company tokens, and the [`Authenticator`]
//! that turns an `Authorization: Bearer …` header into a [`Caller`] or an
//! [`AuthError`]. The axum extractors and the mapping of [`AuthError`] to the
//! API's error envelope live in `http` (this module knows no HTTP layer above
//! the header map).
//!
//! # Credentials
//!
//! - **Admin key**: may do everything. Configured with `--admin-key`, or
//!   generated on first start ([`AdminKey::load_or_generate`]): then only its
//!   SHA-256 is stored (setting [`ADMIN_KEY_SETTING`]) and the plaintext is
//!   handed back once, for the binary to show. A generated key is rotated
//!   without a restart ([`Authenticator::rotate_admin_key`]); a configured one
//!   by changing the configuration, and configuring one removes a generated
//!   key's stored hash, so that key stops working.
//! - **Company token**: issued once when a company's session is created
//!   ([`crate::token`]), stored as a SHA-256 in the company's registry record;
//!   it may act only on its own company.
//!
//! # Invariants
//!
//! - Access is granted only by comparing SHA-256 digests with
//!   [`subtle::ConstantTimeEq`]: the time taken does not depend on how much of
//!   a guess was right.
//! - The authoritative check for a company token is the company's own stored
//!   hash. [`TokenIndex`] (hash → company, in memory) is used only to tell
//!   "another company's token" (403 `forbidden`) from "no valid token" (401
//!   `invalid_credentials`), and is re-verified against the store, so a stale
//!   entry can never grant anything.
//! - Credentials are checked before anything else is looked at, so an
//!   unauthenticated caller learns nothing (not even whether a company exists).
//! - Keys and tokens never reach a log line.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::RwLock;
use subtle::ConstantTimeEq as _;

use crate::domain::{CompanyId, InvalidInput};
use crate::store::{Store, StoreError};
use crate::token::{generate_token, hash_token};

/// Setting under which the SHA-256 of a generated admin key is stored.
pub const ADMIN_KEY_SETTING: &str = "admin_key_sha256";

/// Prefix of generated admin keys (company tokens use `wgc_`).
const ADMIN_KEY_PREFIX: &str = "wga_";

/// Why the admin key could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("reading or writing the stored admin key failed")]
    /// Reading or writing the stored hash failed.
    Store(#[from] StoreError),
    #[error(
        "the stored admin key hash is damaged ({0} bytes instead of 32); remove the setting or pass --admin-key"
    )]
    /// The stored hash has the wrong length (its length in bytes).
    CorruptAdminKey(usize),
    #[error("the system random number generator failed: {0}")]
    /// The operating system could not provide random bytes.
    Random(String),
}

/// Why a request's credentials were refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header (401 `missing_credentials`).
    #[error("an `Authorization: Bearer <key>` header is required")]
    MissingCredentials,
    /// The key or token is not valid (401 `invalid_credentials`).
    #[error("the API key or token is not valid")]
    InvalidCredentials,
    /// A valid company token used outside its own company, or on an
    /// admin-only endpoint (403 `forbidden`).
    #[error("this token may act only on its own company")]
    Forbidden,
    /// Credentials were presented, but the company id in the path is not
    /// one (400 with the input's code).
    #[error(transparent)]
    InvalidCompany(#[from] InvalidInput),
    /// The registry could not be read or written (500).
    #[error("reading the registry failed")]
    Store(#[from] StoreError),
    /// No new token could be drawn (the system's random source failed; 500).
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// The admin key comes from the configuration, so it is rotated there
    /// (409 `admin_key_configured`).
    #[error(
        "the admin key is configured (--admin-key / WAGATE_ADMIN_KEY): change the configuration and restart to rotate it"
    )]
    AdminKeyConfigured,
}

/// The admin key, as its SHA-256 (the plaintext is not kept).
#[derive(Clone)]
pub struct AdminKey {
    hash: [u8; 32],
    /// From the configuration (not rotatable through the API).
    configured: bool,
}

/// Redacted.
impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

impl AdminKey {
    /// The key `key` (only its SHA-256 is kept).
    pub fn from_plaintext(key: &str) -> Self {
        Self {
            hash: hash_token(key),
            configured: true,
        }
    }

    /// The admin key for this start: the configured one if given (a stored
    /// generated hash is then removed, so the generated key stops working),
    /// else the stored hash, else a new random key whose hash is stored and
    /// whose plaintext is returned, the one time it exists.
    pub fn load_or_generate(
        store: &Store,
        configured: Option<&str>,
    ) -> Result<(Self, Option<String>), AuthSetupError> {
        if let Some(key) = configured {
            if store.remove_setting(ADMIN_KEY_SETTING)? {
                tracing::warn!(
                    "an admin key is configured: the generated admin key's stored hash was removed, that key no longer works"
                );
            }
            return Ok((Self::from_plaintext(key), None));
        }
        if let Some(stored) = store.get_setting(ADMIN_KEY_SETTING)? {
            let hash: [u8; 32] = stored
                .as_slice()
                .try_into()
                .map_err(|_| AuthSetupError::CorruptAdminKey(stored.len()))?;
            return Ok((
                Self {
                    hash,
                    configured: false,
                },
                None,
            ));
        }
        let (key, plaintext) = Self::generate(store).map_err(|err| match err {
            AuthError::Store(err) => AuthSetupError::Store(err),
            other => AuthSetupError::Random(other.to_string()),
        })?;
        Ok((key, Some(plaintext)))
    }

    /// A new random key whose hash replaces the stored one (flushed), and its
    /// plaintext.
    fn generate(store: &Store) -> Result<(Self, String), AuthError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| AuthError::Random(e.to_string()))?;
        let plaintext = format!("{ADMIN_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let key = Self {
            hash: hash_token(&plaintext),
            configured: false,
        };
        store.put_setting(ADMIN_KEY_SETTING, &key.hash)?;
        Ok((key, plaintext))
    }

    fn matches(&self, presented_hash: &[u8; 32]) -> bool {
        self.hash.ct_eq(presented_hash).into()
    }
}

/// Token hash → company, to classify a token that does not fit the company it
/// is used on (see the module invariants: it never grants access).
#[derive(Default)]
pub struct TokenIndex {
    // parking_lot: held for a map lookup or insert only, never across `.await`.
    by_hash: RwLock<HashMap<[u8; 32], CompanyId>>,
}

impl TokenIndex {
    /// Built from the registry at start.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let index = Self::default();
        for record in store.list_companies()? {
            if let (Ok(hash), Ok(company)) = (
                <[u8; 32]>::try_from(record.token_hash.as_slice()),
                CompanyId::parse(&record.company_id),
            ) {
                index.by_hash.write().insert(hash, company);
            }
        }
        Ok(index)
    }

    /// Records a token issued to `company`.
    pub fn insert(&self, token: &str, company: &CompanyId) {
        self.by_hash
            .write()
            .insert(hash_token(token), company.clone());
    }

    /// Forgets every token of a deleted company.
    pub fn remove_company(&self, company: &CompanyId) {
        self.by_hash.write().retain(|_, c| c != company);
    }

    fn company_of(&self, hash: &[u8; 32]) -> Option<CompanyId> {
        self.by_hash.read().get(hash).cloned()
    }
}

/// Everything needed to authenticate a request.
pub struct Authenticator {
    // parking_lot: read for one comparison, written by a rotation; never
    // held across `.await`.
    admin: RwLock<AdminKey>,
    store: Store,
    tokens: TokenIndex,
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin key: may act on every company.
    Admin,
    /// A company token, valid for this company only.
    Company(CompanyId),
}

impl Authenticator {
    /// Checks requests against `admin`, and company tokens against `store` (classified with `tokens`).
    pub fn new(admin: AdminKey, store: Store, tokens: TokenIndex) -> Self {
        Self {
            admin: RwLock::new(admin),
            store,
            tokens,
        }
    }

    /// Replaces a generated admin key with a new one and returns it, the one
    /// time its plaintext exists: its hash replaces the stored one (flushed)
    /// and the old key stops working at once. A configured key is refused
    /// ([`AuthError::AdminKeyConfigured`]).
    pub fn rotate_admin_key(&self) -> Result<String, AuthError> {
        // Held across the store write so two rotations cannot interleave
        // (the stored hash and the one in memory stay the same key).
        let mut admin = self.admin.write();
        if admin.configured {
            return Err(AuthError::AdminKeyConfigured);
        }
        let (key, plaintext) = AdminKey::generate(&self.store)?;
        *admin = key;
        Ok(plaintext)
    }

    /// The token index, to record issued tokens and forget deleted companies.
    pub fn tokens(&self) -> &TokenIndex {
        &self.tokens
    }

    /// Replaces `company`'s token with a new one and returns it, the one time
    /// its plaintext exists; the old token stops working at once (the
    /// registry, the authoritative check, holds only the new hash). `None`
    /// when the company does not exist (nothing is created).
    pub fn rotate_token(&self, company: &CompanyId) -> Result<Option<String>, AuthError> {
        let issued = generate_token().map_err(|e| AuthError::Random(e.to_string()))?;
        let Some(_) = self.store.update_company(company, |record| {
            record.token_hash = issued.hash.to_vec();
        })?
        else {
            return Ok(None);
        };
        self.tokens.remove_company(company);
        self.tokens.insert(&issued.plaintext, company);
        Ok(Some(issued.plaintext))
    }

    /// The credential's hash if it is the admin key, i.e. `Ok(None)` for the
    /// admin and `Ok(Some(hash))` for anything else that was presented.
    fn presented(&self, headers: &HeaderMap) -> Result<Option<[u8; 32]>, AuthError> {
        let hash = hash_token(bearer(headers)?);
        Ok(if self.admin.read().matches(&hash) {
            None
        } else {
            Some(hash)
        })
    }

    /// Who a credential is, by its SHA-256 (as a console session keeps it,
    /// never the plaintext): the admin, or the company whose stored token it
    /// is (re-checked against the store, so a rotated token or a deleted
    /// company stops working at once).
    pub fn caller_of_hash(&self, hash: &[u8; 32]) -> Result<Caller, AuthError> {
        if self.admin.read().matches(hash) {
            return Ok(Caller::Admin);
        }
        match self.tokens.company_of(hash) {
            Some(company) if self.token_belongs_to(hash, &company)? => Ok(Caller::Company(company)),
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// The caller of an admin-only endpoint.
    pub fn admin(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        match self.presented(headers)? {
            None => Ok(()),
            Some(hash) => Err(self.refusal(&hash, None)?),
        }
    }

    /// The caller of an endpoint of `company`: the admin, or `company`'s own
    /// token. `raw_company` is parsed only after credentials were presented.
    pub fn company(
        &self,
        headers: &HeaderMap,
        raw_company: &str,
    ) -> Result<(CompanyId, Caller), AuthError> {
        let presented = self.presented(headers)?;
        let company = CompanyId::parse(raw_company)?;
        let Some(hash) = presented else {
            return Ok((company, Caller::Admin));
        };
        if self.token_belongs_to(&hash, &company)? {
            return Ok((company.clone(), Caller::Company(company)));
        }
        Err(self.refusal(&hash, Some(&company))?)
    }

    fn token_belongs_to(&self, hash: &[u8; 32], company: &CompanyId) -> Result<bool, AuthError> {
        let record = self.store.get_company(company)?;
        Ok(record.is_some_and(|r| {
            r.token_hash.len() == 32 && bool::from(r.token_hash.as_slice().ct_eq(hash))
        }))
    }

    /// 403 when `hash` is the valid token of another company than `target`
    /// (re-checked against the store), else 401.
    fn refusal(&self, hash: &[u8; 32], target: Option<&CompanyId>) -> Result<AuthError, AuthError> {
        match self.tokens.company_of(hash) {
            Some(owner) if Some(&owner) != target && self.token_belongs_to(hash, &owner)? => {
                Ok(AuthError::Forbidden)
            }
            _ => Ok(AuthError::InvalidCredentials),
        }
    }
}

/// The bearer credential of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(AuthError::MissingCredentials)?;
    let value = value.to_str().map_err(|_| AuthError::InvalidCredentials)?;
    match value.split_once(' ') {
        Some((scheme, credential))
            if scheme.eq_ignore_ascii_case("bearer") && !credential.trim().is_empty() =>
        {
            Ok(credential.trim())
        }
        _ => Err(AuthError::InvalidCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn code(result: Result<impl std::fmt::Debug, AuthError>) -> &'static str {
        match result.unwrap_err() {
            AuthError::MissingCredentials => "missing_credentials",
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::Forbidden => "forbidden",
            AuthError::InvalidCompany(input) => input.code,
            AuthError::Store(_) => "store",
            AuthError::Random(_) => "random",
            AuthError::AdminKeyConfigured => "admin_key_configured",
        }
    }

    fn company(store: &Store, id: &str, token: &str) -> CompanyId {
        let record = pb::CompanyRecord {
            company_id: id.to_owned(),
            token_hash: hash_token(token).to_vec(),
            ..Default::default()
        };
        store.put_company(&record).unwrap();
        CompanyId::parse(id).unwrap()
    }

    #[test]
    fn generated_admin_key_is_stored_hashed_and_printed_once() {
        let store = Store::open_temporary().unwrap();
        let (key, plaintext) = AdminKey::load_or_generate(&store, None).unwrap();
        let plaintext = plaintext.expect("first start generates a key");
        assert!(plaintext.starts_with(ADMIN_KEY_PREFIX));
        let stored = store.get_setting(ADMIN_KEY_SETTING).unwrap().unwrap();
        assert_eq!(
            stored,
            hash_token(&plaintext).to_vec(),
            "only the hash is stored"
        );
        assert!(key.matches(&hash_token(&plaintext)));

        let (again, none) = AdminKey::load_or_generate(&store, None).unwrap();
        assert!(none.is_none(), "the key is printed on first start only");
        assert!(again.matches(&hash_token(&plaintext)));

        let (configured, none) =
            AdminKey::load_or_generate(&store, Some("configured-key-0123")).unwrap();
        assert!(none.is_none());
        assert!(configured.matches(&hash_token("configured-key-0123")));
        assert!(
            !configured.matches(&hash_token(&plaintext)),
            "a configured key replaces the stored one"
        );
        assert_eq!(
            store.get_setting(ADMIN_KEY_SETTING).unwrap(),
            None,
            "the stale generated hash is cleared"
        );
        // Unconfigured again: the old generated key does not come back.
        let (fresh, new) = AdminKey::load_or_generate(&store, None).unwrap();
        assert!(new.is_some(), "a new key is generated");
        assert!(!fresh.matches(&hash_token(&plaintext)));
    }

    #[test]
    fn a_generated_admin_key_rotates_a_configured_one_does_not() {
        let store = Store::open_temporary().unwrap();
        let (key, old) = AdminKey::load_or_generate(&store, None).unwrap();
        let old = old.unwrap();
        let auth = Authenticator::new(key, store.clone(), TokenIndex::default());
        let new = auth.rotate_admin_key().unwrap();
        assert!(new.starts_with(ADMIN_KEY_PREFIX) && new != old);
        assert!(auth.admin(&headers(&format!("Bearer {new}"))).is_ok());
        assert_eq!(
            code(auth.admin(&headers(&format!("Bearer {old}")))),
            "invalid_credentials",
            "the old key stops working at once"
        );
        assert_eq!(
            store.get_setting(ADMIN_KEY_SETTING).unwrap(),
            Some(hash_token(&new).to_vec()),
            "the stored hash is replaced"
        );

        let configured = Authenticator::new(
            AdminKey::from_plaintext("configured-key-0123456789abcdefgh"),
            Store::open_temporary().unwrap(),
            TokenIndex::default(),
        );
        assert_eq!(code(configured.rotate_admin_key()), "admin_key_configured");
        assert!(
            configured
                .admin(&headers("Bearer configured-key-0123456789abcdefgh"))
                .is_ok()
        );
    }

    #[test]
    fn callers_are_classified() {
        let store = Store::open_temporary().unwrap();
        let acme = company(&store, "acme", "wgc_acme-token");
        let globex = company(&store, "globex", "wgc_globex-token");
        let auth = Authenticator::new(
            AdminKey::from_plaintext("admin-key-0123456789"),
            store.clone(),
            TokenIndex::load(&store).unwrap(),
        );

        assert_eq!(
            auth.company(&headers("Bearer admin-key-0123456789"), "acme")
                .unwrap(),
            (acme.clone(), Caller::Admin)
        );
        assert_eq!(
            auth.company(&headers("bearer wgc_acme-token"), "acme")
                .unwrap(),
            (acme.clone(), Caller::Company(acme.clone()))
        );
        assert_eq!(
            code(auth.company(&HeaderMap::new(), "acme")),
            "missing_credentials"
        );
        assert_eq!(
            code(auth.company(&headers("Bearer nope"), "acme")),
            "invalid_credentials"
        );
        assert_eq!(
            code(auth.company(&headers("Basic YWRtaW4="), "acme")),
            "invalid_credentials"
        );
        assert_eq!(
            code(auth.company(&headers("Bearer wgc_globex-token"), "acme")),
            "forbidden"
        );
        assert_eq!(
            code(auth.company(&headers("Bearer wgc_acme-token"), "initech")),
            "forbidden"
        );
        assert_eq!(
            code(auth.company(&headers("Bearer admin-key-0123456789"), "Bad Id")),
            "invalid_company_id"
        );
        assert_eq!(
            code(auth.company(&HeaderMap::new(), "Bad Id")),
            "missing_credentials"
        );

        auth.admin(&headers("Bearer admin-key-0123456789")).unwrap();
        assert_eq!(
            code(auth.admin(&headers("Bearer wgc_acme-token"))),
            "forbidden"
        );
        assert_eq!(
            code(auth.admin(&headers("Bearer wrong"))),
            "invalid_credentials"
        );

        // A deleted company's token is no longer anyone's: 401, not 403.
        store.remove_company(&globex).unwrap();
        auth.tokens().remove_company(&globex);
        assert_eq!(
            code(auth.company(&headers("Bearer wgc_globex-token"), "acme")),
            "invalid_credentials"
        );
    }
}
