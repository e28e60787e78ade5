//! Staged imports on SQLite (migration 13; the writer is
//! `session::batch`).
//!
//! SQLite has one write lock per file, so a large import is written in
//! short transactions, and its rows must stay unseen until one last short
//! transaction shows them all at once. Its new rows take contiguous ids
//! after the highest of each table (its first transaction writes the
//! highest of each, so every other writer takes ids above them): a batch
//! is three id ranges in `import_batches`. While its `visible_gen` is NULL
//! every read of devices, users and credentials leaves those ranges out
//! ([`Hidden`]); a credential's events, MACs and the rest are only reached
//! through the credential. Publishing sets `visible_gen` to a new identify
//! generation, and identify's refresh ([`SqliteTx::marker_changes`]) loads
//! the ranges of batches published after the generation it has.
//!
//! A batch whose importer died stays hidden and is removed by the next
//! open or import: an importer holds a shared lock on `VAULT-import.lock`
//! from before its batch begins until it is published or removed, and
//! whoever gets that lock exclusively knows that no import is running.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use rusqlite::params;

use super::{SqliteStore, SqliteTx};
use crate::error::{Error, Result};
use crate::store::{ImportGuard, ImportRanges, Store, StoreTx};

/// The unfinished batches one transaction sees.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hidden {
    pending: Vec<ImportRanges>,
}

/// Which rows a range of a batch holds.
#[derive(Clone, Copy)]
pub(crate) enum Rows {
    Devices,
    Users,
    Credentials,
}

fn range(ranges: &ImportRanges, rows: Rows) -> (i64, i64) {
    match rows {
        Rows::Devices => ranges.devices,
        Rows::Users => ranges.users,
        Rows::Credentials => ranges.credentials,
    }
}

impl Hidden {
    /// Whether an import is being written.
    pub(crate) fn any(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A condition on `id_column` that leaves out unfinished batches' rows:
    /// `1` when there are none, so that the usual statement stays as it
    /// was (the ranges are integers from the vault, written inline).
    pub(crate) fn visible(&self, rows: Rows, id_column: &str) -> String {
        let clauses: Vec<String> = self
            .pending
            .iter()
            .map(|batch| range(batch, rows))
            .filter(|(from, to)| from <= to)
            .map(|(from, to)| format!("{id_column} NOT BETWEEN {from} AND {to}"))
            .collect();
        if clauses.is_empty() {
            "1".to_owned()
        } else {
            format!("({})", clauses.join(" AND "))
        }
    }
}

fn ranges_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ImportRanges> {
    Ok(ImportRanges {
        devices: (row.get(0)?, row.get(1)?),
        users: (row.get(2)?, row.get(3)?),
        credentials: (row.get(4)?, row.get(5)?),
    })
}

const RANGE_COLUMNS: &str =
    "devices_from, devices_to, users_from, users_to, credentials_from, credentials_to";

impl SqliteTx<'_> {
    /// The unfinished batches this transaction leaves out, read once.
    pub(crate) fn hidden(&self) -> Result<&Hidden> {
        if let Some(hidden) = self.hidden.get() {
            return Ok(hidden);
        }
        let pending = self
            .tx
            .prepare_cached(&format!(
                "SELECT {RANGE_COLUMNS} FROM import_batches WHERE visible_gen IS NULL"
            ))?
            .query_map([], ranges_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(self.hidden.get_or_init(|| Hidden { pending }))
    }

    /// The credential id ranges of batches published after `since`.
    pub(super) fn published_since(&self, since: i64) -> Result<Vec<(i64, i64)>> {
        let ranges = self
            .tx
            .prepare_cached(
                "SELECT credentials_from, credentials_to FROM import_batches \
                 WHERE visible_gen > ? AND credentials_from <= credentials_to",
            )?
            .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ranges)
    }

