//! Staged writes: a large import written in parts, each part's rows hidden
//! until one publishing transaction (credentials: `session::batch`; users'
//! data on file: `session::facts_staging`), in as few write transactions
//! as the other writers allow.
//!
//! SQLite has one write lock per file. A part is about [`STAGE_ROWS`]
//! rows (10–20 ms of writing on the 2-core bench machine); after each the
//! importer asks whether another writer waits for the lock now
//! ([`StoreTx::writers_waiting`]: another process's writer in its busy
//! handler, or another thread of this process queued on the group commit).
//! If one does, the importer commits, checkpoints its pages (so that the
//! other writers' commits do not run that checkpoint) and pauses for
//! [`STAGE_PAUSE`] so that they take the lock; else it writes the next part
//! in the same transaction, and commits only every [`STAGE_QUIET_ROWS`]
//! (a writer the signal cannot see — an older oathdesk, the `sqlite3`
//! shell — waits no longer than that). A lone import thus costs about what
//! one transaction did, and one alongside the helpdesk still lets every
//! helpdesk write in within a part. The decision is [`after_part`].

use std::time::Duration;

use super::*;

/// Rows per part of a staged write: about 10–20 ms of writing on the
/// 2-core bench machine, under the helpdesk's 50 ms. A batch of no more is
/// written in one transaction.
pub(crate) const STAGE_ROWS: usize = 2_000;

/// The pause after a transaction committed for waiting writers, in which
/// they take the lock (they try every millisecond).
pub(crate) const STAGE_PAUSE: Duration = Duration::from_millis(3);

/// The most rows one transaction of a staged write holds while no writer
/// is seen waiting.
pub(crate) const STAGE_QUIET_ROWS: usize = 20_000;

/// How many times a large batch is prepared and staged before it is
/// written in one transaction instead (each time another writer changed
/// what it was planned on between its snapshot and its writing).
pub(crate) const STAGE_ATTEMPTS: usize = 3;

/// What a staged write does after a part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterPart {
    /// Writes the next part in the same transaction.
    GoOn,
    /// Commits (the transaction holds enough), then goes on at once.
    Commit,
    /// Commits, checkpoints and pauses: another writer waits.
    LetIn,
}

/// The decision after a part: let a waiting writer in; else commit every
/// `quiet_rows` rows; else go on in the same transaction.
pub(crate) fn after_part(
    writers_waiting: bool,
    rows_in_transaction: usize,
    quiet_rows: usize,
) -> AfterPart {
    if writers_waiting {
        AfterPart::LetIn
    } else if rows_in_transaction >= quiet_rows {
        AfterPart::Commit
    } else {
        AfterPart::GoOn
    }
}

/// How a staged write goes.
pub(crate) struct Staging<'a> {
    /// Rows per part; a batch of no more is not staged.
    pub rows: usize,
    pub pause: Duration,
    /// See [`STAGE_QUIET_ROWS`].
    pub quiet_rows: usize,
    /// Tests: as if a writer waited after every part (every part its own
    /// transaction, as the first staged imports were).
    pub always_let_in: bool,
    /// Asked before each part after the first (with its number; the last
    /// number is the publishing transaction's): `false` stops the write
    /// there as a crash would — the parts not committed yet are lost.
    /// Called between transactions only with `always_let_in` (tests that
    /// write in it need the lock).
    pub go_on: &'a mut dyn FnMut(usize) -> bool,
    /// Out: the transactions the parts took (not the publishing one).
    pub transactions: usize,
}

