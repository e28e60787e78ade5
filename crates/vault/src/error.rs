//! Errors of the vault. Each message says what is wrong and, where there is
//! one, what to do about it. None carries a secret.

/// A vault error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no vault at {path}: create one with 'oathdesk vault init'")]
    NoVault { path: String },
    #[error("a vault already exists at {path}")]
    VaultExists { path: String },
    #[error("{path} is not an oathdesk vault ({reason})")]
    NotAVault { path: String, reason: String },
    #[error("no operator named '{0}' in this vault (list them with 'oathdesk operator list')")]
    UnknownOperator(String),
    #[error("wrong passphrase for operator '{0}'; nothing was changed")]
    WrongPassphrase(String),
    #[error("operator '{0}' unlocks with an age identity file: pass --identity FILE")]
    NeedsIdentity(String),
    #[error("the age identity does not open operator '{0}''s slot")]
    WrongIdentity(String),
    #[error(
        "the secret of credential {credential} does not decrypt: its ciphertext was altered or moved from another credential"
    )]
    Tampered { credential: i64 },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0}")]
    Refused(String),
    /// A web session or API token that does not (or no longer) open the
    /// vault: unknown, expired, revoked, or from before a rekey.
    #[error("{0}")]
    Unauthenticated(String),
    #[error("cryptography: {0}")]
    Crypto(String),
    #[error("database: {0}")]
    Database(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Database(e.to_string())
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
