//! Group commit: the write transactions of one process on one SQLite vault
//! file share one connection, and writers that queue share one commit.
//!
//! SQLite lets one connection write at a time, and with `synchronous=FULL`
//! every commit waits for an fsync of the WAL. The console's helpdesk codes
//! each write a few rows and an audit entry; done one transaction each, the
//! fsync and the handover between connections bound the throughput and,
//! under 16 connections, the tail. So the writers of this process take
//! turns on one *writer connection*:
//!
//! - the first writer of a group opens a transaction (`BEGIN IMMEDIATE`),
//!   and every later writer works inside its own `SAVEPOINT`: a writer that
//!   fails or gives up rolls back its own changes only (the first one rolls
//!   back the transaction, which holds nothing else). The first writer
//!   needs no savepoint, and must not have one: inside a savepoint SQLite
//!   copies every page it changes to a sub-journal first, which made a
//!   100,000-token import write its pages twice (2.2 s against 0.93 s);
//! - a writer that finishes while others queue for their turn hands the
//!   open transaction on instead of committing; the last one of the queue
//!   (or the [`MAX_MEMBERS`]th) commits for the whole group;
//! - every writer is answered only after the commit that holds its changes:
//!   [`Member::commit`] waits for it and returns its outcome, so nothing is
//!   reported done that a crash could still lose.
//!
//! Correctness is that of one writer at a time: members run one after the
//! other on one connection, each sees the changes of those before it (the
//! audit chain's tail, the helpdesk's recount of the rate limit), and the
//! group commits atomically. Reads never wait (they use the store's own
//! connection and see committed data only); other processes meet SQLite's
//! lock and busy timeout as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The most writers one commit answers: bounds how long a group holds the
/// file's write lock against other processes.
pub(crate) const MAX_MEMBERS: usize = 32;

/// The outcome of a group's commit, shared by its members.
type Outcome = Arc<OnceLock<std::result::Result<(), String>>>;

/// The writer connection of one vault file in this process.
pub(crate) struct Writer {
    path: PathBuf,
    state: Mutex<State>,
    committed: Condvar,
    /// Writers waiting for their turn: while there are any, a finishing
    /// member hands the open transaction on rather than committing.
    queued: AtomicUsize,
    /// Commits made (for the tests and the benchmarks' curiosity).
    commits: AtomicUsize,
}

#[derive(Default)]
struct State {
    connection: Option<Connection>,
    group: Option<Group>,
}

struct Group {
    members: usize,
    outcome: Outcome,
}

/// One writer per file, by identity (device and inode): a vault restored
/// or created anew at the same path gets a writer of its own.
static WRITERS: LazyLock<Mutex<HashMap<FileId, Weak<Writer>>>> = LazyLock::new(Default::default);

#[derive(Clone, PartialEq, Eq, Hash)]
enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

