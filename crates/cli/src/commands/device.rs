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

fn credential_for_burn(args: &BurnArgs) -> Result<Credential> {
    let mut credential = if args.generate {
        let algorithm = args.algorithm.unwrap_or_default();
        Credential::totp(seed::generate(seed::default_len(algorithm)).map_err(|e| anyhow!("{e}"))?)
    } else {
        let text = input::secret_text(args.secret.as_deref())?;
        input::credential_from_text(&text, &args.encoding)?
    };
    input::apply_params(
        &mut credential,
        &ParamArgs {
            algorithm: args.algorithm,
            digits: args.digits,
            period: args.period,
            ..ParamArgs::default()
        },
    )?;
    Ok(credential)
}

fn burn(args: BurnArgs, connection: &ConnectionArgs, vault: &VaultOptions) -> Result<()> {
    let credential = credential_for_burn(&args)?;
    let mut token = connection.connect()?;
    let slot = slot_for(&token, args.slot)?;
    // Refuse what the token cannot take before asking for any key.
    let request = BurnRequest::new(
        token.family(),
        &credential,
        args.title.as_deref(),
        args.display_timeout,
    )?;
    if args.seed_only {
        request.seed_only(token.family())?;
    }
    let mut session = if args.no_vault {
        eprintln!(
            "oathdesk: warning: --no-vault: nothing records this secret; the token is the only place it will be"
        );
        None
    } else {
        Some(vault.unlock()?)
    };
    if token.family() == Family::SingleProfile && token.model().is_none() {
        // Said first: nothing else matters for a token that is never written.
        return Err(DeviceError::UnknownModel {
            serial: token.serial().to_owned(),
            known: oathdesk_devices::single::known_prefixes(),
        }
        .into());
    }
    if let Some(session) = session.as_mut() {
        refuse_known_secret(session, &credential, &token, slot, args.force)?;
    }
    authenticate(&mut token, connection)?;
    let now = input::now();
    let job = recorded::Burn {
        credential: credential.clone(),
        slot,
        title: args.title.clone(),
        display_timeout: args.display_timeout,
        user: args.user.clone(),
        label: args.label.clone(),
        overwrite: args.overwrite,
        seed_only: args.seed_only,
        generated_by: args
            .generate
            .then(|| "oathdesk device burn --generate".to_owned()),
    };
    let (report, info) = burn_job(&mut token, session.as_mut(), job, now)?;
    let reference = recorded::slot_reference(&token, slot);
    let code = current_code(&credential, now);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "token": reference,
                "credential_id": info.as_ref().map(|i| i.id),
                "state": info.as_ref().map(|i| i.state),
                "replaced": report.replaced,
                "apdus": report.apdus,
                "code": code,
            })
        );
    } else {
        let state = info
            .as_ref()
            .map(|i| format!("; vault: {}", i.state))
            .unwrap_or_default();
        println!(
            "burned {reference} ({}, {} digits, {} s){state}",
            credential.algorithm,
            credential.digits,
            period_of(&credential)
        );
        if let Some(code) = code {
            println!("the token should show {code} now");
        }
    }
    Ok(())
}

pub(super) fn period_of(credential: &Credential) -> u64 {
    match credential.kind {
        Kind::Totp { step } => step.period(),
        Kind::Hotp { .. } => 0,
    }
}

fn current_code(credential: &Credential, now: u64) -> Option<String> {
    let Kind::Totp { step } = credential.kind else {
        return None;
    };
    Totp::new(
        &credential.secret,
        credential.algorithm,
        credential.digits,
        step,
    )
    .generate_at(now)
    .ok()
    .map(|c| c.to_string())
}

/// The clock to set: `--at` as given, else the host's now at each write.
fn clock_at(at: Option<u64>) -> impl Fn() -> u64 {
    move || at.unwrap_or_else(input::now)
}

