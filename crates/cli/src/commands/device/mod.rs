//! `oathdesk device …` and `oathdesk enroll`: programming Token2 Molto-2 and
//! single-profile tokens, with the vault recording every burn.
//!
//! Glue only: the protocol, the safe burn order and the refusals live in
//! `oathdesk-devices` ([`Token`]); the vault's `begin_burn`/`finish_burn`
//! record a burn before its first write and after its verification. The web
//! console calls the same functions.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_devices::crypto::DeviceKey;
use oathdesk_devices::params::{DisplayTimeout, Family};
use oathdesk_devices::programmer::{BurnReport, BurnRequest, Confirmation, DeviceError, Token};
use oathdesk_devices::recorded;
use oathdesk_devices::sim::{ButtonOutcome, Display, Simulator};
use oathdesk_devices::transport::{self, Link, SimTransport, TraceDirection, Transport};
use oathdesk_otp::{Algorithm, Credential, Kind, Secret, Totp, seed};
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::{Session, TokenInfo};
use zeroize::Zeroizing;

use crate::input::{self, EncodingArgs, ParamArgs, rfc3339};
use crate::unlock::{VaultOptions, read_passphrase};

mod burning;
mod clock;
mod manage;
mod provision;
mod sim;

pub(super) use burning::period_of;
use burning::*;
use clock::*;
use manage::*;
use provision::*;
use sim::*;

pub use super::enroll::{EnrollArgs, enroll};

/// The environment variable of the transport spec.
pub const TRANSPORT_ENV: &str = "OATHDESK_TRANSPORT";
/// The environment variable of the Molto-2 customer key.
pub const KEY_ENV: &str = "OATHDESK_DEVICE_KEY";
/// The environment variable of a new customer key (`device set-key`).
pub const NEW_KEY_ENV: &str = "OATHDESK_DEVICE_NEW_KEY";

/// How to reach the token and prove the key.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Device connection")]
pub struct ConnectionArgs {
    // The help is an attribute, not a doc comment: rustdoc reads `[:N]` as a link.
    #[arg(
        long,
        global = true,
        value_name = "SPEC",
        help = "auto, pcsc[:READER], usb[:N], exec:COMMAND or sim:FILE [env: OATHDESK_TRANSPORT; default: auto, the one Token2 token PC/SC or USB reaches]"
    )]
    pub transport: Option<String>,
    /// The token family when the transport cannot tell: molto2 or single-profile.
    #[arg(long, global = true, value_name = "FAMILY")]
    pub family: Option<Family>,
    /// Print every APDU on stderr (seeds, keys and auth answers redacted).
    #[arg(long, global = true)]
    pub trace: bool,
    /// Read the Molto-2 customer key from the first line of FILE (else OATHDESK_DEVICE_KEY, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The customer key is hex (as the vendor tool's --key); default: text (--keyascii).
    #[arg(long, global = true)]
    pub key_hex: bool,
    /// Use the factory customer key TOKEN2MOLTO1-KEY.
    #[arg(long, global = true, conflicts_with = "key_file")]
    pub factory_key: bool,
}

