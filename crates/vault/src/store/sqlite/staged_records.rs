//! Staged records on SQLite (migration 15; the writer is
//! `session::facts_staging`).
//!
//! A large update of users' data on file replaces signed records that
//! exist, so it cannot be hidden by id ranges as a staged import's new
//! rows are (`import_batches`). Its records are written, in short
//! transactions, to `import_records` under their batch (a row of
//! `import_batches` with empty ranges and `records` = 1); no read looks at
//! them while the batch is unpublished. Publishing the batch is one short
//! transaction; from then on every read of a record takes the newest
//! published version in `import_records` over the one in `records` (the
//! *overlay*: its rows, and its MACs over `row_macs`). The importer then
//! moves them into `records` and `row_macs` in short transactions
//! ([`SqliteTx::fold`]), which changes nothing a read sees, and the batch
//! leaves the overlay when it has none left. A record written the usual
//! way meanwhile replaces its published version in the overlay.
//!
//! A batch is planned on a snapshot, so it is published only if no record
//! of its kind was written since ([`SqliteTx::generation`], bumped by every
//! write of records and every publication): else the writer plans it again.
//! An unpublished batch whose importer died is removed with the staged
//! imports' (`import_batches`); a published one whose importer died before
//! it had moved everything stays in the overlay, right for every read, and
//! the next large update of data on file moves it first.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{SqliteTx, record_from_row};
use crate::error::{Error, Result};
use crate::store::RecordRow;

/// A record and its MAC.
pub(crate) type Signed = (RecordRow, Vec<u8>);

fn signed_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Signed> {
    Ok((record_from_row(r)?, r.get(5)?))
}

/// `batch IN (...)` for batch ids read from the vault (integers, inline).
fn batch_in(batches: &[i64]) -> String {
    let list: Vec<String> = batches.iter().map(i64::to_string).collect();
    format!("batch IN ({})", list.join(", "))
}

