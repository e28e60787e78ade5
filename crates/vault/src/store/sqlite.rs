//! The embedded default store: one SQLite file in WAL mode.
//!
//! - WAL lets readers (the web console, `token list`) run while one writer
//!   commits; write transactions start `IMMEDIATE` so two processes that
//!   change the vault queue up instead of failing half-way, and a busy
//!   timeout makes the second wait.
//! - `secure_delete` zeroes freed cells, so a purged secret does not linger
//!   in free pages; [`Store::scrub`] checkpoints and truncates the WAL.

mod identify_marker;
mod import_batches;
mod staged_records;
mod waiting;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::model::{CredentialRow, Custody, Device, EntraLink, Event, User};
use crate::store::group_commit::{Member, Writer};
use crate::store::migrations::{self, BOOKKEEPING, LATEST};
use import_batches::{Hidden, Rows};

use crate::store::{
    AuditCount, AuditRow, CredentialFilter, GrantRow, GrantRows, HeldSecret, HelpdeskQuery,
    HelpdeskRows, IdTops, ImportGuard, ImportRanges, ORPHANS_SQL, OperatorRow, Orphan, RecordRow,
    ReleasedStep, SightingRow, Store, StoreTx, ThrottleRow, WebAccountRow, mac_table, row_id_of,
    row_key, row_of_key, same_length,
};

/// A vault in one SQLite file.
pub struct SqliteStore {
    /// Reads (and migrations, scrubbing) go through this connection.
    connection: Connection,
    path: PathBuf,
    /// Write transactions go through the file's shared writer (group
    /// commit with this process's other stores of the same file).
    writer: Arc<Writer<Connection>>,
}

