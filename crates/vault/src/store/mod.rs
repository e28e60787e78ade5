//! The storage boundary. The vault's logic (encryption, lifecycle, audit,
//! rate limits) talks to a [`Store`] in terms of rows; a store knows only
//! how to keep them. SQLite is the embedded default ([`crate::store::sqlite`]),
//! PostgreSQL the shared one ([`crate::store::postgres`]); [`crate::store::any::AnyStore`]
//! is either, chosen at run time.
//!
//! # Adding a method
//!
//! A new table comes with a migration ([`crate::store::migrations`]); a new
//! [`StoreTx`] method is implemented in `sqlite.rs` and `postgres.rs` and
//! forwarded in `any.rs`, and tested through the vault's public API in
//! `tests/vault.rs`, where every test runs on both databases. Keep the
//! method's meaning identical on both: same ordering (PostgreSQL sorts with
//! `COLLATE "C"` and `NULLS FIRST` where SQLite's order matters), same case
//! rules (SQLite `COLLATE NOCASE` is `lower(..)` on PostgreSQL), same errors.
//!
//! Every change happens inside a write transaction that is either committed
//! whole or not at all, and write transactions of concurrent processes are
//! serialised, so the audit chain and the rate limits see one order.

pub mod any;
pub(crate) mod backup;
pub(crate) mod copy;
pub mod grant;
pub(crate) mod group_commit;
pub mod helpdesk;
pub mod migrations;
pub mod postgres;
pub(crate) mod shared;
pub mod sqlite;

use crate::error::{Error, Result};
use crate::model::{CredentialRow, Device, EntraLink, Event, State, User};
pub use grant::GrantRows;
pub use helpdesk::{HelpdeskQuery, HelpdeskRows};

/// A web account as stored (see `crate::web`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebAccountRow {
    /// The vault operator this account logs in as.
    pub name: String,
    pub role: String,
    pub disabled: bool,
    /// Set when an admin chose the password: the user must pick their own.
    pub must_change_password: bool,
    pub created_at: u64,
    pub created_by: String,
    /// HMAC-SHA256 over the fields above under a key derived from the vault key.
    pub mac: Vec<u8>,
}

/// A grant as stored: SHA-256 of the bearer secret and the wrapped vault key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    pub id: Vec<u8>,
    /// `session` or `token`.
    pub kind: String,
    pub account: String,
    /// A token's name.
    pub label: Option<String>,
    /// Space-separated scopes of a token; empty for a session (its role rules).
    pub scopes: String,
    pub wrapped_key: Vec<u8>,
    pub created_at: u64,
    pub expires_at: u64,
    pub last_used_at: u64,
}

/// Failed logins under one key (`account:NAME`, `client:ADDRESS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleRow {
    pub key: String,
    pub failures: u64,
    pub first_at: u64,
    pub locked_until: u64,
}

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
    /// `admin`, `provisioner`, `helpdesk` or `auditor` (signed: see
    /// [`crate::signed`]).
    pub role: String,
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

/// What changed for identify after a generation (see
/// [`StoreTx::identify_changes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentifyChanges {
    /// The generation these changes bring the reader to.
    pub generation: i64,
    /// Every credential changed or deleted since: an index drops these...
    pub touched: Vec<i64>,
    /// ...and adds back those of them whose secret is still held.
    pub held: Vec<HeldSecret>,
}

/// Records, and the MACs stored for them as (kind, id, MAC).
pub type SignedRecords = (Vec<RecordRow>, Vec<(String, String, Vec<u8>)>);

/// A small signed document the library interprets (see
/// `crate::session::records`): a user's data on file, the helpdesk policy,
/// an approval request, a notice to send. Keyed by (kind, id); `state`
/// is what lists filter on (`pending`, `queued`…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    pub kind: String,
    pub id: String,
    pub state: String,
    /// JSON.
    pub body: String,
    pub updated_at: u64,
}

/// The table whose `mac` column holds the MACs of signed rows of `kind`,
/// if they are kept in the row itself (credentials, users, devices: the
/// many rows an import writes and every check reads).
pub(crate) fn mac_table(kind: &str) -> Option<&'static str> {
    match kind {
        "credential" => Some("credentials"),
        "user" => Some("users"),
        "device" => Some("devices"),
        _ => None,
    }
}

