//! `oathdesk custody`: export a serial range's secrets encrypted to a
//! recipient's age key, recording custody (to whom, when, which file) for
//! each token in the vault; and check a file handed over against that record.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use oathdesk_formats::format::Format;
use oathdesk_vault::{SerialSelector, custody::file_sha256};

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
    Check {
        file: PathBuf,
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
        CustodyCommand::Check { file, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let sha = file_sha256(&bytes);
            let entries = session.custody_of_file(&sha)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file_sha256": sha, "tokens": entries})
                );
            } else if entries.is_empty() {
                eprintln!(
                    "oathdesk: {} (SHA-256 {sha}) is not a file this vault exported: no custody \
                     record matches; it may have been altered or come from elsewhere",
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