impl SqliteStore {
    /// Creates a new vault file; refuses to overwrite one.
    pub fn create(path: &Path) -> Result<SqliteStore> {
        if path.exists() {
            return Err(Error::VaultExists {
                path: path.display().to_string(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::Invalid(format!(
                    "cannot create the folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let connection =
            Connection::open_with_flags(path, OPEN_EXISTING.union(OpenFlags::SQLITE_OPEN_CREATE))?;
        restrict_permissions(path);
        let mut store = SqliteStore::configure(connection, path)?;
        store.migrate(0)?;
        Ok(store)
    }

    /// Opens an existing vault file.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if !path.exists() {
            return Err(Error::NoVault {
                path: path.display().to_string(),
            });
        }
        let connection = Connection::open_with_flags(path, OPEN_EXISTING)?;
        let mut store = SqliteStore::configure(connection, path)?;
        let not_a_vault = |reason: String| Error::NotAVault {
            path: path.display().to_string(),
            reason,
        };
        let version = store
            .version()
            .map_err(|e| not_a_vault(e.to_string()))?
            .ok_or_else(|| not_a_vault("it holds tables of something else".into()))?;
        match version {
            0 => Err(not_a_vault(
                "it is empty: create a vault with 'oathdesk vault init'".into(),
            )),
            v if v > LATEST => Err(not_a_vault(migrations::too_new(v))),
            v => {
                if v < LATEST {
                    store.migrate(v)?;
                }
                store.clean_up_imports()?;
                Ok(store)
            }
        }
    }

    /// The schema version: from `schema_migrations`, else (vaults from
    /// before it) `PRAGMA user_version`; `Some(0)` for an empty file, `None`
    /// for a file with other tables.
    pub(crate) fn version(&self) -> Result<Option<i64>> {
        version_in(&self.connection)
    }

    /// Applies the migrations after `expected` (the version read before)
    /// up to the latest, in one transaction. `BEGIN IMMEDIATE` keeps a
    /// second process from migrating at the same time; it finds the work
    /// done when it gets its turn.
    fn migrate(&mut self, expected: i64) -> Result<()> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = version_in(&tx)?.unwrap_or(expected);
        if current > LATEST {
            return Err(Error::NotAVault {
                path: self.path.display().to_string(),
                reason: migrations::too_new(current),
            });
        }
        let bookkept: bool = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )?;
        tx.execute_batch(BOOKKEEPING)?;
        if !bookkept {
            // A vault from before the table: record what it already has.
            for migration in migrations::pending(0, current) {
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    params![migration.version, migration.name, migrations::now()],
                )?;
            }
        }
        for migration in migrations::pending(current, LATEST) {
            tx.execute_batch(migration.sqlite).map_err(|e| {
                Error::Database(format!(
                    "schema migration {} ({}) failed: {e}",
                    migration.version, migration.name
                ))
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                params![migration.version, migration.name, migrations::now()],
            )?;
        }
        // Older oathdesk checks this and refuses a vault it cannot read.
        tx.pragma_update(None, "user_version", LATEST)?;
        tx.commit()?;
        Ok(())
    }

    fn configure(connection: Connection, path: &Path) -> Result<SqliteStore> {
        configure_connection(&connection)?;
        Ok(SqliteStore {
            connection,
            path: path.to_owned(),
            writer: writer::writer_of(path),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How a vault file is opened. No SQLite mutex: a `Connection` is used by
/// one thread at a time (the writer connection under the writer's own
/// lock); SQLite's default, serialized mode took and released a mutex on
/// every call, 7 % of an import.
const OPEN_EXISTING: OpenFlags =
    OpenFlags::SQLITE_OPEN_READ_WRITE.union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// How long a connection waits for another connection's lock before it
/// gives up with "database is locked".
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// How long a connection sleeps between tries for a lock.
const LOCK_POLL: Duration = Duration::from_millis(1);

/// The busy handler of every vault connection: tries again every
/// [`LOCK_POLL`] for [`LOCK_WAIT`]. SQLite's own busy timeout sleeps 1, 2,
/// 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms between tries, so a
/// writer queued behind another process's long transaction (an import)
/// woke up to 100 ms after it ended, every request queued behind it with
/// it. A failed try is a few system calls: polling costs nothing worth
/// counting. `tries` is SQLite's count of earlier calls for this wait.
fn wait_for_lock(tries: i32) -> bool {
    thread_local! {
        static WAITING_SINCE: std::cell::Cell<Option<std::time::Instant>> =
            const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    if tries == 0 {
        WAITING_SINCE.set(Some(now));
    }
    let since = WAITING_SINCE.get().unwrap_or(now);
    // Say so to a staged import holding the lock (see `waiting`).
    waiting::waiting();
    if !still_waiting(since, now) {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// Whether a wait for a lock that began at `since` goes on at `now`.
fn still_waiting(since: std::time::Instant, now: std::time::Instant) -> bool {
    now.duration_since(since) < LOCK_WAIT
}

/// The settings of every connection to a vault file.
fn configure_connection(connection: &Connection) -> Result<()> {
    connection.busy_handler(Some(wait_for_lock))?;
    connection.set_prepared_statement_cache_capacity(64);
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "secure_delete", "ON")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Statement journals and savepoints' sub-journals in memory: a statement
    // that fires a trigger keeps a copy of each page it changes, and in temp
    // files those copies cost a 100,000-token import a write per page (and
    // put sealed rows in files outside the vault).
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Which rows a table of signed rows ([`mac_table`]) holds.
fn rows_of_mac_table(table: &str) -> Rows {
    match table {
        "users" => Rows::Users,
        "devices" => Rows::Devices,
        _ => Rows::Credentials,
    }
}

/// The writer connection of a vault file (see `store::group_commit`).
fn open_writer(path: &Path) -> Result<Connection> {
    let connection = Connection::open_with_flags(path, OPEN_EXISTING)?;
    configure_connection(&connection)?;
    Ok(connection)
}

fn version_in(connection: &Connection) -> Result<Option<i64>> {
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if tables.iter().any(|t| t == "schema_migrations") {
        let version: Option<i64> =
            connection.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })?;
        return Ok(Some(version.unwrap_or(0)));
    }
    let user_version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match (user_version, tables.is_empty()) {
        (0, true) => Ok(Some(0)),
        (0, false) => Ok(None),
        (version, _) => Ok(Some(version)),
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// A transaction on a [`SqliteStore`].
pub struct SqliteTx<'a> {
    pub(crate) tx: TxConnection<'a>,
    /// The unfinished staged imports this transaction leaves out (read
    /// on first use).
    hidden: std::cell::OnceCell<Hidden>,
    /// The published batches of staged records not all moved into
    /// `records` yet (read on first use; see `staged_records`).
    overlay: std::cell::OnceCell<Vec<i64>>,
}

/// A read transaction on the store's connection, or a writer's part of a
/// group transaction on the file's writer connection.
pub(crate) enum TxConnection<'a> {
    Read(rusqlite::Transaction<'a>),
    Write(Member<'a, Connection>),
}

impl std::ops::Deref for TxConnection<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            TxConnection::Read(tx) => tx,
            TxConnection::Write(member) => member,
        }
    }
}

impl Store for SqliteStore {
    type Tx<'a> = SqliteTx<'a>;

    fn write(&mut self) -> Result<SqliteTx<'_>> {
        Ok(SqliteTx {
            tx: TxConnection::Write(self.writer.begin(|| open_writer(&self.path))?),
            hidden: Default::default(),
            overlay: Default::default(),
        })
    }

    fn read(&mut self) -> Result<SqliteTx<'_>> {
        Ok(SqliteTx {
            tx: TxConnection::Read(
                self.connection
                    .transaction_with_behavior(TransactionBehavior::Deferred)?,
            ),
            hidden: Default::default(),
            overlay: Default::default(),
        })
    }

    fn read_single(&mut self) -> Result<SqliteTx<'_>> {
        // A read transaction costs SQLite no round trip.
        self.read()
    }

    fn scrub(&mut self) -> Result<()> {
        self.connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn import_guard(&mut self) -> Result<Option<ImportGuard>> {
        self.guard_import().map(Some)
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}

const CREDENTIAL_COLUMNS: &str = "c.id, c.device_id, c.slot, c.kind, c.algorithm, c.digits, c.period, c.t0, \
     c.counter, c.issuer, c.label, c.state, c.custody, c.sealed_secret, c.user_id, c.drift_steps, \
     c.purge_after, c.created_at, c.updated_at, d.serial, u.upn, d.manufacturer, d.model";

const CREDENTIAL_FROM: &str = "FROM credentials c LEFT JOIN devices d ON d.id = c.device_id \
     LEFT JOIN users u ON u.id = c.user_id";

fn credential_from_row(row: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    let state: String = row.get(11)?;
    let custody: String = row.get(12)?;
    let to_sql_error = |e: Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(CredentialRow {
        id: row.get(0)?,
        device_id: row.get(1)?,
        slot: row.get(2)?,
        kind: row.get(3)?,
        algorithm: row.get(4)?,
        digits: row.get(5)?,
        period: row.get(6)?,
        t0: row.get(7)?,
        counter: row.get(8)?,
        issuer: row.get(9)?,
        label: row.get(10)?,
        state: state.parse().map_err(to_sql_error)?,
        custody: Custody::parse(&custody).map_err(to_sql_error)?,
        sealed_secret: row.get(13)?,
        user_id: row.get(14)?,
        drift_steps: row.get(15)?,
        purge_after: row.get(16)?,
        created_at: row.get(17)?,
        updated_at: row.get(18)?,
        serial: row.get(19)?,
        upn: row.get(20)?,
        manufacturer: row.get(21)?,
        model: row.get(22)?,
    })
}

fn operator_from_row(row: &Row<'_>) -> rusqlite::Result<OperatorRow> {
    Ok(OperatorRow {
        name: row.get(0)?,
        recipient: row.get(1)?,
        kdf: row.get(2)?,
        salt: row.get(3)?,
        sealed_identity: row.get(4)?,
        wrapped_vault_key: row.get(5)?,
        created_at: row.get(6)?,
        created_by: row.get(7)?,
        role: row.get(8)?,
    })
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: row.get(0)?,
        at: row.get(1)?,
        operator: row.get(2)?,
        action: row.get(3)?,
        outcome: row.get(4)?,
        user: row.get(5)?,
        credential: row.get(6)?,
        ticket: row.get(7)?,
        detail: row.get(8)?,
        epoch: row.get(9)?,
        prev_hash: row.get(10)?,
        hash: row.get(11)?,
    })
}

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<Device> {
    let kind: String = row.get(4)?;
    Ok(Device {
        id: row.get(0)?,
        serial: row.get(1)?,
        manufacturer: row.get(2)?,
        model: row.get(3)?,
        kind: kind.parse().map_err(|e: Error| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        slots: row.get(5)?,
        created_at: row.get(6)?,
    })
}

const ENTRA_COLUMNS: &str = "tenant, credential_id, serial, device_id, user_id, user_upn, method_id, \
     status, last_counter, last_sync, last_error, updated_at";

fn entra_link_from_row(row: &Row<'_>) -> rusqlite::Result<EntraLink> {
    Ok(EntraLink {
        tenant: row.get(0)?,
        credential_id: row.get(1)?,
        serial: row.get(2)?,
        device_id: row.get(3)?,
        user_id: row.get(4)?,
        user_upn: row.get(5)?,
        method_id: row.get(6)?,
        status: row.get(7)?,
        last_counter: row.get(8)?,
        last_sync: row.get(9)?,
        last_error: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

const AUDIT_COLUMNS: &str =
    "seq, at, operator, action, outcome, user, credential, ticket, detail, epoch, prev_hash, hash";

impl SqliteTx<'_> {
    /// `count` ids after the highest of `table` (writers are serialised,
    /// so nobody else takes these meanwhile).
    fn next_ids(&self, table: &str, count: usize) -> Result<Vec<i64>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let highest: i64 = self.query_one(
            &format!("SELECT coalesce(max(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?;
        Ok((1..=count as i64).map(|n| highest + n).collect())
    }

    /// One row or none, through the statement cache.
    fn query_one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.tx.prepare_cached(sql)?.query_row(params, f)
    }

    /// The WHERE clause of `filter`, and of `visible` (see [`Hidden`]).
    fn filter_sql(
        filter: &CredentialFilter,
        visible: &str,
    ) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut clauses = vec![visible];
        let mut values = Vec::new();
        if let Some(id) = filter.id {
            clauses.push("c.id = ?");
            values.push(Value::Integer(id));
        }
        if let Some(serial) = &filter.device_serial {
            clauses.push("d.serial = ?");
            values.push(Value::Text(serial.clone()));
        }
        if let Some(slot) = filter.slot {
            clauses.push("c.slot = ?");
            values.push(Value::Integer(i64::from(slot)));
        }
        if let Some(upn) = &filter.user_upn {
            clauses.push("u.upn = ? COLLATE NOCASE");
            values.push(Value::Text(upn.clone()));
        }
        if let Some(state) = filter.state {
            clauses.push("c.state = ?");
            values.push(Value::Text(state.name().to_owned()));
        }
        if filter.held_only {
            clauses.push("c.custody = 'held'");
        }
        if let Some(at) = filter.purge_due_at {
            clauses.push("c.custody = 'held' AND c.purge_after IS NOT NULL AND c.purge_after <= ?");
            values.push(Value::Integer(at as i64));
        }
        (format!("WHERE {}", clauses.join(" AND ")), values)
    }
}

impl StoreTx for SqliteTx<'_> {
    fn commit(self) -> Result<()> {
        match self.tx {
            TxConnection::Read(tx) => Ok(tx.commit()?),
            TxConnection::Write(member) => member.commit(),
        }
    }

    fn meta_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .query_one("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()?)
    }

    fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            )?.execute(params![key, value],
        )?;
        Ok(())
    }

    fn operator(&self, name: &str) -> Result<Option<OperatorRow>> {
        Ok(self
            .query_one(
                "SELECT name, recipient, kdf, salt, sealed_identity, wrapped_vault_key, created_at, created_by, role \
                 FROM operators WHERE name = ?",
                [name],
                operator_from_row,
            )
            .optional()?)
    }

    fn operators(&self) -> Result<Vec<OperatorRow>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT name, recipient, kdf, salt, sealed_identity, wrapped_vault_key, created_at, created_by, role \
             FROM operators ORDER BY name",
        )?;
        let rows = statement.query_map([], operator_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn operator_put(&self, row: &OperatorRow) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT OR REPLACE INTO operators \
             (name, recipient, kdf, salt, sealed_identity, wrapped_vault_key, created_at, created_by, role) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?.execute(params![
                row.name,
                row.recipient,
                row.kdf,
                row.salt,
                row.sealed_identity,
                row.wrapped_vault_key,
                row.created_at,
                row.created_by,
                row.role
            ],
        )?;
        Ok(())
    }

    fn operator_delete(&self, name: &str) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM operators WHERE name = ?", [name])?
            > 0)
    }

    fn audit_key_put(&self, epoch: i64, sealed: &[u8]) -> Result<()> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO audit_keys (epoch, sealed_key) VALUES (?, ?)")?
            .execute(params![epoch, sealed])?;
        Ok(())
    }

    fn audit_keys(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut statement = self
            .tx
            .prepare_cached("SELECT epoch, sealed_key FROM audit_keys ORDER BY epoch")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn user_insert(&self, upn: &str, display_name: Option<&str>, at: u64) -> Result<i64> {
        self.tx
            .prepare_cached("INSERT INTO users (upn, display_name, created_at) VALUES (?, ?, ?)")?
            .execute(params![upn, display_name, at])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn user_by_upn(&self, upn: &str) -> Result<Option<User>> {
        let visible = self.hidden()?.visible(Rows::Users, "id");
        Ok(self
            .query_one(
                &format!(
                    "SELECT id, upn, display_name, created_at FROM users \
                     WHERE upn = ? COLLATE NOCASE AND {visible}"
                ),
                [upn],
                |r| {
                    Ok(User {
                        id: r.get(0)?,
                        upn: r.get(1)?,
                        display_name: r.get(2)?,
                        created_at: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn users(&self) -> Result<Vec<User>> {
        let visible = self.hidden()?.visible(Rows::Users, "id");
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT id, upn, display_name, created_at FROM users WHERE {visible} ORDER BY upn"
        ))?;
        let rows = statement.query_map([], |r| {
            Ok(User {
                id: r.get(0)?,
                upn: r.get(1)?,
                display_name: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn device_insert(&self, device: &Device) -> Result<i64> {
        self.tx.prepare_cached(
            "INSERT INTO devices (serial, manufacturer, model, kind, slots, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            )?.execute(params![
                device.serial,
                device.manufacturer,
                device.model,
                device.kind.name(),
                device.slots,
                device.created_at
            ],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    fn device_by_serial(&self, serial: &str) -> Result<Option<Device>> {
        let visible = self.hidden()?.visible(Rows::Devices, "id");
        Ok(self
            .query_one(
                &format!(
                    "SELECT id, serial, manufacturer, model, kind, slots, created_at FROM devices \
                     WHERE serial = ? AND {visible}"
                ),
                [serial],
                device_from_row,
            )
            .optional()?)
    }

    fn devices(&self) -> Result<Vec<Device>> {
        let visible = self.hidden()?.visible(Rows::Devices, "id");
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT id, serial, manufacturer, model, kind, slots, created_at FROM devices \
             WHERE {visible} ORDER BY serial"
        ))?;
        let rows = statement.query_map([], device_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn credential_update(&self, row: &CredentialRow) -> Result<()> {
        let changed = self.tx.prepare_cached(
            "UPDATE credentials SET counter = ?, issuer = ?, label = ?, state = ?, custody = ?, \
             sealed_secret = ?, user_id = ?, drift_steps = ?, purge_after = ?, updated_at = ? WHERE id = ?",
            )?.execute(params![
                row.counter,
                row.issuer,
                row.label,
                row.state.name(),
                row.custody.name(),
                row.sealed_secret,
                row.user_id,
                row.drift_steps,
                row.purge_after,
                row.updated_at,
                row.id
            ],
        )?;
        if changed != 1 {
            return Err(Error::NotFound(format!("credential #{}", row.id)));
        }
        Ok(())
    }

    fn credential_set_params(
        &self,
        id: i64,
        algorithm: &str,
        digits: u8,
        period: Option<u64>,
    ) -> Result<()> {
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE credentials SET algorithm = ?, digits = ?, period = ? WHERE id = ?",
            )?
            .execute(params![algorithm, digits, period, id])?;
        if changed != 1 {
            return Err(Error::NotFound(format!("credential #{id}")));
        }
        Ok(())
    }

    fn credential_purge(&self, id: i64, at: u64) -> Result<()> {
        // Overwrite the bytes in place first, so the page that held the
        // ciphertext is rewritten with zeros, then drop the value.
        self.tx.prepare_cached(
            "UPDATE credentials SET sealed_secret = zeroblob(length(sealed_secret)) WHERE id = ?",
            )?.execute([id],
        )?;
        self.tx.prepare_cached(
            "UPDATE credentials SET sealed_secret = NULL, custody = 'purged', purge_after = NULL, \
             updated_at = ? WHERE id = ?",
            )?.execute(params![at, id],
        )?;
        Ok(())
    }

    fn credential_detach(&self, id: i64, at: u64) -> Result<()> {
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE credentials SET device_id = NULL, slot = NULL, updated_at = ? WHERE id = ?",
            )?
            .execute(params![at, id])?;
        if changed != 1 {
            return Err(Error::NotFound(format!("credential #{id}")));
        }
        Ok(())
    }

    fn credentials(&self, filter: &CredentialFilter) -> Result<Vec<CredentialRow>> {
        let visible = self.hidden()?.visible(Rows::Credentials, "c.id");
        let (where_sql, values) = SqliteTx::filter_sql(filter, &visible);
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} {CREDENTIAL_FROM} {where_sql} ORDER BY d.serial, c.slot, c.id"
        );
        let mut statement = self.tx.prepare_cached(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values), credential_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn held_secrets(&self) -> Result<Vec<HeldSecret>> {
        let visible = self.hidden()?.visible(Rows::Credentials, "id");
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT id, kind, algorithm, digits, period, t0, counter, sealed_secret FROM credentials \
             WHERE custody = 'held' AND sealed_secret IS NOT NULL AND {visible}"
        ))?;
        let rows = statement.query_map([], |r| {
            Ok(HeldSecret {
                id: r.get(0)?,
                kind: r.get(1)?,
                algorithm: r.get(2)?,
                digits: r.get(3)?,
                period: r.get(4)?,
                t0: r.get(5)?,
                counter: r.get(6)?,
                sealed_secret: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn identify_generation(&self) -> Result<i64> {
        self.marker_generation()
    }

    fn identify_changes(&self, since: i64) -> Result<crate::store::IdentifyChanges> {
        self.marker_changes(since)
    }

    fn event_insert(&self, event: &Event) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT INTO events (credential_id, from_state, to_state, operator, at, note) VALUES (?, ?, ?, ?, ?, ?)",
            )?.execute(params![
                event.credential_id,
                event.from_state.map(|s| s.name()),
                event.to_state.name(),
                event.operator,
                event.at,
                event.note
            ],
        )?;
        Ok(())
    }

    fn devices_by_serial(&self, serials: &[String]) -> Result<Vec<Device>> {
        let mut found = Vec::new();
        for serial in serials {
            found.extend(self.device_by_serial(serial)?);
        }
        Ok(found)
    }

    fn users_by_upn(&self, upns: &[String]) -> Result<Vec<User>> {
        let mut found = Vec::new();
        for upn in upns {
            found.extend(self.user_by_upn(upn)?);
        }
        Ok(found)
    }

    fn slots_taken(&self, device_ids: &[i64]) -> Result<Vec<(i64, Option<u32>)>> {
        let visible = self.hidden()?.visible(Rows::Credentials, "id");
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT device_id, slot FROM credentials WHERE device_id = ? AND {visible}"
        ))?;
        let mut taken = Vec::new();
        for id in device_ids {
            let rows = statement.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            taken.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        Ok(taken)
    }

    fn device_ids(&self, count: usize) -> Result<Vec<i64>> {
        self.next_ids("devices", count)
    }

    fn devices_insert(&self, devices: &[Device], macs: &[Vec<u8>]) -> Result<()> {
        let mut statement = self.tx.prepare_cached(
            "INSERT INTO devices (id, serial, manufacturer, model, kind, slots, created_at, mac) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for (device, mac) in devices.iter().zip(same_length(devices, macs)?) {
            statement.execute(params![
                device.id,
                device.serial,
                device.manufacturer,
                device.model,
                device.kind.name(),
                device.slots,
                device.created_at,
                mac
            ])?;
        }
        Ok(())
    }

    fn user_ids(&self, count: usize) -> Result<Vec<i64>> {
        self.next_ids("users", count)
    }

    fn users_insert(&self, users: &[User], macs: &[Vec<u8>]) -> Result<()> {
        let mut statement = self.tx.prepare_cached(
            "INSERT INTO users (id, upn, display_name, created_at, mac) VALUES (?, ?, ?, ?, ?)",
        )?;
        for (user, mac) in users.iter().zip(same_length(users, macs)?) {
            statement.execute(params![
                user.id,
                user.upn,
                user.display_name,
                user.created_at,
                mac
            ])?;
        }
        Ok(())
    }

    fn credential_ids(&self, count: usize) -> Result<Vec<i64>> {
        self.next_ids("credentials", count)
    }

    fn credentials_insert(&self, rows: &[CredentialRow], macs: &[Vec<u8>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // One generation of the identify marker for the whole batch, written
        // by the rows' own INSERT: the one place new credentials are stamped
        // (migration 10; no insert trigger, which cost an import a
        // statement journal per row).
        let generation: i64 = self.tx.query_row(
            "INSERT INTO identify_marker (id, generation) VALUES (1, 1) \
             ON CONFLICT (id) DO UPDATE SET generation = generation + 1 RETURNING generation",
            [],
            |r| r.get(0),
        )?;
        let mut statement = self.tx.prepare_cached(
            "INSERT INTO credentials (id, device_id, slot, kind, algorithm, digits, period, t0, counter, \
             issuer, label, state, custody, sealed_secret, user_id, drift_steps, purge_after, created_at, \
             updated_at, mac, changed_gen) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for (row, mac) in rows.iter().zip(same_length(rows, macs)?) {
            statement.execute(params![
                row.id,
                row.device_id,
                row.slot,
                row.kind,
                row.algorithm,
                row.digits,
                row.period,
                row.t0,
                row.counter,
                row.issuer,
                row.label,
                row.state.name(),
                row.custody.name(),
                row.sealed_secret,
                row.user_id,
                row.drift_steps,
                row.purge_after,
                row.created_at,
                row.updated_at,
                mac,
                generation
            ])?;
        }
        Ok(())
    }

    fn events_insert(&self, events: &[Event]) -> Result<()> {
        events.iter().try_for_each(|e| self.event_insert(e))
    }

    fn id_tops(&self) -> Result<Option<IdTops>> {
        // Ids are taken after the highest (`next_ids`), and these rows are
        // deleted only with an unfinished staged import (rows nobody saw):
        // the tops change when rows are added. A staged import's rows
        // appear without an insert, when it is published: that moves the
        // latest published generation.
        let tops = self.query_one(
            "SELECT (SELECT coalesce(max(id), 0) FROM devices), \
             (SELECT coalesce(max(id), 0) FROM users), \
             (SELECT coalesce(max(id), 0) FROM credentials), \
             (SELECT coalesce(max(visible_gen), 0) FROM import_batches)",
            [],
            |r| {
                Ok(IdTops {
                    devices: r.get(0)?,
                    users: r.get(1)?,
                    credentials: r.get(2)?,
                    published: r.get(3)?,
                })
            },
        )?;
        Ok(Some(tops))
    }

    fn import_batch_begin(&self, ranges: &ImportRanges, at: u64) -> Result<i64> {
        self.batch_begin(ranges, at)
    }

    fn import_batch_publish(&self, batch: i64) -> Result<()> {
        self.batch_publish(batch)
    }

    fn import_batch_remove(&self, batch: i64) -> Result<()> {
        self.batch_remove(batch)
    }

    fn writers_waiting(&self) -> Result<bool> {
        waiting::writers_waiting(self)
    }

    fn records_generation(&self, kind: &str) -> Result<i64> {
        self.generation(kind)
    }

    fn records_stage(&self, batch: i64, rows: &[RecordRow], macs: &[Vec<u8>]) -> Result<()> {
        self.stage(batch, rows, macs)
    }

    fn records_publish(&self, batch: i64, kind: &str, generation: i64) -> Result<bool> {
        self.publish_records(batch, kind, generation)
    }

    fn records_fold(&self, limit: usize) -> Result<usize> {
        self.fold(limit)
    }

    fn helpdesk_rows(&self, query: &HelpdeskQuery<'_>) -> Result<HelpdeskRows> {
        crate::store::helpdesk::read_one_by_one(self, query)
    }

    fn grant_rows(&self, id: &[u8]) -> Result<GrantRows> {
        crate::store::grant::read_one_by_one(self, id)
    }

    fn events(&self, credential_id: i64) -> Result<Vec<Event>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT credential_id, from_state, to_state, operator, at, note FROM events \
             WHERE credential_id = ? ORDER BY id",
        )?;
        let rows = statement.query_map([credential_id], |r| {
            let from: Option<String> = r.get(1)?;
            let to: String = r.get(2)?;
            let convert = |e: Error| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            };
            Ok(Event {
                credential_id: r.get(0)?,
                from_state: from.map(|s| s.parse()).transpose().map_err(convert)?,
                to_state: to.parse().map_err(convert)?,
                operator: r.get(3)?,
                at: r.get(4)?,
                note: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn audit_last(&self) -> Result<Option<AuditRow>> {
        Ok(self
            .query_one(
                &format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1"),
                [],
                audit_from_row,
            )
            .optional()?)
    }

    fn audit_insert(&self, row: &AuditRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        self.tx.prepare_cached(&sql)?.execute(params![
            row.seq,
            row.at,
            row.operator,
            row.action,
            row.outcome,
            row.user,
            row.credential,
            row.ticket,
            row.detail,
            row.epoch,
            row.prev_hash,
            row.hash
        ])?;
        Ok(())
    }

    fn audit_all(&self) -> Result<Vec<AuditRow>> {
        let mut statement = self
            .tx
            .prepare_cached(&format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq"))?;
        let rows = statement.query_map([], audit_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn audit_count(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<u64> {
        Ok(self.tx.prepare_cached(
            "SELECT count(*) FROM audit WHERE action = ? AND outcome = ? AND user = ? COLLATE NOCASE AND at >= ?",
        )?
        .query_row(params![action, outcome, user, since], |r| r.get(0))?)
    }

    fn audit_times(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<Vec<u64>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT at FROM audit WHERE action = ? AND outcome = ? AND user = ? COLLATE NOCASE AND at >= ? \
             ORDER BY at",
        )?;
        let rows = statement.query_map(params![action, outcome, user, since], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn audit_count_action(&self, action: &str) -> Result<u64> {
        Ok(self
            .tx
            .prepare_cached("SELECT count(*) FROM audit WHERE action = ?")?
            .query_row([action], |r| r.get(0))?)
    }

    fn entra_links_all(&self) -> Result<Vec<EntraLink>> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {ENTRA_COLUMNS} FROM entra_links ORDER BY tenant, credential_id"
        ))?;
        let rows = statement.query_map([], entra_link_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn row_macs(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut statement = self
            .tx
            .prepare_cached("SELECT id, mac FROM row_macs WHERE kind = ?")?;
        let rows = statement.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
        // For a kind kept in its rows: what `row_macs` still holds of it
        // (MACs of rows deleted before the move), then the rows' own.
        let mut all = self.macs_overlaid(kind, rows.collect::<rusqlite::Result<_>>()?)?;
        if let Some(table) = mac_table(kind) {
            let visible = self.hidden()?.visible(rows_of_mac_table(table), "id");
            let mut statement = self.tx.prepare_cached(&format!(
                "SELECT id, mac FROM {table} WHERE mac IS NOT NULL AND {visible} ORDER BY id"
            ))?;
            let rows = statement.query_map([], |r| Ok((row_key(r.get(0)?), r.get(1)?)))?;
            all.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        Ok(all)
    }

    fn row_macs_put(&self, kind: &str, macs: &[(String, Vec<u8>)]) -> Result<()> {
        if let Some(table) = mac_table(kind) {
            let mut statement = self
                .tx
                .prepare_cached(&format!("UPDATE {table} SET mac = ? WHERE id = ?"))?;
            for (id, mac) in macs {
                statement.execute(params![mac, row_id_of(kind, id)?])?;
            }
            return Ok(());
        }
        let mut statement = self
            .tx
            .prepare_cached("INSERT OR REPLACE INTO row_macs (kind, id, mac) VALUES (?, ?, ?)")?;
        for (id, mac) in macs {
            statement.execute(params![kind, id, mac])?;
        }
        Ok(())
    }

    fn row_macs_of(&self, rows: &[(&str, String)]) -> Result<Vec<(String, String, Vec<u8>)>> {
        let mut statement = self
            .tx
            .prepare_cached("SELECT mac FROM row_macs WHERE kind = ? AND id = ?")?;
        let mut found = Vec::with_capacity(rows.len());
        for (kind, id) in rows {
            let mac = match (mac_table(kind), row_of_key(id)) {
                (Some(table), Some(row)) => self
                    .tx
                    .prepare_cached(&format!(
                        "SELECT mac FROM {table} WHERE id = ? AND {}",
                        self.hidden()?.visible(rows_of_mac_table(table), "id")
                    ))?
                    .query_row([row], |r| r.get::<_, Option<Vec<u8>>>(0))
                    .optional()?
                    .flatten(),
                (Some(_), None) => None,
                (None, _) => match self.overlaid(kind, id)? {
                    Some((_, mac)) => Some(mac),
                    None => statement
                        .query_row(params![kind, id], |r| r.get::<_, Vec<u8>>(0))
                        .optional()?,
                },
            };
            if let Some(mac) = mac {
                found.push(((*kind).to_owned(), id.clone(), mac));
            }
        }
        Ok(found)
    }

    fn released_record(
        &self,
        credential_id: i64,
        counter: u64,
        at: u64,
        mac_kind: &str,
        mac_id: &str,
        mac: &[u8],
        below: u64,
        (mac_lo, mac_hi): (&str, &str),
    ) -> Result<()> {
        // A local file: four statements cost no round trip.
        let recorded = self
            .tx
            .prepare_cached(
                "INSERT INTO released_steps (credential_id, counter, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (credential_id, counter) DO NOTHING",
            )?
            .execute(params![credential_id, counter, at])?;
        if recorded == 0 {
            // Released before: left as that release wrote it.
            return Ok(());
        }
        self.row_macs_put(mac_kind, &[(mac_id.to_owned(), mac.to_vec())])?;
        let below = i64::try_from(below).unwrap_or(i64::MAX);
        self.tx
            .prepare_cached("DELETE FROM released_steps WHERE credential_id = ? AND counter < ?")?
            .execute(params![credential_id, below])?;
        self.tx
            .prepare_cached("DELETE FROM row_macs WHERE kind = ? AND id >= ? AND id < ?")?
            .execute(params![mac_kind, mac_lo, mac_hi])?;
        Ok(())
    }

    fn orphans(&self) -> Result<Vec<Orphan>> {
        let mut statement = self.tx.prepare_cached(ORPHANS_SQL)?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn row_mac_delete(&self, kind: &str, id: &str) -> Result<()> {
        if let Some(table) = mac_table(kind) {
            self.tx
                .prepare_cached(&format!("UPDATE {table} SET mac = NULL WHERE id = ?"))?
                .execute([row_id_of(kind, id)?])?;
            return Ok(());
        }
        self.tx
            .prepare_cached("DELETE FROM row_macs WHERE kind = ? AND id = ?")?
            .execute([kind, id])?;
        Ok(())
    }

    fn audit_append_if_below(
        &self,
        count: &AuditCount<'_>,
        limit: u64,
        entry: &AuditRow,
        step: &ReleasedStep<'_>,
    ) -> Result<u64> {
        crate::store::append_if_below_one_by_one(self, count, limit, entry, step)
    }

    fn released(&self, credential_id: i64) -> Result<Vec<(u64, u64)>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT counter, at FROM released_steps WHERE credential_id = ? ORDER BY counter",
        )?;
        let rows = statement.query_map([credential_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn released_all(&self) -> Result<Vec<(i64, u64, u64)>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT credential_id, counter, at FROM released_steps ORDER BY credential_id, counter",
        )?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn released_forget(&self, credential_id: i64, below: Option<u64>) -> Result<Vec<u64>> {
        // u64::MAX does not fit SQLite's signed integers: "all" is i64::MAX.
        let below = below.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let gone: Vec<u64> = {
            let mut statement = self.tx.prepare_cached(
                "SELECT counter FROM released_steps WHERE credential_id = ? AND counter < ?",
            )?;
            let rows = statement.query_map(params![credential_id, below], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        self.tx
            .prepare_cached("DELETE FROM released_steps WHERE credential_id = ? AND counter < ?")?
            .execute(params![credential_id, below])?;
        Ok(gone)
    }

    fn entra_link(&self, tenant: &str, credential_id: i64) -> Result<Option<EntraLink>> {
        Ok(self
            .query_one(
                &format!(
                    "SELECT {ENTRA_COLUMNS} FROM entra_links WHERE tenant = ? AND credential_id = ?"
                ),
                params![tenant, credential_id],
                entra_link_from_row,
            )
            .optional()?)
    }

    fn entra_links(&self, tenant: &str) -> Result<Vec<EntraLink>> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {ENTRA_COLUMNS} FROM entra_links WHERE tenant = ? ORDER BY serial"
        ))?;
        let rows = statement.query_map([tenant], entra_link_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn entra_link_put(&self, link: &EntraLink) -> Result<()> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO entra_links ({ENTRA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(tenant, credential_id) DO UPDATE SET serial = excluded.serial, \
                 device_id = excluded.device_id, user_id = excluded.user_id, user_upn = excluded.user_upn, \
                 method_id = excluded.method_id, status = excluded.status, last_counter = excluded.last_counter, \
                 last_sync = excluded.last_sync, last_error = excluded.last_error, updated_at = excluded.updated_at"
            ))?
            .execute(params![
                link.tenant,
                link.credential_id,
                link.serial,
                link.device_id,
                link.user_id,
                link.user_upn,
                link.method_id,
                link.status,
                link.last_counter,
                link.last_sync,
                link.last_error,
                link.updated_at
            ])?;
        Ok(())
    }

    fn entra_link_delete(&self, tenant: &str, credential_id: i64) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM entra_links WHERE tenant = ? AND credential_id = ?")?
            .execute(params![tenant, credential_id])?
            > 0)
    }

    fn records_of(&self, kind: &str, ids: &[String]) -> Result<Vec<RecordRow>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT kind, id, state, body, updated_at FROM records WHERE kind = ? AND id = ?",
        )?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((row, _)) = self.overlaid(kind, id)? {
                found.push(row);
            } else if let Some(row) = statement
                .query_row(params![kind, id], record_from_row)
                .optional()?
            {
                found.push(row);
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.dedup_by(|a, b| a.id == b.id);
        Ok(found)
    }

    fn records(&self, kind: &str, state: Option<&str>) -> Result<Vec<RecordRow>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT kind, id, state, body, updated_at FROM records \
             WHERE kind = ?1 AND (?2 IS NULL OR state = ?2) ORDER BY id",
        )?;
        if self.overlay()?.is_empty() {
            let rows = statement.query_map(params![kind, state], record_from_row)?;
            return Ok(rows.collect::<rusqlite::Result<_>>()?);
        }
        // Published staged records not moved yet are read over these, and
        // their state decides.
        let rows = statement.query_map(params![kind, None::<&str>], record_from_row)?;
        self.records_overlaid(kind, state, rows.collect::<rusqlite::Result<_>>()?)
    }

    fn records_put(&self, rows: &[RecordRow]) -> Result<()> {
        for row in rows {
            self.record_upsert(row)?;
        }
        self.records_written(rows.iter().map(|r| (r.kind.as_str(), r.id.as_str())))
    }

    fn record_delete(&self, kind: &str, id: &str) -> Result<bool> {
        let overlaid = self.overlaid(kind, id)?.is_some();
        let deleted = self
            .tx
            .prepare_cached("DELETE FROM records WHERE kind = ? AND id = ?")?
            .execute(params![kind, id])?
            > 0;
        self.records_written([(kind, id)])?;
        Ok(deleted || overlaid)
    }

    fn web_account(&self, name: &str) -> Result<Option<WebAccountRow>> {
        Ok(self
            .query_one(
                &format!("SELECT {WEB_ACCOUNT_COLUMNS} FROM web_accounts WHERE name = ?"),
                [name],
                web_account_from_row,
            )
            .optional()?)
    }

    fn web_accounts(&self) -> Result<Vec<WebAccountRow>> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {WEB_ACCOUNT_COLUMNS} FROM web_accounts ORDER BY name"
        ))?;
        let rows = statement.query_map([], web_account_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn web_account_put(&self, row: &WebAccountRow) -> Result<()> {
        // An upsert, not INSERT OR REPLACE: a replace deletes the row first,
        // and the delete would cascade to the account's grants.
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO web_accounts ({WEB_ACCOUNT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT(name) DO UPDATE SET role = ?2, disabled = ?3, must_change_password = ?4, \
                 created_at = ?5, created_by = ?6, mac = ?7"
            ))?
            .execute(params![
                row.name,
                row.role,
                row.disabled,
                row.must_change_password,
                row.created_at,
                row.created_by,
                row.mac
            ])?;
        Ok(())
    }

    fn web_account_delete(&self, name: &str) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM web_accounts WHERE name = ?")?
            .execute([name])?
            > 0)
    }

    fn web_grant(&self, id: &[u8]) -> Result<Option<GrantRow>> {
        Ok(self
            .query_one(
                &format!("SELECT {GRANT_COLUMNS} FROM web_grants WHERE id = ?"),
                [id],
                grant_from_row,
            )
            .optional()?)
    }

    fn web_grants(&self, account: Option<&str>) -> Result<Vec<GrantRow>> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {GRANT_COLUMNS} FROM web_grants WHERE ?1 IS NULL OR account = ?1 ORDER BY created_at"
        ))?;
        let rows = statement.query_map([account], grant_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn web_grant_put(&self, row: &GrantRow) -> Result<()> {
        self.tx
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO web_grants ({GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))?
            .execute(params![
                row.id,
                row.kind,
                row.account,
                row.label,
                row.scopes,
                row.wrapped_key,
                row.created_at,
                row.expires_at,
                row.last_used_at
            ])?;
        Ok(())
    }

    fn web_grant_delete(&self, id: &[u8]) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM web_grants WHERE id = ?")?
            .execute([id])?
            > 0)
    }

    fn web_grants_delete_account(&self, account: Option<&str>) -> Result<u64> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM web_grants WHERE ?1 IS NULL OR account = ?1")?
            .execute([account])? as u64)
    }

    fn web_grants_delete_expired(&self, now: u64) -> Result<u64> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM web_grants WHERE expires_at <= ?")?
            .execute([now])? as u64)
    }

    fn web_throttle(&self, key: &str) -> Result<Option<ThrottleRow>> {
        Ok(self
            .query_one(
                "SELECT key, failures, first_at, locked_until FROM web_throttle WHERE key = ?",
                [key],
                |r| {
                    Ok(ThrottleRow {
                        key: r.get(0)?,
                        failures: r.get(1)?,
                        first_at: r.get(2)?,
                        locked_until: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn web_throttle_put(&self, row: &ThrottleRow) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO web_throttle (key, failures, first_at, locked_until) \
                 VALUES (?, ?, ?, ?)",
            )?
            .execute(params![
                row.key,
                row.failures,
                row.first_at,
                row.locked_until
            ])?;
        Ok(())
    }

    fn web_throttle_delete(&self, key: &str) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM web_throttle WHERE key = ?")?
            .execute([key])?;
        Ok(())
    }

    fn sighting_insert(&self, row: &SightingRow) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached(
                "INSERT INTO drift_sightings (credential_id, at, source, offset_steps) \
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                row.credential_id,
                row.at,
                row.source,
                row.offset_steps
            ])?
            > 0)
    }

    fn sightings(&self, credential_id: Option<i64>) -> Result<Vec<SightingRow>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT credential_id, at, source, offset_steps FROM drift_sightings \
             WHERE ?1 IS NULL OR credential_id = ?1 ORDER BY credential_id, at, source",
        )?;
        let rows = statement.query_map([credential_id], |r| {
            Ok(SightingRow {
                credential_id: r.get(0)?,
                at: r.get(1)?,
                source: r.get(2)?,
                offset_steps: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn drift_series_put(&self, credential_id: i64, points: &[u8]) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO drift_series (credential_id, points) VALUES (?1, ?2) \
                 ON CONFLICT (credential_id) DO UPDATE SET points = ?2",
            )?
            .execute(params![credential_id, points])?;
        Ok(())
    }

    fn drift_series(&self, credential_id: Option<i64>) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT credential_id, points FROM drift_series \
             WHERE ?1 IS NULL OR credential_id = ?1 ORDER BY credential_id",
        )?;
        let rows = statement.query_map([credential_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn drift_series_delete(&self, credential_id: i64) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM drift_series WHERE credential_id = ?")?
            .execute([credential_id])?;
        Ok(())
    }
}

const WEB_ACCOUNT_COLUMNS: &str =
    "name, role, disabled, must_change_password, created_at, created_by, mac";

fn web_account_from_row(row: &Row<'_>) -> rusqlite::Result<WebAccountRow> {
    Ok(WebAccountRow {
        name: row.get(0)?,
        role: row.get(1)?,
        disabled: row.get(2)?,
        must_change_password: row.get(3)?,
        created_at: row.get(4)?,
        created_by: row.get(5)?,
        mac: row.get(6)?,
    })
}

const GRANT_COLUMNS: &str =
    "id, kind, account, label, scopes, wrapped_key, created_at, expires_at, last_used_at";

fn grant_from_row(row: &Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok(GrantRow {
        id: row.get(0)?,
        kind: row.get(1)?,
        account: row.get(2)?,
        label: row.get(3)?,
        scopes: row.get(4)?,
        wrapped_key: row.get(5)?,
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        last_used_at: row.get(8)?,
    })
}

impl SqliteTx<'_> {
    /// Inserts or replaces one record (its MAC is written apart).
    pub(super) fn record_upsert(&self, row: &RecordRow) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO records (kind, id, state, body, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(kind, id) DO UPDATE SET state = ?3, body = ?4, updated_at = ?5",
            )?
            .execute(params![
                row.kind,
                row.id,
                row.state,
                row.body,
                row.updated_at
            ])?;
        Ok(())
    }
}

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        kind: r.get(0)?,
        id: r.get(1)?,
        state: r.get(2)?,
        body: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_waits_for_another_connections_transaction_then_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        SqliteStore::create(&path).unwrap();
        let holder = open_writer(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waiter = std::thread::spawn(move || {
            let connection = open_writer(&path).unwrap();
            connection.execute_batch("BEGIN IMMEDIATE")?;
            connection.execute_batch("INSERT INTO meta (key, value) VALUES ('waited', 'yes')")?;
            connection.execute_batch("COMMIT")
        });
        // Longer than SQLite's first few sleeps: the waiter tried and was
        // refused many times before the lock came free.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !waiter.is_finished(),
            "the waiter cannot write while the lock is held"
        );
        holder.execute_batch("ROLLBACK").unwrap();
        waiter
            .join()
            .unwrap()
            .expect("the waiter got the lock once it was free");
        let value: String = holder
            .query_row("SELECT value FROM meta WHERE key = 'waited'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(value, "yes");
    }

    #[test]
    fn the_lock_wait_gives_up_after_its_time() {
        assert!(wait_for_lock(0), "the first try of a wait goes on");
        assert!(wait_for_lock(1));
        let now = std::time::Instant::now();
        let began = |ago: Duration| {
            now.checked_sub(ago)
                .expect("the clock runs longer than this")
        };
        assert!(still_waiting(began(LOCK_WAIT - LOCK_POLL), now));
        assert!(!still_waiting(began(LOCK_WAIT), now));
    }
}
