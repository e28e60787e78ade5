//! Copying a vault row for row to another database.

use super::*;

/// What [`Session::copy_to`] copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// The target, password masked.
    pub to: String,
    /// Rows per table, parents first.
    pub tables: Vec<(String, u64)>,
    /// Audit entries in the copy, verified with this vault's keys.
    pub audit_entries: u64,
    /// `SEQ:HEX` of the copy's newest entry (the source's `vault.copy`).
    pub head: Option<String>,
}

impl Session<AnyStore> {
    /// Copies this vault row for row into `target` (a new file, an empty
    /// database or schema; with `replace`, one that holds a vault, whose
    /// content is replaced). Secrets stay sealed: nothing is decrypted.
    ///
    /// The source's audit chain is checked first (a broken one is not
    /// copied), the copy is recorded in it (`vault.copy`, so the copy's
    /// newest entry says where it went), and the copy is one transaction
    /// that reads one snapshot of the source. Afterwards the copy's audit
    /// keys are opened with this session's vault key and its chain
    /// verified; its head must be the one the source had.
    pub fn copy_to(&mut self, target: &Location, replace: bool, now: u64) -> Result<CopyReport> {
        self.require(Permission::Admin)?;
        let chain = self.audit_verify()?;
        if let Some((seq, why)) = chain.first_bad {
            return Err(Error::Refused(format!(
                "the audit chain of this vault is broken at entry {seq} ({why}): it is not copied; \
                 see 'oathdesk audit verify'"
            )));
        }
        let mut target_store = match AnyStore::open(target) {
            Ok(_) if !replace => {
                return Err(Error::Refused(format!(
                    "{target} already holds a vault: pass --replace to overwrite it with this one"
                )));
            }
            Ok(store) => store,
            Err(Error::NoVault { .. }) => AnyStore::create(target)?,
            Err(e) => return Err(e),
        };
        let shown = target.to_string();
        self.record(
            AuditEvent::ok("vault.copy").detail(json!({"to": shown, "database": target.kind()})),
            now,
        )?;
        let copied = self.copy_rows(&mut target_store, replace);
        match copied {
            Ok(mut report) => {
                report.to = shown;
                Ok(report)
            }
            Err(e) => {
                let mut failed = AuditEvent::ok("vault.copy")
                    .detail(json!({"to": shown, "reason": e.to_string()}));
                failed.outcome = "failed".into();
                let _ = self.record(failed, now);
                Err(e)
            }
        }
    }

    fn copy_rows(&mut self, target_store: &mut AnyStore, replace: bool) -> Result<CopyReport> {
        let (tables, source_head) = {
            let source = self.store.read()?;
            let target_tx = target_store.write()?;
            let tables = copy::tables(&target_tx)?;
            let source_tables = copy::tables(&source)?;
            for table in &tables {
                let theirs = source_tables.iter().find(|t| t.name == table.name);
                if theirs.map(|t| &t.columns) != Some(&table.columns) {
                    return Err(Error::Invalid(format!(
                        "table {} differs between the two databases: are both at schema version {}?",
                        table.name,
                        crate::store::migrations::LATEST
                    )));
                }
            }
            if replace {
                copy::clear(&target_tx, &tables)?;
            }
            let mut counted = Vec::with_capacity(tables.len());
            for table in &tables {
                let rows = copy::copy_table(&source, &target_tx, table)?;
                let (in_source, in_target) = (
                    copy::count(&source, &table.name)?,
                    copy::count(&target_tx, &table.name)?,
                );
                if rows != in_source || rows != in_target {
                    return Err(Error::Database(format!(
                        "table {}: {in_source} rows in the source, {rows} copied, {in_target} in the target",
                        table.name
                    )));
                }
                counted.push((table.name.clone(), rows));
            }
            copy::check_references(&target_tx)?;
            copy::continue_ids(&target_tx)?;
            let head = source.audit_last()?.map(|row| row.hash);
            target_tx.commit()?;
            (counted, head)
        };
        // The copy is a vault this key opens, with the same history.
        let target_tx = target_store.read()?;
        let keys = open_audit_keys(&target_tx, &self.key).map_err(|e| {
            Error::Database(format!("the copy does not open with this vault's key: {e}"))
        })?;
        let rows = target_tx.audit_all()?;
        let report = audit::verify_chain(&rows, &|epoch| keys.get(&epoch).map(|k| **k));
        if let Some((seq, why)) = report.first_bad {
            return Err(Error::Database(format!(
                "the copy's audit chain fails at entry {seq}: {why}"
            )));
        }
        if rows.last().map(|r| &r.hash) != source_head.as_ref() {
            return Err(Error::Database(
                "the copy's newest audit entry is not the source's".into(),
            ));
        }
        Ok(CopyReport {
            to: String::new(),
            tables,
            audit_entries: report.entries,
            head: report.head,
        })
    }
}
