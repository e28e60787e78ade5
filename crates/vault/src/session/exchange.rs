//! Seed files in and out of the vault: how a file's records become tokens
//! and tokens become records, and the audited export. The command line and
//! the web console both import and export through here.

use std::collections::HashSet;

use oathdesk_formats::format::{self, Format, WriteOptions};
use oathdesk_formats::spreadsheet::{Sheet, SheetRow};
use oathdesk_formats::{Record, Written};
use oathdesk_otp::{Credential, Kind, TimeStep};
use serde_json::json;

use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::model::{CredentialRow, State};
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

impl<S: Store> Session<S> {
    /// Imports the helpdesk's plaintext spreadsheet, all or nothing: a sheet
    /// with bad rows is refused unless `skip_bad`, and then the skipped rows
    /// are named in the audit entry (line and reason) — never dropped
    /// silently. Returns how many credentials were added.
    pub fn import_sheet(&mut self, sheet: Sheet, skip_bad: bool, now: u64) -> Result<usize> {
        let bad = sheet.problems.len();
        if bad > 0 && !skip_bad {
            return Err(Error::Invalid(format!(
                "{bad} bad row(s); nothing was imported (fix them, or skip them to import the {} \
                 good row(s))",
                sheet.rows.len()
            )));
        }
        let skipped: Vec<String> = sheet.problems.iter().map(ToString::to_string).collect();
        let count = sheet.rows.len();
        let tokens = sheet.rows.into_iter().map(sheet_row_to_token).collect();
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
        self.record(
            AuditEvent::ok("export").detail(json!({
                "format": format.name(),
                "encrypted": options.password.is_some() || options.key.is_some(),
                "count": exported.len(),
                "credentials": exported,
            })),
            now,
        )?;
        Ok(written)
    }
}