/// Tells the vault which Molto-2 slots' clocks were set: the drift report
/// starts their history again. A slot the vault has no credential in is
/// counted, not an error (a token programmed elsewhere).
fn record_slot_clocks(
    session: &mut Session,
    token: &Token<'_>,
    outcomes: &[oathdesk_devices::programmer::SlotOutcome],
    at: Option<u64>,
) -> Result<()> {
    let mut unknown = 0;
    for outcome in outcomes.iter().filter(|o| o.result.is_ok()) {
        let info = match recorded::credential_in(session, token, outcome.slot) {
            Ok(info) => info,
            Err(recorded::RecordedError::Vault(oathdesk_vault::Error::NotFound(_))) => {
                unknown += 1;
                continue;
            }
            Err(e) => {
                eprintln!(
                    "oathdesk: slot {}: its clock is set, but not recorded in the vault: {e}",
                    outcome.slot
                );
                continue;
            }
        };
        let now = input::now();
        session
            .record_device_write(
                &TokenRef::Id(info.id),
                &oathdesk_vault::DeviceWrite::Clock {
                    time: at.unwrap_or(now),
                },
                now,
            )
            .with_context(|| {
                format!(
                    "the clock of {} is set, but the vault could not record it (run the command again)",
                    info.reference()
                )
            })?;
    }
    if unknown > 0 {
        eprintln!(
            "oathdesk: the vault has no credential in {unknown} of the slot(s) set: nothing recorded for them"
        );
    }
    Ok(())
}

