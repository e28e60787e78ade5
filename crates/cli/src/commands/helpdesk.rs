//! `oathdesk helpdesk …` and `oathdesk identify`: the ways a person gets at
//! a secret's codes through the vault, every one audited.
//!
//! What a verification needs is the vault's policy; these commands only
//! translate. They work on the vault itself (a key holder) or through a
//! console (`--server`, for helpdesk operators who hold no key): both go
//! through [`Desk`], so the output and exit codes are the same.

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_otp::{Verifier, Window};
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::verification::{Policy, Verification};
use oathdesk_vault::{Approval, HelpdeskGrant, HelpdeskRequest, IdentifyHit, VerificationView};

use crate::input::{self, rfc3339};
use crate::unlock::VaultOptions;

#[derive(Subcommand, Debug)]
pub enum HelpdeskCommand {
    /// A code for a user whose token is not with them yet.
    #[command(after_help = "\
Given only after the caller was verified by one of the policy's methods (see 'oathdesk helpdesk \
policy show'): every step of the method confirmed (--confirm all, or step numbers), the evidence \
of what you saw or heard, and a ticket id that matches the policy's pattern. The token's secret \
must still be held and the token neither lost nor retired; the per-user rate limit applies \
(default 5 per hour). Where the policy asks for four eyes, the request waits for another \
operator's approval (exit 3): collect the code with 'oathdesk helpdesk collect ID' once approved.
Every call, granted or refused, goes into the audit log.

Start with 'oathdesk helpdesk steps --user UPN --method call-back' to see the steps and the \
data on file (the number to call back, partly masked).

Example:
  oathdesk helpdesk code --user bob@contoso.com --method call-back --confirm all \\
      --evidence 'called the mobile on file (…0123), Bob answered and confirmed' \\
      --ticket INC0012345 --valid-for 2m --verifier entra")]
    Code(CodeArgs),
    /// The steps of a verification method and the user's data on file they show (audited).
    Steps {
        #[arg(long, value_name = "UPN")]
        user: String,
        #[arg(long, value_name = "METHOD")]
        method: String,
        /// Show this value whole, to dial it (e.g. mobile_phone); audited on its own.
        #[arg(long, value_name = "NAME")]
        reveal: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The verification policy: methods, ticket pattern, four eyes, notices.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Requests waiting for a second operator (and decided ones).
    Approvals {
        /// Only requests in this state: pending, approved, denied, used, expired.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Approve another operator's request (never your own).
    Approve {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Deny another operator's request.
    Deny {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// An Entra Temporary Access Pass for a verified caller (shown once, never stored).
    #[command(after_help = "\
The same verification as a code (methods, steps, evidence, ticket) decides it, and the policy \
must allow passes (tap.enabled, with its lifetime and one-time use). oathdesk asks Entra for the \
pass with the app's credential (UserAuthenticationMethod.ReadWrite.All) and prints it once; the \
audit log records the request and Entra's answer, never the pass. When Entra refuses (its \
policy is off, the lifetime is out of range), its reason is shown.

Example:
  oathdesk helpdesk tap --user bob@contoso.com --method call-back --confirm all \\
      --evidence 'called the mobile on file, Bob answered' --ticket INC0012345")]
    Tap(Box<TapArgs>),
    /// The code of your request once another operator approved it (once).
    Collect {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct TapArgs {
    #[command(flatten)]
    pub caller: CallerArgs,
    /// (--json, and how to reach Entra.)
    #[command(flatten)]
    pub entra: crate::commands::entra::EntraOptions,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the policy (JSON with --json).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Replace the policy with a JSON file (admins); see docs/src/verification.md.
    Set { file: std::path::PathBuf },
}

/// Who is calling and how they were verified.
#[derive(Args, Debug)]
pub struct CallerArgs {
    /// The user's UPN.
    #[arg(long, value_name = "UPN")]
    pub user: String,
    /// How the caller was verified: a method of the policy (repeat for several).
    #[arg(long = "method", value_name = "METHOD")]
    pub methods: Vec<String>,
    /// The steps done, for each --method in order: 'all' or numbers (1,2).
    #[arg(long = "confirm", value_name = "STEPS")]
    pub confirms: Vec<String>,
    /// What you saw or heard, for each --method in order.
    #[arg(long = "evidence", value_name = "TEXT")]
    pub evidences: Vec<String>,
    /// The ticket this is for (it must match the policy's pattern).
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
}

#[derive(Args, Debug)]
pub struct CodeArgs {
    #[command(flatten)]
    pub caller: CallerArgs,
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

/// Where helpdesk work is done: the vault itself, or a console.
pub trait Desk {
    fn policy(&mut self) -> Result<Policy>;
    fn set_policy(&mut self, policy: &Policy) -> Result<()>;
    fn steps(&mut self, user: &str, method: &str) -> Result<VerificationView>;
    fn reveal(&mut self, user: &str, method: &str, name: &str) -> Result<String>;
    /// A code, or the id of the request waiting for approval.
    fn code(&mut self, request: &HelpdeskRequest) -> Result<Released>;
    fn approvals(&mut self, state: Option<&str>) -> Result<Vec<Approval>>;
    fn decide(&mut self, id: &str, approve: bool, note: Option<&str>) -> Result<Approval>;
    fn collect(&mut self, id: &str) -> Result<HelpdeskGrant>;
}

/// What a code request gave.
pub enum Released {
    Code(HelpdeskGrant),
    /// Waiting for a second operator: the request id and the message.
    Waiting {
        id: String,
        message: String,
    },
}

impl Desk for oathdesk_vault::Session {
    fn policy(&mut self) -> Result<Policy> {
        Ok(self.helpdesk_policy()?)
    }
    fn set_policy(&mut self, policy: &Policy) -> Result<()> {
        Ok(self.set_helpdesk_policy(policy, input::now())?)
    }
    fn steps(&mut self, user: &str, method: &str) -> Result<VerificationView> {
        Ok(self.verification_view(user, method, input::now())?)
    }
    fn reveal(&mut self, user: &str, method: &str, name: &str) -> Result<String> {
        Ok(self.reveal_fact(user, method, name, input::now())?)
    }
    fn code(&mut self, request: &HelpdeskRequest) -> Result<Released> {
        match self.helpdesk_code(request, input::now()) {
            Ok(grant) => Ok(Released::Code(grant)),
            Err(error @ oathdesk_vault::Error::ApprovalRequired { .. }) => {
                let oathdesk_vault::Error::ApprovalRequired { id, .. } = &error else {
                    unreachable!()
                };
                Ok(Released::Waiting {
                    id: id.clone(),
                    message: error.to_string(),
                })
            }
            Err(error) => Err(error.into()),
        }
    }
    fn approvals(&mut self, state: Option<&str>) -> Result<Vec<Approval>> {
        Ok(oathdesk_vault::Session::approvals(
            self,
            state,
            input::now(),
        )?)
    }
    fn decide(&mut self, id: &str, approve: bool, note: Option<&str>) -> Result<Approval> {
        Ok(self.decide_approval(id, approve, note, input::now())?)
    }
    fn collect(&mut self, id: &str) -> Result<HelpdeskGrant> {
        Ok(self.helpdesk_collect(id, input::now())?)
    }
}

/// Exit code of a request that waits for approval.
pub const EXIT_WAITING: u8 = 3;

/// Which steps were confirmed: `all`, or step numbers (`1,2`).
fn confirmed(text: &str, steps: usize, method: &str) -> Result<Vec<bool>> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(vec![true; steps]);
    }
    let mut flags = vec![false; steps];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number: usize = part
            .parse()
            .map_err(|_| anyhow!("--confirm '{text}': give 'all' or step numbers such as 1,2"))?;
        if number == 0 || number > steps {
            bail!("--confirm: '{method}' has steps 1 to {steps}, not {number}");
        }
        flags[number - 1] = true;
    }
    Ok(flags)
}

/// The request the arguments describe (the policy says how many steps each
/// method has).
pub fn request_of(args: &CodeArgs, policy: &Policy) -> Result<HelpdeskRequest> {
    let mut request = caller_request(&args.caller, policy)?;
    request.token = args.serial.clone();
    request.valid_for = args
        .valid_for
        .as_deref()
        .map(input::parse_duration)
        .transpose()?;
    request.verifier = args.verifier;
    Ok(request)
}

/// The verification the caller arguments describe.
pub fn caller_request(args: &CallerArgs, policy: &Policy) -> Result<HelpdeskRequest> {
    if args.confirms.len() > args.methods.len() || args.evidences.len() > args.methods.len() {
        bail!("give one --confirm and one --evidence for each --method, in the same order");
    }
    let mut verifications = Vec::with_capacity(args.methods.len());
    for (index, method) in args.methods.iter().enumerate() {
        let steps = policy
            .methods
            .iter()
            .find(|m| &m.name == method)
            .map_or(0, |m| m.steps.len());
        let confirm = args.confirms.get(index).map_or("", String::as_str);
        verifications.push(Verification {
            method: method.clone(),
            confirmed: confirmed(confirm, steps, method)?,
            evidence: args.evidences.get(index).cloned().unwrap_or_default(),
        });
    }
    Ok(HelpdeskRequest {
        user: args.user.clone(),
        verifications,
        ticket: args.ticket.clone().unwrap_or_default(),
        token: None,
        valid_for: None,
        verifier: Verifier::Entra,
    })
}

/// Runs a helpdesk command at a desk (the vault or a console).
pub fn run_at(command: HelpdeskCommand, desk: &mut dyn Desk) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match command {
        HelpdeskCommand::Code(args) => {
            let policy = desk.policy()?;
            let request = request_of(&args, &policy)?;
            match desk.code(&request)? {
                Released::Code(grant) => print_grant(&grant, args.json)?,
                Released::Waiting { id, message } => {
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({"kind": "approval_required", "id": id, "message": message})
                        );
                    } else {
                        eprintln!("oathdesk: {message}");
                    }
                    return Ok(ExitCode::from(EXIT_WAITING));
                }
            }
        }
        HelpdeskCommand::Steps {
            user,
            method,
            reveal: Some(name),
            json,
        } => {
            let value = desk.reveal(&user, &method, &name)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"user": user, "name": name, "value": value})
                );
            } else {
                println!("{}: {value}", name.replace('_', " "));
            }
        }
        HelpdeskCommand::Steps {
            user,
            method,
            reveal: None,
            json,
        } => {
            let view = desk.steps(&user, &method)?;
            print_view(&view, json)?;
        }
        HelpdeskCommand::Policy(PolicyCommand::Show { json }) => {
            let policy = desk.policy()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&policy)?);
            } else {
                print_policy(&policy);
            }
        }
        HelpdeskCommand::Policy(PolicyCommand::Set { file }) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?;
            let policy: Policy = serde_json::from_str(&text).map_err(|e| {
                anyhow!(
                    "{}: line {}, column {}: {e}",
                    file.display(),
                    e.line(),
                    e.column()
                )
            })?;
            desk.set_policy(&policy)?;
            println!("the helpdesk policy is now {}", file.display());
        }
        HelpdeskCommand::Approvals { state, json } => {
            let all = desk.approvals(state.as_deref())?;
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else if all.is_empty() {
                println!("no approval requests");
            } else {
                for a in all {
                    println!(
                        "{:<12} {:<9} {:<28} by {:<12} {} ticket {}, {} (until {})",
                        a.id,
                        a.state,
                        a.user,
                        a.requester,
                        a.methods.join("+"),
                        a.ticket,
                        a.reason,
                        rfc3339(a.expires_at)
                    );
                }
            }
        }
        HelpdeskCommand::Approve { id, note } => {
            let decided = desk.decide(&id, true, note.as_deref())?;
            println!(
                "approved {} for {} ({}): they collect the code with 'oathdesk helpdesk collect {}'",
                decided.id, decided.user, decided.requester, decided.id
            );
        }
        HelpdeskCommand::Deny { id, note } => {
            let decided = desk.decide(&id, false, note.as_deref())?;
            println!("denied {} for {}", decided.id, decided.user);
        }
        HelpdeskCommand::Tap(_) => bail!(
            "a Temporary Access Pass is asked of Entra with the app's credential, from the vault \
             itself: run 'oathdesk helpdesk tap' without --server"
        ),
        HelpdeskCommand::Collect { id, json } => {
            let grant = desk.collect(&id)?;
            print_grant(&grant, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_helpdesk(
    command: HelpdeskCommand,
    options: &VaultOptions,
) -> Result<std::process::ExitCode> {
    if let HelpdeskCommand::Tap(args) = command {
        return crate::commands::entra::run_tap(*args, options);
    }
    let mut session = options.unlock()?;
    run_at(command, &mut session)
}

fn print_view(view: &VerificationView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(view)?);
        return Ok(());
    }
    println!(
        "{} — {} ({})",
        view.title,
        view.user,
        view.display_name.as_deref().unwrap_or("no display name")
    );
    for step in &view.steps {
        println!("  {}. {}", step.number, step.text);
        for data in &step.data {
            println!(
                "       {}: {}   (from {}, {})",
                data.name.replace('_', " "),
                data.shown,
                data.source,
                rfc3339(data.at)
            );
        }
    }
    if view.evidence_required {
        println!("  Then write what you saw or heard (--evidence).");
    }
    if let Some(reason) = &view.unusable {
        bail!("{reason}: this method cannot be used for them; choose another");
    }
    Ok(())
}