/// A numeric row id as the key of its MAC: zero-padded, so that ids in
/// ascending order are keys in ascending order.
pub(crate) fn row_key(id: i64) -> String {
    format!("{id:020}")
}

/// The numeric id of a row of a kind kept in its rows, from its key.
pub(crate) fn row_id_of(kind: &str, key: &str) -> Result<i64> {
    row_of_key(key).ok_or_else(|| {
        crate::error::Error::Database(format!("'{key}' is not the key of a {kind} row"))
    })
}

/// Rows and their MACs, one each (a caller's mistake otherwise).
pub(crate) fn same_length<'a, T>(rows: &[T], macs: &'a [Vec<u8>]) -> Result<&'a [Vec<u8>]> {
    if rows.len() == macs.len() {
        Ok(macs)
    } else {
        Err(crate::error::Error::Database(format!(
            "{} rows but {} MACs to insert",
            rows.len(),
            macs.len()
        )))
    }
}

/// The numeric id of a key [`row_key`] wrote (`None` for any other text:
/// no row has it).
pub(crate) fn row_of_key(key: &str) -> Option<i64> {
    (key.len() == 20 && key.bytes().all(|b| b.is_ascii_digit()))
        .then(|| key.parse().ok())
        .flatten()
}

/// A drift sighting as stored (see `crate::session::fleet`): at `at` the
/// credential's token showed the step `offset_steps` away from the step of
/// that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SightingRow {
    pub credential_id: i64,
    pub at: u64,
    /// `deliver`, `check` or `identify`.
    pub source: String,
    pub offset_steps: i64,
}

/// Which audit entries a rate limit counts: `action` with `outcome` about
/// `user` (compared without case) at or after `since`.
#[derive(Clone, Copy, Debug)]
pub struct AuditCount<'a> {
    pub action: &'a str,
    pub outcome: &'a str,
    pub user: &'a str,
    pub since: u64,
}

/// A helpdesk code's write as data, so that a writer can make it for
/// another ([`Store::release`]): the count of the rate limit, and below
/// the limit the audit entry (put on the chain where its tail is known,
/// hashed with `key`) and the released step.
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    pub count: AuditCount<'a>,
    pub limit: u64,
    /// The entry, its place on the chain not yet filled in.
    pub entry: &'a AuditRow,
    pub key: &'a [u8; 32],
    pub step: ReleasedStep<'a>,
}

/// What a [`Release`] found: the count, and the entry if it was appended
/// (below the limit) and committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    pub found: u64,
    pub entry: Option<AuditRow>,
}

/// [`Store::release`] in a write transaction of its own.
pub(crate) fn release_in_turn<S: Store>(store: &mut S, release: &Release<'_>) -> Result<Released> {
    let tx = store.write()?;
    let tail = tx.audit_last()?;
    let entry = crate::audit::chained(release.entry.clone(), tail.as_ref(), release.key);
    let found = tx.audit_append_if_below(&release.count, release.limit, &entry, &release.step)?;
    if found >= release.limit {
        // Nothing was written.
        return Ok(Released { found, entry: None });
    }
    tx.commit()?;
    Ok(Released {
        found,
        entry: Some(entry),
    })
}

/// A released time step, its MAC and the pruning that goes with it (the
/// arguments of [`StoreTx::released_record`]).
#[derive(Clone, Copy, Debug)]
pub struct ReleasedStep<'a> {
    pub credential_id: i64,
    pub counter: u64,
    pub at: u64,
    pub mac_kind: &'a str,
    pub mac_id: &'a str,
    pub mac: &'a [u8],
    pub below: u64,
    pub mac_range: (&'a str, &'a str),
}

/// [`StoreTx::audit_append_if_below`] as the store's own calls.
pub(crate) fn append_if_below_one_by_one(
    tx: &impl StoreTx,
    count: &AuditCount<'_>,
    limit: u64,
    entry: &AuditRow,
    step: &ReleasedStep<'_>,
) -> Result<u64> {
    let found = tx.audit_count(count.action, count.outcome, count.user, count.since)?;
    if found < limit {
        tx.released_record(
            step.credential_id,
            step.counter,
            step.at,
            step.mac_kind,
            step.mac_id,
            step.mac,
            step.below,
            step.mac_range,
        )?;
        tx.audit_insert(entry)?;
    }
    Ok(found)
}