#[derive(Args, Debug)]
pub struct DeviceArgs {
    #[command(subcommand)]
    pub command: DeviceCommand,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// List the tokens the transport reaches (no key needed).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Serial, model, clock and drift of the token (no key needed).
    Info {
        #[arg(long)]
        json: bool,
    },
    /// The Molto-2's profiles: title, parameters, occupancy, clock (no key needed).
    Slots {
        /// Show empty slots too.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Burn a secret into a slot, recorded in the vault first.
    #[command(after_help = "\
The secret comes from SECRET: '-' (a line of standard input), @FILE, an otpauth:// URI, or \
OATHDESK_SECRET when left out. Order on a Molto-2: read the slot, delete it (only with \
--overwrite), configuration and clock, seed, title, read back. On single-profile tokens: \
configuration, then seed.

Examples:
  oathdesk device burn --slot 3 @seed.txt --title Contoso --user bob@contoso.com
  oathdesk device burn --slot 3 --generate --algorithm sha256 --transport sim:molto.json")]
    Burn(Box<BurnArgs>),
    /// Set a slot's clock to the host's, or to --at TIME (Molto-2: --slot N or --all).
    #[command(after_help = "\
--all carries on past a slot the token refuses and reports each; the exit status says whether \
every slot was set. A single-profile token's clock comes with its whole configuration: its \
display time-out is kept as the vault recorded it (or --display-timeout).

The vault records each clock set on its credential there: 'oathdesk fleet drift' then fits the \
token's drift from the codes seen since, not before.")]
    SyncTime {
        #[arg(long, value_name = "N", conflicts_with = "all")]
        slot: Option<u8>,
        #[arg(long)]
        all: bool,
        /// Set the clock to TIME instead of now: Unix seconds or RFC 3339 (for tests, or a
        /// verifier that runs on another clock).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Single-profile tokens: the display time-out to write with the clock [default: the
        /// vault's record of the last burn or configuration].
        #[arg(long, value_name = "S")]
        display_timeout: Option<DisplayTimeout>,
        /// Molto-2: set the clock without recording it in the vault (the drift report then
        /// keeps counting the codes seen before).
        #[arg(long)]
        no_vault: bool,
    },
    /// Change a slot's algorithm, digits, period or display time-out without a new seed.
    #[command(after_help = "\
Config only: the seed stays; the vault's credential in the slot takes the new parameters (its \
codes follow the token's) and its history records the change. Unset values keep the vault's. \
The write also sets the slot's clock. Restricted-sync single-profile tokens are refused: a \
configuration write clears their seed (burn them again instead).")]
    Configure(ConfigureArgs),
    /// Change a Molto-2 slot's title only (1 to 12 bytes); recorded in the vault's history.
    Title {
        #[arg(long, value_name = "N")]
        slot: u8,
        title: String,
    },
    /// Delete a Molto-2 slot's seed (its title stays).
    Delete {
        #[arg(long, value_name = "N")]
        slot: u8,
    },
    /// Change the Molto-2 customer key (committed when ▲ is pressed).
    SetKey {
        /// Read the new key from the first line of FILE (else OATHDESK_DEVICE_NEW_KEY, else a prompt).
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// Factory reset of a Molto-2 (no key needed; committed when ▲ is pressed).
    Reset,
    /// Lock the Molto-2's screen (firmware 2.1+).
    Lock,
    /// Unlock the Molto-2's screen (firmware 2.1+).
    Unlock,
    /// Give every user in a file a new seed in the next free Molto-2 slot.
    Provision(ProvisionArgs),
    /// Simulated tokens, to try every command without hardware.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Args, Debug)]
pub struct BurnArgs {
    /// The slot (Molto-2: 0-99; leave out for single-profile tokens).
    #[arg(long, value_name = "N")]
    pub slot: Option<u8>,
    /// The secret: '-', @FILE, an otpauth:// URI or the value (OATHDESK_SECRET when left out).
    #[arg(conflicts_with = "generate")]
    pub secret: Option<String>,
    /// Generate a new secret (20 bytes for SHA-1, 32 for SHA-256).
    #[arg(long)]
    pub generate: bool,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    /// HMAC: sha1 or sha256 [default: sha1, or the URI's].
    #[arg(long, value_name = "ALG")]
    pub algorithm: Option<Algorithm>,
    /// 4, 6, 8 or 10 on a Molto-2; 6 on single-profile tokens [default: 6, or the URI's].
    #[arg(long, value_name = "N")]
    pub digits: Option<u64>,
    /// 30 or 60 seconds [default: 30, or the URI's].
    #[arg(long, value_name = "S")]
    pub period: Option<u64>,
    /// Molto-2: the title on the display, 1 to 12 bytes.
    #[arg(long)]
    pub title: Option<String>,
    /// 15, 30, 60 or 120 seconds.
    #[arg(long, value_name = "S", default_value = "30")]
    pub display_timeout: DisplayTimeout,
    /// Delete the slot's seed first if it holds one, and replace the vault's credential there.
    #[arg(long)]
    pub overwrite: bool,
    /// The user the token is for (assigned once the burn is verified).
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// A free label for the vault.
    #[arg(long)]
    pub label: Option<String>,
    /// Burn without recording the secret in the vault (nothing will know it).
    #[arg(long)]
    pub no_vault: bool,
    /// Single-profile tokens: write the seed only, leaving the clock and settings as they are.
    #[arg(long)]
    pub seed_only: bool,
    /// Burn even if the vault holds this secret on another credential already.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ConfigureArgs {
    /// The slot (Molto-2; leave out for single-profile tokens).
    #[arg(long, value_name = "N")]
    pub slot: Option<u8>,
    /// sha1 or sha256 [default: the vault's].
    #[arg(long, value_name = "ALG")]
    pub algorithm: Option<Algorithm>,
    /// 4, 6, 8 or 10 on a Molto-2 [default: the vault's].
    #[arg(long, value_name = "N")]
    pub digits: Option<u64>,
    /// 30 or 60 seconds [default: the vault's].
    #[arg(long, value_name = "S")]
    pub period: Option<u64>,
    /// 15, 30, 60 or 120 seconds [default: the vault's record, else 30].
    #[arg(long, value_name = "S")]
    pub display_timeout: Option<DisplayTimeout>,
}

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    #[arg(
        long,
        value_name = "FILE",
        help = "One user per line: UPN[,TITLE]; '#' starts a comment; a header line 'upn,…' is skipped"
    )]
    pub users: PathBuf,
    /// The first slot to fill.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub first_slot: u8,
    #[arg(long, value_name = "ALG", default_value = "sha1")]
    pub algorithm: Algorithm,
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub digits: u64,
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub period: u64,
    #[arg(long, value_name = "S", default_value = "30")]
    pub display_timeout: DisplayTimeout,
    /// Issuer recorded with each credential (as authenticators show it).
    #[arg(long)]
    pub issuer: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Create a simulated token in FILE.
    New {
        file: PathBuf,
        /// molto2 or single-profile.
        #[arg(long, default_value = "molto2")]
        family: Family,
        #[arg(long)]
        serial: Option<String>,
        /// A simulator option as NAME=VALUE (see docs/src/devices.md: simulators).
        #[arg(long = "option", value_name = "NAME=VALUE")]
        options: Vec<String>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Press the token's ▲ button (confirms a factory reset or key change).
    Press { file: PathBuf },
    /// What the token's display shows now.
    Show {
        file: PathBuf,
        /// Molto-2 slot.
        #[arg(long, default_value_t = 0)]
        slot: u8,
    },
    /// Serve the simulated token on standard input/output as an exec bridge.
    Serve { file: PathBuf },
}

