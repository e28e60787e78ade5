//! `oathdesk helpdesk code` and `oathdesk identify`: the two ways a person
//! gets at a secret's codes through the vault, both audited.

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use oathdesk_otp::{Verifier, Window};
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::{HelpdeskGrant, HelpdeskRequest, IdentifyHit};

use crate::input::{self, rfc3339};
use crate::unlock::VaultOptions;

#[derive(Subcommand, Debug)]
pub enum HelpdeskCommand {
    /// A code for a user whose token is not with them yet.
    #[command(after_help = "\
Given only with a record of how the caller's identity was checked and a ticket, for a token \
whose secret is still held and that is neither lost nor retired, within the per-user rate \
limit (default 5 per hour; 'oathdesk vault set helpdesk.codes_per_hour N'). Every call, \
granted or refused, goes into the audit log.

Example:
  oathdesk helpdesk code --user bob@contoso.com --verified-by 'call-back to mobile on file' \\
      --ticket INC-4711 --valid-for 2m --verifier entra")]
    Code(CodeArgs),
}

#[derive(Args, Debug)]
pub struct CodeArgs {
    /// The user's UPN.
    #[arg(long, value_name = "UPN")]
    pub user: String,
    /// How the caller's identity was verified.
    #[arg(long, value_name = "TEXT")]
    pub verified_by: Option<String>,
    /// The ticket this is for.
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    #[arg(
        long,
        value_name = "TOKEN",
        help = "Which token, when the user has several (SERIAL[:SLOT] or #ID)"
    )]
    pub serial: Option<TokenRef>,
    /// Give a code that stays accepted at least this long (90, 2m).
    #[arg(long, value_name = "DURATION")]
    pub valid_for: Option<String>,
    /// The server's tolerance: entra, exact, steps=K, seconds=S.
    #[arg(long, value_name = "PROFILE", default_value = "entra")]
    pub verifier: Verifier,
    #[arg(long)]
    pub json: bool,
}

/// Find which token shows these codes.
#[derive(Args, Debug)]
#[command(after_help = "\
Give one code, or two consecutive codes to make the answer unique and learn the drift. Every \
held secret is searched; the search is audited.

Example:
  oathdesk identify 123456 654321 --window 2")]
pub struct IdentifyArgs {
    /// The code shown now.
    pub code: String,
    /// The code shown next.
    pub next_code: Option<String>,
    /// When the first code was read (Unix seconds or RFC 3339) [default: now].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Steps either side to search.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub window: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn run_helpdesk(command: HelpdeskCommand, options: &VaultOptions) -> Result<()> {
    let HelpdeskCommand::Code(args) = command;
    let valid_for = args
        .valid_for
        .as_deref()
        .map(input::parse_duration)
        .transpose()?;
    let mut session = options.unlock()?;
    let grant = session.helpdesk_code(
        &HelpdeskRequest {
            user: args.user,
            verified_by: args.verified_by.unwrap_or_default(),
            ticket: args.ticket.unwrap_or_default(),
            token: args.serial,
            valid_for,
            verifier: args.verifier,
        },
        input::now(),
    )?;
    print_grant(&grant, args.json)
}

/// Prints a granted code as the local and the remote command both do.
pub fn print_grant(grant: &HelpdeskGrant, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&grant)?);
    } else {
        let token = match (&grant.serial, grant.slot) {
            (Some(serial), Some(slot)) => format!("{serial}:{slot}"),
            (Some(serial), None) => serial.clone(),
            (None, _) => format!("#{}", grant.credential_id),
        };
        println!(
            "{}  for {} ({token}), accepted until {} (verifier {}); {} more this hour",
            grant.code,
            grant.user,
            rfc3339(grant.accepted_until),
            grant.verifier,
            grant.remaining_this_hour
        );
    }
    Ok(())
}

pub fn run_identify(args: IdentifyArgs, options: &VaultOptions) -> Result<()> {
    let now = input::now();
    let at = match &args.at {
        Some(text) => input::parse_time(text)?,
        None => now,
    };
    let mut codes = vec![args.code.as_str()];
    codes.extend(args.next_code.as_deref());
    let mut session = options.unlock()?;
    let hits = session.identify(&codes, at, Window::symmetric(args.window), now)?;
    print_hits(&hits, &codes, args.window, args.json)
}

/// Prints what identify found, as the local and the remote command both do.
pub fn print_hits(hits: &[IdentifyHit], codes: &[&str], window: u64, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::json!({"matches": hits}));
        return Ok(());
    }
    if hits.is_empty() {
        return Err(anyhow!(
            "no held secret gives {} within ±{} step(s); widen --window, or the token's secret was purged",
            codes.join(" then "),
            window
        ));
    }
    for hit in hits {
        println!(
            "{:<22} {:<10} offset {:+}  {}",
            hit.credential,
            hit.state.name(),
            hit.offset,
            hit.user.as_deref().unwrap_or("-")
        );
    }
    if hits.len() > 1 && codes.len() == 1 {
        eprintln!(
            "oathdesk: several tokens match one code; give the next code too to tell them apart"
        );
    }
    Ok(())
}
