//! `oathdesk vault`, `oathdesk operator`, `oathdesk audit`: the vault
//! itself, who may open it, and what happened in it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_vault::audit::AuditHead;
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::{Location, NewOperator, Role, Vault, settings};
use serde_json::json;

use crate::input::{self, rfc3339};
use crate::unlock::{VaultOptions, read_passphrase};

#[derive(Subcommand, Debug)]
pub enum VaultCommand {
    /// Create a vault with yourself as its first operator.
    #[command(after_help = "\
The passphrase comes from --passphrase-file, OATHDESK_PASSPHRASE or a prompt. Argon2id costs \
default to 256 MiB and 2 passes (about half a second to unlock); lower them only for tests.

Example:
  oathdesk vault init --operator alice")]
    Init(InitArgs),
    /// Replace the vault key: re-seal every secret, re-wrap it for every
    /// remaining operator. Run it after removing an operator.
    Rekey,
    /// Show the settings.
    Settings {
        #[arg(long)]
        json: bool,
    },
    /// Change a setting (helpdesk.codes_per_hour, purge.grace_seconds, deliver.window_steps,
    /// entra.on_lost = report | unassign | delete).
    Set { name: String, value: String },
    /// Copy the vault to another database (SQLite ⇄ PostgreSQL), secrets still sealed.
    #[command(after_help = "\
Unlocks the source as you (so the copy is recorded in its audit log), checks its audit chain, \
copies every row in one transaction from one snapshot, then verifies the copy's chain with the \
vault key. The copy opens with the same operators and passphrases.

Examples:
  oathdesk vault copy --to 'postgres://oathdesk@db/helpdesk?schema=vault'
  oathdesk vault copy --from 'postgres://oathdesk@db/helpdesk?schema=vault' --to backup.db")]
    Copy(CopyArgs),
    /// Check the signature of every row that decides an action, and the audit chain.
    #[command(after_help = "\
Credentials (user, state, serial, slot, parameters, purge marks), users, devices, settings, \
operators' roles, Entra links and released time steps each carry a MAC under the vault key. \
A row edited in the database without oathdesk is listed here (and refused when it would be acted \
on). Exit 0: all intact; 2: something was altered.")]
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write a verified copy of a SQLite vault while a console keeps running.
    #[command(after_help = "\
Takes one consistent snapshot with SQLite's backup API, writes it beside FILE, checks it as \
'vault verify' does (every signed row and the audit chain, with the vault key), then gives it \
its name, readable by you only. Admins only; audited (vault.backup). For a PostgreSQL vault use \
pg_dump or 'vault copy --to sqlite://FILE'.

Example:
  oathdesk vault backup /var/backups/oathdesk/vault-$(date +%F).db")]
    Backup(crate::commands::backup::BackupArgs),
    /// Replace a SQLite vault with a backup, after checking the backup.
    #[command(after_help = "\
You unlock the backup (as an admin, with the passphrase you had then); it is checked as \
'vault verify' does before anything is replaced. Refused while a console or another command has \
the vault open. The replaced file is kept as VAULT.before-restore-TIME; the restore is audited \
in the restored vault (vault.restore).

Example:
  oathdesk vault restore /var/backups/oathdesk/vault-2026-12-04.db --to /var/lib/oathdesk/vault.db")]
    Restore(crate::commands::backup::RestoreArgs),
    /// Break-glass recovery: shares of a key that make a new admin.
    #[command(subcommand)]
    Recovery(crate::commands::recovery::RecoveryCommand),
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The vault to copy [default: the one --vault/--database or the environment name].
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// Where the copy goes: a new file, an empty database or schema (postgres://…, sqlite://…, a path).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Overwrite a vault that is already at the target.
    #[arg(long)]
    pub replace: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Argon2id memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = KdfParams::DEFAULT.memory_kib / 1024)]
    pub kdf_memory_mib: u32,
    /// Argon2id passes.
    #[arg(long, value_name = "N", default_value_t = KdfParams::DEFAULT.iterations)]
    pub kdf_iterations: u32,
    /// Argon2id lanes.
    #[arg(long, value_name = "N", default_value_t = KdfParams::DEFAULT.parallelism)]
    pub kdf_parallelism: u32,
}

