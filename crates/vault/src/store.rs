//! The storage boundary. The vault's logic (encryption, lifecycle, audit,
//! rate limits) talks to a [`Store`] in terms of rows; a store knows only
//! how to keep them. SQLite is the embedded default ([`crate::sqlite`]);
//! another database implements the same two traits.
//!
//! Every change happens inside a write transaction that is either committed
//! whole or not at all, and write transactions of concurrent processes are
//! serialised, so the audit chain and the rate limits see one order.

use crate::error::Result;
use crate::model::{CredentialRow, Device, Event, State, User};

/// An operator's key slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorRow {
    pub name: String,
    /// The age X25519 public key the vault key is encrypted to.
    pub recipient: String,
    /// Argon2id parameters; `None` for an operator with an external age identity.
    pub kdf: Option<String>,
    pub salt: Option<Vec<u8>>,
    /// The private key, sealed under the passphrase-derived key.
    pub sealed_identity: Option<Vec<u8>>,
    /// The vault key, age-encrypted to `recipient`.
    pub wrapped_vault_key: Vec<u8>,
    pub created_at: u64,
    pub created_by: String,
}

/// One audit entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: u64,
    pub operator: String,
    pub action: String,
    pub outcome: String,
    pub user: Option<String>,
    pub credential: Option<String>,
    pub ticket: Option<String>,
    pub detail: String,
    /// Which audit key made `hash` (a new one follows each rekey).
    pub epoch: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// A held secret and the parameters its codes need (no labels, no joins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldSecret {
    pub id: i64,
    pub kind: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: Option<u64>,
    pub t0: Option<u64>,
    pub counter: Option<u64>,
    pub sealed_secret: Vec<u8>,
}

/// Which credentials to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialFilter {
    pub id: Option<i64>,
    pub device_serial: Option<String>,
    pub slot: Option<u32>,
    pub user_upn: Option<String>,
    pub state: Option<State>,
    /// Only credentials whose secret is held.
    pub held_only: bool,
    /// Only held credentials whose purge time has come.
    pub purge_due_at: Option<u64>,
}

/// A database that can hold a vault.
pub trait Store {
    /// The transaction type.
    type Tx<'a>: StoreTx
    where
        Self: 'a;
    /// Starts a transaction that will write: it waits for other writers.
    fn write(&mut self) -> Result<Self::Tx<'_>>;
    /// Starts a read-only transaction (a consistent snapshot).
    fn read(&mut self) -> Result<Self::Tx<'_>>;
    /// After secrets were purged: make sure no copy of the old pages is left
    /// in journals or free pages.
    fn scrub(&mut self) -> Result<()>;
}

/// The row operations of one transaction. Dropping it without
/// [`StoreTx::commit`] rolls everything back.
pub trait StoreTx {
    fn commit(self) -> Result<()>;

    fn meta_get(&self, key: &str) -> Result<Option<String>>;
    fn meta_set(&self, key: &str, value: &str) -> Result<()>;

    fn operator(&self, name: &str) -> Result<Option<OperatorRow>>;
    fn operators(&self) -> Result<Vec<OperatorRow>>;
    fn operator_put(&self, row: &OperatorRow) -> Result<()>;
    fn operator_delete(&self, name: &str) -> Result<bool>;

    fn audit_key_put(&self, epoch: i64, sealed: &[u8]) -> Result<()>;
    fn audit_keys(&self) -> Result<Vec<(i64, Vec<u8>)>>;

    fn user_insert(&self, upn: &str, display_name: Option<&str>, at: u64) -> Result<i64>;
    fn user_by_upn(&self, upn: &str) -> Result<Option<User>>;
    fn users(&self) -> Result<Vec<User>>;

    fn device_insert(&self, device: &Device) -> Result<i64>;
    fn device_by_serial(&self, serial: &str) -> Result<Option<Device>>;

    /// Inserts a credential (its `id` is ignored) and returns the new id.
    fn credential_insert(&self, row: &CredentialRow) -> Result<i64>;
    /// Writes every mutable field of a credential.
    fn credential_update(&self, row: &CredentialRow) -> Result<()>;
    /// Overwrites a sealed secret with zeros, then drops it.
    fn credential_purge(&self, id: i64, at: u64) -> Result<()>;
    /// Takes a credential off its device slot (the slot becomes free for a
    /// new credential; the device link and the history stay): a profile of a
    /// multi-profile token that was burned again with another secret.
    fn credential_unslot(&self, id: i64, at: u64) -> Result<()>;
    fn credentials(&self, filter: &CredentialFilter) -> Result<Vec<CredentialRow>>;
    /// Every held secret with just what computing its codes needs: the
    /// identify index of a million credentials is built from this.
    fn held_secrets(&self) -> Result<Vec<HeldSecret>>;

    fn event_insert(&self, event: &Event) -> Result<()>;
    fn events(&self, credential_id: i64) -> Result<Vec<Event>>;

    fn audit_last(&self) -> Result<Option<AuditRow>>;
    fn audit_insert(&self, row: &AuditRow) -> Result<()>;
    fn audit_all(&self) -> Result<Vec<AuditRow>>;
    /// Entries with this action and outcome about `user` at or after `since`.
    fn audit_count(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<u64>;
}