/// `vault` is `None` with `--no-vault`.
fn sync_time(
    connection: &ConnectionArgs,
    vault: Option<&VaultOptions>,
    slot: Option<u8>,
    all: bool,
    at: Option<u64>,
    display_timeout: Option<DisplayTimeout>,
) -> Result<()> {
    let mut token = connection.connect()?;
    let before = token.drift(input::now());
    let clock = clock_at(at);
    let target = match at {
        Some(at) => format!(" to {}", rfc3339(at)),
        None => String::new(),
    };
    match token.family() {
        Family::Molto2 => {
            let slots: Vec<u8> = match (slot, all) {
                (Some(slot), _) => vec![slot],
                (None, true) => (0..token.profiles()).collect(),
                (None, false) => bail!("which slot? pass --slot N, or --all for every slot"),
            };
            // Unlocked first: a wrong passphrase stops before any write.
            let mut session = match vault {
                Some(vault) => Some(vault.unlock()?),
                None => {
                    eprintln!(
                        "oathdesk: warning: --no-vault: the vault does not learn of this; its drift report \
                         keeps counting the codes seen before"
                    );
                    None
                }
            };
            authenticate(&mut token, connection)?;
            let bar = progress(slots.len() as u64, "syncing");
            let outcomes = bar.suspend(|| token.sync_time_slots(&slots, &clock));
            bar.finish_and_clear();
            let mut failed = 0;
            for outcome in &outcomes {
                if let Err(e) = &outcome.result {
                    failed += 1;
                    eprintln!("oathdesk: slot {}: {e}", outcome.slot);
                }
            }
            let untried = slots.len() - outcomes.len();
            let set = outcomes.len() - failed;
            println!(
                "set the clock of {set} of {} slot(s) of {}{target} (it was {})",
                slots.len(),
                token.serial(),
                drift_text(before)
            );
            if let Some(session) = session.as_mut() {
                record_slot_clocks(session, &token, &outcomes, at)?;
            }
            if failed > 0 || untried > 0 {
                bail!(
                    "{failed} slot(s) refused{}; the others are set — run the command again for the slots named above",
                    if untried > 0 {
                        format!(", {untried} not tried after the connection was lost")
                    } else {
                        String::new()
                    }
                );
            }
        }
        Family::SingleProfile => {
            if slot.is_some_and(|s| s != 0) {
                bail!("a single-profile token has one profile: drop --slot");
            }
            // Its clock comes with the whole configuration, and restricted
            // models lose the seed: the vault's credential supplies both.
            let Some(vault) = vault else {
                bail!(
                    "a single-profile token's clock is written with its whole configuration, which \
                     oathdesk reads from the vault: drop --no-vault"
                );
            };
            let mut session = vault.unlock()?;
            let reference: TokenRef = token.serial().parse()?;
            let (info, credential) = session.reveal(&reference).map_err(|e| {
                anyhow!(
                    "{e}: setting a single-profile token's clock rewrites its configuration{}, so oathdesk needs \
                     the credential; burn the token again with 'oathdesk device burn' instead",
                    if token.model().is_some_and(|m| m.restricted_sync) {
                        " and its seed"
                    } else {
                        ""
                    }
                )
            })?;
            // The write carries the display time-out: keep the one the
            // token has, as the vault recorded it.
            let display_timeout = match display_timeout {
                Some(timeout) => timeout,
                None => session
                    .recorded_display_timeout(info.id)?
                    .and_then(DisplayTimeout::from_seconds)
                    .ok_or_else(|| {
                        anyhow!(
                            "the vault has no record of {}'s display time-out, which this write sets too: pass \
                             --display-timeout S (15, 30, 60 or 120) with the one the token has",
                            info.reference()
                        )
                    })?,
            };
            let request =
                BurnRequest::new(Family::SingleProfile, &credential, None, display_timeout)?;
            let restricted = token.model().is_some_and(|m| m.restricted_sync);
            let time = clock();
            authenticate(&mut token, connection)?;
            token.sync_time_single(&request.config, restricted.then_some(&request), time)?;
            session.record_device_write(
                &TokenRef::Id(info.id),
                &oathdesk_vault::DeviceWrite::Clock { time },
                input::now(),
            )?;
            println!(
                "set the clock of {}{target} (it was {}; display time-out {} s kept){}",
                token.serial(),
                drift_text(before),
                display_timeout.seconds(),
                if restricted {
                    "; its seed was written again from the vault"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

fn configure(args: ConfigureArgs, connection: &ConnectionArgs, vault: &VaultOptions) -> Result<()> {
    let mut token = connection.connect()?;
    let slot = slot_for(&token, args.slot)?;
    let mut session = vault.unlock()?;
    let current = recorded::credential_in(&mut session, &token, slot)?;
    // Unset values keep the vault's: a template credential with them
    // (its secret is never written: config only).
    let mut template = Credential::totp(Secret::from_bytes(vec![0x5A; 20]));
    input::apply_params(
        &mut template,
        &ParamArgs {
            algorithm: Some(match args.algorithm {
                Some(algorithm) => algorithm,
                None => current.algorithm.parse().map_err(|_| {
                    anyhow!(
                        "{} has algorithm {} in the vault",
                        current.reference(),
                        current.algorithm
                    )
                })?,
            }),
            digits: Some(args.digits.unwrap_or(u64::from(current.digits))),
            period: Some(args.period.or(current.period).unwrap_or(30)),
            ..ParamArgs::default()
        },
    )?;
    let display_timeout = match args.display_timeout {
        Some(timeout) => timeout,
        None => session
            .recorded_display_timeout(current.id)?
            .and_then(DisplayTimeout::from_seconds)
            .unwrap_or_default(),
    };
    let config = BurnRequest::new(token.family(), &template, None, display_timeout)?.config;
    authenticate(&mut token, connection)?;
    let info = recorded::configure(&mut token, &mut session, slot, &config, input::now())?;
    println!(
        "configured {}: {}, {} digits, {} s, display {} s (seed kept; clock set to now); vault: {}",
        info.reference(),
        info.algorithm,
        info.digits,
        info.period.unwrap_or(30),
        display_timeout.seconds(),
        info.state
    );
    Ok(())
}

fn retitle(connection: &ConnectionArgs, vault: &VaultOptions, slot: u8, title: &str) -> Result<()> {
    let mut token = connection.connect()?;
    if token.family() != Family::Molto2 {
        bail!("single-profile tokens have no title");
    }
    oathdesk_devices::params::check_title(title)?;
    let mut session = vault.unlock()?;
    authenticate(&mut token, connection)?;
    let info = recorded::retitle(&mut token, &mut session, slot, title, input::now())?;
    println!(
        "{} is titled '{}'",
        info.reference(),
        input::printable(title)
    );
    Ok(())
}

/// The slot a command works on: `--slot N` on a Molto-2, none on a
/// single-profile token.
fn slot_for(token: &Token<'_>, slot: Option<u8>) -> Result<u8> {
    match (token.family(), slot) {
        (Family::Molto2, Some(slot)) if slot >= token.profiles() => bail!(
            "slot {slot} does not exist: this token has slots 0 to {}",
            token.profiles() - 1
        ),
        (Family::Molto2, Some(slot)) => Ok(slot),
        (Family::Molto2, None) => bail!(
            "which slot? pass --slot N (0-{}); 'oathdesk device slots --all' shows them",
            token.profiles() - 1
        ),
        (Family::SingleProfile, None | Some(0)) => Ok(0),
        (Family::SingleProfile, Some(slot)) => {
            bail!("a single-profile token has one profile: drop --slot {slot}")
        }
    }
}

fn delete(connection: &ConnectionArgs, slot: u8) -> Result<()> {
    let mut token = connection.connect()?;
    match token.delete(slot) {
        Err(DeviceError::NeedsAuth { .. }) => {
            authenticate(&mut token, connection)?;
            token.delete(slot)?;
        }
        other => other?,
    }
    println!(
        "deleted the seed of {} (its title stays until the slot is burned again)",
        recorded::slot_reference(&token, slot)
    );
    eprintln!(
        "oathdesk: if the vault records a credential there, retire it: oathdesk token retire {}",
        recorded::slot_reference(&token, slot)
    );
    Ok(())
}

fn set_key(connection: &ConnectionArgs, new_key_file: Option<PathBuf>) -> Result<()> {
    let mut token = connection.connect()?;
    if token.family() != Family::Molto2 {
        bail!("single-profile tokens have a fixed key that cannot be changed");
    }
    let new_text = read_passphrase(new_key_file.as_ref(), NEW_KEY_ENV, "New customer key: ")?;
    if new_key_file.is_none() && std::env::var(NEW_KEY_ENV).map_or(true, |v| v.is_empty()) {
        let again = rpassword::prompt_password("New customer key again: ")
            .map_err(|_| anyhow!("cannot read the key again"))?;
        if *new_text != again {
            bail!("the two new keys differ; nothing was changed");
        }
    }
    if new_text.is_empty() {
        bail!("the new customer key is empty");
    }
    let new_key = key_from_text(&new_text, connection.key_hex)?;
    if new_key.is_molto2_factory() {
        bail!("that is the factory key, which is public: choose another");
    }
    if new_text.len() != 16 {
        eprintln!(
            "oathdesk: note: the key has {} bytes; any length works (the token keeps SHA-1 of it), but Token2's own \
             tools expect 16",
            new_text.len()
        );
    }
    authenticate_quietly(&mut token, connection)?;
    token.set_key(&new_key)?;
    println!(
        "press ▲ on the token to confirm the new customer key; until then the old key stays in force. Keep the key \
         safe: a lost key costs a factory reset, which wipes every slot"
    );
    Ok(())
}

fn reset(connection: &ConnectionArgs) -> Result<()> {
    let mut token = connection.connect()?;
    let confirmation = token.factory_reset()?;
    println!(
        "press ▲ on the token to confirm the factory reset: every slot is wiped and the customer key returns to \
         the factory default{}",
        if confirmation == Confirmation::Accepted {
            " (the token answered 9000; if it shows no prompt, the reset is done)"
        } else {
            ""
        }
    );
    Ok(())
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} {{msg}} ({{elapsed}})"
        ))
        .expect("a valid template"),
    );
    bar
}

// ----------------------------------------------------------------- provision

fn read_users(path: &std::path::Path) -> Result<Vec<recorded::ProvisionUser>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the users file {}", path.display()))?;
    let name = path.display();
    let users = recorded::parse_users(&text).map_err(|problems| {
        for problem in &problems {
            eprintln!("oathdesk: {name}: {problem}");
        }
        anyhow!(
            "{} bad line(s) in {name}; nothing was burned",
            problems.len()
        )
    })?;
    if users.is_empty() {
        bail!("{name} lists no users (one UPN per line)");
    }
    Ok(users)
}

