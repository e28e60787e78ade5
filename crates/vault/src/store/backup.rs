//! SQLite files copied and replaced while others may use them.
//!
//! - [`online_copy`] uses SQLite's backup API in one step: it reads one
//!   snapshot under a read transaction, which in WAL mode does not stop a
//!   running console from writing meanwhile, and the copy holds every
//!   transaction committed before it began.
//! - [`take_sole_use`] proves that no other connection has a vault open
//!   (leaving WAL mode needs every other connection gone) and keeps it
//!   that way until the returned connection is dropped.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};

/// Copies the SQLite file `source` into `target` (which must not exist),
/// created readable by its owner only and synced to disk.
pub(crate) fn online_copy(source: &Path, target: &Path) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(target).map_err(|e| {
        Error::Invalid(format!(
            "cannot create {}: {e} (check the folder exists and you may write to it)",
            target.display()
        ))
    })?;
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    from.busy_timeout(Duration::from_secs(30))?;
    let mut to = Connection::open(target)?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let backup = Backup::new(&from, &mut to)?;
        // -1: every page in one step, so one snapshot of the source. Busy
        // or locked (a writer mid-checkpoint): wait a moment, try again.
        let mut tries = 0;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked if tries < 300 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    return Err(Error::Database(format!(
                        "{} stayed busy for 30 seconds: try the backup again",
                        source.display()
                    )));
                }
            }
        }
    }
    to.close().map_err(|(_, e)| Error::from(e))?;
    sync(target)
}

/// Folds a closed database's WAL into its main file and leaves WAL mode,
/// so the file is whole on its own before it is renamed (a `-wal` file
/// left beside the old name would be lost), then syncs it. Opening it as
/// a vault later puts it back in WAL mode.
pub(crate) fn settle(path: &Path) -> Result<()> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    connection.busy_timeout(Duration::from_secs(30))?;
    let mode: String = connection.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    connection.close().map_err(|(_, e)| Error::from(e))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(Error::Database(format!(
            "{} could not leave WAL mode ({mode}): something else has it open",
            path.display()
        )));
    }
    sync(path)
}

/// Flushes a file's content to disk.
pub(crate) fn sync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| Error::Database(format!("cannot sync {}: {e}", path.display())))
}

/// Renames `from` to `to` and syncs the folder, so the rename survives a
/// power cut.
pub(crate) fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        Error::Database(format!(
            "cannot rename {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })?;
    let folder = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Folders open read-only on Unix; elsewhere this is best effort.
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The SQLite side files of a database (`-wal`, `-shm`, `-journal`).
pub(crate) fn side_files(path: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        })
        .collect()
}

/// Removes a file and its side files, ignoring those that are not there.
pub(crate) fn remove_with_side_files(path: &Path) {
    let _ = std::fs::remove_file(path);
    for side in side_files(path) {
        let _ = std::fs::remove_file(side);
    }
}

/// A vault nobody else has open, held so until dropped.
pub(crate) struct SoleUse {
    _connection: Connection,
    /// `(seq, hash)` of its newest audit entry.
    pub head: Option<(i64, Vec<u8>)>,
}

/// Takes the vault file at `path` for this process alone, or says who
/// has it. Leaving WAL mode succeeds only when no other connection has the
/// file open (a running console keeps its connections open); the file is
/// then locked exclusively until the returned value is dropped.
pub(crate) fn take_sole_use(path: &Path) -> Result<SoleUse> {
    let in_use = || {
        Error::Refused(format!(
            "{} is in use: a console ('oathdesk serve') or another command has it open; \
             stop it first, then restore",
            path.display()
        ))
    };
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    connection.busy_timeout(Duration::ZERO)?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(|_| in_use())?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(in_use());
    }
    connection
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .map_err(|_| in_use())?;
    let head = connection
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .unwrap_or(None);
    Ok(SoleUse {
        _connection: connection,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_owner_only_and_sole_use_is_refused_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a.db");
        let writer = Connection::open(&source).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE audit (seq INTEGER, hash BLOB);
                 INSERT INTO audit VALUES (1, x'01'), (2, x'02');",
            )
            .unwrap();
        let copy = dir.path().join("b.db");
        online_copy(&source, &copy).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let rows: i64 = Connection::open(&copy)
            .unwrap()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        // The copy must not exist beforehand.
        assert!(online_copy(&source, &copy).is_err());

        let refused = take_sole_use(&source).err().expect("source is open");
        assert!(refused.to_string().contains("is in use"), "{refused}");
        drop(writer);
        let sole = take_sole_use(&source).unwrap();
        assert_eq!(sole.head, Some((2, vec![2])));
    }
}
