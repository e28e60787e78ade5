//! `oathdesk custody`: export a serial range's secrets encrypted to a
//! recipient's age key, recording custody (to whom, when, which file) for
//! each token in the vault; and check a file handed over against that record.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use oathdesk_formats::Record;
use oathdesk_formats::format::Format;
use oathdesk_vault::{CustodyCheck, Error, SerialSelector, Session, custody::file_sha256};

use crate::commands::files::{KeyArgs, read_records};
use crate::commands::selfservice::utc;
use crate::input;
use crate::unlock::VaultOptions;

#[derive(Subcommand, Debug)]
pub enum CustodyCommand {
    /// Export the held secrets of a serial range, encrypted to an age recipient, and
    /// record custody of each token (exported_on, recipient, the file's SHA-256).
    #[command(after_help = "\
SERIALS is FIRST..LAST (same prefix, numbers of the same width: OATH0001..OATH0500), a pattern \
with * and ? (2100*), or one serial. The recipient decrypts the file with their age identity \
('age -d -i key.txt FILE'). One audit entry lists every token exported.

Example:
  oathdesk custody export --serial 'OATH0001..OATH0500' --recipient age1... --out batch-7.csv.age")]
    Export {
        #[arg(long, value_name = "SERIALS")]
        serial: String,
        /// The recipient's age public key (age1…).
        #[arg(long, value_name = "AGE_KEY")]
        recipient: String,
        /// The seed-file format inside the encryption.
        #[arg(long, default_value = "oath-csv")]
        format: Format,
        /// Where to write the encrypted file (it is not written to the terminal).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check a handed-over file against the custody record: which tokens it
    /// carries, to whom and since when. Exit 2 if the vault has no record of it.
    #[command(after_help = "\
The file exported, unchanged, is matched by its SHA-256. Any other seed file (decrypted, \
converted to another format, or holding only some of the tokens) is read like an import and \
matched token by token: by each secret's keyed fingerprint (recorded at export; never the \
secret), else by serial. 'oathdesk import' runs the same check and says what it found.")]
    Check {
        file: PathBuf,
        /// The format when the file is read token by token ('auto' detects it).
        #[arg(long, default_value = "auto")]
        format: String,
        #[command(flatten)]
        keys: KeyArgs,
        #[arg(long)]
        json: bool,
    },
    /// List the tokens a serial range or pattern selects (no secrets).
    Select {
        #[arg(long, value_name = "SERIALS")]
        serial: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: CustodyCommand, options: &VaultOptions) -> Result<ExitCode> {
    let mut session = options.unlock()?;
    match command {
        CustodyCommand::Export {
            serial,
            recipient,
            format,
            out,
            json,
        } => {
            let selector = SerialSelector::parse(&serial)?;
            if out.exists() {
                bail!("{} exists already: choose a new file name", out.display());
            }
            let export = session.export_custody(&selector, &recipient, format, input::now())?;
            std::fs::write(&out, &export.file)
                .with_context(|| format!("cannot write {}", out.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": out, "file_sha256": export.file_sha256,
                        "tokens": export.entries, "skipped": export.skipped})
                );
            } else {
                for entry in &export.entries {
                    println!("{}", entry.credential);
                }
                eprintln!(
                    "oathdesk: {} token(s) exported to {} for {} (SHA-256 {}); custody recorded",
                    export.entries.len(),
                    out.display(),
                    recipient.trim(),
                    export.file_sha256
                );
                if !export.skipped.is_empty() {
                    eprintln!(
                        "oathdesk: {} left out (the format cannot carry them): {}",
                        export.skipped.len(),
                        export.skipped.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CustodyCommand::Check {
            file,
            format,
            keys,
            json,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sha = file_sha256(&bytes);
            let entries = session.custody_of_file(&sha)?;
            if entries.is_empty() && !bytes.starts_with(b"age-encryption.org/") {
                // Not the exported file as it was: its tokens may still be.
                return check_content(&mut session, &file, &format, &keys, &sha, json);
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file_sha256": sha, "tokens": entries})
                );
            } else if entries.is_empty() {
                eprintln!(
                    "oathdesk: {} (SHA-256 {sha}) is not a file this vault exported: no custody \
                     record matches; it may have been altered or come from elsewhere (an \
                     encrypted file: decrypt it with 'age -d' and check the plain file to match \
                     its tokens one by one)",
                    file.display()
                );
            } else {
                for entry in &entries {
                    println!(
                        "{}\t{}\t{}\t{}",
                        entry.credential,
                        entry.recipient,
                        crate::commands::selfservice::utc(entry.exported_on),
                        entry.exported_by
                    );
                }
                eprintln!(
                    "oathdesk: {} matches the custody record of {} token(s)",
                    file.display(),
                    entries.len()
                );
            }
            Ok(if entries.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        CustodyCommand::Select { serial, json } => {
            let tokens = session.tokens_by_serial(&SerialSelector::parse(&serial)?)?;
            if json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else {
                crate::commands::token::print_tokens(&tokens);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `custody check` of a file that is not one exported as it was: read it as
/// an import would, and match its tokens. Exit 2 when none matches.
fn check_content(
    session: &mut Session,
    file: &std::path::Path,
    format: &str,
    keys: &KeyArgs,
    sha: &str,
    json: bool,
) -> Result<ExitCode> {
    let from = if format.eq_ignore_ascii_case("auto") {
        None
    } else {
        Some(format.parse::<Format>().map_err(|e| anyhow!("{e}"))?)
    };
    let records = match read_records(file, from, &keys.keys()?) {
        Ok((_, read)) => read.records,
        Err(e) => {
            eprintln!(
                "oathdesk: {} (SHA-256 {sha}) is not a file this vault exported, and its tokens \
                 cannot be read to match them one by one: {e}",
                file.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    let check = session.custody_check(sha, &records)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"file_sha256": sha, "tokens": check.by_file,
                "content": check, "batches": check.batches()})
        );
    } else {
        for found in &check.found {
            let c = &found.custody;
            println!(
                "{}\t{}\t{}\t{}\tby {}",
                found.token,
                c.recipient,
                utc(c.exported_on),
                c.credential,
                serde_json::to_value(found.matched_by)?
                    .as_str()
                    .unwrap_or_default()
            );
        }
        print_custody(&file.display().to_string(), &check);
    }
    Ok(if check.found.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the custody records say of a file's tokens, on stderr: one line
/// per export they came from ("N of M tokens were exported on DATE to
/// RECIPIENT"), and the tokens whose serial went out with another secret.
pub fn print_custody(name: &str, check: &CustodyCheck) {
    for batch in check.batches() {
        eprintln!(
            "oathdesk: {name}: {} of {} token(s) were exported on {} to {} by {} (custody record, \
             file SHA-256 {})",
            batch.tokens,
            check.total,
            utc(batch.exported_on),
            batch.recipient,
            batch.exported_by,
            batch.file_sha256
        );
    }
    if !check.other_secret.is_empty() {
        eprintln!(
            "oathdesk: {name}: {} token(s) carry a serial this vault exported with another secret: {}",
            check.other_secret.len(),
            check.other_secret.join(", ")
        );
    }
    if check.found.is_empty() && check.other_secret.is_empty() {
        eprintln!(
            "oathdesk: {name}: none of its {} token(s) has a custody record in this vault",
            check.total
        );
    }
}

/// The custody check an import makes before it imports: said when some of
/// the file's tokens were exported by this vault; silent for an operator
/// who may not read the inventory, and a warning (never a refusal of the
/// import) when the check itself fails.
pub fn note_on_import(session: &mut Session, name: &str, sha: &str, records: &[Record]) {
    match session.custody_check(sha, records) {
        Ok(check) if !check.found.is_empty() || !check.other_secret.is_empty() => {
            print_custody(name, &check)
        }
        Ok(_) | Err(Error::Forbidden { .. }) => {}
        Err(e) => eprintln!("oathdesk: warning: {name}: the custody check failed: {e}"),
    }
}
