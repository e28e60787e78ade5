//! A write transaction that takes the writers' lock late (issue 19): an
//! import plans, draws its ids, seals, signs and copies its rows *before*
//! `LOCK TABLE audit IN EXCLUSIVE MODE`, and holds the lock only to append
//! its audit entry and publish its rows to identify. The rows are invisible
//! to everybody else until the commit, so nothing else needs hiding (the
//! SQLite staged import hides its committed chunks; here MVCC does it).
//!
//! What the transaction must not do before the lock:
//! - draw ids: a block drawn with `nextval` and `setval` is safe only
//!   where nobody else draws in between, that is under the lock; and a
//!   `nextval` per row, safe anywhere, cost 0.3 s per 100,000 tokens over
//!   four tables (a sixth of the import). So the blocks the import may need
//!   are drawn before it begins, in a moment under the lock of a
//!   transaction of their own, one round trip ([`PgStore::reserve_ids`]);
//!   the import takes its ids from them ([`PgTx::reserved_ids`]), and the
//!   ids it does not use are skipped;
//! - touch the identify marker: a writer holding the lock that bumps it (a
//!   purge) would then wait for this transaction, which waits for the lock.
//!   So the new credentials are copied with `changed_gen` 0, and under the
//!   lock the marker is raised once and the range of their ids recorded in
//!   `import_batches` with that generation (`visible_gen`, as the SQLite
//!   staged import does); the refresh of the identify index reads the
//!   credentials of the batches published after its generation
//!   (`postgres/identify_marker.rs`). A refresh that ran while the import
//!   was in flight saw neither the rows nor the batch, and its generation
//!   is below the batch's: its next refresh loads them.
//!
//! Another writer that adds a colliding row (the same serial, UPN, or
//! device and slot) makes the COPY fail on a unique index, or waits for
//! this transaction's rows while holding the lock: this transaction then
//! gives way ([`PgTx::lock_or_give_way`]) rather than wait for the lock
//! and let PostgreSQL pick a deadlock victim, which could be the other
//! writer. A credential added meanwhile to a classic device this import
//! adds one to (slot NULL: the unique index lets NULLs repeat) is found
//! under the lock, and so is a write of records of a kind whose generation
//! this transaction read before the lock (its records, planned on what it
//! read, would overwrite that write; `session::late_lock`). Either way
//! [`PgTx::take_writers_lock`] or the failed insert says so, and the caller
//! rolls back and writes the batch the usual way, planned under the lock.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use ::postgres::error::SqlState;

use ::postgres::SimpleQueryMessage;

use super::{Columns, LOCK_TIMEOUT, PgStore, PgTx, begin_write_error};
use crate::error::{Error, Result};
use crate::model::CredentialRow;
use crate::store::IdsWanted;

/// What a transaction begun without the lock keeps until it takes it.
#[derive(Default)]
pub(crate) struct Late {
    locked: Cell<bool>,
    /// The lowest and highest id of the credentials it inserted.
    credentials: Cell<Option<(i64, i64)>>,
    /// The (device, slot) of its credentials on devices it did not insert.
    on_existing: RefCell<Vec<(i64, Option<i64>)>>,
    /// The generations of records it read, by kind: each must still be
    /// current under the lock.
    generations: RefCell<Vec<(String, i64)>>,
    /// The kinds of records it wrote: their generations are raised under
    /// the lock (raised before it, their row would be one more that a
    /// holder of the lock could wait for).
    records_written: RefCell<Vec<String>>,
    /// The ids drawn for it, by table: the next and the last.
    reserved: RefCell<HashMap<&'static str, (i64, i64)>>,
}

/// How long one attempt at the writers' lock waits before this transaction
/// looks whether the lock's holder waits for it: far less than
/// PostgreSQL's `deadlock_timeout` (1 s by default), so the holder's
/// deadlock check never finds the cycle.
const LOCK_ATTEMPT: &str = "20ms";

