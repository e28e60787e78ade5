//! A large update of users' data on file, staged (SQLite): the second step
//! of a spreadsheet import writes the data on file of every user in it,
//! 100,000 signed records, which in one transaction held the file's write
//! lock for about a second, every helpdesk code behind it.
//!
//! As a staged import of tokens (`session::batch`): the update is planned
//! and its records signed on a read snapshot, before any lock; they are
//! written in parts, in as few transactions as the waiting writers allow
//! (`session::staging`), into a batch no read sees
//! (`store::sqlite::staged_records`); one short transaction publishes the
//! batch with the update's one audit entry, and every read sees all of it
//! from then on. All or nothing as before, as another session sees it: a
//! batch that fails half-way is removed, one whose process died is removed
//! by the next open or import, and no user ever has a mix of the update's
//! records and the earlier ones (each user's record is replaced whole, and
//! all of them at once). A batch is published only if no user's data on
//! file was written since its snapshot (the update's values are merged
//! into what the snapshot held); else it is planned again, and after
//! [`STAGE_ATTEMPTS`] written in one transaction. After publishing, the
//! importer moves the records into the records table, in parts too, which
//! changes nothing any read sees.

use super::staging::{AfterPart, Interrupted, Staging, after_part, write_in_parts};
use super::verification::{FactsReport, FactsUpdate, facts_event, plan_facts, users_of};
use super::*;
use crate::store::ImportRanges;

/// The ranges of a batch that adds no device, user or credential.
const NO_ROWS: ImportRanges = ImportRanges {
    devices: (1, 0),
    users: (1, 0),
    credentials: (1, 0),
};

impl<S: Store> Session<S> {
    /// Writes an update of data on file as a staged batch; `None` where it
    /// is not staged — the store does not stage, users are to be created
    /// (`create`: they are written with their records, in one
    /// transaction), or no more records than one part change — and the
    /// caller writes it in one transaction.
    pub(crate) fn update_user_facts_staged(
        &mut self,
        updates: &[FactsUpdate],
        source: &str,
        create: bool,
        now: u64,
        staging: &mut Staging<'_>,
    ) -> Result<Option<FactsReport>> {
        let Some(_guard) = self.store.import_guard()? else {
            return Ok(None);
        };
        // What an earlier update left published and not moved (its
        // process died): moved first, oldest first.
        self.fold_records(staging)?;
        for _ in 0..STAGE_ATTEMPTS {
            let planned = self.checked_read(now, |tx, keys| {
                let generation = tx.records_generation(kind::USER_FACTS)?;
                let users = users_of(tx, updates)?;
                if create
                    && updates
                        .iter()
                        .any(|u| !users.contains_key(&u.upn.to_lowercase()))
                {
                    return Ok(None);
                }
                let mut report = FactsReport::default();
                let rows = plan_facts(tx, keys, updates, source, &users, &mut report, now)?;
                let macs: Vec<Vec<u8>> = rows.iter().map(|row| keys.signer.record(row)).collect();
                Ok(Some((generation, report, rows, macs)))
            })?;
            let Some((generation, report, rows, macs)) = planned else {
                return Ok(None);
            };
            if rows.len() <= staging.rows {
                return Ok(None);
            }
            let size = staging.rows.max(1);
            let parts: Vec<std::ops::Range<usize>> = (0..rows.len())
                .step_by(size)
                .map(|from| from..(from + size).min(rows.len()))
                .collect();
            let (batch, outcome) = write_in_parts(
                &mut self.store,
                staging,
                parts.len(),
                |tx| {
                    let batch = tx.import_batch_begin(&NO_ROWS, now)?;
                    let part = parts[0].clone();
                    tx.records_stage(batch, &rows[part.clone()], &macs[part.clone()])?;
                    Ok(Some((batch, part.len())))
                },
                |tx, batch, n| {
                    let part = parts[n].clone();
                    tx.records_stage(batch, &rows[part.clone()], &macs[part.clone()])?;
                    Ok(part.len())
                },
            );
            let batch = match (batch, outcome) {
                (Some(batch), Ok(())) => batch,
                (batch, Err(Interrupted::Failed(error))) => {
                    if let Some(batch) = batch {
                        self.remove_batch(batch);
                    }
                    return Err(error);
                }
                (_, Err(Interrupted::Stopped)) => return Err(stopped()),
                (None, Ok(())) => unreachable!("a batch of records is always begun"),
            };
            if !(staging.go_on)(parts.len()) {
                return Err(stopped());
            }
            match self.publish_records(batch, generation, facts_event(source, &report), now) {
                Ok(true) => {
                    // Published: the update is done and audited. Moving
                    // the records changes nothing anybody sees; if it
                    // stops, the next large update moves the rest.
                    if (staging.go_on)(parts.len() + 1) {
                        let _ = self.fold_records(staging);
                    }
                    return Ok(Some(report));
                }
                // Somebody wrote data on file since the snapshot: plan again.
                Ok(false) => self.remove_batch(batch),
                Err(error) => {
                    self.remove_batch(batch);
                    return Err(error);
                }
            }
        }
        Ok(None)
    }

    /// Publishes a batch of users' data on file with the update's audit
    /// entry, in one transaction, if no data on file was written since
    /// `generation` (`false`, and nothing written, otherwise).
    fn publish_records(
        &mut self,
        batch: i64,
        generation: i64,
        event: AuditEvent,
        now: u64,
    ) -> Result<bool> {
        let audit_key = self.audit_keys[&self.epoch].clone();
        let outcome = (|| -> Result<bool> {
            let tx = self.store.write()?;
            if !tx.records_publish(batch, kind::USER_FACTS, generation)? {
                return Ok(false);
            }
            let head = append_audit(&tx, &audit_key, self.epoch, &self.operator, now, &event)?;
            tx.commit()?;
            audit::anchor(&head);
            Ok(true)
        })();
        self.audited(now, outcome)
    }

    /// Moves published staged records into the records table, in parts,
    /// committing and letting waiting writers in as a staged write does.
    fn fold_records(&mut self, staging: &mut Staging<'_>) -> Result<()> {
        loop {
            let tx = self.store.write()?;
            let mut rows = 0;
            let (done, let_in) = loop {
                let moved = tx.records_fold(staging.rows.max(1))?;
                if moved == 0 {
                    break (true, false);
                }
                rows += moved;
                let waiting = staging.always_let_in || tx.writers_waiting().unwrap_or(false);
                match after_part(waiting, rows, staging.quiet_rows) {
                    AfterPart::GoOn => {}
                    AfterPart::Commit => break (false, false),
                    AfterPart::LetIn => break (false, true),
                }
            };
            tx.commit()?;
            if done {
                return Ok(());
            }
            if let_in {
                self.store.checkpoint()?;
                std::thread::sleep(staging.pause);
            }
        }
    }
}
