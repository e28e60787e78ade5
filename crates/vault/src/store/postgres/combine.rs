//! Helpdesk codes written together: the releases that queue for the
//! writer connection are written by one of them, in one round trip.
//!
//! Group commit (`postgres/writer.rs`) shares the lock and the commit, but
//! each member still takes its own turn on the writer connection: one
//! round trip, and with it two wake-ups (the server's backend, then the
//! member's thread), while every other writer waits. Measured on two
//! cores at 16 connections, that turn took 0.45 ms, of which the backend
//! worked 0.2 ms: the turns, not the work, bounded the helpdesk's rate.
//!
//! So a helpdesk code's write is data ([`Release`]): a thread of the
//! combiner's own, the *writer thread*, takes every release queued at that
//! moment, writes them each statement after the one before in one simple
//! query, hands each its answer, and goes on at once with those queued
//! meanwhile. The releases' own threads only queue and wait. The writer
//! thread starts with the first release queued and ends when none has
//! come for [`LINGER`].
//!
//! Measured on two cores at 16 connections (BENCHMARKS.md): when the turn
//! was taken by the queued releases' threads in turn (a baton passed to
//! the oldest one queued), each turn began with a wake-up of another
//! thread, which on a busy machine waited for a core; with a thread of its
//! own that goes on at once, the helpdesk wrote 10 % more codes a second.

//! The entries are chained in this process before they are sent (each
//! after the one before it). A release at its limit appends nothing, and
//! every entry after it must then not be appended either: the statement
//! appends only where the chain ends right before its entry
//! (`chain::append_sql_guarded`); those are chained again and sent in the
//! next round trip. A statement that fails ends the simple query: the
//! batch is rolled back to its savepoint and written one by one, each in
//! a savepoint of its own, so that only the failing release fails.
//!
//! A turn sends as few round trips as it can:
//! - the group's `BEGIN`, lock and tail read travel with the first batch
//!   (`writer.rs`, [`PgConn::take_owed_begin`]): the entries are chained
//!   on the tail this connection's last commit left, and if another
//!   process has appended since, the guard refuses them and they are
//!   chained again on the tail read in that round trip;
//! - with nobody queued to join the group, its `COMMIT` goes in the same
//!   round trip: a group of releases is then one round trip in all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ::postgres::SimpleQueryMessage;
use ::postgres::types::ToSql;
use zeroize::Zeroizing;

use super::chain::{self, append_sql_guarded, append_values};
use super::release::{Value, push_execute_guarded};
use super::writer::{Opener, PgConn};
use crate::audit;
use crate::error::{Error, Result};
use crate::store::group_commit::{GroupConnection, GroupOutcome, Writer};
use crate::store::shared::PerVault;
use crate::store::{AuditCount, AuditRow, Release, Released, ReleasedStep};

/// The most releases written in one turn.
const MAX_BATCH: usize = 32;

/// How long the writer thread waits for another release before it ends.
const LINGER: Duration = Duration::from_millis(200);

/// A release as owned data, for the writer that writes it.
struct Job {
    action: String,
    outcome: String,
    user: String,
    since: u64,
    limit: u64,
    entry: AuditRow,
    key: Zeroizing<[u8; 32]>,
    credential_id: i64,
    counter: u64,
    at: u64,
    mac_kind: String,
    mac_id: String,
    mac: Vec<u8>,
    below: u64,
    mac_range: (String, String),
    slot: Mutex<Slot>,
    ready: Condvar,
}

enum Slot {
    Waiting,
    /// Written (or failed), and the group whose commit holds it (boxed:
    /// an answer holds an audit entry, the other state nothing).
    Done(Box<Answer>),
}

type Answer = (std::result::Result<Released, String>, Option<GroupOutcome>);