fn print_policy(policy: &Policy) {
    let accepted = policy.accepted_names();
    for method in &policy.methods {
        let mark = if accepted.contains(&method.name.as_str()) {
            "accepted"
        } else {
            "not accepted"
        };
        println!(
            "{} — {} ({mark}{}{})",
            method.name,
            method.title,
            if method.sufficient { "" } else { ", not alone" },
            if method.evidence_required {
                ", evidence"
            } else {
                ""
            }
        );
        for (index, step) in method.steps.iter().enumerate() {
            let shows = if step.shows.is_empty() {
                String::new()
            } else {
                format!("  [shows {}]", step.shows.join(", "))
            };
            println!("  {}. {}{shows}", index + 1, step.text);
        }
    }
    println!("ticket ids match: {}", policy.ticket_pattern);
    let rule = &policy.four_eyes;
    let mut four: Vec<String> = Vec::new();
    if rule.always {
        four.push("always".into());
    }
    if let Some(minutes) = rule.valid_longer_than_minutes {
        four.push(format!("codes valid longer than {minutes} min"));
    }
    if !rule.users.is_empty() {
        four.push(format!("users {}", rule.users.join(", ")));
    }
    if !rule.groups.is_empty() {
        four.push(format!("groups {}", rule.groups.join(", ")));
    }
    if let Some(n) = rule.after_codes_per_day {
        four.push(format!("after {n} codes a day"));
    }
    println!(
        "four eyes: {}",
        if four.is_empty() {
            "never".to_owned()
        } else {
            four.join("; ")
        }
    );
    println!(
        "tell the user: {}",
        match &policy.notify.channel {
            Some(channel) => format!(
                "by {channel}{}{}",
                if policy.notify.on_release {
                    ", on release"
                } else {
                    ""
                },
                if policy.notify.on_refusal {
                    ", on refusal"
                } else {
                    ""
                }
            ),
            None => "no".into(),
        }
    );
}

