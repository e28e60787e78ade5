//! A write transaction that takes the writers' lock late (issue 19): an
//! import plans, draws its ids, seals, signs and copies its rows *before*
//! `LOCK TABLE audit IN EXCLUSIVE MODE`, and holds the lock only to append
//! its audit entry and publish its rows to identify. The rows are invisible
//! to everybody else until the commit, so nothing else needs hiding (the
//! SQLite staged import hides its committed chunks; here MVCC does it).
//!
//! What the transaction must not do before the lock:
//! - draw a block of ids with `setval` (another writer's `nextval` could
//!   fall inside it): ids are drawn one `nextval` each, in one statement
//!   ([`PgTx::draw_ids`]); they are usually contiguous, and nothing needs
//!   them to be;
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
//! device and slot) makes the COPY fail on a unique index, or makes one of
//! the two a deadlock victim when it waits for this transaction's rows
//! while holding the lock; and a credential added meanwhile to a classic
//! device this import adds one to (slot NULL: the unique index lets NULLs
//! repeat) is found under the lock. Either way [`PgTx::take_writers_lock`]
//! or the failed insert says so, and the caller rolls back and writes the
//! batch the usual way, planned under the lock (`session::late_lock`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use ::postgres::error::SqlState;

use super::{Columns, PgStore, PgTx, begin_write_error};
use crate::error::{Error, Result};
use crate::model::CredentialRow;

/// What a transaction begun without the lock keeps until it takes it.
#[derive(Default)]
pub(crate) struct Late {
    locked: Cell<bool>,
    /// The lowest and highest id of the credentials it inserted.
    credentials: Cell<Option<(i64, i64)>>,
    /// The (device, slot) of its credentials on devices it did not insert.
    on_existing: RefCell<Vec<(i64, Option<i64>)>>,
}

impl PgStore {
    /// `BEGIN ISOLATION LEVEL READ COMMITTED` on the store's own connection,
    /// without the writers' lock (see the module's introduction).
    pub(super) fn begin_unlocked(&mut self) -> Result<PgTx<'_>> {
        self.begin_own(
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            Some(Late::default()),
        )
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

    /// `count` ids of `table`, each its own `nextval`: safe without the
    /// lock, where a block taken with `setval` could overlap ids another
    /// writer draws meanwhile.
    pub(super) fn draw_ids(&self, table: &str, count: usize) -> Result<Vec<i64>> {
        // The sequence is looked up once: `pg_get_serial_sequence` per row
        // cost 0.29 s per 100,000 ids against 0.03 s (a quarter of the
        // late-locked import's time over four tables).
        self.query(
            "WITH q AS MATERIALIZED (SELECT pg_get_serial_sequence($1, 'id')::regclass AS seq) \
             SELECT nextval(q.seq) FROM q, generate_series(1, $2::bigint)",
            &[&table, &(count as i64)],
        )?
        .iter()
        .map(|row| Columns(row).get(0))
        .collect()
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
        let locked = self
            .tx
            .borrow_mut()
            .batch_execute("LOCK TABLE audit IN EXCLUSIVE MODE");
        match locked {
            Ok(()) => {}
            Err(error) if error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {
                return Ok(false);
            }
            Err(error) => return Err(begin_write_error(error)),
        }
        late.locked.set(true);
        if !self.slots_still_free(late)? {
            return Ok(false);
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