fn done(result: std::result::Result<Released, String>, outcome: Option<GroupOutcome>) -> Slot {
    Slot::Done(Box::new((result, outcome)))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Job {
    fn of(release: &Release<'_>) -> Job {
        let (count, step) = (&release.count, &release.step);
        Job {
            action: count.action.to_owned(),
            outcome: count.outcome.to_owned(),
            user: count.user.to_owned(),
            since: count.since,
            limit: release.limit,
            entry: release.entry.clone(),
            key: Zeroizing::new(*release.key),
            credential_id: step.credential_id,
            counter: step.counter,
            at: step.at,
            mac_kind: step.mac_kind.to_owned(),
            mac_id: step.mac_id.to_owned(),
            mac: step.mac.to_vec(),
            below: step.below,
            mac_range: (step.mac_range.0.to_owned(), step.mac_range.1.to_owned()),
            slot: Mutex::new(Slot::Waiting),
            ready: Condvar::new(),
        }
    }

    fn count(&self) -> AuditCount<'_> {
        AuditCount {
            action: &self.action,
            outcome: &self.outcome,
            user: &self.user,
            since: self.since,
        }
    }

    fn step(&self) -> ReleasedStep<'_> {
        ReleasedStep {
            credential_id: self.credential_id,
            counter: self.counter,
            at: self.at,
            mac_kind: &self.mac_kind,
            mac_id: &self.mac_id,
            mac: &self.mac,
            below: self.below,
            mac_range: (&self.mac_range.0, &self.mac_range.1),
        }
    }

    /// This job's entry after `tail`, and its statement's values.
    fn chained(&self, tail: Option<&AuditRow>) -> AuditRow {
        audit::chained(self.entry.clone(), tail, &self.key)
    }

    fn set(&self, slot: Slot) {
        let mut current = lock(&self.slot);
        if !matches!(*current, Slot::Done(..)) {
            *current = slot;
        }
        self.ready.notify_all();
    }

    /// Waits until the writer thread has written this job (or failed).
    fn wait(&self) {
        let mut slot = lock(&self.slot);
        while matches!(*slot, Slot::Waiting) {
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The answer, once the commit that holds it is done.
    fn finish(&self) -> Result<Released> {
        let (result, outcome) = match std::mem::replace(&mut *lock(&self.slot), Slot::Waiting) {
            Slot::Done(answer) => *answer,
            _ => {
                return Err(Error::Database(
                    "the helpdesk release was not written".into(),
                ));
            }
        };
        let released = result.map_err(Error::Database)?;
        if let Some(outcome) = outcome {
            outcome.wait()?;
        }
        Ok(released)
    }
}

/// The releases of one vault's writer waiting for their turn.
#[derive(Default)]
pub(crate) struct Combiner {
    pending: Mutex<Pending>,
    /// Wakes the writer thread for a release queued.
    queued: Condvar,
    /// Releases written in a batch after another's (for the tests).
    written_together: AtomicUsize,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Arc<Job>>,
    /// A writer thread is under way.
    running: bool,
}

/// Ends the writer thread's run when dropped, also in a panic: the next
/// release starts another, and the releases still queued are answered
/// (none waits for a thread that is gone).
struct Running<'a>(&'a Combiner);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // Ended in order, under the lock (`write_queued`).
            return;
        }
        let mut pending = lock(&self.0.pending);
        pending.running = false;
        for job in pending.jobs.drain(..) {
            job.set(done(
                Err("the helpdesk's writer stopped before this release was written".into()),
                None,
            ));
        }
    }
}

/// Answers every job of a batch that has no answer yet when dropped (a
/// turn that ended in a panic), so that no thread waits for ever.
struct Answers<'a>(&'a [Arc<Job>]);

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        for job in self.0 {
            job.set(done(
                Err("the writer stopped before this release was written".into()),
                None,
            ));
        }
    }
}

impl Combiner {
    /// Writes `release` with the others queued, on the writer thread
    /// (started if none is under way), and answers once the commit that
    /// holds it is done. `opener` opens the writer connection the first
    /// time (and anew if it stopped working).
    pub(crate) fn release(
        self: &Arc<Self>,
        writer: &Arc<Writer<PgConn>>,
        opener: impl FnOnce() -> Opener,
        release: &Release<'_>,
    ) -> Result<Released> {
        let job = Arc::new(Job::of(release));
        let start = {
            let mut pending = lock(&self.pending);
            pending.jobs.push_back(job.clone());
            !std::mem::replace(&mut pending.running, true)
        };
        if start {
            let opener = Arc::new(opener());
            let (combiner, on_thread, thread_opener) =
                (self.clone(), writer.clone(), opener.clone());
            let started = std::thread::Builder::new()
                .name("oathdesk-pg-writer".into())
                .spawn(move || {
                    combiner.write_queued(LINGER, |combiner| {
                        combiner.turn(&on_thread, || thread_opener.open());
                    });
                });
            if started.is_err() {
                // No thread to be had: this one writes what is queued, its
                // own among it, and ends with the queue.
                self.write_queued(Duration::ZERO, |combiner| {
                    combiner.turn(writer, || opener.open());
                });
            }
        } else {
            self.queued.notify_one();
        }
        job.wait();
        job.finish()
    }

