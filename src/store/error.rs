//! The store layer's error type.
//!
//! Policy: sled failures (I/O, a damaged log) are [`StoreError::Sled`],
//! PostgreSQL's are [`StoreError::Postgres`] and [`StoreError::PostgresPool`]; a value
//! that is present but cannot be decoded is [`StoreError::Corrupt`] and names
//! the company it belongs to, so one company's bad data is reported as that
//! company's problem and never fails an operation on another company.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database at `path` could not be opened (missing permissions, held by
    /// another process, or damaged beyond sled's recovery).
    #[error("cannot open the store at {path}")]
    Open {
        /// The database directory.
        path: String,
        /// The underlying sled error.
        #[source]
        source: sled::Error,
    },

    /// sled failed (I/O error or a damaged log).
    #[error("storage operation failed")]
    Sled(#[from] sled::Error),

    /// PostgreSQL failed (connection lost, a statement refused).
    #[error("PostgreSQL operation failed")]
    Postgres(#[from] tokio_postgres::Error),

    /// No PostgreSQL connection could be had from the pool.
    #[error("no PostgreSQL connection: {0}")]
    PostgresPool(String),

    /// The PostgreSQL database was migrated by a newer wagate: this binary
    /// does not know its schema and writes nothing.
    #[error(
        "the PostgreSQL schema is at migration {found}, newer than this wagate knows ({known}): run the newer version"
    )]
    SchemaTooNew {
        /// The newest migration the database has.
        found: i32,
        /// The newest migration this binary has.
        known: i32,
    },

    /// A stored value of `company` could not be decoded. Only this company is
    /// affected; the value is left in place for inspection until the company's
    /// credentials are wiped or the company is removed.
    #[error("stored {what} of company `{company}` is unreadable: {detail}")]
    Corrupt {
        /// The company whose data it is.
        company: String,
        /// What kind of value (e.g. `device`, `registry record`).
        what: String,
        /// Why it could not be decoded.
        detail: String,
    },

    /// The store is sealed with a store key and none was given.
    #[error(
        "the store at {path} is sealed with a store key: start with WAGATE_STORE_KEY (or WAGATE_STORE_KEY_FILE) set to the key it was sealed with"
    )]
    StoreKeyMissing {
        /// The database directory.
        path: String,
    },

    /// The store key given is not the one the store was sealed with.
    #[error(
        "the store key does not open the store at {path}: it is not the key this data directory was sealed with (nothing was changed)"
    )]
    WrongStoreKey {
        /// The database directory.
        path: String,
    },

    /// A process-wide setting could not be read (e.g. it failed to open with
    /// the store key).
    #[error("stored setting `{name}` is unreadable: {detail}")]
    UnreadableSetting {
        /// The setting's name.
        name: String,
        /// Why it could not be read.
        detail: String,
    },

    /// The system gave no random bytes (for a sealed value's nonce).
    #[error("no random bytes for sealing a value: {0}")]
    Random(#[from] getrandom::Error),

    /// A record handed to the store is not valid (e.g. a registry record whose
    /// `company_id` is not a valid company id). Nothing was written.
    #[error("invalid {what}: {detail}")]
    InvalidRecord {
        /// What kind of record.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn corrupt(company: &str, what: impl Into<String>, detail: impl ToString) -> Self {
        Self::Corrupt {
            company: company.to_owned(),
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(error: sled::transaction::TransactionError<StoreError>) -> Self {
        match error {
            sled::transaction::TransactionError::Abort(inner) => inner,
            sled::transaction::TransactionError::Storage(inner) => Self::Sled(inner),
        }
    }
}

impl From<sled::transaction::TransactionError<()>> for StoreError {
    fn from(error: sled::transaction::TransactionError<()>) -> Self {
        match error {
            // Only `Storage` reaches here: transactions typed `<()>` never abort.
            sled::transaction::TransactionError::Abort(()) => {
                Self::Sled(sled::Error::Unsupported("transaction aborted".into()))
            }
            sled::transaction::TransactionError::Storage(inner) => Self::Sled(inner),
        }
    }
}

/// Converts to whatsapp-rust's store error at the `Backend` boundary, keeping
/// this error (and so the company name) as the source.
impl From<StoreError> for wacore::store::error::StoreError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt { .. }
            | StoreError::InvalidRecord { .. }
            | StoreError::UnreadableSetting { .. } => Self::Serialization(Box::new(error)),
            StoreError::Open { .. }
            | StoreError::StoreKeyMissing { .. }
            | StoreError::WrongStoreKey { .. }
            | StoreError::PostgresPool(_)
            | StoreError::SchemaTooNew { .. } => Self::Connection(Box::new(error)),
            StoreError::Sled(_) | StoreError::Random(_) | StoreError::Postgres(_) => {
                Self::Database(Box::new(error))
            }
        }
    }
}