impl SqliteTx<'_> {
    /// The published batches with records still in `import_records`,
    /// oldest first (read once per transaction).
    pub(crate) fn overlay(&self) -> Result<&[i64]> {
        if let Some(batches) = self.overlay.get() {
            return Ok(batches);
        }
        let batches = self
            .tx
            .prepare_cached(
                "SELECT id FROM import_batches WHERE records = 1 AND visible_gen IS NOT NULL \
                 ORDER BY id",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(self.overlay.get_or_init(|| batches))
    }

    /// The newest published version of a record still in `import_records`.
    pub(super) fn overlaid(&self, kind: &str, id: &str) -> Result<Option<Signed>> {
        let batches = self.overlay()?;
        if batches.is_empty() {
            return Ok(None);
        }
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT kind, id, state, body, updated_at, mac FROM import_records \
                 WHERE kind = ? AND id = ? AND {} ORDER BY batch DESC LIMIT 1",
                batch_in(batches)
            ))?
            .query_row(params![kind, id], signed_from_row)
            .optional()?)
    }

    /// The newest published version of every record of `kind` still in
    /// `import_records`, by id.
    pub(super) fn overlaid_all(&self, kind: &str) -> Result<BTreeMap<String, Signed>> {
        let batches = self.overlay()?;
        let mut newest = BTreeMap::new();
        if batches.is_empty() {
            return Ok(newest);
        }
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT kind, id, state, body, updated_at, mac FROM import_records \
             WHERE kind = ? AND {} ORDER BY id, batch",
            batch_in(batches)
        ))?;
        for signed in statement.query_map([kind], signed_from_row)? {
            let signed = signed?;
            newest.insert(signed.0.id.clone(), signed);
        }
        Ok(newest)
    }

    /// `rows` (records of `kind`, all states) with the published staged
    /// versions over them, in `state` if given, by id.
    pub(super) fn records_overlaid(
        &self,
        kind: &str,
        state: Option<&str>,
        rows: Vec<RecordRow>,
    ) -> Result<Vec<RecordRow>> {
        let mut by_id: BTreeMap<String, RecordRow> =
            rows.into_iter().map(|row| (row.id.clone(), row)).collect();
        by_id.extend(
            self.overlaid_all(kind)?
                .into_iter()
                .map(|(id, (row, _))| (id, row)),
        );
        Ok(by_id
            .into_values()
            .filter(|row| state.is_none_or(|s| row.state == s))
            .collect())
    }

    /// `macs` (of `kind`, from `row_macs`) with those of the published
    /// staged records over them.
    pub(super) fn macs_overlaid(
        &self,
        kind: &str,
        macs: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let overlaid = self.overlaid_all(kind)?;
        if overlaid.is_empty() {
            return Ok(macs);
        }
        let mut by_id: BTreeMap<String, Vec<u8>> = macs.into_iter().collect();
        by_id.extend(overlaid.into_iter().map(|(id, (_, mac))| (id, mac)));
        Ok(by_id.into_iter().collect())
    }

    /// After records were written the usual way: their published versions
    /// still in `import_records` go (the new ones are newer), and each kind
    /// written counts a write.
    pub(super) fn records_written<'r>(
        &self,
        written: impl IntoIterator<Item = (&'r str, &'r str)>,
    ) -> Result<()> {
        let batches = self.overlay()?.to_vec();
        let mut kinds: Vec<&str> = Vec::new();
        for (kind, id) in written {
            if !batches.is_empty() {
                self.tx
                    .prepare_cached(&format!(
                        "DELETE FROM import_records WHERE kind = ? AND id = ? AND {}",
                        batch_in(&batches)
                    ))?
                    .execute(params![kind, id])?;
            }
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds
            .into_iter()
            .try_for_each(|kind| self.bump_generation(kind))
    }

    fn bump_generation(&self, kind: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO import_generations (kind, generation) VALUES (?, 1) \
                 ON CONFLICT (kind) DO UPDATE SET generation = generation + 1",
            )?
            .execute([kind])?;
        Ok(())
    }

    /// How many writes of records of `kind` there were.
    pub(super) fn generation(&self, kind: &str) -> Result<i64> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT coalesce((SELECT generation FROM import_generations WHERE kind = ?), 0)",
            )?
            .query_row([kind], |r| r.get(0))?)
    }

    /// Writes records into the unpublished batch `batch`.
    pub(super) fn stage(&self, batch: i64, rows: &[RecordRow], macs: &[Vec<u8>]) -> Result<()> {
        crate::store::same_length(rows, macs)?;
        let marked = self
            .tx
            .prepare_cached(
                "UPDATE import_batches SET records = 1 WHERE id = ? AND visible_gen IS NULL",
            )?
            .execute([batch])?;
        if marked != 1 {
            return Err(Error::Database(format!(
                "import batch {batch} is not being written"
            )));
        }
        let mut statement = self.tx.prepare_cached(
            "INSERT INTO import_records (batch, kind, id, state, body, updated_at, mac) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?;
        for (row, mac) in rows.iter().zip(macs) {
            statement.execute(params![
                batch,
                row.kind,
                row.id,
                row.state,
                row.body,
                row.updated_at,
                mac
            ])?;
        }
        Ok(())
    }

    /// Publishes the batch if no record of `kind` was written since
    /// `generation`; it counts as a write of `kind`.
    pub(super) fn publish_records(&self, batch: i64, kind: &str, generation: i64) -> Result<bool> {
        if self.generation(kind)? != generation {
            return Ok(false);
        }
        self.batch_publish(batch)?;
        self.bump_generation(kind)?;
        Ok(true)
    }

    /// Moves up to `limit` records of the oldest published batch into
    /// `records` and `row_macs`; returns how many (0: none is left). The
    /// oldest first: a newer batch's version of a record stays above it.
    pub(super) fn fold(&self, limit: usize) -> Result<usize> {
        loop {
            // Read here, not from the transaction's overlay: this one
            // changes it.
            let oldest: Option<i64> = self
                .tx
                .prepare_cached(
                    "SELECT id FROM import_batches WHERE records = 1 AND visible_gen IS NOT NULL \
                     ORDER BY id LIMIT 1",
                )?
                .query_row([], |r| r.get(0))
                .optional()?;
            let Some(batch) = oldest else {
                return Ok(0);
            };
            let rows: Vec<Signed> = self
                .tx
                .prepare_cached(
                    "SELECT kind, id, state, body, updated_at, mac FROM import_records \
                     WHERE batch = ? LIMIT ?",
                )?
                .query_map(params![batch, limit as i64], signed_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            if rows.is_empty() {
                self.tx
                    .prepare_cached("UPDATE import_batches SET records = 0 WHERE id = ?")?
                    .execute([batch])?;
                continue;
            }
            let mut mac_put = self.tx.prepare_cached(
                "INSERT OR REPLACE INTO row_macs (kind, id, mac) VALUES (?, ?, ?)",
            )?;
            let mut moved = self.tx.prepare_cached(
                "DELETE FROM import_records WHERE kind = ? AND id = ? AND batch = ?",
            )?;
            for (row, mac) in &rows {
                self.record_upsert(row)?;
                mac_put.execute(params![row.kind, row.id, mac])?;
                moved.execute(params![row.kind, row.id, batch])?;
            }
            return Ok(rows.len());
        }
    }
}
