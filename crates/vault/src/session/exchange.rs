//! Seed files in and out of the vault: how a file's records become tokens
//! and tokens become records, and the audited export. The command line and
//! the web console both import and export through here.

use std::collections::HashSet;

use oathdesk_formats::format::{self, Format, WriteOptions};
use oathdesk_formats::lint::{Finding, Severity};
use oathdesk_formats::spreadsheet::{Sheet, SheetRow};
use oathdesk_formats::{Record, Written};
use oathdesk_otp::{Credential, Kind, TimeStep};
use serde::Serialize;
use serde_json::json;

use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::model::{CredentialRow, State};
use crate::policy::Permission;
use crate::session::{NewToken, Session, TokenInfo, defaults};
use crate::store::{CredentialFilter, Store};

/// A record of a seed file as a token to add, by the [`defaults`]: a
/// serial with a slot is a profile of a multi-profile device, a serial
/// alone a classic token.
pub fn record_to_token(record: Record) -> NewToken {
    let kind = defaults::device_kind(record.serial.as_deref(), record.slot);
    NewToken {
        serial: record.serial,
        slot: record.slot,
        device_kind: kind,
        manufacturer: record.manufacturer,
        model: record.model,
        device_slots: defaults::slots(kind),
        label: Some(record.credential.account.clone()).filter(|a| !a.is_empty()),
        credential: record.credential,
        user: record.user,
        state: State::Stock,
    }
}

/// A row of the helpdesk's plaintext spreadsheet as a token to add
/// (assigned to its user).
pub fn sheet_row_to_token(row: SheetRow) -> NewToken {
    let mut credential = Credential::totp(row.secret);
    credential.kind = Kind::Totp {
        step: TimeStep::new(row.period, 0).expect("the reader refuses period 0"),
    };
    NewToken {
        device_kind: defaults::device_kind(row.serial.as_deref(), None),
        serial: row.serial,
        slot: None,
        manufacturer: row.manufacturer,
        model: row.model,
        device_slots: 1,
        credential,
        label: None,
        user: Some(row.user),
        state: State::Assigned,
    }
}

/// A token with its opened secret as a record to write.
pub fn token_to_record(info: &TokenInfo, credential: Credential) -> Record {
    let mut record = Record::new(credential);
    record.serial = info.serial.clone();
    record.slot = info.slot;
    record.user = info.user.clone();
    record.manufacturer = info.manufacturer.clone();
    record.model = info.model.clone();
    record
}

/// A row an import leaves out when told to skip bad rows: where, and every
/// problem found there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    /// `line 4`, `KeyPackage 2`, …
    pub location: String,
    pub problems: Vec<String>,
}

/// What importing a file would do, decided once for every front-end: the
/// records it would add, the rows a skip of bad rows leaves out, and the
/// problems of the whole file that no skip can get past. A file with any
/// problem is imported only when the request explicitly skips bad rows
/// ([`Session::import_file`], [`Session::import_sheet`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportPlan {
    /// Indexes (into the file's records or the sheet's rows) of what would be imported.
    pub good: Vec<usize>,
    pub skipped: Vec<SkippedRow>,
    /// Problems of the whole file: it is refused whatever the request says.
    pub blocking: Vec<String>,
}

impl ImportPlan {
    /// Every problem, by place, as a person reads them.
    pub fn problems(&self) -> Vec<String> {
        let mut all = self.blocking.clone();
        for row in &self.skipped {
            for problem in &row.problems {
                all.push(format!("{}: {problem}", row.location));
            }
        }
        all
    }

    /// The refusal of an import that did not skip bad rows (or of a file
    /// whose problems cannot be skipped), if it is refused.
    pub fn check(&self, skip_bad: bool) -> Result<()> {
        if !self.blocking.is_empty() {
            return Err(Error::ImportProblems {
                problems: self.problems(),
                importable: None,
            });
        }
        if !self.skipped.is_empty() && !skip_bad {
            return Err(Error::ImportProblems {
                problems: self.problems(),
                importable: Some(self.good.len()),
            });
        }
        Ok(())
    }

    fn add(&mut self, location: String, problem: String) {
        match self.skipped.iter_mut().find(|row| row.location == location) {
            Some(row) => row.problems.push(problem),
            None => self.skipped.push(SkippedRow {
                location,
                problems: vec![problem],
            }),
        }
    }
}

fn serial_refusal(serial: Option<&str>) -> Option<String> {
    let serial = serial?.trim();
    crate::model::check_serial(serial)
        .err()
        .map(|e| e.to_string())
}

/// The plan of a seed file: its records, and the lint's findings about it
/// (`oathdesk lint`; its errors are problems, its warnings are not) and the
/// serial rule ([`crate::model::serial_problem`]).
pub fn plan_records(records: &[Record], findings: &[Finding]) -> ImportPlan {
    let mut plan = ImportPlan::default();
    for finding in findings.iter().filter(|f| f.severity == Severity::Error) {
        let message = match &finding.field {
            Some(field) => format!("{field}: {}", finding.message),
            None => finding.message.clone(),
        };
        match &finding.location {
            Some(location) => plan.add(location.clone(), message),
            None => plan.blocking.push(message),
        }
    }
    for record in records {
        if let Some(problem) = serial_refusal(record.serial.as_deref()) {
            let location = record
                .location
                .describe()
                .unwrap_or_else(|| "a record".to_owned());
            plan.add(location, format!("serial: {problem}"));
        }
    }
    for (index, record) in records.iter().enumerate() {
        let bad = record.location.describe().is_some_and(|place| {
            plan.skipped
                .iter()
                .any(|row| row.location == place && !row.problems.is_empty())
        }) || serial_refusal(record.serial.as_deref()).is_some();
        if !bad {
            plan.good.push(index);
        }
    }
    plan
}