// ----------------------------------------------------------------- connecting

impl ConnectionArgs {
    /// The transport the user chose: --transport, else OATHDESK_TRANSPORT.
    /// Every device command, `device list` included, goes through here.
    fn chosen_spec(&self) -> Option<String> {
        self.transport
            .clone()
            .or_else(|| std::env::var(TRANSPORT_ENV).ok().filter(|s| !s.is_empty()))
    }

    fn spec(&self) -> String {
        self.chosen_spec().unwrap_or_else(|| "auto".into())
    }

    /// Opens the transport and reads the token's identity.
    pub fn connect(&self) -> Result<Token<'static>> {
        let spec = self.spec();
        let transport = transport::open(&spec)?;
        self.connect_over(transport)
    }

    fn connect_over(&self, transport: Box<dyn Transport>) -> Result<Token<'static>> {
        let mut link = Link::new(transport);
        if self.trace {
            link = link.with_trace(|direction, text| {
                let arrow = match direction {
                    TraceDirection::Command => ">",
                    TraceDirection::Response => "<",
                };
                eprintln!("{arrow} {text}");
            });
        }
        Ok(Token::connect(link, self.family)?)
    }

    /// The Molto-2 customer key: --factory-key, --key-file, the environment
    /// or a prompt. Never from the command line itself.
    pub fn customer_key(&self) -> Result<DeviceKey> {
        if self.factory_key {
            return Ok(DeviceKey::molto2_factory());
        }
        let text = if self.key_file.is_some() || std::env::var(KEY_ENV).is_ok_and(|v| !v.is_empty())
        {
            read_passphrase(self.key_file.as_ref(), KEY_ENV, "")?
        } else {
            // The prompt reads the terminal, not standard input (which may
            // carry the secret).
            Zeroizing::new(
                rpassword::prompt_password("Customer key of the Molto-2 (empty: the factory key): ").map_err(
                    |_| {
                        anyhow!(
                            "no customer key: pass --key-file FILE, set {KEY_ENV}, or --factory-key for a token that \
                             still has the factory key"
                        )
                    },
                )?,
            )
        };
        key_from_text(&text, self.key_hex)
    }
}

fn key_from_text(text: &str, hex: bool) -> Result<DeviceKey> {
    if text.is_empty() {
        return Ok(DeviceKey::molto2_factory());
    }
    if hex {
        let bytes = Zeroizing::new(oathdesk_devices::hex::decode(text).ok_or_else(|| {
            anyhow!("the customer key is not hex (drop --key-hex for a text key)")
        })?);
        return Ok(DeviceKey::from_customer_key(&bytes));
    }
    Ok(DeviceKey::from_customer_key(text.as_bytes()))
}

fn factory_key_warning(token: &Token<'_>) {
    if token.uses_factory_key() {
        eprintln!(
            "oathdesk: warning: this Molto-2 still has the factory customer key (TOKEN2MOLTO1-KEY): anyone who \
             records its USB traffic can decrypt the seeds written now. Set your own with 'oathdesk device set-key'."
        );
    }
}