    /// The writer thread: `turn` after turn while releases are queued, and
    /// `linger` after the last for another before it ends. A turn that
    /// panics has answered its batch ([`Answers`]); the thread goes on.
    fn write_queued(&self, linger: Duration, mut turn: impl FnMut(&Combiner)) {
        let _running = Running(self);
        loop {
            let (pending, _) = self
                .queued
                .wait_timeout_while(lock(&self.pending), linger, |pending| {
                    pending.jobs.is_empty()
                })
                .unwrap_or_else(PoisonError::into_inner);
            if pending.jobs.is_empty() {
                // Ends the run under this lock: a release queued after it
                // starts another thread.
                let mut pending = pending;
                pending.running = false;
                return;
            }
            drop(pending);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| turn(self)));
        }
    }

    /// One turn of the writer thread: the oldest queued releases, written
    /// and handed their answers.
    fn turn(&self, writer: &Writer<PgConn>, open: impl FnOnce() -> Result<PgConn>) {
        let batch: Vec<Arc<Job>> = {
            let mut pending = lock(&self.pending);
            let take = pending.jobs.len().min(MAX_BATCH);
            pending.jobs.drain(..take).collect()
        };
        let answers = Answers(&batch);
        let mut member = match writer.begin(open) {
            Ok(member) => member,
            Err(error) => {
                let reason = error.to_string();
                for job in &batch {
                    job.set(done(Err(reason.clone()), None));
                }
                return;
            }
        };
        // Nobody queued to join the group: it commits with the batch.
        let commit = !member.others_queued();
        let results = write_batch(&mut member, &batch, commit);
        self.written_together
            .fetch_add(batch.len().saturating_sub(1), Ordering::Relaxed);
        let _ = member.commit_for(|outcome| {
            for (job, result) in batch.iter().zip(results) {
                let answer = match &outcome {
                    Ok(outcome) => done(result, Some(outcome.clone())),
                    Err(reason) => done(Err(reason.clone()), None),
                };
                job.set(answer);
            }
        });
        drop(answers);
    }

    /// Releases written in a batch after another's so far (for the tests).
    #[cfg(test)]
    pub(crate) fn written_together(&self) -> usize {
        self.written_together.load(Ordering::Relaxed)
    }
}

/// What one guarded statement answered.
struct Written {
    /// The user's codes counted.
    found: u64,
    appended: bool,
    /// The count was below the limit.
    below: bool,
}

/// A guarded statement's answer, from its row's text (`None`: not one).
fn answer_of(row: &::postgres::SimpleQueryRow) -> Option<Written> {
    let text = |index: usize| row.try_get(index).ok().flatten();
    Some(Written {
        found: text(0)?.parse().ok()?,
        appended: text(1)? == "t",
        below: text(2)? == "t",
    })
}

/// Answers each of `jobs` with `reason`: none of them was written.
fn fail_all(
    answers: &mut Vec<std::result::Result<Released, String>>,
    jobs: &[Arc<Job>],
    reason: &str,
) {
    answers.extend(jobs.iter().map(|_| Err(reason.to_owned())));
}

/// How many messages of a batch's answer are those of the group's `BEGIN`,
/// lock and tail read: up to the third statement's end.
fn begin_answers(messages: &[SimpleQueryMessage]) -> usize {
    messages
        .iter()
        .enumerate()
        .filter(|(_, message)| matches!(message, SimpleQueryMessage::CommandComplete(_)))
        .nth(2)
        .map_or(messages.len(), |(at, _)| at + 1)
}

