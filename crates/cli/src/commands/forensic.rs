//! `oathdesk forensic CODE`: when was this code valid? For investigations
//! of the past; admins and auditors only (the vault's permission table),
//! and every search is in the audit log.

use anyhow::{Result, bail};
use clap::Args;
use oathdesk_otp::Interval;
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::{ForensicReport, ForensicTarget};

use crate::input::{self, rfc3339};
use crate::unlock::VaultOptions;

#[derive(Args, Debug)]
#[command(after_help = "\
Lists every time step in the range whose code is CODE: when it was the token's current code \
and when the verifier profile accepted it. The range must end at least 10 minutes ago: this \
answers for the past, never whether a code works now. Searching a year takes about a million \
HMACs per token.

Examples:
  oathdesk forensic 492039 --user eve@contoso.com --from 2026-11-20T09:00:00Z --to 2026-11-20T10:00:00Z
  oathdesk forensic 492039 --serial 2100123456 --from 2026-01-01T00:00:00Z --to 2026-11-01T00:00:00Z --json")]
pub struct ForensicArgs {
    /// The code in question (as typed; it is not written to the audit log).
    pub code: String,
    /// Search every token of this user.
    #[arg(long, required_unless_present = "serial", conflicts_with = "serial")]
    pub user: Option<String>,
    /// Search this token (SERIAL, SERIAL:SLOT or #ID).
    #[arg(long)]
    pub serial: Option<TokenRef>,
    /// The start of the range: Unix seconds or RFC 3339.
    #[arg(long)]
    pub from: String,
    /// The end of the range (at least 10 minutes ago).
    #[arg(long)]
    pub to: String,
    /// Whose acceptance window to report: entra, exact, steps=K, seconds=S.
    #[arg(long, default_value = "entra")]
    pub verifier: String,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ForensicArgs, options: &VaultOptions) -> Result<()> {
    let from = input::parse_time(&args.from)?;
    let to = input::parse_time(&args.to)?;
    if to <= from {
        bail!(
            "--to ({}) must be after --from ({})",
            rfc3339(to),
            rfc3339(from)
        );
    }
    let verifier = crate::commands::fleet::verifier(&args.verifier)?;
    let target = match (args.user, args.serial) {
        (Some(user), _) => ForensicTarget::User(user),
        (None, Some(token)) => ForensicTarget::Token(token),
        (None, None) => bail!("name whose tokens to search: --user UPN or --serial SERIAL"),
    };
    let mut session = options.unlock()?;
    let report = session.forensic(
        &target,
        &args.code,
        Interval { from, until: to },
        verifier,
        input::now(),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

fn print(report: &ForensicReport) {
    println!(
        "{} to {}, verifier {}; searched {}",
        rfc3339(report.from),
        rfc3339(report.to),
        report.verifier,
        if report.searched.is_empty() {
            "nothing".to_owned()
        } else {
            report.searched.join(", ")
        }
    );
    for (token, why) in &report.skipped {
        println!("not searched: {token}: {why}");
    }
    if report.hits.is_empty() {
        println!("the code was not valid at any time in the range");
        return;
    }
    println!("{:<22} {:<41} ACCEPTED", "TOKEN", "CURRENT");
    for hit in &report.hits {
        println!(
            "{:<22} {} – {}  {} – {}",
            hit.credential,
            rfc3339(hit.current_from),
            rfc3339(hit.current_until),
            rfc3339(hit.accepted_from),
            rfc3339(hit.accepted_until)
        );
    }
}
