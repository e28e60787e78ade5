//! `vault backup` and `vault restore` of a SQLite vault.
//!
//! A backup is a consistent copy taken while a console runs (SQLite's
//! backup API, [`crate::store::backup`]), checked as `vault verify` checks
//! a vault (every signed row and the audit chain, with the vault key)
//! before it is given its name. A restore checks the file the same way
//! before it replaces anything, and only replaces a vault nobody has open.
//! A PostgreSQL vault is backed up with `pg_dump` or `vault copy`.

use std::path::{Path, PathBuf};

use super::*;
use crate::store::backup as files;
use crate::store::sqlite::SqliteStore;

/// What [`Session::backup_to`] wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub file: String,
    /// Signed rows checked in the copy.
    pub rows_checked: u64,
    /// Audit entries in the copy.
    pub audit_entries: u64,
    /// `SEQ:HEX` of the copy's newest entry.
    pub head: Option<String>,
}

/// What [`restore`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub vault: String,
    /// Where the replaced vault was kept (none if there was none).
    pub kept_as: Option<String>,
    pub rows_checked: u64,
    /// Audit entries of the restored vault (its `vault.restore` included).
    pub audit_entries: u64,
    pub head: Option<String>,
}

/// A name beside `file` for the copy being written.
fn partial_name(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault".into());
    file.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Whether two paths name one file (the second may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || a.canonicalize()
            .ok()
            .is_some_and(|a| Some(a) == b.canonicalize().ok())
}

/// Checks a SQLite vault file with `key`: opens it, checks every signed
/// row and the audit chain. Failures are [`Error::Unverified`] naming `shown`.
fn verify_file(
    path: &Path,
    shown: &Path,
    key: &VaultKey,
) -> Result<(signed::RowReport, ChainReport)> {
    let unverified = |problem: String| Error::Unverified {
        file: shown.display().to_string(),
        problem,
    };
    let mut store = SqliteStore::open(path).map_err(|e| unverified(e.to_string()))?;
    let tx = store.read()?;
    let audit_keys = open_audit_keys(&tx, key).map_err(|e| {
        unverified(format!(
            "its audit keys do not open with this vault's key ({e})"
        ))
    })?;
    let chain = audit::verify_chain(&tx.audit_all()?, &|epoch| {
        audit_keys.get(&epoch).map(|k| **k)
    });
    if let Some((seq, why)) = &chain.first_bad {
        return Err(unverified(format!("audit entry {seq} is bad: {why}")));
    }
    let rows = signed::verify_all(&tx, &Signer::new(key), &setting_names())?;
    if let Some(bad) = rows.bad.first() {
        return Err(unverified(format!(
            "{} is {} ({} row(s) fail)",
            bad.name,
            bad.problem,
            rows.bad.len()
        )));
    }
    if rows.marker_missing {
        return Err(unverified("its signed-rows marker was deleted".into()));
    }
    Ok((rows, chain))
}

impl Session<AnyStore> {
    /// Writes a verified copy of this SQLite vault to `file` while others
    /// keep working in it. Refuses to replace an existing `file` unless
    /// `force`. Admins only; audited (`vault.backup`, with the copy's head).
    pub fn backup_to(&mut self, file: &Path, force: bool, now: u64) -> Result<BackupReport> {
        self.require(Permission::Admin)?;
        let source = match &self.store {
            AnyStore::Sqlite(store) => store.path().to_owned(),
            AnyStore::Postgres(_) => {
                return Err(Error::Refused(
                    "this vault is in PostgreSQL: back it up with pg_dump (the database's own \
                     tool), or copy it to a SQLite file with 'oathdesk vault copy --to \
                     sqlite://FILE' (docs/backup-and-recovery.md)"
                        .into(),
                ));
            }
        };
        if same_file(&source, file) {
            return Err(Error::Invalid(
                "the backup file is the vault itself: name another file".into(),
            ));
        }
        if file.exists() && !force {
            return Err(Error::Refused(format!(
                "{} already exists: pass --force to replace it, or name a new file",
                file.display()
            )));
        }
        if let Some(side) = files::side_files(file).into_iter().find(|p| p.exists()) {
            return Err(Error::Refused(format!(
                "{} exists: {} is open in another program or was not closed cleanly; close it \
                 or name another file",
                side.display(),
                file.display()
            )));
        }
        let partial = partial_name(file);
        // Opening it to verify puts it in WAL mode: settle makes it one
        // whole file again before it is named.
        let written = files::online_copy(&source, &partial)
            .and_then(|()| verify_file(&partial, file, &self.key))
            .and_then(|checked| files::settle(&partial).map(|()| checked));
        let (rows, chain) = match written {
            Ok(checked) => checked,
            Err(error) => {
                files::remove_with_side_files(&partial);
                return Err(error);
            }
        };
        files::rename_durably(&partial, file)?;
        let report = BackupReport {
            file: file.display().to_string(),
            rows_checked: rows.checked,
            audit_entries: chain.entries,
            head: chain.head.clone(),
        };
        self.record(
            AuditEvent::ok("vault.backup").detail(json!({
                "file": report.file,
                "head": report.head,
                "entries": report.audit_entries,
            })),
            now,
        )?;
        Ok(report)
    }
}

/// Replaces the SQLite vault `vault` with the backup `file`, after
/// checking the backup as `vault verify` would, as `operator` (an admin of
/// the backup). Refuses while anyone has `vault` open; keeps the replaced
/// file as `VAULT.before-restore-<time>`; audited in the restored vault
/// (`vault.restore`, with the head of the vault it replaced).
pub fn restore(
    file: &Path,
    vault: &Path,
    operator: &str,
    unlock: Unlock<'_>,
    now: u64,
) -> Result<RestoreReport> {
    if same_file(file, vault) {
        return Err(Error::Invalid(
            "the backup is the vault itself: name the vault to replace with --to".into(),
        ));
    }
    if !file.exists() {
        return Err(Error::NoVault {
            path: file.display().to_string(),
        });
    }
    let partial = partial_name(vault);
    let outcome = restore_through(file, vault, &partial, operator, unlock, now);
    if outcome.is_err() {
        files::remove_with_side_files(&partial);
    }
    outcome
}

fn restore_through(
    file: &Path,
    vault: &Path,
    partial: &Path,
    operator: &str,
    unlock: Unlock<'_>,
    now: u64,
) -> Result<RestoreReport> {
    // Work on a copy: the backup itself is never changed.
    files::online_copy(file, partial)?;
    let unverified = |problem: String| Error::Unverified {
        file: file.display().to_string(),
        problem,
    };
    let mut session = Vault::open(partial)
        .map_err(|e| unverified(e.to_string()))?
        .unlock(operator, unlock)
        .map_err(|e| match e {
            Error::Altered { row } => unverified(format!("{row} was altered")),
            other => other,
        })?;
    session.require(Permission::Admin)?;
    verify_file(partial, file, &session.key)?;
    let sole = if vault.exists() {
        Some(files::take_sole_use(vault)?)
    } else {
        None
    };
    let kept_as = sole.as_ref().map(|_| {
        let stamp = file_stamp(now);
        let mut name = vault.as_os_str().to_owned();
        name.push(format!(".before-restore-{stamp}"));
        PathBuf::from(name)
    });
    let replaced_head = sole
        .as_ref()
        .and_then(|s| s.head.as_ref())
        .map(|(seq, hash)| format!("{seq}:{}", audit::hex(hash)));
    session.record(
        AuditEvent::ok("vault.restore").detail(json!({
            "from": file.display().to_string(),
            "replaced_head": replaced_head,
            "kept_as": kept_as.as_ref().map(|p| p.display().to_string()),
        })),
        now,
    )?;
    let key = session.key.clone();
    drop(session);
    let (rows, chain) = verify_file(partial, file, &key)?;
    files::settle(partial)?;
    if let Some(kept) = &kept_as {
        files::rename_durably(vault, kept)?;
    }
    files::rename_durably(partial, vault)?;
    drop(sole);
    Ok(RestoreReport {
        vault: vault.display().to_string(),
        kept_as: kept_as.map(|p| p.display().to_string()),
        rows_checked: rows.checked,
        audit_entries: chain.entries,
        head: chain.head,
    })
}

/// `YYYYMMDDTHHMMSSZ` of Unix seconds, for file names.
fn file_stamp(now: u64) -> String {
    i64::try_from(now)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map_or_else(
            || now.to_string(),
            |t| t.strftime("%Y%m%dT%H%M%SZ").to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(file_stamp(0), "19700101T000000Z");
        assert_eq!(file_stamp(1_796_385_200), "20261204T115320Z");
        assert_eq!(file_stamp(951_782_400), "20000229T000000Z");
    }
}
