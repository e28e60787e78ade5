//! The identify marker on PostgreSQL: its reads, and its bump for inserted
//! credentials (updates and deletes bump it by migration 7's triggers;
//! an import written before the writers' lock is published by a row of
//! `import_batches`, see `postgres/late_lock.rs`).

use super::{Columns, PgTx};
use crate::error::Result;
use crate::store::{HeldSecret, IdentifyChanges};

impl PgTx<'_> {
    /// Raises the marker for credentials about to be inserted and returns
    /// the generation to stamp them with. The write transaction holds the
    /// audit lock, so no other writer bumps it before this one commits.
    pub(super) fn bump_marker(&self) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO identify_marker (id, generation) VALUES (1, 1) \
             ON CONFLICT (id) DO UPDATE SET generation = identify_marker.generation + 1 \
             RETURNING generation",
            &[],
        )?;
        Columns(&row).get(0)
    }

    pub(super) fn marker_generation(&self) -> Result<i64> {
        // No row yet: nothing was ever changed since the migration.
        let row = self.query_one(
            "SELECT coalesce((SELECT generation FROM identify_marker WHERE id = 1), 0)",
            &[],
        )?;
        Columns(&row).get(0)
    }

    pub(super) fn marker_changes(&self, since: i64) -> Result<IdentifyChanges> {
        let generation = self.marker_generation()?;
        let mut touched: Vec<i64> = self
            .query(
                "SELECT credential_id FROM identify_gone WHERE changed_gen > $1",
                &[&since],
            )?
            .iter()
            .map(|row| Columns(row).get(0))
            .collect::<Result<_>>()?;
        let mut held = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // The credentials stamped after `since`, and those of imports
        // published after it (copied before the writers' lock with
        // generation 0, see `postgres/late_lock.rs`; batches' ranges may
        // overlap, hence `seen`).
        for sql in [
            "SELECT id, custody = 'held' AND sealed_secret IS NOT NULL, kind, algorithm, digits, \
             period, t0, counter, sealed_secret FROM credentials WHERE changed_gen > $1",
            "SELECT c.id, c.custody = 'held' AND c.sealed_secret IS NOT NULL, c.kind, c.algorithm, \
             c.digits, c.period, c.t0, c.counter, c.sealed_secret \
             FROM import_batches b JOIN credentials c \
             ON c.id BETWEEN b.credentials_from AND b.credentials_to \
             WHERE b.visible_gen > $1 AND c.changed_gen <= $1",
        ] {
            for row in self.query(sql, &[&since])? {
                let c = Columns(&row);
                let id: i64 = c.get(0)?;
                if !seen.insert(id) {
                    continue;
                }
                touched.push(id);
                if c.get::<bool>(1)? {
                    held.push(HeldSecret {
                        id,
                        kind: c.get(2)?,
                        algorithm: c.get(3)?,
                        digits: c.unsigned(4)?,
                        period: c.unsigned_opt(5)?,
                        t0: c.unsigned_opt(6)?,
                        counter: c.unsigned_opt(7)?,
                        sealed_secret: c.get(8)?,
                    });
                }
            }
        }
        Ok(IdentifyChanges {
            generation,
            touched,
            held,
        })
    }
}