impl InitArgs {
    /// The parameters asked for, checked against the vault's minimum
    /// before any passphrase is asked for.
    pub(crate) fn kdf(&self) -> Result<KdfParams> {
        let kdf = KdfParams {
            memory_kib: self.kdf_memory_mib.max(1).saturating_mul(1024),
            iterations: self.kdf_iterations,
            parallelism: self.kdf_parallelism,
        };
        kdf.check_minimum()
            .map_err(|e| anyhow!("--kdf-memory-mib: {e}"))?;
        Ok(kdf)
    }
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// List operators (no passphrase needed).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Let someone else open the vault with their own passphrase or age identity.
    #[command(after_help = "\
The new operator's passphrase comes from --new-passphrase-file, OATHDESK_NEW_PASSPHRASE or a \
prompt; with --recipient they unlock with their age identity file (--identity) instead.")]
    Add(AddOperatorArgs),
    /// Give an operator another role (admin, provisioner, helpdesk, auditor).
    Role {
        name: String,
        /// admin, provisioner, helpdesk or auditor.
        role: Role,
    },
    /// Remove an operator's key slot (then run 'oathdesk vault rekey').
    Remove { name: String },
}

#[derive(Args, Debug)]
pub struct AddOperatorArgs {
    /// The new operator's name.
    pub name: String,
    /// What they may do: admin, provisioner, helpdesk or auditor.
    #[arg(long, default_value = "helpdesk")]
    pub role: Role,
    /// Their age X25519 public key (age1…), instead of a passphrase.
    #[arg(long, value_name = "AGE1…", conflicts_with = "new_identity_file")]
    pub recipient: Option<String>,
    /// Make a new age identity for them and write it to FILE (created, readable by you
    /// only), instead of a passphrase: for a console's --unseal-key-file.
    #[arg(long, value_name = "FILE", conflicts_with = "new_passphrase_file")]
    pub new_identity_file: Option<PathBuf>,
    /// File holding the new operator's passphrase.
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: InitArgs,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the audit log, oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain and MACs; exit 1 naming the first bad entry.
    #[command(after_help = "\
Prints the chain's head (SEQ:HASH). Keep it somewhere else and pass it back with --expect-head: \
entries removed from the end of the log are caught that way.")]
    Verify {
        /// A head kept outside the database, which must still be in the chain: SEQ:HASH as
        /// an earlier verify printed it, a head line from the console's log or the head
        /// file, or @FILE (its last line).
        #[arg(long, value_name = "HEAD")]
        expect_head: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send entries from the vault to a SIEM sink again (after a gap report, or to give a
    /// new SIEM the history), in the same form as the live sink.
    #[command(after_help = "\
Example: oathdesk audit ship --to syslog+tcp://siem.example.org:601 --from 120\n\
The fields are listed in docs/siem.md.")]
    Ship {
        /// Where: file:PATH, stdout, syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT or
        /// syslog+unix:///dev/log (add ?facility=local0 to a syslog one).
        #[arg(long, value_name = "SINK")]
        to: oathdesk_auditsink::SinkSpec,
        /// The first entry to send.
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        from: i64,
        /// The last entry to send [default: the newest].
        #[arg(long, value_name = "SEQ")]
        through: Option<i64>,
    },
}

pub fn run_vault(command: VaultCommand, options: &VaultOptions) -> Result<ExitCode> {
    if let VaultCommand::Verify { json } = command {
        return verify(json, options);
    }
    run_vault_change(command, options).map(|()| ExitCode::SUCCESS)
}

fn run_vault_change(command: VaultCommand, options: &VaultOptions) -> Result<()> {
    match command {
        VaultCommand::Init(args) => {
            let kdf = args.kdf()?;
            let location = options.location()?;
            let operator = options.operator()?;
            let passphrase = options.passphrase(&format!("New passphrase for {operator}: "))?;
            if options.passphrase_file.is_none()
                && std::env::var(crate::unlock::PASSPHRASE_ENV).is_err()
            {
                let again = read_passphrase(None, crate::unlock::PASSPHRASE_ENV, "Repeat it: ")?;
                if again.as_str() != passphrase.as_str() {
                    bail!("the two passphrases differ; nothing was created");
                }
            }
            Vault::create_at(
                &location,
                &operator,
                passphrase.as_bytes(),
                kdf,
                input::now(),
            )?;
            eprintln!("oathdesk: created {location} with operator {operator}");
            Ok(())
        }
        VaultCommand::Rekey => {
            let mut session = options.unlock()?;
            let count = session.rekey(input::now())?;
            eprintln!("oathdesk: new vault key; {count} secret(s) re-sealed");
            Ok(())
        }
        VaultCommand::Settings { json } => {
            let mut session = options.unlock()?;
            let mut values = serde_json::Map::new();
            for setting in settings::ALL {
                let value = session.setting(setting)?;
                values.insert(
                    setting.0.to_owned(),
                    if setting.0 == settings::ENTRA_ON_LOST.0 {
                        json!(settings::describe(setting.0, value))
                    } else {
                        json!(value)
                    },
                );
            }
            if json {
                println!("{}", serde_json::Value::Object(values));
            } else {
                for (name, value) in values {
                    let shown = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    println!("{name:<26} {shown}");
                }
            }
            Ok(())
        }
        VaultCommand::Set { name, value } => {
            let number = settings::parse_value(&name, &value)?;
            options.unlock()?.set_setting(&name, number, input::now())?;
            println!(
                "{name} set to {} (audited)",
                settings::describe(&name, number)
            );
            Ok(())
        }
        VaultCommand::Copy(args) => copy(args, options),
        VaultCommand::Backup(args) => crate::commands::backup::backup(args, options),
        VaultCommand::Restore(args) => crate::commands::backup::restore(args, options),
        VaultCommand::Recovery(command) => crate::commands::recovery::run(command, options),
        VaultCommand::Verify { .. } => unreachable!("answered above"),
    }
}

/// Writes a new age identity to `path` (which must not exist), readable by
/// its owner only; returns its public key.
fn write_new_identity(path: &std::path::Path) -> Result<String> {
    use std::io::Write;
    let (identity, recipient) = oathdesk_vault::crypto::new_identity();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {}: {e} (it must not exist yet)",
            path.display()
        )
    })?;
    file.write_all(format!("# oathdesk operator identity\n{}\n", identity.as_str()).as_bytes())?;
    Ok(recipient)
}