/// The plan of the helpdesk's spreadsheet: the reader's problems and the
/// serial rule, by line.
pub fn plan_sheet(sheet: &Sheet) -> ImportPlan {
    let mut plan = ImportPlan::default();
    for problem in &sheet.problems {
        plan.add(
            format!("line {}", problem.line),
            format!("{}: {}", problem.field, problem.problem),
        );
    }
    for (index, row) in sheet.rows.iter().enumerate() {
        match serial_refusal(row.serial.as_deref()) {
            Some(problem) => plan.add(format!("line {}", row.line), format!("serial: {problem}")),
            None => plan.good.push(index),
        }
    }
    plan
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub imported: usize,
    /// The rows left out (the request skipped bad rows), by place.
    pub skipped: Vec<SkippedRow>,
}

impl<S: Store> Session<S> {
    /// Imports a seed file's records as [`plan_records`] plans it: a file
    /// with problems is refused ([`Error::ImportProblems`], every problem by
    /// line) unless `skip_bad`, and then the skipped rows are named in the
    /// audit entry. The rest is all or nothing.
    pub fn import_file(
        &mut self,
        records: Vec<Record>,
        findings: &[Finding],
        format: Format,
        skip_bad: bool,
        now: u64,
    ) -> Result<Imported> {
        self.require(Permission::InventoryWrite)?;
        let plan = plan_records(&records, findings);
        plan.check(skip_bad)?;
        let good: HashSet<usize> = plan.good.iter().copied().collect();
        let tokens: Vec<NewToken> = records
            .into_iter()
            .enumerate()
            .filter(|(index, _)| good.contains(index))
            .map(|(_, record)| record_to_token(record))
            .collect();
        let imported = tokens.len();
        self.add_tokens_audited(
            tokens,
            now,
            &format!("import.{format}"),
            json!({"skipped": plan.problems()}),
        )?;
        Ok(Imported {
            imported,
            skipped: plan.skipped,
        })
    }

    /// Imports the helpdesk's plaintext spreadsheet, all or nothing: a sheet
    /// with bad rows (the reader's problems, the serial rule) is refused
    /// unless `skip_bad`, and then the skipped rows are named in the audit
    /// entry (line and reason) — never dropped silently. Returns how many
    /// credentials were added.
    pub fn import_sheet(&mut self, sheet: Sheet, skip_bad: bool, now: u64) -> Result<usize> {
        let plan = plan_sheet(&sheet);
        plan.check(skip_bad)?;
        let skipped = plan.problems();
        let good: HashSet<usize> = plan.good.iter().copied().collect();
        let tokens: Vec<NewToken> = sheet
            .rows
            .into_iter()
            .enumerate()
            .filter(|(index, _)| good.contains(index))
            .map(|(_, row)| sheet_row_to_token(row))
            .collect();
        let count = tokens.len();
        self.add_tokens_audited(
            tokens,
            now,
            "import.spreadsheet",
            json!({"skipped": skipped}),
        )?;
        Ok(count)
    }

    /// Adds every record of a seed file, all or nothing, audited as
    /// `import.FORMAT`.
    pub fn import_records(
        &mut self,
        records: Vec<Record>,
        format: Format,
        now: u64,
    ) -> Result<Vec<CredentialRow>> {
        let tokens = records.into_iter().map(record_to_token).collect();
        self.add_tokens(tokens, now, &format!("import.{format}"))
    }

    /// Writes the held secrets `filter` selects as `format`, and records the
    /// export (format, encryption, which credentials) in the audit log.
    /// Records the format cannot carry are in the result's `skipped`.
    pub fn export(
        &mut self,
        filter: &CredentialFilter,
        format: Format,
        options: &WriteOptions,
        now: u64,
    ) -> Result<Written> {
        let (tokens, records): (Vec<TokenInfo>, Vec<Record>) = self
            .reveal_all(filter)?
            .into_iter()
            .map(|(info, credential)| {
                let record = token_to_record(&info, credential);
                (info, record)
            })
            .unzip();
        let written =
            format::write(format, &records, options).map_err(|e| Error::Invalid(e.to_string()))?;
        let skipped: HashSet<usize> = written.skipped.iter().map(|s| s.index).collect();
        let exported: Vec<String> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| !skipped.contains(i))
            .map(|(_, info)| info.reference())
            .collect();
        let mut event = AuditEvent::ok("export").detail(json!({
            "format": format.name(),
            "encrypted": options.password.is_some() || options.key.is_some(),
            "count": exported.len(),
            "credentials": exported,
        }));
        if matches!(format, Format::EntraCsv | Format::EntraJson) {
            // An admin uploads this file to Entra: record the serials it
            // holds, so that a push links those tokens as this vault's own.
            let serials: Vec<(i64, String)> = tokens
                .iter()
                .zip(&records)
                .enumerate()
                .filter(|(i, _)| !skipped.contains(i))
                .filter_map(|(_, (info, record))| {
                    oathdesk_formats::entra::entra_serial(record, &options.profile_serial)
                        .map(|serial| (info.id, serial))
                })
                .collect();
            event.detail["entra_serials"] =
                json!(serials.iter().map(|(_, s)| s).collect::<Vec<_>>());
            self.entra_record_csv_export(&serials, event, now)?;
        } else {
            self.record(event, now)?;
        }
        Ok(written)
    }
}