/// Authenticates: Molto-2 with the customer key, single-profile with its
/// fixed key.
pub(super) fn authenticate(token: &mut Token<'_>, connection: &ConnectionArgs) -> Result<()> {
    authenticate_quietly(token, connection)?;
    factory_key_warning(token);
    Ok(())
}

/// [`authenticate`] without the factory-key warning (for `set-key`, which
/// is what the warning asks for).
fn authenticate_quietly(token: &mut Token<'_>, connection: &ConnectionArgs) -> Result<()> {
    let key = match token.family() {
        Family::Molto2 => Some(connection.customer_key()?),
        Family::SingleProfile => None,
    };
    token.authenticate(key)?;
    Ok(())
}

fn drift_text(drift: i64) -> String {
    match drift {
        0 => "in step with this computer".into(),
        d if d < 0 => format!("{} s behind this computer", -d),
        d => format!("{d} s ahead of this computer"),
    }
}

// ----------------------------------------------------------------- commands

pub fn run(args: DeviceArgs, vault: &VaultOptions) -> Result<()> {
    let connection = &args.connection;
    match args.command {
        DeviceCommand::List { json } => list(connection, json),
        DeviceCommand::Info { json } => info(connection, json),
        DeviceCommand::Slots { all, json } => slots(connection, all, json),
        DeviceCommand::Burn(burn_args) => burn(*burn_args, connection, vault),
        DeviceCommand::SyncTime {
            slot,
            all,
            at,
            display_timeout,
            no_vault,
        } => {
            let at = at.as_deref().map(input::parse_time).transpose()?;
            let vault = (!no_vault).then_some(vault);
            sync_time(connection, vault, slot, all, at, display_timeout)
        }
        DeviceCommand::Configure(args) => configure(args, connection, vault),
        DeviceCommand::Title { slot, title } => retitle(connection, vault, slot, &title),
        DeviceCommand::Delete { slot } => delete(connection, slot),
        DeviceCommand::SetKey { new_key_file } => set_key(connection, new_key_file),
        DeviceCommand::Reset => reset(connection),
        DeviceCommand::Lock => {
            let mut token = connection.connect()?;
            authenticate(&mut token, connection)?;
            token.lock()?;
            eprintln!("oathdesk: the screen of {} is locked", token.serial());
            Ok(())
        }
        DeviceCommand::Unlock => {
            let mut token = connection.connect()?;
            authenticate(&mut token, connection)?;
            token.unlock()?;
            eprintln!("oathdesk: the screen of {} is unlocked", token.serial());
            Ok(())
        }
        DeviceCommand::Provision(provision_args) => provision(provision_args, connection, vault),
        DeviceCommand::Sim(command) => sim(command),
    }
}