/// The highest ids of devices, users and credentials in one snapshot (see
/// [`StoreTx::id_tops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdTops {
    pub devices: i64,
    pub users: i64,
    pub credentials: i64,
    /// The identify generation of the latest staged import published.
    pub published: i64,
}

/// A row whose reference points at no row: `(child table, child id,
/// parent table, parent id)`.
pub type Orphan = (String, i64, String, i64);

/// [`StoreTx::orphans`], the same in both dialects.
pub(crate) const ORPHANS_SQL: &str = "\
    SELECT 'credentials', c.id, 'devices', c.device_id FROM credentials c \
    WHERE c.device_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = c.device_id) \
    UNION ALL SELECT 'credentials', c.id, 'users', c.user_id FROM credentials c \
    WHERE c.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id) \
    UNION ALL SELECT 'events', e.id, 'credentials', e.credential_id FROM events e \
    WHERE NOT EXISTS (SELECT 1 FROM credentials c WHERE c.id = e.credential_id) \
    ORDER BY 1, 2";

/// How many new rows of each table a transaction begun by
/// [`Store::write_unlocked`] may insert: their ids are drawn for it before
/// it begins, as one block of each table's sequence, in a moment under the
/// writers' lock (where every other draw of ids happens); more than it
/// uses is fine (the rest are skipped), fewer makes its inserts fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdsWanted {
    pub devices: usize,
    pub users: usize,
    pub credentials: usize,
    pub events: usize,
}

/// The ids a staged import's new rows take, as (first, last) of each
/// table; a table it adds no rows to has last < first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportRanges {
    pub devices: (i64, i64),
    pub users: (i64, i64),
    pub credentials: (i64, i64),
}

/// Held by a process while it writes a staged import: while any process
/// holds one, nobody removes the rows of unfinished imports (which would
/// be this one's). Released when dropped, or by the system when the
/// process dies, so a crashed import's rows are removed by the next open.
#[derive(Debug)]
pub struct ImportGuard {
    /// A lock file beside the vault, locked shared.
    pub(crate) _file: std::fs::File,
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
    /// A helpdesk code's write: the recount and, below the limit, its
    /// audit entry and released step, committed (see [`Release`]). Where
    /// writers of this process share a connection, the queued ones are
    /// written together (PostgreSQL: `postgres/combine.rs`).
    fn release(&mut self, release: &Release<'_>) -> Result<Released>
    where
        Self: Sized,
    {
        release_in_turn(self, release)
    }

    /// [`StoreTx::grant_and_helpdesk_rows`] in a read of one statement.
    /// Where stores of this process share the vault, the reads queued are
    /// made together (PostgreSQL: `postgres/read_together.rs`).
    fn grant_and_helpdesk(
        &mut self,
        id: &[u8],
        query: &HelpdeskQuery<'_>,
    ) -> Result<(GrantRows, HelpdeskRows)> {
        self.read_single()?.grant_and_helpdesk_rows(id, query)
    }

    /// A read of one statement (such as [`StoreTx::helpdesk_rows`]): as
    /// [`Store::read`], but a database that gives each statement a snapshot
    /// of its own needs no transaction around it (PostgreSQL: no `BEGIN`
    /// and no `ROLLBACK`, two round trips fewer). A second statement in it
    /// is refused, since it would see another snapshot.
    fn read_single(&mut self) -> Result<Self::Tx<'_>>;
    /// After secrets were purged: remove what the database keeps of the old
    /// values (SQLite: journal and free pages; PostgreSQL: dead row versions).
    fn scrub(&mut self) -> Result<()>;
    /// Before a staged import: removes the rows of unfinished imports whose
    /// process is gone, and returns the guard that keeps this one's from
    /// the same fate while it writes. `None` where imports are not staged
    /// (PostgreSQL: writers there wait on rows, not on the database).
    fn import_guard(&mut self) -> Result<Option<ImportGuard>>;
    /// Between a staged import's transactions: moves what the write-ahead
    /// log holds into the database without waiting for anybody (SQLite's
    /// passive checkpoint), so that the other writers' commits do not run
    /// the checkpoint of the import's pages themselves. Nothing elsewhere.
    fn checkpoint(&mut self) -> Result<()>;
    /// Starts a write transaction that does not wait for other writers
    /// until [`StoreTx::lock_writers`]: a large import prepares and writes
    /// its rows in it, unseen by others until it commits, and holds the
    /// writers' lock only to append its audit entry. `None` where there is
    /// none (SQLite, whose write lock is the whole file: it stages imports
    /// instead). PostgreSQL: READ COMMITTED, on the store's own connection,
    /// its ids drawn before it begins (`ids`, an upper bound: see
    /// [`IdsWanted`]); `None` too if they could not be.
    fn write_unlocked(&mut self, _ids: IdsWanted) -> Result<Option<Self::Tx<'_>>> {
        Ok(None)
    }
}

