//! Group commit: the write transactions of one process on one vault share
//! one connection, and writers that queue share one commit.
//!
//! Every change of the vault appends to the audit chain, so writers take
//! turns (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's lock on the audit
//! table), and each turn ends with a commit that waits for the disk (an
//! fsync of SQLite's WAL, PostgreSQL's WAL flush) and, on PostgreSQL, a few
//! round trips to the server. The console's helpdesk codes each write a few
//! rows and an audit entry; done one transaction each, the commit and the
//! handover of the lock bound the throughput and, under 16 connections, the
//! tail. So the writers of this process take turns on one *writer
//! connection* per vault:
//!
//! - the first writer of a group opens a transaction, and every later
//!   writer works inside its own `SAVEPOINT`: a writer that fails or gives
//!   up rolls back its own changes only (the first one rolls back the
//!   transaction, which holds nothing else). The first writer needs no
//!   savepoint, and must not have one: inside a savepoint SQLite copies
//!   every page it changes to a sub-journal first, which made a
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
//! connection and see committed data only); other processes meet the
//! database's lock as before.
//!
//! What a database must do for this is [`GroupConnection`]; the stores keep
//! one writer per vault (`store/shared.rs`: SQLite by file, PostgreSQL by
//! URL and schema).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

/// The most writers one commit answers: bounds how long a group holds the
/// file's write lock against other processes.
pub(crate) const MAX_MEMBERS: usize = 32;

/// The outcome of a group's commit, shared by its members: set once by the
/// member that ends the group, and waited for on a lock of its own — not
/// the writer's, which the next group's members hold for their turns (a
/// member that waited on it could return only between their turns, and
/// every one of them woken at the commit would take its turn at the lock
/// in the middle of the next group's).
#[derive(Default)]
struct Done {
    result: Mutex<Option<std::result::Result<(), String>>>,
    ready: Condvar,
}

type Outcome = Arc<Done>;

/// A group's outcome, for writers whose changes another made in its turn
/// ([`Member::commit_for`]): they wait for the commit that holds them.
#[derive(Clone)]
pub(crate) struct GroupOutcome(Outcome);

impl GroupOutcome {
    /// Returns once the group's commit is done (or with what lost it).
    pub(crate) fn wait(&self) -> Result<()> {
        self.0
            .wait()
            .map_err(|reason| Error::Database(format!("the change was not saved: {reason}")))
    }
}

impl Done {
    fn set(&self, result: std::result::Result<(), String>) {
        let mut slot = lock(&self.result);
        if slot.is_none() {
            *slot = Some(result);
        }
        self.ready.notify_all();
    }