fn list(connection: &ConnectionArgs, json: bool) -> Result<()> {
    let specs: Vec<String> = match connection.chosen_spec() {
        Some(spec) if spec != "auto" => vec![spec],
        _ => {
            let discovery = transport::discover();
            for note in &discovery.notes {
                eprintln!("oathdesk: {note}");
            }
            discovery.specs
        }
    };
    let mut found = Vec::new();
    for spec in &specs {
        let listed = ConnectionArgs {
            transport: Some(spec.clone()),
            ..connection.clone()
        };
        match listed.connect() {
            Ok(token) => found.push(serde_json::json!({
                "transport": spec,
                "family": token.family().name(),
                "model": token.model_name(),
                "serial": token.serial(),
                "via": token.describe(),
            })),
            Err(e) => eprintln!("oathdesk: {spec}: {e:#}"),
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(found));
    } else if found.is_empty() {
        bail!(
            "no token found: plug in a Molto-2 (a direct USB port, not a hub), or put a single-profile token on an \
             NFC reader; to try oathdesk without hardware use --transport sim:FILE"
        );
    } else {
        for token in &found {
            println!(
                "{:<20} {:<14} {:<16} {}",
                token["serial"].as_str().unwrap_or_default(),
                token["model"].as_str().unwrap_or_default(),
                token["transport"].as_str().unwrap_or_default(),
                token["via"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn info(connection: &ConnectionArgs, json: bool) -> Result<()> {
    let token = connection.connect()?;
    let now = input::now();
    let drift = token.drift(now);
    let restricted = token.model().map(|m| m.restricted_sync);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "serial": token.serial(),
                "family": token.family().name(),
                "model": token.model_name(),
                "profiles": token.profiles(),
                "time": token.time(),
                "drift_seconds": drift,
                "restricted_sync": restricted,
                "via": token.describe(),
            })
        );
        return Ok(());
    }
    println!("serial     {}", token.serial());
    println!(
        "model      {} ({})",
        token.model_name(),
        token.family().name()
    );
    if token.family() == Family::Molto2 {
        println!("profiles   {}", token.profiles());
    }
    println!(
        "clock      {} ({})",
        rfc3339(u64::from(token.time())),
        drift_text(drift)
    );
    if let Some(restricted) = restricted {
        println!(
            "time sync  {}",
            if restricted {
                "restricted: setting the clock clears the seed"
            } else {
                "unrestricted: the seed survives a clock change"
            }
        );
    }
    println!("via        {}", token.describe());
    if drift.abs() > 30 {
        eprintln!(
            "oathdesk: warning: the token's clock is {} — codes will be off; fix it with 'oathdesk device sync-time'",
            drift_text(drift)
        );
    }
    Ok(())
}

fn slots(connection: &ConnectionArgs, all: bool, json: bool) -> Result<()> {
    let mut token = connection.connect()?;
    if token.family() != Family::Molto2 {
        bail!(
            "a single-profile token has one profile and no readable slots: 'oathdesk device info' shows what it tells"
        );
    }
    let now = input::now();
    let mut rows = Vec::new();
    for slot in 0..token.profiles() {
        let block = token.slot(slot)?;
        if block.seed_present || all {
            rows.push((slot, block));
        }
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(slot, b)| {
                serde_json::json!({
                    "slot": slot,
                    "seed": b.seed_present,
                    "title": b.title_text(),
                    "algorithm": match b.hmac { 1 => "sha1", 2 => "sha256", _ => "unknown" },
                    "period": b.step,
                    "digits": b.digits,
                    "clock": b.time_a,
                    "last_set": b.time_b,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    println!("SLOT  SEED  TITLE         ALG     STEP  DIG  CLOCK");
    for (slot, b) in &rows {
        let clock = if b.time_a == 0 {
            "-".to_owned()
        } else {
            drift_text(i64::from(b.time_a) - now as i64)
        };
        println!(
            "{:>4}  {:<4}  {:<12}  {:<6}  {:>4}  {:>3}  {}",
            slot,
            if b.seed_present { "yes" } else { "-" },
            input::printable(&b.title_text()),
            match b.hmac {
                1 => "sha1",
                2 => "sha256",
                _ => "-",
            },
            b.step,
            b.digits,
            clock
        );
    }
    let used = rows.iter().filter(|(_, b)| b.seed_present).count();
    eprintln!(
        "oathdesk: {used} of {} slots hold a seed ({} APDUs)",
        token.profiles(),
        token.apdus()
    );
    Ok(())
}

/// A burn: recorded in the vault (`recorded::burn`, the path the web
/// console takes too) unless `--no-vault`. Warnings go to stderr.
pub(super) fn burn_job(
    token: &mut Token<'_>,
    session: Option<&mut Session>,
    job: recorded::Burn,
    now: u64,
) -> Result<(BurnReport, Option<TokenInfo>)> {
    let (report, info) = match session {
        Some(session) => {
            let burned = recorded::burn(token, session, &job, now)?;
            (burned.report, Some(burned.info))
        }
        None => {
            let mut request = BurnRequest::new(
                token.family(),
                &job.credential,
                job.title.as_deref(),
                job.display_timeout,
            )?;
            if job.seed_only {
                request = request.seed_only(token.family())?;
            }
            (token.burn(job.slot, &request, job.overwrite, now)?, None)
        }
    };
    for warning in &report.warnings {
        eprintln!("oathdesk: warning: {warning}");
    }
    Ok((report, info))
}

/// Refuses (without `force`) a secret the vault holds on another live
/// credential already: two tokens with one secret show the same codes, so
/// neither proves who signs in. The same slot being burned again is not
/// "another".
pub(super) fn refuse_known_secret(
    session: &mut Session,
    credential: &Credential,
    token: &Token<'_>,
    slot: u8,
    force: bool,
) -> Result<()> {
    let here = recorded::slot_reference(token, slot);
    let others: Vec<String> = session
        .secret_holders(&credential.secret, credential.algorithm)?
        .iter()
        .map(TokenInfo::reference)
        .filter(|reference| *reference != here)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    if force {
        eprintln!(
            "oathdesk: warning: --force: the vault holds this secret on {} already; both will show the same codes",
            others.join(", ")
        );
        return Ok(());
    }
    bail!(
        "the vault holds this secret on {} already: two tokens with one secret show the same codes, so neither \
         proves who signs in. Capture a fresh QR code (or --generate a secret); pass --force if a second copy is \
         really meant",
        others.join(", ")
    )
}