/// The row operations of one transaction. Dropping it without
/// [`StoreTx::commit`] rolls everything back.
pub trait StoreTx {
    fn commit(self) -> Result<()>;

    /// In a transaction begun by [`Store::write_unlocked`]: waits for the
    /// writers' lock, then publishes the credentials it inserted to
    /// identify's refresh. False if another writer's rows collided with
    /// this transaction's meanwhile: roll it back (drop it) and write the
    /// change the usual way. Nothing (true) in a transaction that holds the
    /// lock already.
    fn lock_writers(&self) -> Result<bool> {
        Ok(true)
    }

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
    /// Every device, by serial.
    fn devices(&self) -> Result<Vec<Device>>;

    /// Writes every mutable field of a credential.
    fn credential_update(&self, row: &CredentialRow) -> Result<()>;
    /// Sets a credential's code parameters (a token reconfigured without a
    /// new seed); the caller re-seals its secret to them and re-signs the row.
    fn credential_set_params(
        &self,
        id: i64,
        algorithm: &str,
        digits: u8,
        period: Option<u64>,
    ) -> Result<()>;
    /// Overwrites a sealed secret with zeros, then drops it.
    fn credential_purge(&self, id: i64, at: u64) -> Result<()>;
    /// Detaches a credential from its device and slot (both become empty;
    /// its events and the audit log keep where it was): a credential whose
    /// slot was burned again with another secret, so the slot is free.
    fn credential_detach(&self, id: i64, at: u64) -> Result<()>;
    fn credentials(&self, filter: &CredentialFilter) -> Result<Vec<CredentialRow>>;
    /// Every held secret with just what computing its codes needs: the
    /// identify index of a million credentials is built from this.
    fn held_secrets(&self) -> Result<Vec<HeldSecret>>;

    fn event_insert(&self, event: &Event) -> Result<()>;

    // ----- in bulk: a batch costs a few round trips, not a few per row -----

    /// The devices with these serials (those that exist).
    fn devices_by_serial(&self, serials: &[String]) -> Result<Vec<Device>>;
    /// The users with these UPNs, compared without case (those that exist).
    fn users_by_upn(&self, upns: &[String]) -> Result<Vec<User>>;
    /// The slots taken on these devices, as (device id, slot).
    fn slots_taken(&self, device_ids: &[i64]) -> Result<Vec<(i64, Option<u32>)>>;
    /// Reserves `count` new device ids, for rows inserted in this
    /// transaction with [`StoreTx::devices_insert`] (a MAC is bound to
    /// its row's id, so the id comes first).
    fn device_ids(&self, count: usize) -> Result<Vec<i64>>;
    /// Inserts devices with their reserved ids and their MACs (one each).
    fn devices_insert(&self, devices: &[Device], macs: &[Vec<u8>]) -> Result<()>;
    /// Reserves `count` new user ids (see [`StoreTx::device_ids`]).
    fn user_ids(&self, count: usize) -> Result<Vec<i64>>;
    /// Inserts users with their reserved ids and their MACs (one each).
    fn users_insert(&self, users: &[User], macs: &[Vec<u8>]) -> Result<()>;
    /// Reserves `count` new credential ids, for rows inserted in this
    /// transaction with [`StoreTx::credentials_insert`] (a sealed secret
    /// is bound to its id, so the id comes first).
    fn credential_ids(&self, count: usize) -> Result<Vec<i64>>;
    /// Inserts credentials with their ids, sealed secrets and MACs (one each).
    fn credentials_insert(&self, rows: &[CredentialRow], macs: &[Vec<u8>]) -> Result<()>;
    fn events_insert(&self, events: &[Event]) -> Result<()>;
    fn events(&self, credential_id: i64) -> Result<Vec<Event>>;
    /// The highest device, user and credential ids, if new rows take the
    /// ids after them (SQLite): a batch planned on a snapshot takes those
    /// ids and is written while a write transaction still finds the same
    /// tops. `None` where ids come from sequences (PostgreSQL), which only
    /// a write transaction draws from.
    fn id_tops(&self) -> Result<Option<IdTops>>;

