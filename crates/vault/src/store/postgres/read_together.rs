//! The console's helpdesk codes read together: the reads that queue are
//! made by one of them, in one statement.
//!
//! Each code is opened and decided on one statement (`postgres/helpdesk.rs`
//! with the grant's, `postgres/grant.rs`). Measured on two cores, most of
//! the server's work for it is not reading rows but the statement around
//! them: the executor's start-up of some twenty plan nodes, the protocol
//! messages, a snapshot — the same for one user as for several. So a read
//! is data ([`ReadJob`]): while a read is under way, a request queues; the
//! next turn reads for every request queued at that moment in one
//! statement (`PgTx::grant_and_helpdesk_together`: the requests as rows of
//! a `VALUES` list, each read as before in a lateral subquery) and hands
//! each its rows. A second turn starts beside the first only for
//! [`SHARED_TURN`] requests or more. A turn passes from the request that
//! took it to the oldest one still queued (a read is made on a request's
//! own connection, where the writes have a thread and a connection of
//! their own, `postgres/combine.rs`), so no request waits for a turn
//! nobody takes.
//!
//! Measured on two cores at 16 connections (BENCHMARKS.md): with one turn
//! at a time, 3.4 requests a statement and the reads' backends at half the
//! CPU they took one by one; with two turns at any time, 1.8 requests a
//! statement; hence the second turn only for a few queued.
//!
//! Every request still gets rows of one snapshot (the statement's); one
//! alone is read with the statement of one (in a turn all the same, so
//! that the requests that come meanwhile queue). A turn whose statement
//! fails hands each of its requests back to read alone, where an error is
//! its own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

use super::PgStore;
use crate::error::Result;
use crate::store::shared::PerVault;
use crate::store::{GrantRows, HelpdeskQuery, HelpdeskRows, Store, StoreTx};

/// Turns under way at once, at most.
pub(super) const TURNS: usize = 2;

/// A turn besides the one under way starts only for this many requests
/// (queued, with the one that comes): a second turn for one or two would
/// make most reads alone again, as if none were queued.
const SHARED_TURN: usize = 3;

/// The most requests read in one turn.
pub(super) const MAX_BATCH: usize = 32;

/// A request's read as owned data, for the turn that makes it.
pub(super) struct ReadJob {
    pub(super) grant: Vec<u8>,
    upn: String,
    setting: String,
    policy_id: String,
    action: String,
    outcome: String,
    since: u64,
    since_day: u64,
    slot: Mutex<Slot>,
    ready: Condvar,
}

type Rows = (GrantRows, HelpdeskRows);

enum Slot {
    Waiting,
    /// This job's thread takes the next turn.
    Run,
    /// Not read by a turn: the job's thread reads it alone.
    Alone,
    Done(Box<Rows>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReadJob {
    fn of(grant: &[u8], query: &HelpdeskQuery<'_>) -> ReadJob {
        ReadJob {
            grant: grant.to_vec(),
            upn: query.upn.to_owned(),
            setting: query.setting.to_owned(),
            policy_id: query.policy_id.to_owned(),
            action: query.action.to_owned(),
            outcome: query.outcome.to_owned(),
            since: query.since,
            since_day: query.since_day,
            slot: Mutex::new(Slot::Waiting),
            ready: Condvar::new(),
        }
    }

    pub(super) fn query(&self) -> HelpdeskQuery<'_> {
        HelpdeskQuery {
            upn: &self.upn,
            setting: &self.setting,
            policy_id: &self.policy_id,
            action: &self.action,
            outcome: &self.outcome,
            since: self.since,
            since_day: self.since_day,
        }
    }

    /// Whether two jobs can be read in one statement: all but the user,
    /// the grant and the times are the statement's, not a request's.
    fn goes_with(&self, other: &ReadJob) -> bool {
        (&self.setting, &self.policy_id, &self.action, &self.outcome)
            == (
                &other.setting,
                &other.policy_id,
                &other.action,
                &other.outcome,
            )
    }

    fn set(&self, slot: Slot) {
        let mut current = lock(&self.slot);
        if matches!(*current, Slot::Waiting | Slot::Run) {
            *current = slot;
        }
        self.ready.notify_all();
    }

    /// Waits until the job is read, handed back, or its thread's turn.
    fn wait(&self) -> Slot {
        let mut slot = lock(&self.slot);
        while matches!(*slot, Slot::Waiting) {
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
        std::mem::replace(&mut *slot, Slot::Waiting)
    }
}

/// The helpdesk reads of one vault in this process waiting for a turn.
#[derive(Default)]
pub(crate) struct Reads {
    pending: Mutex<Pending>,
    /// Requests read by another request's turn so far (for the tests).
    read_for_others: AtomicUsize,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Arc<ReadJob>>,
    /// Turns under way.
    running: usize,
}

/// Ends a turn when dropped (also if it ends in a panic): hands every job
/// of the batch still unanswered back to read alone, and passes the turn
/// to the oldest job queued, or puts it down.
struct Turn<'a> {
    reads: &'a Reads,
    batch: Vec<Arc<ReadJob>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        for job in &self.batch {
            job.set(Slot::Alone);
        }
        let mut pending = lock(&self.reads.pending);
        // Another turn under way takes the few queued when it ends.
        let few = pending.running > 1 && pending.jobs.len() < SHARED_TURN;
        match pending.jobs.pop_front() {
            Some(next) if !few => next.set(Slot::Run),
            Some(next) => {
                pending.jobs.push_front(next);
                pending.running -= 1;
            }
            None => pending.running -= 1,
        }
    }
}