/// Writes the jobs in order on the writer connection, in its open
/// transaction: their answers, in order. With `commit` (nobody queued to
/// join the group), a batch that sends the group's `BEGIN` sends its
/// `COMMIT` too: the group's whole transaction in one round trip.
fn write_batch(
    conn: &mut PgConn,
    batch: &[Arc<Job>],
    commit: bool,
) -> Vec<std::result::Result<Released, String>> {
    let mut answers = Vec::with_capacity(batch.len());
    if conn.release_prepared != Some(true) {
        one_by_one(conn, batch, &mut answers);
        return answers;
    }
    // The entries are chained on the tail: unless this connection's last
    // commit left it known, it is read first (with the lock).
    if !conn.tail_known
        && let Err(error) = conn.begun()
    {
        fail_all(&mut answers, batch, &error.to_string());
        return answers;
    }
    while answers.len() < batch.len() {
        let rest = &batch[answers.len()..];
        let (statements, entries) = chained_statements(conn, rest);
        if entries.is_empty() {
            one_by_one(conn, &rest[..1], &mut answers);
            continue;
        }
        let Some(rows) = send(conn, statements, entries.len(), commit, rest, &mut answers) else {
            return answers;
        };
        let alone = take_answers(conn, rows, entries, &mut answers);
        if answers.len() < batch.len()
            && conn.settled()
            && let Err(error) = conn.begin_anew()
        {
            let rest = &batch[answers.len()..];
            fail_all(&mut answers, rest, &error.to_string());
            return answers;
        }
        if alone {
            let at = answers.len();
            one_by_one(conn, &batch[at..=at], &mut answers);
        }
    }
    answers
}

/// The jobs' entries chained on the connection's tail, each after the one
/// before, and their guarded releases after a savepoint: up to the first
/// job with a value out of range (written alone, where it fails alone).
fn chained_statements(conn: &PgConn, jobs: &[Arc<Job>]) -> (String, Vec<AuditRow>) {
    let mut entries: Vec<AuditRow> = Vec::with_capacity(jobs.len());
    let mut statements = String::from("SAVEPOINT batch");
    for job in jobs {
        let entry = job.chained(entries.last().or(conn.tail.as_ref()));
        let Ok(values) = append_values(&job.count(), job.limit, &entry, &job.step()) else {
            break;
        };
        statements.push_str("; ");
        push_execute_guarded(&mut statements, &values);
        entries.push(entry);
    }
    (statements, entries)
}

/// Sends a batch of `sent` releases (the first of `jobs`) in one round
/// trip, with what the member still owes (the group's `BEGIN`, lock and
/// tail read, or its savepoint) before it and, with `commit` and the
/// `BEGIN`, the `COMMIT` after it. The statements' answers, one per
/// release; or none when the jobs were answered here (the round trip
/// failed and they were written one by one, or failed).
fn send(
    conn: &mut PgConn,
    statements: String,
    sent: usize,
    commit: bool,
    jobs: &[Arc<Job>],
    answers: &mut Vec<std::result::Result<Released, String>>,
) -> Option<Vec<Written>> {
    let begins = conn.take_owed_begin();
    let head = match &begins {
        Some(begin) => format!("{begin}; "),
        None if conn.take_owed() => "SAVEPOINT member; ".to_owned(),
        None => String::new(),
    };
    let commits = commit && begins.is_some();
    let mut sql = head + &statements;
    if commits {
        sql.push_str("; COMMIT");
    }
    let (messages, skip) = match (conn.client.simple_query(&sql), begins) {
        (Ok(messages), None) => (messages, 0),
        (Ok(messages), Some(_)) => {
            // The tail read with the lock: where the entries were chained,
            // or (another process appended since this connection's last
            // commit) where the statements refused to append, and the jobs
            // are chained again.
            let skip = begin_answers(&messages);
            if commits {
                // Every statement ran, the COMMIT too.
                conn.settle();
            }
            match chain::tail_of(&messages[..skip]) {
                Ok(real) => conn.tail = real,
                // Committed: the answers say what was appended, and the
                // tail is read again for the rest, if any.
                Err(_) if commits => {}
                Err(error) => {
                    conn.abandon();
                    let reason = format!("the helpdesk releases were not written: {error}");
                    fail_all(answers, jobs, &reason);
                    return None;
                }
            }
            (messages, skip)
        }
        (Err(_), Some(_)) => {
            // The lock or a release failed; the transaction holds nothing
            // else. Begun again, the jobs are written one by one, where a
            // failure is its own.
            match conn.begin_anew() {
                Ok(()) => one_by_one(conn, jobs, answers),
                Err(error) => fail_all(answers, jobs, &error.to_string()),
            }
            return None;
        }
        (Err(_), None) => (Vec::new(), 0),
    };
    let rows: Vec<Written> = messages[skip..]
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => answer_of(row),
            _ => None,
        })
        .collect();
    if rows.len() == sent {
        return Some(rows);
    }
    if conn.settled() {
        // Every statement ran and committed, but their answers do not say
        // what they did (which cannot be): nothing is claimed.
        conn.tail_known = false;
        let reason = "the helpdesk releases' answers could not be read: check the audit log";
        fail_all(answers, jobs, reason);
        return None;
    }
    // A statement failed (or answered what it should not): the batch's
    // writes are undone and made one by one.
    match conn.client.batch_execute("ROLLBACK TO batch") {
        Ok(()) => one_by_one(conn, jobs, answers),
        Err(error) => {
            let reason = format!("the helpdesk releases were not written: {error}");
            fail_all(answers, jobs, &reason);
        }
    }
    None
}

