//! `oathdesk user`, `oathdesk token`, `oathdesk import spreadsheet`: the
//! inventory.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_formats::spreadsheet;
use oathdesk_otp::{Credential, uri};
use oathdesk_vault::model::{DeviceKind, State, TokenRef};
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{NewToken, TokenInfo, defaults};

use crate::input::{self, EncodingArgs, ParamArgs, rfc3339};
use crate::unlock::VaultOptions;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user (by UPN, as in Entra ID).
    Add {
        upn: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Import users' data on file (phones, manager, employee id…) from CSV.
    #[command(after_help = "\
The first line names the columns: a user column (upn, username, email…) and any of \
mobile_phone, office_phone, mail, manager, employee_id, department, location, groups — \
headers such as 'Mobile Phone' or 'employeeId' are understood — plus any other column, kept \
under its own name (Cost Centre → cost_centre). An empty cell removes that value. Users not in \
the vault are listed and skipped, unless --create. Every value records where it came from.

Example:
  oathdesk user import directory.csv")]
    Import {
        file: std::path::PathBuf,
        /// Create users the vault does not have yet.
        #[arg(long)]
        create: bool,
        /// Import the good rows when some are bad (each bad one is named).
        #[arg(long)]
        skip_bad: bool,
    },
    /// A user's whole data on file (audited).
    Facts {
        upn: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Add a token's credential; the secret comes from --secret (-, @FILE),
    /// OATHDESK_SECRET, or --generate.
    #[command(after_help = "\
TOKEN is SERIAL for single-profile and classic tokens, SERIAL:SLOT for a profile of a \
multi-profile device (slots 0-99 on a Molto-2); leave it out for a credential with no known device.

Examples:
  oathdesk token add 2100123456 --kind classic --secret @seed.txt --user bob@contoso.com
  oathdesk token add 8659612345:4 --kind multi-profile --slots 100 --generate")]
    Add(Box<AddTokenArgs>),
    /// List credentials (no secrets).
    List(ListArgs),
    /// Show one credential and its history.
    Show {
        token: TokenRef,
        #[arg(long)]
        json: bool,
    },
    /// Assign a credential to a user.
    Assign { token: TokenRef, user: String },
    /// Mark a credential as shipped to its user.
    Ship {
        token: TokenRef,
        /// Tracking number or other note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Check a code read off the delivered token, record its drift, mark it
    /// delivered and purge the secret (now, or after the grace period).
    Deliver {
        token: TokenRef,
        /// The code the user reads off the token.
        #[arg(long)]
        code: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a one-time link with which the token's user confirms its delivery
    /// (prints it, or mails it with --send-mail).
    #[command(after_help = "\
The user opens the link, sees their first name and the token's serial, and types the code the \
token shows: a code nobody was given marks it delivered and purges the secret, as 'token \
deliver' does. The link works once, expires after selfservice.link_lifetime_seconds (14 days) \
and locks after selfservice.max_wrong_codes (5) wrong codes; a new link replaces the old one.

Examples:
  oathdesk token delivery-link 2100001 --base-url https://otp.example.com
  oathdesk token delivery-link 2100001 --base-url https://otp.example.com --send-mail")]
    DeliveryLink(Box<crate::commands::selfservice::DeliveryLinkArgs>),
    /// Re-synchronise an HOTP token: two consecutive codes read off it,
    /// found within 1,000 presses ahead of the vault's counter, move the
    /// counter to just after them.
    Resync {
        token: TokenRef,
        /// A code from the token.
        code1: String,
        /// The code after it (press the button again).
        code2: String,
        #[arg(long)]
        json: bool,
    },
    /// Set an HOTP token's counter (admins only; audited, and said so when
    /// it moves back, which makes used codes valid again).
    SetCounter {
        token: TokenRef,
        /// The counter of the next code the token will show.
        counter: u64,
        #[arg(long)]
        json: bool,
    },
    /// Check a code read off a token now: records where its clock stands
    /// (for 'oathdesk fleet drift'), changes nothing else.
    Check {
        token: TokenRef,
        /// The code the token shows now.
        code: String,
        #[arg(long)]
        json: bool,
    },
    /// Mark a credential as lost (no helpdesk codes any more).
    Lost {
        token: TokenRef,
        #[arg(long)]
        note: Option<String>,
    },
    /// Retire a credential for good; with --serial, every token of a serial range or
    /// pattern at once (all or none, one audit entry listing them).
    Retire {
        #[arg(required_unless_present = "serial", conflicts_with = "serial")]
        token: Option<TokenRef>,
        /// FIRST..LAST (OATH0001..OATH0500), a pattern with * and ?, or one serial.
        #[arg(long, value_name = "SERIALS")]
        serial: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Purge a credential's secret now (or every secret whose grace period is over, with --due).
    Purge {
        #[arg(required_unless_present = "due")]
        token: Option<TokenRef>,
        #[arg(long, conflicts_with = "token")]
        due: bool,
    },
}

#[derive(Args, Debug)]
pub struct AddTokenArgs {
    /// SERIAL, SERIAL:SLOT, or nothing.
    pub token: Option<TokenRef>,
    /// The secret ('-', @FILE, an otpauth:// URI or the value; OATHDESK_SECRET when left out).
    #[arg(long, value_name = "SECRET", conflicts_with = "generate")]
    pub secret: Option<String>,
    /// Generate the secret (size by algorithm).
    #[arg(long)]
    pub generate: bool,
    /// Print the generated secret's otpauth URI (it is otherwise only in the vault).
    #[arg(long, requires = "generate")]
    pub reveal: bool,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    #[command(flatten)]
    pub params: ParamArgs,
    /// multi-profile, single-profile, classic or unknown.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<DeviceKind>,
    /// Profiles of a new multi-profile device.
    #[arg(long, value_name = "N")]
    pub slots: Option<u32>,
    #[arg(long)]
    pub manufacturer: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// Issuer shown by authenticators.
    #[arg(long)]
    pub issuer: Option<String>,
    /// A free label.
    #[arg(long)]
    pub label: Option<String>,
    /// Assign to this user at once (created if new).
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// First state: stock (pre-seeded, not yet handed out) or burned (programmed).
    #[arg(long, value_name = "STATE")]
    pub state: Option<State>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this user's.
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// Only in this state.
    #[arg(long)]
    pub state: Option<State>,
    /// Only this device's.
    #[arg(long)]
    pub serial: Option<String>,
    /// Only those whose secret is still held.
    #[arg(long)]
    pub held: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run_user(command: UserCommand, options: &VaultOptions) -> Result<()> {
    let mut session = options.unlock()?;
    match command {
        UserCommand::Add { upn, name } => {
            session.add_user(&upn, name.as_deref(), input::now())?;
        }
        UserCommand::Import {
            file,
            create,
            skip_bad,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = file.display().to_string();
            let directory =
                oathdesk_formats::directory::read(&bytes).map_err(|e| anyhow!("{name}: {e}"))?;
            for problem in &directory.problems {
                eprintln!("{name}: {problem}");
            }
            if !directory.problems.is_empty() && !skip_bad {
                bail!(
                    "{} problem(s) in {name}; nothing was imported (fix them, or pass --skip-bad)",
                    directory.problems.len()
                );
            }
            let source = format!(
                "csv:{}",
                file.file_name()
                    .map_or(name.clone(), |n| n.to_string_lossy().into_owned())
            );
            let report = import_directory(&mut session, &directory, &source, create)?;
            print_facts_report(&report, &name);
        }
        UserCommand::Facts { upn, json } => {
            let facts = session.user_facts(&upn, input::now())?;
            if json {
                println!("{}", serde_json::to_string(&facts)?);
            } else if facts.is_empty() {
                println!("no data on file for {upn}");
            } else {
                for (name, fact) in facts {
                    println!(
                        "{:<14} {:<32} from {} at {}",
                        name,
                        fact.value,
                        fact.source,
                        input::rfc3339(fact.at)
                    );
                }
            }
        }
        UserCommand::List { json } => {
            let users = session.users()?;
            if json {
                println!("{}", serde_json::to_string(&users)?);
            } else {
                for u in users {
                    println!("{:<40} {}", u.upn, u.display_name.unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}

pub fn run_token(command: TokenCommand, options: &VaultOptions) -> Result<()> {
    let mut session = options.unlock()?;
    let now = input::now();
    if !matches!(command, TokenCommand::List(_) | TokenCommand::Show { .. }) {
        let purged = session.purge_due(now)?;
        if purged > 0 {
            eprintln!("oathdesk: purged {purged} secret(s) whose grace period ended");
        }
    }
    match command {
        TokenCommand::Add(args) => {
            let mut credential = if args.generate {
                let algorithm = args.params.algorithm.unwrap_or_default();
                Credential::totp(defaults::generated_secret(algorithm)?)
            } else {
                let text = input::secret_text(args.secret.as_deref())?;
                input::credential_from_text(&text, &args.encoding)?
            };
            input::apply_params(&mut credential, &args.params)?;
            if args.issuer.is_some() {
                credential.issuer = args.issuer.clone();
            }
            let (serial, slot) = match &args.token {
                Some(TokenRef::Serial { serial, slot }) => (Some(serial.clone()), *slot),
                Some(TokenRef::Id(_)) => {
                    bail!("a new token is named SERIAL or SERIAL:SLOT, not #ID")
                }
                None => (None, None),
            };
            let kind = args
                .kind
                .unwrap_or_else(|| defaults::device_kind(serial.as_deref(), slot));
            let slots = args.slots.unwrap_or(defaults::slots(kind));
            let reveal_uri = if args.reveal {
                let mut shown = credential.clone();
                shown.account = args
                    .user
                    .clone()
                    .or(args.label.clone())
                    .or(args.token.as_ref().map(ToString::to_string))
                    .unwrap_or_default();
                Some(uri::format(&shown).map_err(|e| anyhow!("{e}"))?)
            } else {
                None
            };
            let token = NewToken {
                serial,
                slot,
                device_kind: kind,
                manufacturer: args.manufacturer,
                model: args.model,
                device_slots: slots,
                credential,
                label: args.label,
                user: args.user,
                state: args.state.unwrap_or(defaults::first_state(kind)),
            };
            let info = if args.generate {
                session.add_generated_token(token, "oathdesk token add --generate", now)?
            } else {
                session.add_token(token, now)?
            };
            if args.json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                eprintln!("oathdesk: added {} ({})", info.reference(), info.state);
            }
            if let Some(uri) = reveal_uri {
                session.record(
                    oathdesk_vault::audit::AuditEvent::ok("token.reveal")
                        .credential(info.reference())
                        .detail(serde_json::json!({"why": "generated with --reveal"})),
                    now,
                )?;
                println!("{}", uri.as_str());
            }
        }
        TokenCommand::List(args) => {
            let tokens = session.tokens(&CredentialFilter {
                user_upn: args.user,
                state: args.state,
                device_serial: args.serial,
                held_only: args.held,
                ..CredentialFilter::default()
            })?;
            if args.json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else {
                print_tokens(&tokens);
            }
        }
        TokenCommand::Show { token, json } => {
            let (info, history) = session.token(&token)?;
            let entra = session.entra_links_of(info.id)?;
            let seed = session.seed_provenance(&token)?;
            print_token(info, history, Some(&entra), seed.as_ref(), json);
        }
        TokenCommand::Assign { token, user } => {
            let info = session.assign(&token, &user, now)?;
            eprintln!("oathdesk: {} assigned to {user}", info.reference());
        }
        TokenCommand::Ship { token, note } => {
            let info = session.transition(&token, State::Shipped, note.as_deref(), now)?;
            eprintln!("oathdesk: {} shipped", info.reference());
        }
        TokenCommand::Lost { token, note } => {
            let info = session.transition(&token, State::Lost, note.as_deref(), now)?;
            eprintln!("oathdesk: {} marked lost", info.reference());
            crate::commands::entra_lifecycle::after_lost(&mut session, &info, now)?;
        }
        TokenCommand::Retire {
            token: Some(token),
            note,
            ..
        } => {
            let info = session.transition(&token, State::Retired, note.as_deref(), now)?;
            eprintln!("oathdesk: {} retired", info.reference());
            crate::commands::entra_lifecycle::after_lost(&mut session, &info, now)?;
        }
        TokenCommand::Retire { serial, note, .. } => {
            let selector =
                oathdesk_vault::SerialSelector::parse(serial.as_deref().unwrap_or_default())?;
            let chosen: Vec<TokenRef> = session
                .tokens_by_serial(&selector)?
                .iter()
                .map(|t| t.reference().parse())
                .collect::<std::result::Result<_, _>>()?;
            if chosen.is_empty() {
                anyhow::bail!("no token's serial matches '{}'", serial.unwrap_or_default());
            }
            let moved = session.transition_all(&chosen, State::Retired, note.as_deref(), now)?;
            for info in &moved {
                crate::commands::entra_lifecycle::after_lost(&mut session, info, now)?;
            }
            eprintln!(
                "oathdesk: {} token(s) retired (one audit entry)",
                moved.len()
            );
        }
        TokenCommand::Resync {
            token,
            code1,
            code2,
            json,
        } => {
            let info = session.resync_hotp(&token, &code1, &code2, now)?;
            print_counter(&info, json)?;
        }
        TokenCommand::SetCounter {
            token,
            counter,
            json,
        } => {
            let info = session.set_hotp_counter(&token, counter, now)?;
            print_counter(&info, json)?;
        }
        TokenCommand::Deliver { token, code, json } => {
            let delivery = session.deliver(&token, &code, now)?;
            print_delivery(&delivery, json)?;
        }
        TokenCommand::DeliveryLink(args) => {
            let base = args.base_url.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "--base-url is needed: the console's address as users reach it (https://otp.example.com)"
                )
            })?;
            crate::commands::selfservice::link_url(&base, "/")?;
            let link = session.create_delivery_link(&args.token, now)?;
            crate::commands::selfservice::hand_over(Some(&mut session), &link, &base, &args, now)?;
        }
        TokenCommand::Check { token, code, json } => {
            let checked = session.check_token(&token, &code, now)?;
            if json {
                println!("{}", serde_json::to_string(&checked)?);
            } else {
                let drift = match checked.offset_steps {
                    0 => "its clock is within the current step".to_owned(),
                    n if n < 0 => format!("its clock is {} step(s) behind", -n),
                    n => format!("its clock is {n} step(s) ahead"),
                };
                println!(
                    "{}: the code matches; {drift} (recorded for 'oathdesk fleet drift')",
                    checked.credential
                );
            }
        }
        TokenCommand::Purge { token, due } => {
            if due {
                // purge_due ran above.
            } else if let Some(token) = token {
                let info = session.purge(&token, now)?;
                eprintln!("oathdesk: the secret of {} is purged", info.reference());
            }
        }
    }
    Ok(())
}

/// Prints one credential and its history (`token show`, local or remote).
/// Prints a credential, its Entra links (`None`: not known here, as through
/// a console) and its history.
pub fn print_token(
    info: TokenInfo,
    history: Vec<oathdesk_vault::model::Event>,
    entra: Option<&[oathdesk_vault::model::EntraLink]>,
    seed: Option<&oathdesk_vault::SeedProvenance>,
    json: bool,
) {
    if json {
        let mut shown = serde_json::json!({"token": info, "history": history});
        if let Some(seed) = seed {
            shown["seed"] = serde_json::json!(seed);
        }
        if let Some(links) = entra {
            shown["entra"] = serde_json::json!(links);
        }
        println!("{shown}");
    } else {
        print_tokens(std::slice::from_ref(&info));
        if let Some(links) = entra {
            if links.is_empty() {
                println!("entra    not pushed to Entra (as far as this vault knows)");
            }
            for link in links {
                let mut parts = vec![format!(
                    "tenant {} serial {} {}",
                    input::printable(&link.tenant),
                    input::printable(&link.serial),
                    link.status
                )];
                if let Some(user) = link.user_upn.as_deref().or(link.user_id.as_deref()) {
                    parts.push(format!("user {}", input::printable(user)));
                }
                if let Some(device) = &link.device_id {
                    parts.push(format!("device {}", input::printable(device)));
                }
                if let Some(at) = link.last_sync {
                    parts.push(format!("checked {}", rfc3339(at)));
                }
                if let Some(error) = &link.last_error {
                    parts.push(format!("last error: {}", input::printable(error)));
                }
                println!("entra    {}", parts.join(", "));
            }
        }
        if let Some(seed) = seed {
            println!(
                "seed     generated {} by {} with '{}'; RNG: {}",
                rfc3339(seed.generated_at),
                input::printable(&seed.operator),
                input::printable(&seed.command),
                seed.rng
            );
        }
        println!();
        for event in history {
            println!(
                "{}  {:<9} → {:<9} {} {}",
                rfc3339(event.at),
                event.from_state.map(|s| s.name()).unwrap_or("(new)"),
                event.to_state.name(),
                if event.operator.is_empty() {
                    "-"
                } else {
                    &event.operator
                },
                event.note.unwrap_or_default()
            );
        }
    }
}

/// An HOTP token's counter after `token resync` or `token set-counter`.
fn print_counter(info: &TokenInfo, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(info)?);
    } else {
        eprintln!(
            "oathdesk: {} counter is {} (the next code the vault accepts)",
            info.reference(),
            info.counter.map_or("-".to_owned(), |c| c.to_string())
        );
    }
    Ok(())
}

/// Prints a delivery (`token deliver`, local or remote).
pub fn print_delivery(delivery: &oathdesk_vault::Delivery, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&delivery)?);
    } else {
        let drift = match delivery.drift_steps {
            0 => "no drift".to_owned(),
            n if n < 0 => format!("{} step(s) behind", -n),
            n => format!("{n} step(s) ahead"),
        };
        let custody = match delivery.purge_after {
            _ if delivery.purged => "secret purged".to_owned(),
            Some(at) => format!("secret purged after {}", rfc3339(at)),
            None => "secret held".to_owned(),
        };
        println!("{} delivered: {drift}; {custody}", delivery.credential);
    }
    Ok(())
}

pub fn print_tokens(tokens: &[TokenInfo]) {
    println!("TOKEN                  TYPE  ALG     DIG STEP  STATE      SECRET  BATTERY     USER");
    for t in tokens {
        // The battery's forecast end of life (`oathdesk fleet eol`).
        let battery: String = t.battery_due.map_or_else(
            || "-".to_owned(),
            |at| rfc3339(at).chars().take(10).collect(),
        );
        println!(
            "{:<22} {:<5} {:<7} {:>3} {:>4}  {:<10} {:<7} {:<11} {}",
            t.reference(),
            t.r#type,
            t.algorithm,
            t.digits,
            t.period
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            t.state.name(),
            t.custody.name(),
            battery,
            t.user.as_deref().unwrap_or("-")
        );
        if t.altered {
            println!(
                "{:<22} ^ ALTERED outside oathdesk: what this row says is not to be trusted \
                 ('oathdesk vault verify')",
                ""
            );
        }
    }
}

/// `oathdesk import spreadsheet FILE`: the helpdesk's plaintext sheet.
pub fn import_spreadsheet(
    file: &std::path::Path,
    dry_run: bool,
    skip_bad: bool,
    options: &VaultOptions,
) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let name = file.display().to_string();
    let sheet = spreadsheet::read(&bytes).map_err(|e| anyhow!("{name}: {e}"))?;
    for problem in &sheet.problems {
        eprintln!("{name}: {problem}");
    }
    let bad = sheet.problems.len();
    let refuse = || {
        anyhow!(
            "{bad} bad row(s) in {name}; nothing was imported (fix them, or pass --skip-bad to import the {} good row(s))",
            sheet.rows.len()
        )
    };
    if bad > 0 && !skip_bad && !dry_run {
        return Err(refuse());
    }
    if dry_run {
        for row in &sheet.rows {
            let mut line = format!("{name}: line {}, user {}", row.line, row.user);
            if let Some(serial) = &row.serial {
                line.push_str(&format!(", serial {serial}"));
            }
            line.push_str(&format!(
                ", totp {} s, secret ******** ({} bytes)",
                row.period,
                row.secret.len()
            ));
            println!("{line}");
        }
        let report = oathdesk_formats::lint::lint_spreadsheet(&bytes, None)
            .map_err(|e| anyhow!("{name}: {e}"))?;
        // Row problems were listed above; the rest of the linter's findings here.
        for finding in report.findings.iter().filter(|f| {
            !sheet.problems.iter().any(|p| {
                f.location.as_deref() == Some(&format!("line {}", p.line))
                    && f.field.as_deref() == Some(p.field)
            })
        }) {
            println!("{name}: {finding}");
        }
        if bad > 0 && !skip_bad {
            return Err(refuse());
        }
        println!(
            "{} row(s) would be imported, {bad} skipped; nothing imported (--dry-run)",
            sheet.rows.len()
        );
        return Ok(());
    }
    let mut session = options.unlock()?;
    // Tokens this vault handed over before: say so (to whom, when), as
    // every other import does.
    let probes: Vec<oathdesk_formats::Record> = sheet
        .rows
        .iter()
        .map(|row| {
            let mut record = oathdesk_formats::Record::new(Credential::totp(row.secret.clone()));
            record.serial = row.serial.clone();
            record.user = Some(row.user.clone());
            record
        })
        .collect();
    let sha = oathdesk_vault::custody::file_sha256(&bytes);
    crate::commands::custody::note_on_import(&mut session, &name, &sha, &probes);
    drop(probes);
    let count = session.import_sheet(sheet, skip_bad, input::now())?;
    println!("imported {count} credential(s) from {name}, {bad} skipped");
    // The sheet's other columns (mobile, manager…) are the users' data on file.
    if let Ok(directory) = oathdesk_formats::directory::read(&bytes)
        && !directory.columns.is_empty()
    {
        let source = format!(
            "csv:{}",
            file.file_name()
                .map_or(name.clone(), |n| n.to_string_lossy().into_owned())
        );
        let report = import_directory(&mut session, &directory, &source, false)?;
        print_facts_report(&report, &name);
    }
    eprintln!(
        "oathdesk: the secrets are now in the vault. Destroy the plaintext file {name} and every copy of it \
         (mail attachments, shares, backups): it still holds every secret in clear text."
    );
    Ok(())
}

/// Writes a directory file's rows as data on file.
pub fn import_directory(
    session: &mut oathdesk_vault::Session,
    directory: &oathdesk_formats::directory::Directory,
    source: &str,
    create: bool,
) -> Result<oathdesk_vault::FactsReport> {
    let updates = directory
        .rows
        .iter()
        .map(|row| oathdesk_vault::FactsUpdate {
            upn: row.user.clone(),
            display_name: row.display_name.clone(),
            values: row.values.iter().cloned().collect(),
        })
        .collect();
    Ok(session.update_user_facts(updates, source, create, input::now())?)
}

/// Says what an import of data on file did; every skipped user is named.
pub fn print_facts_report(report: &oathdesk_vault::FactsReport, name: &str) {
    println!(
        "data on file from {name}: {} user(s) updated, {} unchanged, {} created, {} not in the vault",
        report.updated,
        report.unchanged,
        report.created,
        report.not_in_vault.len()
    );
    for upn in &report.not_in_vault {
        eprintln!("oathdesk: {upn} is not in the vault: skipped (add them, or pass --create)");
    }
}