impl Reads {
    /// The grant's and the helpdesk's rows of one request, read with the
    /// others queued (or by the turn that reads them).
    pub(super) fn read(
        &self,
        store: &mut PgStore,
        grant: &[u8],
        query: &HelpdeskQuery<'_>,
    ) -> Result<Rows> {
        let job = Arc::new(ReadJob::of(grant, query));
        let runs = {
            let mut pending = lock(&self.pending);
            if pending.running == 0
                || (pending.running < TURNS && pending.jobs.len() + 1 >= SHARED_TURN)
            {
                pending.running += 1;
                true
            } else {
                pending.jobs.push_back(job.clone());
                false
            }
        };
        if runs {
            self.turn(store, &job);
        }
        loop {
            match job.wait() {
                Slot::Done(rows) => return Ok(*rows),
                Slot::Alone => {
                    return store.read_single()?.grant_and_helpdesk_rows(grant, query);
                }
                Slot::Run => self.turn(store, &job),
                Slot::Waiting => unreachable!("wait returns once the slot is set"),
            }
        }
    }

    /// One turn: `own` and the jobs queued that go with it, read in one
    /// statement on this store's connection.
    fn turn(&self, store: &mut PgStore, own: &Arc<ReadJob>) {
        let mut batch = vec![own.clone()];
        {
            let mut pending = lock(&self.pending);
            while batch.len() < MAX_BATCH
                && let Some(next) = pending.jobs.front()
                && next.goes_with(own)
            {
                batch.extend(pending.jobs.pop_front());
            }
        }
        let turn = Turn { reads: self, batch };
        // One alone is read with the statement of one, in the turn all the
        // same: while it reads, others queue for the next.
        let read = store
            .read_single()
            .and_then(|tx| match turn.batch.as_slice() {
                [job] => Ok(vec![tx.grant_and_helpdesk_rows(&job.grant, &job.query())?]),
                batch => tx.grant_and_helpdesk_together(batch),
            });
        if let Ok(rows) = read {
            self.read_for_others
                .fetch_add(turn.batch.len() - 1, Ordering::Relaxed);
            for (job, rows) in turn.batch.iter().zip(rows) {
                job.set(Slot::Done(Box::new(rows)));
            }
        }
        // Dropping the turn hands back what it did not read, and passes it.
    }

    /// Requests read by another request's turn so far (for the tests).
    #[cfg(test)]
    pub(crate) fn read_for_others(&self) -> usize {
        self.read_for_others.load(Ordering::Relaxed)
    }
}

/// One [`Reads`] per vault, by its URL as given.
static READS: LazyLock<PerVault<String, Reads>> = LazyLock::new(PerVault::default);

/// The reads of the vault at `url`.
pub(crate) fn reads_of(url: &str) -> Arc<Reads> {
    READS.of(url)
}

#[cfg(test)]
mod tests;