/// Set by Ctrl-C during a provisioning run: the run stops after the burn in
/// progress instead of in the middle of it.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn provision(args: ProvisionArgs, connection: &ConnectionArgs, vault: &VaultOptions) -> Result<()> {
    use std::sync::atomic::Ordering;
    let users = read_users(&args.users)?;
    let started = Instant::now();
    let mut token = connection.connect()?;
    if token.family() != Family::Molto2 {
        bail!(
            "provision fills the profiles of one Molto-2; a single-profile token holds one user: use \
             'oathdesk enroll' or 'oathdesk device burn' for each"
        );
    }
    // Check the parameters once, before the key or the vault is touched.
    // Only its parameters are used: each user gets a fresh secret.
    let mut template = Credential::totp(Secret::from_bytes(vec![
        0x5A;
        seed::default_len(args.algorithm)
    ]));
    input::apply_params(
        &mut template,
        &ParamArgs {
            algorithm: Some(args.algorithm),
            digits: Some(args.digits),
            period: Some(args.period),
            ..ParamArgs::default()
        },
    )?;
    BurnRequest::new(Family::Molto2, &template, None, args.display_timeout)?;
    if args.first_slot >= token.profiles() {
        bail!(
            "--first-slot {} does not exist: slots are 0-{}",
            args.first_slot,
            token.profiles() - 1
        );
    }
    let mut session = vault.unlock()?;
    authenticate(&mut token, connection)?;
    let serial = token.serial().to_owned();
    let request = recorded::Provision {
        users,
        first_slot: args.first_slot,
        template,
        display_timeout: args.display_timeout,
        issuer: args.issuer.clone(),
    };
    // A second Ctrl-C ends the process at once (the slot in progress stays
    // marked burning in the vault).
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\noathdesk: stopping after the burn in progress (Ctrl-C again to stop at once)");
    });
    let bar = progress(0, "provisioning");
    let mut rows = Vec::new();
    let mut on_event = |event: recorded::ProvisionEvent<'_>| match event {
        recorded::ProvisionEvent::Planned { burns } => bar.set_length(burns as u64),
        recorded::ProvisionEvent::AlreadyDone { user, reference } => bar.suspend(|| {
            eprintln!("oathdesk: {user} already has {reference} on this token; skipped")
        }),
        recorded::ProvisionEvent::UnknownSeed { slot } => bar.suspend(|| {
            eprintln!("oathdesk: slot {slot} holds a seed the vault does not know; left alone")
        }),
        recorded::ProvisionEvent::Burning { user, slot } => {
            bar.set_message(format!("slot {slot} {user}"))
        }
        recorded::ProvisionEvent::Burned {
            user,
            burned,
            resumed,
        } => {
            bar.inc(1);
            for warning in &burned.report.warnings {
                bar.suspend(|| eprintln!("oathdesk: warning: {warning}"));
            }
            rows.push(serde_json::json!({
                "user": user,
                "slot": burned.report.slot,
                "credential": burned.info.reference(),
                "state": burned.info.state,
                "resumed": resumed,
                "apdus": burned.report.apdus,
            }));
        }
    };
    let outcome = recorded::provision(
        &mut token,
        &mut session,
        &request,
        &input::now,
        &mut on_event,
        &|| STOP.load(Ordering::SeqCst),
    );
    let summary = match outcome {
        Ok(summary) => summary,
        Err(error) => {
            bar.abandon();
            return Err(error.into());
        }
    };
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for row in &rows {
            println!(
                "{:<40} {}",
                row["user"].as_str().unwrap_or_default(),
                row["credential"].as_str().unwrap_or_default()
            );
        }
    }
    eprintln!(
        "oathdesk: provisioned {} user(s) on {serial} ({} resumed, {} already done) with {} APDUs in {:.1} s",
        summary.burned.len(),
        summary.resumed,
        summary.already_done,
        token.apdus(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

// ----------------------------------------------------------------- simulators

fn sim(command: SimCommand) -> Result<()> {
    match command {
        SimCommand::New {
            file,
            family,
            serial,
            options,
            force,
        } => {
            if file.exists() && !force {
                bail!(
                    "{} exists already (pass --force to replace it)",
                    file.display()
                );
            }
            let mut simulator = Simulator::new(family, serial.as_deref());
            if !options.is_empty() {
                apply_sim_options(&mut simulator, &options)?;
            }
            simulator.save(&file)?;
            println!(
                "created a simulated {} {} in {}: use --transport sim:{}",
                family.product(),
                simulator.serial(),
                file.display(),
                file.display()
            );
        }
        SimCommand::Press { file } => {
            let mut simulator = Simulator::load(&file)?;
            let outcome = simulator.press_button();
            simulator.save(&file)?;
            println!(
                "{}",
                match outcome {
                    ButtonOutcome::Nothing => "▲ pressed: nothing was waiting for confirmation",
                    ButtonOutcome::FactoryReset =>
                        "▲ pressed: factory reset done, every slot wiped",
                    ButtonOutcome::KeyChanged => "▲ pressed: the new customer key is in force",
                }
            );
        }
        SimCommand::Show { file, slot } => {
            let simulator = Simulator::load(&file)?;
            match simulator.display(slot, input::now()) {
                Display::Code(code) => println!("{code}"),
                Display::Empty => bail!("slot {slot} of {} holds no seed", simulator.serial()),
                Display::Locked => bail!("the screen of {} is locked", simulator.serial()),
            }
        }
        SimCommand::Serve { file } => serve(&file)?,
    }
    Ok(())
}

fn apply_sim_options(simulator: &mut Simulator, options: &[String]) -> Result<()> {
    let mut object = serde_json::Map::new();
    for option in options {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| anyhow!("--option {option}: use NAME=VALUE"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        object.insert(name.replace('-', "_"), value);
    }
    let object = serde_json::Value::Object(object);
    match simulator {
        Simulator::Molto2(sim) => {
            sim.options = serde_json::from_value(object).map_err(|e| anyhow!("--option: {e}"))?;
            let profiles = usize::from(sim.options.profiles);
            sim.profiles.resize(profiles, Default::default());
            sim.attempts_left = sim.options.attempts;
        }
        Simulator::SingleProfile(sim) => {
            sim.options = serde_json::from_value(object).map_err(|e| anyhow!("--option: {e}"))?;
        }
    }
    Ok(())
}

/// The exec bridge's other end, for a simulator: one hex line in, one out.
fn serve(file: &std::path::Path) -> Result<()> {
    use std::io::{BufRead, Write};
    let mut transport = SimTransport::open_file(file, None, None)?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.context("reading an APDU")?;
        let Some(command) = oathdesk_devices::hex::decode(&line) else {
            bail!(
                "the bridge got a line that is not hex ({} characters)",
                line.len()
            );
        };
        let response = transport.transmit(&command)?;
        writeln!(stdout, "{}", oathdesk_devices::hex::encode(&response))?;
        stdout.flush()?;
    }
    Ok(())
}