fn file_id(path: &Path) -> FileId {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return FileId::Inode(meta.dev(), meta.ino());
        }
    }
    FileId::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    /// The writer of the vault file at `path`, shared by every store of
    /// this process that has it open.
    pub(crate) fn of(path: &Path) -> Arc<Writer> {
        let id = file_id(path);
        let mut writers = lock(&WRITERS);
        writers.retain(|_, writer| writer.strong_count() > 0);
        if let Some(writer) = writers.get(&id).and_then(Weak::upgrade) {
            return writer;
        }
        let writer = Arc::new(Writer {
            path: path.to_owned(),
            state: Mutex::default(),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
        });
        writers.insert(id, Arc::downgrade(&writer));
        writer
    }

    /// Commits made on this writer so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    /// Waits for the turn to write, then starts this member's savepoint
    /// (and the group's transaction if none is open). `open` makes the
    /// writer connection the first time.
    pub(crate) fn begin(
        &self,
        open: impl FnOnce(&Path) -> Result<Connection>,
    ) -> Result<Member<'_>> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut state = lock(&self.state);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if state.connection.is_none() {
            state.connection = Some(open(&self.path)?);
        }
        let first = state.group.is_none();
        if first {
            connection(&state).execute_batch("BEGIN IMMEDIATE")?;
            state.group = Some(Group {
                members: 0,
                outcome: Arc::default(),
            });
        } else if let Err(error) = connection(&state).execute_batch("SAVEPOINT member") {
            drop(self.leave(state, false));
            return Err(error.into());
        }
        Ok(Member {
            writer: self,
            state: Some(state),
            savepoint: !first,
        })
    }

    /// A member's turn ends (`joined`: its changes stay in the group).
    /// Hands the transaction on to a queued writer, or commits (or, if no
    /// member joined, ends) it. Returns the turn's lock and the group's
    /// outcome to wait for.
    fn leave<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        joined: bool,
    ) -> (MutexGuard<'a, State>, Option<Outcome>) {
        if state.group.is_none() {
            return (state, None);
        }
        // SQLite rolls the whole transaction back on some errors (I/O, a
        // full disk): every member that joined it is then lost.
        let lost = connection(&state).is_autocommit();
        let group = state.group.as_mut().expect("checked above");
        if joined {
            group.members += 1;
        }
        let outcome = group.outcome.clone();
        let members = group.members;
        let result = if lost {
            Some(Err(
                "the transaction was rolled back by the database".to_owned()
            ))
        } else if self.queued.load(Ordering::SeqCst) > 0 && members < MAX_MEMBERS {
            None
        } else if members > 0 {
            self.commits.fetch_add(1, Ordering::SeqCst);
            Some(
                connection(&state)
                    .execute_batch("COMMIT")
                    .map_err(|e| e.to_string()),
            )
        } else {
            Some(
                connection(&state)
                    .execute_batch("ROLLBACK")
                    .map_err(|e| e.to_string()),
            )
        };
        if let Some(result) = result {
            if result.is_err() && !connection(&state).is_autocommit() {
                let _ = connection(&state).execute_batch("ROLLBACK");
            }
            state.group = None;
            let _ = outcome.set(result);
            self.committed.notify_all();
        }
        (state, joined.then_some(outcome))
    }
}

fn connection(state: &State) -> &Connection {
    state
        .connection
        .as_ref()
        .expect("the writer connection is opened before a group starts")
}

/// One writer's part of a group transaction: holds the turn until it
/// commits (then waits for the group's commit) or is dropped (then its
/// savepoint is rolled back).
pub(crate) struct Member<'a> {
    writer: &'a Writer,
    state: Option<MutexGuard<'a, State>>,
    /// Later members work in a savepoint; the first one has the group's
    /// transaction to itself.
    savepoint: bool,
}

impl Member<'_> {
    /// Undoes this member's changes: its savepoint, or the transaction it
    /// opened (which then holds nothing else).
    fn undo(&self, state: &State) {
        let undo = if self.savepoint {
            "ROLLBACK TO member; RELEASE member"
        } else {
            "ROLLBACK"
        };
        let _ = connection(state).execute_batch(undo);
    }
}

impl std::ops::Deref for Member<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        connection(self.state.as_ref().expect("a member holds its turn"))
    }
}

impl Member<'_> {
    /// Keeps this member's changes and returns once a commit holds them
    /// (or with the error that lost them).
    pub(crate) fn commit(mut self) -> Result<()> {
        let state = self.state.take().expect("a member holds its turn");
        if self.savepoint
            && let Err(error) = connection(&state).execute_batch("RELEASE member")
        {
            self.undo(&state);
            drop(self.writer.leave(state, false));
            return Err(error.into());
        }
        let (mut state, outcome) = self.writer.leave(state, true);
        let outcome = outcome.expect("a member that joined has an outcome");
        while outcome.get().is_none() {
            state = self
                .writer
                .committed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(state);
        match outcome.get() {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(Error::Database(format!(
                "the change was not saved: {reason}"
            ))),
            None => unreachable!("waited for the outcome"),
        }
    }
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.undo(&state);
            drop(self.writer.leave(state, false));
        }
    }
}

#[cfg(test)]
mod tests;
