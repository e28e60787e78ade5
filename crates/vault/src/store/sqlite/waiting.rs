//! Whether another writer waits for a vault file's write lock: the signal
//! a staged import (`session::staging`) commits on, across processes.
//!
//! SQLite says nothing to the holder of its write lock about the writers
//! waiting for it, so they say it themselves. While a writer connection
//! begins a write transaction ([`Beginning`]) and SQLite's busy handler
//! finds the lock taken ([`waiting`]), the connection holds a shared lock
//! on `VAULT-wait.lock`, beside the vault, until its `BEGIN` returns; the
//! importer, between two parts, tries that file's lock exclusively
//! ([`others_waiting`]): refused means somebody waits now. Nothing is
//! written, and a writer that never waits never touches the file. (Writers
//! of the importer's own process queue on the group commit's writer
//! instead, which counts them: `Member::others_queued`.)

use std::cell::RefCell;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::{SqliteTx, TxConnection};
use crate::error::Result;

#[derive(Default)]
struct Waiting {
    /// The vault file this thread's writer connection begins a write
    /// transaction on, while it does.
    vault: Option<PathBuf>,
    /// The wait file, locked shared, once the busy handler was called.
    marker: Option<File>,
}

thread_local! {
    static WAITING: RefCell<Waiting> = RefCell::default();
}

/// The wait file of the vault file at `vault`.
pub(crate) fn marker_path(vault: &Path) -> PathBuf {
    let mut name = vault.as_os_str().to_owned();
    name.push("-wait.lock");
    PathBuf::from(name)
}

fn open(vault: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(marker_path(vault))
}

/// While a writer connection of this thread begins a write transaction on
/// the vault file `vault` (its `BEGIN IMMEDIATE`); a wait signalled during
/// it ends when it is dropped.
pub(crate) struct Beginning(());

impl Beginning {
    pub(crate) fn new(vault: Option<&str>) -> Beginning {
        WAITING.with_borrow_mut(|w| {
            w.vault = vault.filter(|v| !v.is_empty()).map(PathBuf::from);
            w.marker = None;
        });
        Beginning(())
    }
}

impl Drop for Beginning {
    fn drop(&mut self) {
        let _ = WAITING.try_with(|w| {
            if let Ok(mut w) = w.try_borrow_mut() {
                w.vault = None;
                // Closing the file releases its lock.
                w.marker = None;
            }
        });
    }
}

/// From the busy handler: this thread waits for the write lock of the
/// vault it begins a transaction on (if it does: other waits, such as a
/// migration's, say nothing). Best effort: a wait file that cannot be
/// opened or locked (read-only media, the importer's check at that very
/// moment) is tried again at the next call.
pub(crate) fn waiting() {
    let _ = WAITING.try_with(|w| {
        let Ok(mut w) = w.try_borrow_mut() else {
            return;
        };
        if w.marker.is_some() {
            return;
        }
        let Some(vault) = w.vault.as_deref() else {
            return;
        };
        if let Ok(file) = open(vault)
            && file.try_lock_shared().is_ok()
        {
            w.marker = Some(file);
        }
    });
}

/// Whether another writer waits for the lock `tx` holds: one of this
/// process queued on the group commit, or one of another process.
pub(crate) fn writers_waiting(tx: &SqliteTx<'_>) -> Result<bool> {
    if let TxConnection::Write(member) = &tx.tx
        && member.others_queued()
    {
        return Ok(true);
    }
    match tx.tx.path() {
        Some(path) if !path.is_empty() => others_waiting(Path::new(path)),
        _ => Ok(false),
    }
}

/// Whether a writer of another process waits for the write lock of the
/// vault file `vault` now. A wait file that cannot be opened says nobody.
pub(crate) fn others_waiting(vault: &Path) -> Result<bool> {
    let Ok(file) = open(vault) else {
        return Ok(false);
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(_)) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_waiting_in_its_begin_is_seen_until_its_begin_returns() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        let name = vault.to_str().unwrap();
        assert!(!others_waiting(&vault).unwrap());
        // Not beginning a write transaction: a busy wait says nothing.
        waiting();
        assert!(!others_waiting(&vault).unwrap());
        // Another thread (as another process would) waits in its BEGIN.
        let (waits, waited) = std::sync::mpsc::channel();
        let (go, end) = std::sync::mpsc::channel::<()>();
        let name_owned = name.to_owned();
        let waiter = std::thread::spawn(move || {
            let beginning = Beginning::new(Some(&name_owned));
            waiting();
            waiting();
            waits.send(()).unwrap();
            end.recv().unwrap();
            drop(beginning);
            waits.send(()).unwrap();
        });
        waited.recv().unwrap();
        assert!(others_waiting(&vault).unwrap(), "the waiter is seen");
        assert!(
            others_waiting(&vault).unwrap(),
            "and still, checking took nothing"
        );
        go.send(()).unwrap();
        waited.recv().unwrap();
        assert!(!others_waiting(&vault).unwrap(), "its BEGIN returned");
        waiter.join().unwrap();
    }
}