/// `vault verify`: every signed row and the audit chain; exit 2 if
/// anything was altered.
fn verify(json: bool, options: &VaultOptions) -> Result<ExitCode> {
    let report = options.unlock()?.verify_vault()?;
    Ok(print_vault_report(&serde_json::to_value(&report)?, json))
}

/// Prints what `vault verify` found (here, or through a console); exit 2
/// if anything was altered.
pub fn print_vault_report(report: &serde_json::Value, json: bool) -> ExitCode {
    let intact = report["intact"].as_bool().unwrap_or(false);
    if json {
        println!("{report}");
    } else {
        let rows = &report["rows"];
        let bad = rows["bad"].as_array().cloned().unwrap_or_default();
        for row in &bad {
            println!(
                "{}: {}",
                row["name"].as_str().unwrap_or("-"),
                row["problem"].as_str().unwrap_or("-")
            );
        }
        if rows["marker_missing"] == true {
            println!(
                "the signed-rows marker (row_macs: vault/rows_signed) was deleted; the audit log says the rows were signed"
            );
        }
        if rows["signed"] == false {
            println!(
                "rows are not signed yet: this vault is from before signed rows; an admin's unlock signs them"
            );
        }
        for serial in report["serials"].as_array().into_iter().flatten() {
            println!(
                "device serial '{}' is from before the serial rule ({}): address its credential(s) as {}",
                serial["serial"].as_str().unwrap_or("-"),
                serial["rule"].as_str().unwrap_or("-"),
                serial["references"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let audit = &report["audit"];
        if let Some([seq, why]) = audit["first_bad"].as_array().map(Vec::as_slice) {
            println!("audit entry {seq} is bad: {}", why.as_str().unwrap_or("-"));
        }
        println!(
            "{}: {} row(s) checked, {} altered, unsigned or deleted; audit log {} entries, head {}",
            if intact {
                "vault intact"
            } else {
                "VAULT ALTERED"
            },
            rows["checked"],
            bad.len(),
            audit["entries"],
            audit["head"].as_str().unwrap_or("-")
        );
    }
    if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

pub fn run_operator(command: OperatorCommand, options: &VaultOptions) -> Result<()> {
    match command {
        OperatorCommand::List { json } => {
            let mut vault = options.open()?;
            let operators = vault.operators()?;
            let recovery = vault.recovery_status()?;
            if json {
                println!("{}", serde_json::to_string(&operators)?);
            } else {
                for o in operators {
                    // Helpdesk and auditor operators sign in with their
                    // passphrase but hold no key: say so, not just "passphrase".
                    let unlock = if o.key_slot {
                        o.unlock.to_owned()
                    } else {
                        format!("{}, no key", o.unlock)
                    };
                    println!(
                        "{:<20} {:<12} {:<22} added {} by {}",
                        o.name,
                        o.role,
                        unlock,
                        rfc3339(o.created_at),
                        o.created_by
                    );
                }
                if let Some(status) = recovery {
                    println!(
                        "{:<20} {}",
                        "(recovery)",
                        crate::commands::recovery::describe(&status)
                    );
                }
            }
            Ok(())
        }
        OperatorCommand::Add(args) => {
            let kdf = args.kdf.kdf()?;
            let mut session = options.unlock()?;
            let recipient = match &args.new_identity_file {
                Some(path) => Some(write_new_identity(path)?),
                None => args.recipient.clone(),
            };
            match &recipient {
                Some(recipient) => session.add_operator(
                    &args.name,
                    NewOperator::Recipient(recipient),
                    args.role,
                    input::now(),
                )?,
                None => {
                    let passphrase = read_passphrase(
                        args.new_passphrase_file.as_ref(),
                        "OATHDESK_NEW_PASSPHRASE",
                        &format!("New passphrase for {}: ", args.name),
                    )?;
                    session.add_operator(
                        &args.name,
                        NewOperator::Passphrase(passphrase.as_bytes(), kdf),
                        args.role,
                        input::now(),
                    )?
                }
            }
            eprintln!("oathdesk: operator {} added as {}", args.name, args.role);
            if let Some(path) = &args.new_identity_file {
                eprintln!(
                    "oathdesk: their age identity is in {}: whoever reads it opens the vault as {}",
                    path.display(),
                    args.name
                );
            }
            if !args.role.may_hold_key() {
                eprintln!(
                    "oathdesk: {} operators hold no key of the vault: {} works through the console \
                     once an admin has unsealed it",
                    args.role, args.name
                );
            }
            Ok(())
        }
        OperatorCommand::Role { name, role } => {
            options
                .unlock()?
                .set_operator_role(&name, role, input::now())?;
            eprintln!("oathdesk: operator {name} is now {role}");
            Ok(())
        }
        OperatorCommand::Remove { name } => {
            options.unlock()?.remove_operator(&name, input::now())?;
            eprintln!(
                "oathdesk: operator {name} removed; run 'oathdesk vault rekey' so that secrets stored from now on \
                 are out of reach of any key they kept"
            );
            Ok(())
        }
    }
}

pub fn run_audit(command: AuditCommand, options: &VaultOptions) -> Result<ExitCode> {
    if let AuditCommand::Ship { to, from, through } = command {
        return crate::commands::audit_ship::run(to, from, through, options);
    }
    let mut session = options.unlock()?;
    match command {
        AuditCommand::List { json } => {
            let entries = session.audit_entries()?;
            if json {
                let rows: Vec<serde_json::Value> = entries
                    .iter()
                    .map(oathdesk_vault::audit::entry_json)
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for e in entries {
                    println!(
                        "{:>6}  {}  {:<12} {:<16} {:<8} {:<28} {:<16} {}  {}",
                        e.seq,
                        rfc3339(e.at),
                        e.operator,
                        e.action,
                        e.outcome,
                        e.user.as_deref().unwrap_or("-"),
                        e.credential.as_deref().unwrap_or("-"),
                        e.ticket.as_deref().unwrap_or("-"),
                        e.detail
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Ship { .. } => unreachable!("shipped above"),
        AuditCommand::Verify { expect_head, json } => {
            let report = session.audit_verify()?;
            let entries = session.audit_entries()?;
            let expect_head = expect_head
                .map(|head| read_expected_head(&head))
                .transpose()?;
            let missing_head = expect_head.as_ref().filter(|(seq, hash)| {
                !entries
                    .iter()
                    .any(|e| e.seq == *seq && oathdesk_vault::audit::hex(&e.hash) == *hash)
            });
            if json {
                println!(
                    "{}",
                    json!({
                        "entries": report.entries,
                        "head": report.head,
                        "valid": report.first_bad.is_none() && missing_head.is_none(),
                        "first_bad": report.first_bad.as_ref().map(|(seq, why)| json!({"seq": seq, "reason": why})),
                        "expected_head_found": expect_head.as_ref().map(|_| missing_head.is_none()),
                    })
                );
            }
            if let Some((seq, why)) = &report.first_bad {
                if !json {
                    eprintln!("oathdesk: audit entry {seq} is bad: {why}");
                }
                return Ok(ExitCode::from(1));
            }
            if let Some((seq, hash)) = missing_head {
                if !json {
                    eprintln!(
                        "oathdesk: the expected head {seq}:{hash} is not in the log: entries were removed from its end"
                    );
                }
                return Ok(ExitCode::from(1));
            }
            if !json {
                println!(
                    "audit log intact: {} entries, head {}",
                    report.entries,
                    report.head.unwrap_or_else(|| "-".into())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--expect-head`: `SEQ:HEX`, a head line as the console logs it and
/// OATHDESK_AUDIT_HEAD_FILE keeps, or `@FILE` (its last head line).
pub fn read_expected_head(text: &str) -> Result<(i64, String)> {
    let line = match text.strip_prefix('@') {
        Some(path) => {
            let content = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--expect-head: cannot read {path}: {e}"))?;
            // The last line that holds a head: an audit sink's file may
            // end in a gap report, which holds none.
            content
                .lines()
                .rev()
                .find(|l| AuditHead::parse_head(l).is_some())
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("--expect-head: {path} holds no head"))?
        }
        None => text.to_owned(),
    };
    AuditHead::parse_head(&line).ok_or_else(|| {
        anyhow::anyhow!(
            "--expect-head: '{}' is not a head: give SEQ:HEX as 'audit verify' prints it, a head line \
             from the log, or @FILE",
            line.chars().take(80).collect::<String>()
        )
    })
}

fn copy(args: CopyArgs, options: &VaultOptions) -> Result<()> {
    let from = match &args.from {
        Some(url) => Location::parse(url)?,
        None => options.location()?,
    };
    let to = Location::parse(&args.to)?;
    let same_file = match (from.sqlite_path(), to.sqlite_path()) {
        (Some(a), Some(b)) => {
            a == b
                || a.canonicalize()
                    .ok()
                    .is_some_and(|a| Some(a) == b.canonicalize().ok())
        }
        _ => false,
    };
    if from == to || same_file {
        bail!("--from and --to are the same vault");
    }
    let mut session = options.unlock_at(&from)?;
    let report = session.copy_to(&to, args.replace, input::now())?;
    if args.json {
        let tables: serde_json::Map<String, serde_json::Value> = report
            .tables
            .iter()
            .map(|(name, rows)| (name.clone(), json!(rows)))
            .collect();
        println!(
            "{}",
            json!({"from": from.to_string(), "to": report.to, "tables": tables,
                   "audit_entries": report.audit_entries, "head": report.head})
        );
    } else {
        let rows: u64 = report.tables.iter().map(|(_, rows)| rows).sum();
        println!(
            "copied {from} to {}: {rows} rows in {} tables; audit log intact: {} entries, head {}",
            report.to,
            report.tables.len(),
            report.audit_entries,
            report.head.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