    fn wait(&self) -> std::result::Result<(), String> {
        let mut slot = lock(&self.result);
        loop {
            if let Some(result) = slot.as_ref() {
                return result.clone();
            }
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What a database connection does for a group: a transaction, savepoints
/// within it, and whether it is still open (a database may roll it back
/// on its own, on a full disk or a lost connection).
pub(crate) trait GroupConnection {
    /// Opens the group's transaction (and takes the vault's write lock).
    fn begin(&mut self) -> Result<()>;
    /// Opens a later member's savepoint.
    fn savepoint(&mut self) -> Result<()>;
    /// Keeps a later member's changes in the transaction.
    fn release(&mut self) -> Result<()>;
    /// Undoes a later member's changes (and ends its savepoint).
    fn rollback_to_savepoint(&mut self);
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self) -> Result<()>;
    /// Whether the group's transaction is still open.
    fn in_transaction(&self) -> bool;
    /// Whether a member committed the group's transaction with its own
    /// statements (a batch of PostgreSQL's releases sends its `COMMIT`
    /// with them): the group ends, and [`GroupConnection::commit`] has
    /// nothing left to send.
    fn settled(&self) -> bool {
        false
    }
    /// Whether the connection can begin a group; one that cannot (closed
    /// by the server) is replaced before the group begins.
    fn usable(&mut self) -> bool {
        true
    }
}

/// The writer connection of one vault in this process.
pub(crate) struct Writer<C> {
    state: Mutex<State<C>>,
    /// Writers waiting for their turn: while there are any, a finishing
    /// member hands the open transaction on rather than committing.
    queued: AtomicUsize,
    /// Commits made (for the tests and the benchmarks' curiosity).
    commits: AtomicUsize,
}

struct State<C> {
    connection: Option<C>,
    group: Option<Group>,
}

struct Group {
    members: usize,
    outcome: Outcome,
}

impl<C> Default for Writer<C> {
    fn default() -> Self {
        Writer {
            state: Mutex::new(State {
                connection: None,
                group: None,
            }),
            queued: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<C: GroupConnection> Writer<C> {
    /// Writers waiting for their turn (for the tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Commits made on this writer so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    /// Waits for the turn to write, then starts this member's savepoint
    /// (and the group's transaction if none is open). `open` makes the
    /// writer connection the first time (and anew if it stopped working).
    pub(crate) fn begin(&self, open: impl FnOnce() -> Result<C>) -> Result<Member<'_, C>> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut state = lock(&self.state);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let first = state.group.is_none();
        if first && !state.connection.as_mut().is_some_and(C::usable) {
            state.connection = None;
            state.connection = Some(open()?);
        }
        if first {
            connection(&mut state).begin()?;
            state.group = Some(Group {
                members: 0,
                outcome: Arc::default(),
            });
        } else if let Err(error) = connection(&mut state).savepoint() {
            drop(self.leave(state, false));
            return Err(error);
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
        mut state: MutexGuard<'a, State<C>>,
        joined: bool,
    ) -> (MutexGuard<'a, State<C>>, Option<Outcome>) {
        if state.group.is_none() {
            return (state, None);
        }
        // A database may roll the whole transaction back on some errors
        // (I/O, a full disk, a lost connection): every member that joined
        // it is then lost.
        let settled = connection(&mut state).settled();
        let lost = !settled && !connection(&mut state).in_transaction();
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
        } else if !settled && self.queued.load(Ordering::SeqCst) > 0 && members < MAX_MEMBERS {
            None
        } else if members > 0 {
            self.commits.fetch_add(1, Ordering::SeqCst);
            Some(connection(&mut state).commit().map_err(|e| e.to_string()))
        } else {
            Some(connection(&mut state).rollback().map_err(|e| e.to_string()))
        };
        if let Some(result) = result {
            if result.is_err() && connection(&mut state).in_transaction() {
                let _ = connection(&mut state).rollback();
            }
            state.group = None;
            outcome.set(result);
        }
        (state, joined.then_some(outcome))
    }
}

fn connection<C>(state: &mut State<C>) -> &mut C {
    state
        .connection
        .as_mut()
        .expect("the writer connection is opened before a group starts")
}

/// One writer's part of a group transaction: holds the turn until it
/// commits (then waits for the group's commit) or is dropped (then its
/// savepoint is rolled back).
pub(crate) struct Member<'a, C: GroupConnection> {
    writer: &'a Writer<C>,
    state: Option<MutexGuard<'a, State<C>>>,
    /// Later members work in a savepoint; the first one has the group's
    /// transaction to itself.
    savepoint: bool,
}

impl<C: GroupConnection> Member<'_, C> {
    /// Undoes this member's changes: its savepoint, or the transaction it
    /// opened (which then holds nothing else).
    fn undo(&self, state: &mut State<C>) {
        if self.savepoint {
            connection(state).rollback_to_savepoint();
        } else {
            let _ = connection(state).rollback();
        }
    }
}

impl<C: GroupConnection> std::ops::Deref for Member<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        let state = self.state.as_ref().expect("a member holds its turn");
        state
            .connection
            .as_ref()
            .expect("the writer connection is opened before a group starts")
    }
}

impl<C: GroupConnection> std::ops::DerefMut for Member<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        connection(self.state.as_mut().expect("a member holds its turn"))
    }
}

impl<C: GroupConnection> Member<'_, C> {
    /// Whether other writers of this process wait for their turn (a staged
    /// import lets them in before its next part).
    pub(crate) fn others_queued(&self) -> bool {
        self.writer.queued.load(Ordering::SeqCst) > 0
    }

    /// Keeps this member's changes and returns once a commit holds them
    /// (or with the error that lost them).
    pub(crate) fn commit(self) -> Result<()> {
        self.commit_for(|_| {})
    }

    /// [`Member::commit`], handing `share` the group's outcome (or the
    /// error that kept this member's changes out of it) as soon as the
    /// turn ends, before waiting: for the writers whose changes this
    /// member made for them (`postgres/combine.rs`).
    pub(crate) fn commit_for(
        mut self,
        share: impl FnOnce(std::result::Result<GroupOutcome, String>),
    ) -> Result<()> {
        let mut state = self.state.take().expect("a member holds its turn");
        if self.savepoint
            && let Err(error) = connection(&mut state).release()
        {
            self.undo(&mut state);
            drop(self.writer.leave(state, false));
            share(Err(error.to_string()));
            return Err(error);
        }
        let (state, outcome) = self.writer.leave(state, true);
        let outcome = GroupOutcome(outcome.expect("a member that joined has an outcome"));
        // The next writer's turn may begin; this one waits for its group.
        drop(state);
        share(Ok(outcome.clone()));
        outcome.wait()
    }
}

impl<C: GroupConnection> Drop for Member<'_, C> {
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            self.undo(&mut state);
            drop(self.writer.leave(state, false));
        }
    }
}

#[cfg(test)]
mod tests;
