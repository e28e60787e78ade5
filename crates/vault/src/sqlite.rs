//! The embedded default store: one SQLite file in WAL mode.
//!
//! - WAL lets readers (the web console, `token list`) run while one writer
//!   commits; write transactions start `IMMEDIATE` so two processes that
//!   change the vault queue up instead of failing half-way, and a busy
//!   timeout makes the second wait.
//! - `secure_delete` zeroes freed cells, so a purged secret does not linger
//!   in free pages; [`Store::scrub`] checkpoints and truncates the WAL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::model::{CredentialRow, Custody, Device, Event, User};
use crate::store::{AuditRow, CredentialFilter, HeldSecret, OperatorRow, Store, StoreTx};

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    kdf TEXT,
    salt BLOB,
    sealed_identity BLOB,
    wrapped_vault_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE audit_keys (epoch INTEGER PRIMARY KEY, sealed_key BLOB NOT NULL);
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    upn TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    manufacturer TEXT,
    model TEXT,
    kind TEXT NOT NULL,
    slots INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE credentials (
    id INTEGER PRIMARY KEY,
    device_id INTEGER REFERENCES devices(id),
    slot INTEGER,
    kind TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    digits INTEGER NOT NULL,
    period INTEGER,
    t0 INTEGER,
    counter INTEGER,
    issuer TEXT,
    label TEXT,
    state TEXT NOT NULL,
    custody TEXT NOT NULL,
    sealed_secret BLOB,
    user_id INTEGER REFERENCES users(id),
    drift_steps INTEGER,
    purge_after INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (device_id, slot)
);
CREATE INDEX credentials_user ON credentials(user_id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    credential_id INTEGER NOT NULL REFERENCES credentials(id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    operator TEXT NOT NULL,
    at INTEGER NOT NULL,
    note TEXT
);
CREATE INDEX events_credential ON events(credential_id);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    user TEXT,
    credential TEXT,
    ticket TEXT,
    detail TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_rate ON audit(action, outcome, user, at);
";

/// A vault in one SQLite file.
pub struct SqliteStore {
    connection: Connection,
    path: PathBuf,
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
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        restrict_permissions(path);
        let mut store = SqliteStore::configure(connection, path)?;
        let tx = store
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(store)
    }

    /// Opens an existing vault file.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if !path.exists() {
            return Err(Error::NoVault {
                path: path.display().to_string(),
            });
        }
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let store = SqliteStore::configure(connection, path)?;
        let version: i64 = store
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| Error::NotAVault {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        if version != SCHEMA_VERSION {
            return Err(Error::NotAVault {
                path: path.display().to_string(),
                reason: format!("schema version {version}, this oathdesk reads {SCHEMA_VERSION}"),
            });
        }
        Ok(store)
    }

    fn configure(connection: Connection, path: &Path) -> Result<SqliteStore> {
        connection.busy_timeout(Duration::from_secs(30))?;
        connection.set_prepared_statement_cache_capacity(64);
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "secure_delete", "ON")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(SqliteStore {
            connection,
            path: path.to_owned(),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
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
    tx: rusqlite::Transaction<'a>,
}

impl Store for SqliteStore {
    type Tx<'a> = SqliteTx<'a>;

    fn write(&mut self) -> Result<SqliteTx<'_>> {
        Ok(SqliteTx {
            tx: self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
        })
    }

    fn read(&mut self) -> Result<SqliteTx<'_>> {
        Ok(SqliteTx {
            tx: self
                .connection
                .transaction_with_behavior(TransactionBehavior::Deferred)?,
        })
    }

    fn scrub(&mut self) -> Result<()> {
        self.connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
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

const AUDIT_COLUMNS: &str =
    "seq, at, operator, action, outcome, user, credential, ticket, detail, epoch, prev_hash, hash";

impl SqliteTx<'_> {
    /// One row or none, through the statement cache.
    fn query_one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.tx.prepare_cached(sql)?.query_row(params, f)
    }

    fn filter_sql(filter: &CredentialFilter) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut clauses = Vec::new();
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
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        (where_sql, values)
    }
}

impl StoreTx for SqliteTx<'_> {
    fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
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
                "SELECT name, recipient, kdf, salt, sealed_identity, wrapped_vault_key, created_at, created_by \
                 FROM operators WHERE name = ?",
                [name],
                operator_from_row,
            )
            .optional()?)
    }

    fn operators(&self) -> Result<Vec<OperatorRow>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT name, recipient, kdf, salt, sealed_identity, wrapped_vault_key, created_at, created_by \
             FROM operators ORDER BY name",
        )?;
        let rows = statement.query_map([], operator_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn operator_put(&self, row: &OperatorRow) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT OR REPLACE INTO operators \
             (name, recipient, kdf, salt, sealed_identity, wrapped_vault_key, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )?.execute(params![
                row.name,
                row.recipient,
                row.kdf,
                row.salt,
                row.sealed_identity,
                row.wrapped_vault_key,
                row.created_at,
                row.created_by
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
        Ok(self
            .query_one(
                "SELECT id, upn, display_name, created_at FROM users WHERE upn = ? COLLATE NOCASE",
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
        let mut statement = self
            .tx
            .prepare_cached("SELECT id, upn, display_name, created_at FROM users ORDER BY upn")?;
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
        Ok(self
            .query_one(
                "SELECT id, serial, manufacturer, model, kind, slots, created_at FROM devices WHERE serial = ?",
                [serial],
                device_from_row,
            )
            .optional()?)
    }

    fn credential_insert(&self, row: &CredentialRow) -> Result<i64> {
        self.tx.prepare_cached(
            "INSERT INTO credentials (device_id, slot, kind, algorithm, digits, period, t0, counter, issuer, \
             label, state, custody, sealed_secret, user_id, drift_steps, purge_after, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?.execute(params![
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
                row.updated_at
            ],
        )?;
        Ok(self.tx.last_insert_rowid())
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

    fn credential_unslot(&self, id: i64, at: u64) -> Result<()> {
        let changed = self
            .tx
            .prepare_cached("UPDATE credentials SET slot = NULL, updated_at = ? WHERE id = ?")?
            .execute(params![at, id])?;
        if changed != 1 {
            return Err(Error::NotFound(format!("credential #{id}")));
        }
        Ok(())
    }

    fn credentials(&self, filter: &CredentialFilter) -> Result<Vec<CredentialRow>> {
        let (where_sql, values) = SqliteTx::filter_sql(filter);
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} {CREDENTIAL_FROM} {where_sql} ORDER BY d.serial, c.slot, c.id"
        );
        let mut statement = self.tx.prepare_cached(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values), credential_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn held_secrets(&self) -> Result<Vec<HeldSecret>> {
        let mut statement = self.tx.prepare_cached(
            "SELECT id, kind, algorithm, digits, period, t0, counter, sealed_secret FROM credentials \
             WHERE custody = 'held' AND sealed_secret IS NOT NULL",
        )?;
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
}