impl PgStore {
    /// `BEGIN ISOLATION LEVEL READ COMMITTED` on the store's own connection,
    /// without the writers' lock (see the module's introduction), with the
    /// ids it may need drawn first; `None` if they could not be.
    pub(super) fn begin_unlocked(&mut self, ids: IdsWanted) -> Result<Option<PgTx<'_>>> {
        self.ready()?;
        let Some(reserved) = self.reserve_ids(ids) else {
            return Ok(None);
        };
        let late = Late {
            reserved: RefCell::new(reserved),
            ..Late::default()
        };
        self.begin_own("BEGIN ISOLATION LEVEL READ COMMITTED", Some(late))
            .map(Some)
    }

    /// Draws a block of ids of each table that `ids` wants, in one
    /// transaction that holds the writers' lock for the moment it takes
    /// (one round trip): nobody else draws meanwhile, so nobody's ids fall
    /// inside the blocks. The blocks by table, as (first, last); `None` if
    /// the statement failed (the caller writes the usual way).
    pub(super) fn reserve_ids(
        &mut self,
        ids: IdsWanted,
    ) -> Option<HashMap<&'static str, (i64, i64)>> {
        let wanted: Vec<(&'static str, usize)> = [
            ("devices", ids.devices),
            ("users", ids.users),
            ("credentials", ids.credentials),
            ("events", ids.events),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .collect();
        if wanted.is_empty() {
            return Some(HashMap::new());
        }
        let draws: Vec<String> = wanted
            .iter()
            .map(|(table, count)| {
                format!(
                    "setval(pg_get_serial_sequence('{table}', 'id'), \
                     nextval(pg_get_serial_sequence('{table}', 'id')) + {count} - 1)"
                )
            })
            .collect();
        let sql = format!(
            "BEGIN; LOCK TABLE audit IN EXCLUSIVE MODE; SELECT {}; COMMIT",
            draws.join(", ")
        );
        let answer = match self.client.simple_query(&sql) {
            Ok(answer) => answer,
            Err(_) => {
                let _ = self.client.batch_execute("ROLLBACK");
                return None;
            }
        };
        let row = answer.iter().find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })?;
        let mut reserved = HashMap::new();
        for (index, (table, count)) in wanted.iter().enumerate() {
            let last: i64 = row.get(index)?.parse().ok()?;
            reserved.insert(*table, (last - *count as i64 + 1, last));
        }
        Some(reserved)
    }
}