    // ----- staged imports (SQLite; see crate::session::batch) --------------

    /// Starts a staged import whose new rows take `ranges`: every read
    /// leaves them out until [`StoreTx::import_batch_publish`]. Returns the
    /// batch's id. Only on a store with [`Store::import_guard`].
    fn import_batch_begin(&self, ranges: &ImportRanges, at: u64) -> Result<i64>;
    /// Makes a staged import's rows visible, as new to identify's refresh.
    fn import_batch_publish(&self, batch: i64) -> Result<()>;
    /// Deletes a staged import's rows and the batch.
    fn import_batch_remove(&self, batch: i64) -> Result<()>;

    /// Whether another writer waits for the write lock now (another
    /// process, or another thread of this one): a staged import lets it in
    /// before its next part (`session::staging`). `false` where
    /// imports are not staged.
    fn writers_waiting(&self) -> Result<bool> {
        Ok(false)
    }

    // ----- staged records (SQLite; see crate::session::facts_staging) ------

    /// How many times records of `kind` were written (or a staged batch of
    /// them published): a batch planned on a snapshot is published only
    /// while this is what the snapshot read. Read in a transaction begun by
    /// [`Store::write_unlocked`], it is what [`StoreTx::lock_writers`]
    /// expects: false there if records of `kind` were written since.
    fn records_generation(&self, _kind: &str) -> Result<i64> {
        Err(Error::Database(
            "staged records are SQLite's: this store writes records in one transaction".into(),
        ))
    }
    /// Writes records (with their MACs) into a staged batch begun with
    /// [`StoreTx::import_batch_begin`]: no read sees them until
    /// [`StoreTx::records_publish`].
    fn records_stage(&self, _batch: i64, _rows: &[RecordRow], _macs: &[Vec<u8>]) -> Result<()> {
        Err(Error::Database(
            "staged records are SQLite's: this store writes records in one transaction".into(),
        ))
    }
    /// Publishes a batch of staged records of `kind` if no record of that
    /// kind was written since `generation` was read (`false`, and nothing
    /// done, otherwise): every read then sees the batch's records at once.
    fn records_publish(&self, _batch: i64, _kind: &str, _generation: i64) -> Result<bool> {
        Err(Error::Database(
            "staged records are SQLite's: this store writes records in one transaction".into(),
        ))
    }
    /// Moves up to `limit` records of the oldest published batch into the
    /// records table (which changes nothing a read sees); returns how many
    /// (0: none is left to move).
    fn records_fold(&self, _limit: usize) -> Result<usize> {
        Ok(0)
    }