/// Answers the releases of a batch from their statements' answers, in
/// order, up to the first that appended nothing: at its limit (answered
/// so; the entries after it were chained after one that is not there), or
/// below it, when the chain does not end where this writer saw it — then
/// `true`: that one is written alone, where it says so.
fn take_answers(
    conn: &mut PgConn,
    rows: Vec<Written>,
    entries: Vec<AuditRow>,
    answers: &mut Vec<std::result::Result<Released, String>>,
) -> bool {
    for (
        Written {
            found,
            appended,
            below,
        },
        entry,
    ) in rows.into_iter().zip(entries)
    {
        if appended {
            conn.tail = Some(entry.clone());
            answers.push(Ok(Released {
                found,
                entry: Some(entry),
            }));
        } else if !below {
            answers.push(Ok(Released { found, entry: None }));
            return false;
        } else {
            return true;
        }
    }
    false
}

/// Writes each job in a savepoint of its own (extended protocol), so that
/// one that fails loses only its own changes.
fn one_by_one(
    conn: &mut PgConn,
    jobs: &[Arc<Job>],
    answers: &mut Vec<std::result::Result<Released, String>>,
) {
    if let Err(error) = conn.place() {
        fail_all(answers, jobs, &error.to_string());
        return;
    }
    for job in jobs {
        let entry = job.chained(conn.tail.as_ref());
        let answer = append_values(&job.count(), job.limit, &entry, &job.step())
            .map_err(|error| error.to_string())
            .and_then(|values| {
                let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(Value::param).collect();
                conn.client
                    .batch_execute("SAVEPOINT job")
                    .and_then(|()| conn.client.query_one(&append_sql_guarded(), &params))
                    .map_err(|error| {
                        let _ = conn.client.batch_execute("ROLLBACK TO job");
                        Error::from(error).to_string()
                    })
            })
            .and_then(|row| {
                let found: i64 = row.get(0);
                let found = u64::try_from(found).unwrap_or(0);
                let (appended, below): (bool, bool) = (row.get(1), row.get(2));
                match (appended, below) {
                    (true, _) => Ok(Released {
                        found,
                        entry: Some(entry.clone()),
                    }),
                    (false, false) => Ok(Released { found, entry: None }),
                    (false, true) => Err(
                        "the audit chain does not end where this writer saw it: try again"
                            .to_owned(),
                    ),
                }
            });
        if let Ok(Released {
            entry: Some(entry), ..
        }) = &answer
        {
            conn.tail = Some(entry.clone());
        }
        answers.push(answer);
    }
}

/// One combiner per vault, as there is one writer (by its URL as given).
static COMBINERS: LazyLock<PerVault<String, Combiner>> = LazyLock::new(PerVault::default);

/// The combiner of the vault at `url`.
pub(crate) fn combiner_of(url: &str) -> Arc<Combiner> {
    COMBINERS.of(url)
}

#[cfg(test)]
mod tests;
