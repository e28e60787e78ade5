//! The identify marker's reads on SQLite (the triggers that write it are
//! migration 7; staged imports' rows count from their publishing, see
//! `import_batches`).

use rusqlite::OptionalExtension;

use super::SqliteTx;
use super::import_batches::Rows;
use crate::error::Result;
use crate::store::{HeldSecret, IdentifyChanges};

impl SqliteTx<'_> {
    pub(super) fn marker_generation(&self) -> Result<i64> {
        let generation: Option<i64> = self
            .tx
            .prepare_cached("SELECT generation FROM identify_marker WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        // No row yet: nothing was ever changed since the migration.
        Ok(generation.unwrap_or(0))
    }

    pub(super) fn marker_changes(&self, since: i64) -> Result<IdentifyChanges> {
        let generation = self.marker_generation()?;
        let mut touched: Vec<i64> = self
            .tx
            .prepare_cached("SELECT credential_id FROM identify_gone WHERE changed_gen > ?")?
            .query_map([since], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut held = Vec::new();
        // Rows of staged imports: an unfinished one's are left out (they
        // were stamped when written, unseen); a batch published since
        // `since` is new as a whole, whatever its rows' stamps.
        let visible = self.hidden()?.visible(Rows::Credentials, "id");
        let published: String = self
            .published_since(since)?
            .iter()
            .map(|(from, to)| format!(" OR id BETWEEN {from} AND {to}"))
            .collect();
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT id, custody = 'held' AND sealed_secret IS NOT NULL, kind, algorithm, digits, \
             period, t0, counter, sealed_secret FROM credentials \
             WHERE (changed_gen > ?{published}) AND {visible}"
        ))?;
        let mut rows = statement.query([since])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            touched.push(id);
            if row.get::<_, bool>(1)? {
                held.push(HeldSecret {
                    id,
                    kind: row.get(2)?,
                    algorithm: row.get(3)?,
                    digits: row.get(4)?,
                    period: row.get(5)?,
                    t0: row.get(6)?,
                    counter: row.get(7)?,
                    sealed_secret: row.get(8)?,
                });
            }
        }
        Ok(IdentifyChanges {
            generation,
            touched,
            held,
        })
    }
}