    pub(super) fn batch_begin(&self, ranges: &ImportRanges, at: u64) -> Result<i64> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO import_batches ({RANGE_COLUMNS}, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ))?
            .execute(params![
                ranges.devices.0,
                ranges.devices.1,
                ranges.users.0,
                ranges.users.1,
                ranges.credentials.0,
                ranges.credentials.1,
                at
            ])?;
        Ok(self.tx.last_insert_rowid())
    }

    pub(super) fn batch_publish(&self, batch: i64) -> Result<()> {
        let generation: i64 = self.tx.query_row(
            "INSERT INTO identify_marker (id, generation) VALUES (1, 1) \
             ON CONFLICT (id) DO UPDATE SET generation = generation + 1 RETURNING generation",
            [],
            |r| r.get(0),
        )?;
        let published = self.tx.execute(
            "UPDATE import_batches SET visible_gen = ? WHERE id = ? AND visible_gen IS NULL",
            params![generation, batch],
        )?;
        if published != 1 {
            return Err(Error::Database(format!(
                "import batch {batch} is no longer there to publish"
            )));
        }
        Ok(())
    }

    /// Deletes an unfinished batch's rows (children first) and the batch.
    pub(super) fn batch_remove(&self, batch: i64) -> Result<()> {
        let ranges = self.tx.query_row(
            &format!(
                "SELECT {RANGE_COLUMNS} FROM import_batches WHERE id = ? AND visible_gen IS NULL"
            ),
            [batch],
            ranges_from_row,
        );
        let ranges = match ranges {
            Ok(ranges) => ranges,
            // Published or removed already: nothing of it is unfinished.
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let (c0, c1) = ranges.credentials;
        let (u0, u1) = ranges.users;
        let (d0, d1) = ranges.devices;
        self.tx.execute(
            "DELETE FROM events WHERE credential_id BETWEEN ? AND ?",
            [c0, c1],
        )?;
        self.tx
            .execute("DELETE FROM credentials WHERE id BETWEEN ? AND ?", [c0, c1])?;
        self.tx
            .execute("DELETE FROM users WHERE id BETWEEN ? AND ?", [u0, u1])?;
        self.tx
            .execute("DELETE FROM devices WHERE id BETWEEN ? AND ?", [d0, d1])?;
        // Records staged in it (`staged_records`).
        self.tx
            .execute("DELETE FROM import_records WHERE batch = ?", [batch])?;
        self.tx
            .execute("DELETE FROM import_batches WHERE id = ?", [batch])?;
        Ok(())
    }

    fn unfinished_batches(&self) -> Result<Vec<i64>> {
        let ids = self
            .tx
            .prepare_cached("SELECT id FROM import_batches WHERE visible_gen IS NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }
}

/// The lock file of a vault's staged imports.
fn lock_file(vault: &Path) -> Result<File> {
    let mut name = vault.as_os_str().to_owned();
    name.push("-import.lock");
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&name).map_err(|e| {
        Error::Database(format!(
            "cannot open the import lock file {}: {e}",
            Path::new(&name).display()
        ))
    })
}

impl SqliteStore {
    /// Removes the rows of unfinished batches if no import is running,
    /// that is if `lock` (the lock file) can be locked exclusively; it
    /// stays locked so until it is dropped or turned shared.
    fn remove_dead_batches(&mut self, lock: &File) -> Result<()> {
        match lock.try_lock() {
            Ok(()) => {}
            // An import is running: its batch is alive (any dead one goes
            // at a later open).
            Err(TryLockError::WouldBlock) => return Ok(()),
            Err(TryLockError::Error(error)) => {
                return Err(Error::Database(format!(
                    "cannot lock the import lock file: {error}"
                )));
            }
        }
        let tx = self.write()?;
        for batch in tx.unfinished_batches()? {
            tx.batch_remove(batch)?;
        }
        tx.commit()
    }

    /// On open: removes what crashed imports left, if there is any (one
    /// small read otherwise).
    pub(super) fn clean_up_imports(&mut self) -> Result<()> {
        let unfinished: i64 = self.connection.query_row(
            "SELECT count(*) FROM import_batches WHERE visible_gen IS NULL",
            [],
            |r| r.get(0),
        )?;
        if unfinished == 0 {
            return Ok(());
        }
        // Best effort: a vault opened where it cannot be written (a copy
        // on read-only media) still opens; the rows stay unseen, and the
        // next open that can write removes them.
        if let Ok(lock) = lock_file(&self.path) {
            let _ = self.remove_dead_batches(&lock);
        }
        Ok(())
    }

    /// See [`Store::import_guard`].
    pub(super) fn guard_import(&mut self) -> Result<ImportGuard> {
        let lock = lock_file(&self.path)?;
        self.remove_dead_batches(&lock)?;
        // Exclusive (if it was taken) to shared: other importers may run
        // alongside; a cleaner now finds the lock taken.
        lock.lock_shared()
            .map_err(|e| Error::Database(format!("cannot lock the import lock file: {e}")))?;
        Ok(ImportGuard { _file: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_batch_hides_its_ranges_and_an_empty_range_hides_nothing() {
        let none = Hidden::default();
        assert_eq!(none.visible(Rows::Credentials, "c.id"), "1");
        let hidden = Hidden {
            pending: vec![
                ImportRanges {
                    devices: (11, 10),
                    users: (5, 9),
                    credentials: (100, 199),
                },
                ImportRanges {
                    devices: (11, 12),
                    users: (10, 10),
                    credentials: (200, 201),
                },
            ],
        };
        assert_eq!(
            hidden.visible(Rows::Credentials, "c.id"),
            "(c.id NOT BETWEEN 100 AND 199 AND c.id NOT BETWEEN 200 AND 201)"
        );
        assert_eq!(
            hidden.visible(Rows::Devices, "id"),
            "(id NOT BETWEEN 11 AND 12)"
        );
        assert_eq!(
            hidden.visible(Rows::Users, "u.id"),
            "(u.id NOT BETWEEN 5 AND 9 AND u.id NOT BETWEEN 10 AND 10)"
        );
    }
}
