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
    /// A backup (or a file offered to restore) did not pass the checks of
    /// `vault verify`: nothing was replaced.
    #[error("{file} does not verify: {problem}; nothing was replaced")]
    Unverified { file: String, problem: String },
    /// A recovery share could not be read (`share` says which one, as the
    /// operator gave it; `problem` names the word).
    #[error("{share}: {problem}")]
    BadShare { share: String, problem: String },
    /// Too few recovery shares to rebuild the recovery key.
    #[error(
        "{given} share(s) given, the recovery slot needs {threshold}: nothing was opened; \
         fetch more shares from their holders"
    )]
    NotEnoughShares { given: usize, threshold: usize },
    /// The operator's role (or an API token's scopes) does not allow the
    /// operation. The words are the same in every front-end.
    #[error("{}", forbidden_message(*permission, *role, *token))]
    Forbidden {
        permission: crate::policy::Permission,
        role: crate::policy::Role,
        /// Refused by an API token's scopes, not by the role.
        token: bool,
    },
    /// The account's password was set by an admin: until its owner chose
    /// their own, its sessions and API tokens may do nothing else.
    #[error(
        "an admin set this account's password: choose your own on the console's Account page \
         first; until then every other request is refused"
    )]
    PasswordChangeRequired,
    /// A serial that could not be told apart from another token's reference
    /// (`SERIAL:SLOT`, `#ID`) or addressed in a URL
    /// ([`crate::model::serial_problem`]).
    #[error("serial '{serial}' is refused: {rule}")]
    InvalidSerial { serial: String, rule: &'static str },
    /// A file to import has problems (by line); nothing was imported. Skip
    /// the bad rows explicitly to import the others.
    #[error("{}", import_problems_message(problems, *importable))]
    ImportProblems {
        /// Every problem, by line (`line 4: …`).
        problems: Vec<String>,
        /// The records that would be imported without the bad ones
        /// (`None`: a problem of the whole file, which cannot be skipped).
        importable: Option<usize>,
    },
    /// A limit was reached; it lifts at `retry_at` (Unix seconds), or when
    /// an admin raises the setting `raise`. The message gives the command
    /// line's advice; the console names its own page instead (by this field,
    /// not by the words).
    #[error("{reason}{}", raise.map(|s| format!("; wait, or raise '{s}' with 'oathdesk vault set'")).unwrap_or_default())]
    RateLimited {
        reason: String,
        retry_at: u64,
        raise: Option<&'static str>,
    },
    /// The policy asks a second operator to approve this release: the
    /// request waits as `id` until another operator approves it (then the
    /// requester collects the code) or it expires.
    #[error(
        "{reason}: request {id} waits for another helpdesk operator's approval until {until} \
         (they approve it with 'oathdesk helpdesk approve {id}' or in the console; then collect the code \
         with 'oathdesk helpdesk collect {id}')"
    )]
    ApprovalRequired {
        id: String,
        reason: String,
        expires_at: u64,
        until: String,
    },
    /// A row that decides an action does not carry the vault's signature:
    /// someone changed the database without oathdesk. Nothing is done with it.
    #[error(
        "{row} was altered outside oathdesk (its signature does not match): nothing was done with it; \
         'oathdesk vault verify' lists every altered row"
    )]
    Altered { row: String },
    /// The code offered as proof of delivery is one the vault showed someone.
    #[error(
        "this code was given out by the helpdesk (or shown at enrolment) for {credential}: it proves \
         nothing about the token; ask the user for the next code the token shows"
    )]
    CodeReleased { credential: String },
    /// The code offered as proof of delivery did not verify: it is not one
    /// the token shows within the delivery window. Front-ends answer it like
    /// any code that did not verify (exit 2, 409 `code_mismatch`).
    #[error(
        "the code does not match {credential} within ±{steps} steps: check the serial and slot, \
         or read the next code off the token"
    )]
    CodeMismatch { credential: String, steps: u64 },
    /// A self-service delivery link that does not (or no longer) work.
    #[error("{}", .0.describe())]
    DeliveryLink(crate::session::LinkProblem),
    /// A helpdesk or auditor operator holds no key of the vault: they work
    /// through a console that an admin unsealed.
    #[error(
        "operator '{operator}' ({role}) holds no key of the vault: {role} operators work through the \
         console (sign in there, or use 'oathdesk --server URL' with an API token from its Account page)"
    )]
    NoKeySlot {
        operator: String,
        role: crate::policy::Role,
    },
    /// The console holds no vault key yet.
    #[error(
        "the console is sealed: an admin must sign in at /unseal (or start it with --unseal-key-file) \
         before it can act for helpdesk and auditor accounts"
    )]
    Sealed,
    /// A web session or API token that does not (or no longer) open the
    /// vault: unknown, expired, revoked, or from before a rekey.
    #[error("{0}")]
    Unauthenticated(String),
    /// An OpenID Connect sign-in the vault refuses: the identity is valid
    /// but no admin mapped its groups or app roles to a role, they map to a
    /// role that holds a key, or its account is disabled.
    #[error("{0}")]
    SignInRefused(String),
    /// A row being written refers to a device, user or credential that is
    /// not in the vault: on PostgreSQL, which proves these references in
    /// the store rather than with foreign keys, one deleted outside
    /// oathdesk while the write ran. Nothing was written.
    #[error(
        "{row} refers to {parent}, which is not in the vault (deleted outside oathdesk while this \
         ran?): nothing was written; check the vault with 'oathdesk vault verify', then try again"
    )]
    MissingReference { row: String, parent: String },
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

fn forbidden_message(
    permission: crate::policy::Permission,
    role: crate::policy::Role,
    token: bool,
) -> String {
    if token {
        if permission == crate::policy::Permission::Account {
            "API tokens cannot manage accounts; sign in to the console".to_owned()
        } else {
            format!("this API token lacks the '{}' scope", permission.name())
        }
    } else {
        format!("the {} role may not {}", role.name(), permission.describe())
    }
}

fn import_problems_message(problems: &[String], importable: Option<usize>) -> String {
    let head = match importable {
        Some(good) => format!(
            "{} problem(s) in the file; nothing was imported (fix them, or skip the bad rows \
             explicitly to import the {good} good record(s))",
            problems.len()
        ),
        None => format!(
            "{} problem(s) in the file, not all of them in a row that could be skipped; \
             nothing was imported",
            problems.len()
        ),
    };
    format!("{head}: {}", problems.join("; "))
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
