//! `oathdesk vault backup` and `oathdesk vault restore`: a verified copy
//! of a SQLite vault taken while a console runs, and putting one back.
//! The checks are the vault library's; this module only translates.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use oathdesk_vault::{Location, Unlock};
use zeroize::Zeroizing;

use crate::input;
use crate::unlock::VaultOptions;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The file to write (created readable by you only).
    pub file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup to restore.
    pub file: PathBuf,
    /// The vault file to replace [default: the one --vault or OATHDESK_VAULT names].
    #[arg(long, value_name = "VAULT")]
    pub to: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn backup(args: BackupArgs, options: &VaultOptions) -> Result<()> {
    let mut session = options.unlock()?;
    let report = session.backup_to(&args.file, args.force, input::now())?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "backed up to {}: {} signed row(s) and {} audit entries verified, head {}",
            report.file,
            report.rows_checked,
            report.audit_entries,
            report.head.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

pub fn restore(args: RestoreArgs, options: &VaultOptions) -> Result<()> {
    let vault = match &args.to {
        Some(path) => path.clone(),
        None => match options.location()? {
            Location::Sqlite(path) => path,
            Location::Postgres(_) => bail!(
                "restore replaces a SQLite vault file: for PostgreSQL, restore its pg_dump with \
                 pg_restore, or copy a SQLite backup in with 'oathdesk vault copy --from FILE --to \
                 URL --replace' (docs/backup-and-recovery.md)"
            ),
        },
    };
    let operator = options.operator()?;
    let report = if let Some(identity_path) = &options.identity {
        let text = Zeroizing::new(std::fs::read_to_string(identity_path).with_context(|| {
            format!("cannot read the identity file {}", identity_path.display())
        })?);
        oathdesk_vault::restore(
            &args.file,
            &vault,
            &operator,
            Unlock::Identity(&text),
            input::now(),
        )?
    } else {
        let passphrase = options.passphrase(&format!(
            "Passphrase for {operator} (as it was when the backup was taken): "
        ))?;
        oathdesk_vault::restore(
            &args.file,
            &vault,
            &operator,
            Unlock::Passphrase(passphrase.as_bytes()),
            input::now(),
        )?
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "restored {} to {}: {} signed row(s) and {} audit entries verified, head {}",
            args.file.display(),
            report.vault,
            report.rows_checked,
            report.audit_entries,
            report.head.as_deref().unwrap_or("-")
        );
        if let Some(kept) = &report.kept_as {
            println!("the vault it replaced is kept as {kept}");
        }
    }
    Ok(())
}