impl PgTx<'_> {
    /// Begun without the writers' lock, and not holding it yet.
    pub(super) fn unlocked(&self) -> bool {
        self.late.as_ref().is_some_and(|late| !late.locked.get())
    }

    /// Refuses what only a holder of the writers' lock may do.
    pub(super) fn require_lock(&self, what: &str) -> Result<()> {
        if self.unlocked() {
            return Err(Error::Database(format!(
                "{what} in a transaction that has not taken the writers' lock"
            )));
        }
        Ok(())
    }

    /// `count` ids of `table` from the block drawn for this transaction;
    /// refused (the caller rolls back and writes the usual way) if the
    /// block has fewer left.
    pub(super) fn reserved_ids(&self, table: &str, count: usize) -> Result<Vec<i64>> {
        let short = || {
            Error::Database(format!(
                "{count} new ids of {table} asked for, more than were drawn for this import"
            ))
        };
        let late = self.late.as_ref().ok_or_else(short)?;
        let mut reserved = late.reserved.borrow_mut();
        let (next, last) = reserved.get_mut(table).ok_or_else(short)?;
        if *last - *next + 1 < count as i64 {
            return Err(short());
        }
        let ids: Vec<i64> = (*next..*next + count as i64).collect();
        *next += count as i64;
        Ok(ids)
    }

    /// The generation to stamp new credentials with: a bump of the marker
    /// under the lock; 0 before it, their ids kept for the batch published
    /// under the lock.
    pub(super) fn insert_generation(&self, rows: &[CredentialRow]) -> Result<i64> {
        let Some(late) = self.late.as_ref().filter(|_| self.unlocked()) else {
            return self.bump_marker();
        };
        let ids = rows.iter().map(|r| r.id);
        let (lo, hi) = (ids.clone().min(), ids.max());
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let (lo, hi) = match late.credentials.get() {
                Some((a, b)) => (a.min(lo), b.max(hi)),
                None => (lo, hi),
            };
            late.credentials.set(Some((lo, hi)));
        }
        let written = self.written.borrow();
        let ours = written.of("devices");
        late.on_existing.borrow_mut().extend(
            rows.iter()
                .filter_map(|r| r.device_id.map(|d| (d, r.slot.map(i64::from))))
                .filter(|(device, _)| !ours.is_some_and(|ours| ours.contains(device))),
        );
        Ok(0)
    }

    /// Takes the writers' lock in a transaction begun without it, and
    /// publishes what it inserted: false if another writer's rows collided
    /// with them (a deadlock victim, or a classic device given a second
    /// credential): the caller rolls back. Nothing in another transaction.
    pub(super) fn take_writers_lock(&self) -> Result<bool> {
        let Some(late) = self.late.as_ref().filter(|_| self.unlocked()) else {
            return Ok(true);
        };
        if !self.lock_or_give_way()? {
            return Ok(false);
        }
        late.locked.set(true);
        if !self.slots_still_free(late)? || !self.generations_current(late)? {
            return Ok(false);
        }
        let kinds = late.records_written.take();
        if !kinds.is_empty() {
            self.bump_generations(&kinds)?;
        }
        if let Some((lo, hi)) = late.credentials.get() {
            let generation = self.bump_marker()?;
            self.execute(
                "INSERT INTO import_batches (devices_from, devices_to, users_from, users_to, \
                 credentials_from, credentials_to, started_at, visible_gen) \
                 VALUES (1, 0, 1, 0, $1, $2, extract(epoch FROM now())::bigint, $3)",
                &[&lo, &hi, &generation],
            )?;
        }
        Ok(true)
    }

    /// Waits for the writers' lock in short attempts; between them, false
    /// (give way: the caller rolls back) if another transaction waits for
    /// this one — a holder of the lock that met a row this one wrote, which
    /// would otherwise wait for this transaction while it waits for the
    /// lock, until PostgreSQL broke the cycle by failing one of the two.
    pub(super) fn lock_or_give_way(&self) -> Result<bool> {
        loop {
            // Then the session's own timeout again (`DEFAULT` would be
            // the server's, none).
            let attempt = self.tx.borrow_mut().batch_execute(&format!(
                "SAVEPOINT writers_lock; SET LOCAL lock_timeout = '{LOCK_ATTEMPT}'; \
                 LOCK TABLE audit IN EXCLUSIVE MODE; SET LOCAL lock_timeout = '{}s'; \
                 RELEASE SAVEPOINT writers_lock",
                LOCK_TIMEOUT.as_secs()
            ));
            match attempt {
                Ok(()) => return Ok(true),
                Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    self.tx
                        .borrow_mut()
                        .batch_execute("ROLLBACK TO SAVEPOINT writers_lock")
                        .map_err(begin_write_error)?;
                    let waited_for = self.query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                         WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)))",
                        &[],
                    )?;
                    if Columns(&waited_for).get::<bool>(0)? {
                        return Ok(false);
                    }
                }
                Err(error) if error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {
                    return Ok(false);
                }
                Err(error) => return Err(begin_write_error(error)),
            }
        }
    }

    /// The generation of records of `kind`; read before the lock, it is
    /// the one the lock expects.
    pub(super) fn records_generation_of(&self, kind: &str) -> Result<i64> {
        let generation = self.generation_now(kind)?;
        if let Some(late) = self.late.as_ref().filter(|_| self.unlocked()) {
            late.generations
                .borrow_mut()
                .push((kind.to_owned(), generation));
        }
        Ok(generation)
    }

    fn generation_now(&self, kind: &str) -> Result<i64> {
        let row = self.query_one(
            "SELECT coalesce((SELECT generation FROM import_generations WHERE kind = $1), 0)",
            &[&kind],
        )?;
        Columns(&row).get(0)
    }

    /// Before the lock: the kinds of records written, for the lock to
    /// raise their generations (true); under it (false), the caller raises
    /// them with the write.
    pub(super) fn records_written_late(&self, kinds: &[&str]) -> bool {
        let Some(late) = self.late.as_ref().filter(|_| self.unlocked()) else {
            return false;
        };
        let mut written = late.records_written.borrow_mut();
        for kind in kinds {
            if !written.iter().any(|k| k == kind) {
                written.push((*kind).to_owned());
            }
        }
        true
    }

    /// Raises the generations of records of `kinds`, one write each.
    pub(super) fn bump_generations(&self, kinds: &[String]) -> Result<()> {
        self.execute(
            "INSERT INTO import_generations (kind, generation) \
             SELECT DISTINCT unnest($1::text[]), 1 \
             ON CONFLICT (kind) DO UPDATE SET generation = import_generations.generation + 1",
            &[&kinds],
        )?;
        Ok(())
    }

    /// Under the lock: no kind of record whose generation this transaction
    /// read before it was written since.
    fn generations_current(&self, late: &Late) -> Result<bool> {
        for (kind, read) in late.generations.borrow().iter() {
            if self.generation_now(kind)? != *read {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Under the lock: no (device, slot) this transaction gave a credential
    /// on a device it did not insert holds another one now, NULL slots
    /// counted as equal (the unique index counts them distinct).
    fn slots_still_free(&self, late: &Late) -> Result<bool> {
        let mine = late.on_existing.borrow();
        if mine.is_empty() {
            return Ok(true);
        }
        let mut devices: Vec<i64> = mine.iter().map(|(d, _)| *d).collect();
        devices.sort_unstable();
        devices.dedup();
        let mut held: HashMap<(i64, Option<i64>), usize> = HashMap::new();
        for row in self.query(
            "SELECT device_id, slot FROM credentials WHERE device_id = ANY($1)",
            &[&devices],
        )? {
            let c = Columns(&row);
            *held.entry((c.get(0)?, c.get(1)?)).or_default() += 1;
        }
        Ok(mine
            .iter()
            .all(|key| held.get(key).copied().unwrap_or(0) <= 1))
    }
}
