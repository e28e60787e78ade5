//! `oathdesk audit ship`: entries from the vault to a SIEM sink, again.
//!
//! The vault's audit rows are the source of truth; a sink is a copy. When a
//! sink reported a gap (its queue overflowed while it was down) or a new
//! SIEM wants the history, this sends the range from the vault, in order,
//! in the same line form as the live sink (`docs/siem.md`).

use std::process::ExitCode;

use anyhow::{Result, bail};
use oathdesk_auditsink::{Connection, Line, SinkSpec};
use oathdesk_vault::audit::AuditRecord;

use crate::unlock::VaultOptions;

pub fn run(
    to: SinkSpec,
    from: i64,
    through: Option<i64>,
    options: &VaultOptions,
) -> Result<ExitCode> {
    if from < 1 || through.is_some_and(|last| last < from) {
        bail!("--from must be at least 1 and --through at least --from (entries count from 1)");
    }
    let mut session = options.unlock()?;
    let entries = session.audit_entries()?;
    let newest = entries.last().map_or(0, |e| e.seq);
    if from > newest {
        bail!("--from {from}: the audit log ends at entry {newest}; nothing to send");
    }
    let mut connection = Connection::new(to.clone());
    let mut sent = 0u64;
    let mut first = None;
    for row in entries
        .iter()
        .filter(|e| e.seq >= from && through.is_none_or(|last| e.seq <= last))
    {
        if let Err(error) = connection.send(&Line::Entry(Box::new(AuditRecord::of(row)))) {
            bail!(
                "audit entry {} could not be sent to {to} ({error}); {sent} entries before it went. \
                 When the sink is back, run again with --from {}",
                row.seq,
                row.seq
            );
        }
        first.get_or_insert(row.seq);
        sent += 1;
    }
    // The summary goes to stderr: the sink may be stdout.
    match first {
        Some(first) => eprintln!(
            "sent {sent} audit entries ({first} to {}) to {to}",
            first + sent as i64 - 1
        ),
        None => eprintln!("no audit entries in that range"),
    }
    Ok(ExitCode::SUCCESS)
}