    /// Everything a helpdesk code request is decided on, with the stored
    /// MACs of those rows: one statement on PostgreSQL (see
    /// [`helpdesk::read_one_by_one`] for its meaning).
    fn helpdesk_rows(&self, query: &HelpdeskQuery<'_>) -> Result<HelpdeskRows>;

    /// The grant with this id and what it opens the vault with (its
    /// account, operator slot, the audit keys, the MACs the session checks):
    /// one statement on PostgreSQL (see [`grant::read_one_by_one`] for its
    /// meaning).
    fn grant_rows(&self, id: &[u8]) -> Result<GrantRows>;

    /// A grant's rows and a helpdesk request's, read together: what the
    /// console's helpdesk code is opened and decided on, one statement on
    /// PostgreSQL (where each statement is a round trip and an executor's
    /// start-up), the two reads of one snapshot elsewhere.
    fn grant_and_helpdesk_rows(
        &self,
        id: &[u8],
        query: &HelpdeskQuery<'_>,
    ) -> Result<(GrantRows, HelpdeskRows)> {
        Ok((self.grant_rows(id)?, self.helpdesk_rows(query)?))
    }

    fn audit_last(&self) -> Result<Option<AuditRow>>;
    fn audit_insert(&self, row: &AuditRow) -> Result<()>;
    fn audit_all(&self) -> Result<Vec<AuditRow>>;
    /// Entries with this action and outcome about `user` at or after `since`.
    fn audit_count(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<u64>;
    /// The times of those entries, oldest first.
    fn audit_times(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<Vec<u64>>;
    /// Entries with this action, whoever and whenever.
    fn audit_count_action(&self, action: &str) -> Result<u64>;

    /// What Entra holds of a credential in a tenant.
    fn entra_link(&self, tenant: &str, credential_id: i64) -> Result<Option<EntraLink>>;
    /// Every credential's Entra link in a tenant, by serial.
    fn entra_links(&self, tenant: &str) -> Result<Vec<EntraLink>>;
    /// Inserts or replaces a link (keyed by tenant and credential).
    fn entra_link_put(&self, link: &EntraLink) -> Result<()>;
    /// Forgets a link; true if there was one.
    fn entra_link_delete(&self, tenant: &str, credential_id: i64) -> Result<bool>;
    /// Every link of every tenant (for `vault verify`).
    fn entra_links_all(&self) -> Result<Vec<EntraLink>>;

    // ----- row MACs (see crate::signed) ------------------------------------
    //
    // The MACs of credentials, users and devices are a column (`mac`) of
    // the rows they sign ([`mac_table`]); every other kind's are rows of
    // `row_macs`. These methods take any kind and go to the right place;
    // a row's id is its key as [`row_key`] writes it.

    /// The MACs of every row of `kind` (`credential`, `user`…), for `vault verify`.
    fn row_macs(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Inserts or replaces the MACs of rows of `kind`.
    fn row_macs_put(&self, kind: &str, macs: &[(String, Vec<u8>)]) -> Result<()>;
    /// The MACs of these (kind, id) rows, in one round trip; rows without
    /// one are absent from the answer.
    fn row_macs_of(&self, rows: &[(&str, String)]) -> Result<Vec<(String, String, Vec<u8>)>>;
    /// Forgets the MAC of a row that is gone.
    fn row_mac_delete(&self, kind: &str, id: &str) -> Result<()>;
    /// The rows that refer to a row that is not there (a parent deleted
    /// behind oathdesk's back: with PostgreSQL's checks or SQLite's foreign
    /// keys switched off, say), as `(child table, id, parent table, id)`.
    fn orphans(&self) -> Result<Vec<Orphan>>;

    // ----- released time steps (see Session::deliver) ----------------------

    /// Records a released step and its MAC (kind `mac_kind`, id `mac_id`)
    /// and forgets the credential's steps below `below` with their MACs
    /// (ids from `mac_lo` up to, not including, `mac_hi`): one round trip.
    ///
    /// A step already recorded is left as its first release wrote it, row
    /// and MAC, and nothing is forgotten: its code stopped proving anything
    /// then, and the older steps were forgotten then. So a step released
    /// again (the helpdesk asked twice within 30 seconds) writes nothing
    /// here, and a step whose MAC was removed behind oathdesk's back stays
    /// reported by `vault verify` rather than signed again.
    #[allow(clippy::too_many_arguments)]
    fn released_record(
        &self,
        credential_id: i64,
        counter: u64,
        at: u64,
        mac_kind: &str,
        mac_id: &str,
        mac: &[u8],
        below: u64,
        mac_range: (&str, &str),
    ) -> Result<()>;
    /// Counts the audit entries of `count` and, if fewer than `limit`,
    /// records `step` (as [`StoreTx::released_record`]) and appends `entry`
    /// (made on the chain's tail); returns the count, so a caller that
    /// finds the limit reached appends its refusal instead. One statement
    /// on PostgreSQL, where the count is taken under the writers' lock.
    fn audit_append_if_below(
        &self,
        count: &AuditCount<'_>,
        limit: u64,
        entry: &AuditRow,
        step: &ReleasedStep<'_>,
    ) -> Result<u64>;
    /// The released steps of a credential, as (counter, at).
    fn released(&self, credential_id: i64) -> Result<Vec<(u64, u64)>>;
    /// Every released step, as (credential id, counter, at).
    fn released_all(&self) -> Result<Vec<(i64, u64, u64)>>;
    /// Forgets a credential's released steps below `below` (all of them with
    /// `None`); returns their counters, so their MACs go too.
    fn released_forget(&self, credential_id: i64, below: Option<u64>) -> Result<Vec<u64>>;

    // ----- signed records (see crate::session::records) --------------------

    /// The records of `kind` with these ids (those that exist), by id.
    fn records_of(&self, kind: &str, ids: &[String]) -> Result<Vec<RecordRow>>;
    /// [`StoreTx::records_of`] with the MACs stored for these ids (as
    /// [`StoreTx::row_macs_of`] answers), read together: a transaction
    /// whose statements each see the latest commit (PostgreSQL's READ
    /// COMMITTED before the writers' lock, [`Store::write_unlocked`]) must
    /// not check a record against a MAC another commit wrote in between.
    fn records_signed_of(&self, kind: &str, ids: &[String]) -> Result<SignedRecords> {
        let keys: Vec<(&str, String)> = ids.iter().map(|id| (kind, id.clone())).collect();
        Ok((self.records_of(kind, ids)?, self.row_macs_of(&keys)?))
    }
    /// The records of `kind`, all or those in `state`, by id.
    fn records(&self, kind: &str, state: Option<&str>) -> Result<Vec<RecordRow>>;
    /// Inserts or replaces records (keyed by kind and id), in bulk.
    fn records_put(&self, rows: &[RecordRow]) -> Result<()>;
    /// Forgets a record; true if there was one.
    fn record_delete(&self, kind: &str, id: &str) -> Result<bool>;

    // ----- identify marker (see crate::identify_cache) ---------------------

    /// The identify generation: raised by the database's own triggers in
    /// the transaction of every change to what the identify index holds
    /// (migration 7). One primary-key read, cheap enough for each request.
    fn identify_generation(&self) -> Result<i64>;
    /// The credentials changed or deleted after generation `since`, and
    /// the generation they bring the reader to, from this transaction's
    /// snapshot.
    fn identify_changes(&self, since: i64) -> Result<IdentifyChanges>;

    // ----- web console (see crate::web) -----------------------------------

    fn web_account(&self, name: &str) -> Result<Option<WebAccountRow>>;
    /// Every web account, by name.
    fn web_accounts(&self) -> Result<Vec<WebAccountRow>>;
    /// Inserts or replaces an account (keyed by name).
    fn web_account_put(&self, row: &WebAccountRow) -> Result<()>;
    fn web_account_delete(&self, name: &str) -> Result<bool>;

    /// A grant by its id (SHA-256 of the bearer secret).
    fn web_grant(&self, id: &[u8]) -> Result<Option<GrantRow>>;
    /// The grants of one account, or of all.
    fn web_grants(&self, account: Option<&str>) -> Result<Vec<GrantRow>>;
    /// Inserts or replaces a grant (keyed by id).
    fn web_grant_put(&self, row: &GrantRow) -> Result<()>;
    fn web_grant_delete(&self, id: &[u8]) -> Result<bool>;
    /// Deletes the grants of one account, or of all; returns how many.
    fn web_grants_delete_account(&self, account: Option<&str>) -> Result<u64>;
    /// Deletes grants with `expires_at <= now`; returns how many.
    fn web_grants_delete_expired(&self, now: u64) -> Result<u64>;

    fn web_throttle(&self, key: &str) -> Result<Option<ThrottleRow>>;
    /// Inserts or replaces a throttle row (keyed by key).
    fn web_throttle_put(&self, row: &ThrottleRow) -> Result<()>;
    fn web_throttle_delete(&self, key: &str) -> Result<()>;

    // ----- drift sightings (see crate::session::fleet) ---------------------

    /// Keeps a sighting; false if one of the same credential, moment and
    /// source was there already (it is left as it was).
    fn sighting_insert(&self, row: &SightingRow) -> Result<bool>;
    /// The sightings of one credential, or of all, by credential and time.
    fn sightings(&self, credential_id: Option<i64>) -> Result<Vec<SightingRow>>;
    /// Writes a credential's drift series (see `crate::drift_series`),
    /// replacing the one it had.
    fn drift_series_put(&self, credential_id: i64, points: &[u8]) -> Result<()>;
    /// The drift series of one credential, or of all, by credential.
    fn drift_series(&self, credential_id: Option<i64>) -> Result<Vec<(i64, Vec<u8>)>>;
    fn drift_series_delete(&self, credential_id: i64) -> Result<()>;
}