impl<'a> Staging<'a> {
    /// The staging of every import.
    pub(crate) fn new(go_on: &'a mut dyn FnMut(usize) -> bool) -> Staging<'a> {
        Staging {
            rows: STAGE_ROWS,
            pause: STAGE_PAUSE,
            quiet_rows: STAGE_QUIET_ROWS,
            always_let_in: false,
            go_on,
            transactions: 0,
        }
    }
}

/// Why a staged write did not get to publish its batch.
pub(crate) enum Interrupted {
    Failed(Error),
    /// A test stopped it, as a crash would.
    Stopped,
}

impl From<Error> for Interrupted {
    fn from(error: Error) -> Interrupted {
        Interrupted::Failed(error)
    }
}

/// A staged write's parts: `begin` starts the batch in the first
/// transaction and writes part 0 (`None`: what the batch was planned on
/// changed, nothing is written), returning the batch's id and the part's
/// rows; `write` writes part `n` (1 to `parts - 1`) and returns its rows.
/// Returns the batch's id if it was begun (for its removal on an error),
/// and how the parts went.
pub(crate) fn write_in_parts<S: Store>(
    store: &mut S,
    staging: &mut Staging<'_>,
    parts: usize,
    begin: impl FnOnce(&S::Tx<'_>) -> Result<Option<(i64, usize)>>,
    mut write: impl FnMut(&S::Tx<'_>, i64, usize) -> Result<usize>,
) -> (Option<i64>, std::result::Result<(), Interrupted>) {
    let mut begin = Some(begin);
    let mut batch: Option<i64> = None;
    let mut next = 0;
    while next < parts {
        if next > 0 && !(staging.go_on)(next) {
            return (batch, Err(Interrupted::Stopped));
        }
        let tx = match store.write() {
            Ok(tx) => tx,
            Err(error) => return (batch, Err(error.into())),
        };
        let mut rows = 0;
        let first = match begin.take() {
            Some(begin) => match begin(&tx) {
                Ok(Some(first)) => Some(first),
                Ok(None) => return (None, Ok(())),
                Err(error) => return (None, Err(error.into())),
            },
            None => None,
        };
        let id = match (first, batch) {
            (Some((id, written)), _) => {
                batch = Some(id);
                rows += written;
                next = 1;
                id
            }
            (None, Some(id)) => match write(&tx, id, next) {
                Ok(written) => {
                    rows += written;
                    next += 1;
                    id
                }
                Err(error) => return (batch, Err(error.into())),
            },
            (None, None) => unreachable!("the first transaction begins the batch"),
        };
        let mut let_in = false;
        while next < parts {
            // A signal that cannot be read says nobody: the quiet limit
            // still holds.
            let waiting = staging.always_let_in || tx.writers_waiting().unwrap_or(false);
            match after_part(waiting, rows, staging.quiet_rows) {
                AfterPart::GoOn => {
                    if !(staging.go_on)(next) {
                        // The open transaction goes with the "crash".
                        return (batch, Err(Interrupted::Stopped));
                    }
                    match write(&tx, id, next) {
                        Ok(written) => rows += written,
                        Err(error) => return (batch, Err(error.into())),
                    }
                    next += 1;
                }
                AfterPart::Commit => break,
                AfterPart::LetIn => {
                    let_in = true;
                    break;
                }
            }
        }
        if let Err(error) = tx.commit() {
            return (batch, Err(error.into()));
        }
        staging.transactions += 1;
        if let_in {
            if let Err(error) = store.checkpoint() {
                return (batch, Err(error.into()));
            }
            std::thread::sleep(staging.pause);
        }
    }
    (batch, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_writer_is_let_in_after_any_part_and_a_quiet_import_commits_rarely() {
        // Somebody waits: let them in, however little this transaction holds.
        assert_eq!(after_part(true, 1, STAGE_QUIET_ROWS), AfterPart::LetIn);
        assert_eq!(after_part(true, 2_000, STAGE_QUIET_ROWS), AfterPart::LetIn);
        assert_eq!(after_part(true, 50_000, STAGE_QUIET_ROWS), AfterPart::LetIn);
        // Nobody waits: the same transaction, up to the quiet limit.
        assert_eq!(after_part(false, 2_000, STAGE_QUIET_ROWS), AfterPart::GoOn);
        assert_eq!(
            after_part(false, STAGE_QUIET_ROWS - 1, STAGE_QUIET_ROWS),
            AfterPart::GoOn
        );
        assert_eq!(
            after_part(false, STAGE_QUIET_ROWS, STAGE_QUIET_ROWS),
            AfterPart::Commit
        );
        // A lone 100,000-row import: five transactions of 20,000, no pause.
        let mut transactions = 0;
        let mut rows = 0;
        for _ in 0..50 {
            rows += STAGE_ROWS;
            match after_part(false, rows, STAGE_QUIET_ROWS) {
                AfterPart::GoOn => {}
                AfterPart::Commit => {
                    transactions += 1;
                    rows = 0;
                }
                AfterPart::LetIn => unreachable!("nobody waits"),
            }
        }
        assert_eq!(transactions, 5);
    }
}