#[derive(Args, Debug)]
#[command(after_help = "\
Give one code, or two consecutive codes to make the answer unique and learn the drift. Every \
held secret is searched; the search is audited.

Example:
  oathdesk identify 123456 654321 --window 2")]
/// Find which token shows these codes.
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
        // An HOTP code has no time limit: it stays good until a later one is used.
        let until = if grant.event_based {
            format!(
                "HOTP counter {}, accepted until a later code of the token is used",
                grant.counter
            )
        } else {
            format!(
                "accepted until {} (verifier {})",
                rfc3339(grant.accepted_until),
                grant.verifier
            )
        };
        println!(
            "{}  for {} ({token}), {until}; {} more this hour",
            grant.code, grant.user, grant.remaining_this_hour
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
            "{:<22} {:<10} {:<22} {:<28} {}",
            hit.credential,
            hit.state.name(),
            oathdesk_vault::code_position(hit.offset),
            hit.user.as_deref().unwrap_or("-"),
            hit.drift_steps.map_or_else(
                || "drift not recorded".to_owned(),
                |d| format!("drift {d:+} step(s) recorded")
            )
        );
    }
    if hits.len() > 1 && codes.len() == 1 {
        eprintln!(
            "oathdesk: several tokens match one code; give the next code too to tell them apart"
        );
    }
    Ok(())
}
