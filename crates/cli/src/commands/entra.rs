//! `oathdesk entra`: Microsoft Entra ID through Microsoft Graph — sign in,
//! push the vault's tokens, assign and activate them with codes computed
//! from the vault, compare, unassign, delete. The work is done by
//! `oathdesk-entra`; this module reads the configuration and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_entra::assertion::CertificateCredential;
use oathdesk_entra::auth::{
    Authenticator, ClientCredential, DEFAULT_AUTHORITY, DEFAULT_GRAPH, Endpoints, SignIn,
    TokenCache,
};
use oathdesk_entra::graph::{Graph, TemporaryAccessPass};
use oathdesk_entra::http::{Http, RetryPolicy};
use oathdesk_entra::sync::{self, Clock, Line, PushOptions};
use oathdesk_formats::entra::DEFAULT_PROFILE_SERIAL;
use oathdesk_vault::model::{State, TokenRef};
use oathdesk_vault::store::CredentialFilter;
use serde_json::json;
use zeroize::Zeroizing;

use crate::commands::files::first_line;
use crate::input::{self, printable, rfc3339};
use crate::unlock::VaultOptions;

/// The environment variable of the client secret (never an argument).
pub const CLIENT_SECRET_ENV: &str = "OATHDESK_ENTRA_CLIENT_SECRET";

/// Which tenant, which app, and where Entra is.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Entra connection")]
pub struct EntraOptions {
    /// The tenant: its id or a verified domain.
    #[arg(
        long,
        value_name = "TENANT",
        env = "OATHDESK_ENTRA_TENANT",
        global = true
    )]
    pub tenant: Option<String>,
    /// The app registration's Application (client) ID.
    #[arg(
        long,
        value_name = "ID",
        env = "OATHDESK_ENTRA_CLIENT_ID",
        global = true
    )]
    pub client_id: Option<String>,
    /// PEM file with the app's certificate and private key (instead of a client secret).
    #[arg(
        long,
        value_name = "FILE",
        env = "OATHDESK_ENTRA_CERTIFICATE",
        global = true
    )]
    pub certificate: Option<PathBuf>,
    /// Read the client secret from the first line of FILE [else env OATHDESK_ENTRA_CLIENT_SECRET].
    #[arg(long, value_name = "FILE", global = true)]
    pub client_secret_file: Option<PathBuf>,
    /// Microsoft Graph (national clouds, a simulator).
    #[arg(
        long,
        value_name = "URL",
        env = "OATHDESK_GRAPH_URL",
        default_value = DEFAULT_GRAPH,
        global = true
    )]
    pub graph_url: String,
    /// The sign-in authority.
    #[arg(
        long,
        value_name = "URL",
        env = "OATHDESK_AUTHORITY_URL",
        default_value = DEFAULT_AUTHORITY,
        global = true
    )]
    pub authority_url: String,
    /// Where sign-in tokens are kept between runs (owner-only file)
    /// [default: $XDG_CACHE_HOME/oathdesk/entra-tokens.json].
    #[arg(
        long,
        value_name = "FILE",
        env = "OATHDESK_ENTRA_TOKEN_CACHE",
        global = true
    )]
    pub token_cache: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EntraArgs {
    #[command(subcommand)]
    pub command: EntraCommand,
    #[command(flatten)]
    pub options: EntraOptions,
}

#[derive(Subcommand, Debug)]
pub enum EntraCommand {
    /// Sign in: the app with its secret or certificate, or a person with a device code.
    #[command(after_help = "\
Without --device-code the app signs in with its own credential (OATHDESK_ENTRA_CLIENT_SECRET, \
--client-secret-file or --certificate) and oathdesk checks that it works. With --device-code an \
admin signs in in any browser; later commands use that sign-in whenever no app credential is \
configured. Tokens are kept in an owner-only cache file.

Examples:
  OATHDESK_ENTRA_CLIENT_SECRET=… oathdesk entra login
  oathdesk entra login --device-code")]
    Login(LoginArgs),
    /// Who is signed in, the hardware OATH policy, and what Entra's inventory holds.
    Status,
    /// Put the vault's tokens into Entra; with --assign/--activate, give them to their users.
    #[command(after_help = "\
Tokens are created in batches; each is then assigned to its vault user (--assign) and \
activated with a code oathdesk computes from the vault at the moment it sends it (--activate). \
What Entra cannot take (HOTP, SHA-512, not 6 digits, not 30/60 s, a sixth OATH method for a \
user, a serial two tokens would share) is refused first, with the reason. What is not meant to \
be pushed is left out without being a refusal: lost and retired tokens, and tokens in Entra \
already whose secret was purged after delivery (they cannot be activated by oathdesk); \
--explain lists them with the reason. --dry-run says per token whether a run would create, \
assign or activate it. A run that stops half-way resumes when run again and never creates a \
token twice. Every secret sent and every code computed is in the audit log.

Exit codes: 0 done, 1 a failure (run again to resume), 2 some tokens were refused.

Examples:
  oathdesk entra push --user bob@contoso.com --activate
  oathdesk entra push --serial 2100123456 --dry-run
  oathdesk entra push --activate --explain")]
    Push(PushArgs),
    /// A user's OATH methods in Entra: hardware tokens and authenticator apps.
    #[command(after_help = "\
Reads the user's hardware OATH methods (with each token's serial and status) and software OATH \
methods (authenticator apps) through Graph; together they count towards Entra's limit of five \
per user. Needs UserAuthenticationMethod.Read.All (or ReadWrite.All).

Example:
  oathdesk entra list --user bob@contoso.com")]
    List(ListArgs),
    /// Compare the vault with Entra: missing, extra and changed tokens.
    #[command(after_help = "\
Entra's current status and assignment of every token this vault put there are recorded in the \
vault. Exit code 2 when there are differences.")]
    Sync(SyncArgs),
    /// Unassign tokens from their users in Entra (they return to the inventory).
    Unassign(TokensArgs),
    /// Delete tokens from Entra's inventory.
    Delete(DeleteArgs),
    /// Show, enable or disable the tenant's hardware OATH authentication method.
    Policy(PolicyArgs),
    /// Users' data on file from Entra (phones, manager, employee id…).
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Take the directory's mobilePhone, businessPhones, mail, employeeId, department,
    /// officeLocation and manager into the vault's data on file.
    #[command(after_help = "\
Reads every user page by page (User.Read.All) and records each value with its source 'entra' \
and the time. A value Entra no longer holds is removed from file. Users not in the vault are \
counted and listed (--json), or created with --create. The helpdesk's verification methods \
show these values, partly masked (the number to call back).

Example:
  oathdesk entra users sync")]
    Sync {
        /// Create vault users for directory users the vault does not have.
        #[arg(long)]
        create: bool,
        /// Users per Graph page (1-999; Graph sends at most 100 with the manager).
        #[arg(long, value_name = "N")]
        page_size: Option<u32>,
    },
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Sign in as a person (admin) with a code shown here, instead of as the app.
    #[arg(long)]
    pub device_code: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Only this user's tokens.
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// Only this device's.
    #[arg(long)]
    pub serial: Option<String>,
    /// Only in this state.
    #[arg(long)]
    pub state: Option<State>,
    /// Assign each token to its vault user in Entra.
    #[arg(long)]
    pub assign: bool,
    /// Assign and activate each token with a code computed from the vault.
    #[arg(long)]
    pub activate: bool,
    /// Tokens per create request.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub batch: usize,
    /// Link tokens Entra already has under the same serial (only if you know they are this vault's).
    #[arg(long)]
    pub adopt: bool,
    /// Show what would be done (create, assign, activate, per token); send and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also list the tokens left out (lost, retired, secret purged after delivery) and why.
    #[arg(long)]
    pub explain: bool,
    /// Serial of a multi-profile device's profile in Entra: {serial} and {slot} (two digits).
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_PROFILE_SERIAL)]
    pub profile_serial: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The user (UPN or object id).
    #[arg(long, value_name = "UPN")]
    pub user: String,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The profile serial template used when pushing.
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_PROFILE_SERIAL)]
    pub profile_serial: String,
}

#[derive(Args, Debug)]
pub struct TokensArgs {
    /// SERIAL, SERIAL:SLOT or #ID.
    #[arg(required = true, value_name = "TOKEN")]
    pub tokens: Vec<TokenRef>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub tokens: TokensArgs,
    /// Unassign assigned tokens first.
    #[arg(long)]
    pub unassign: bool,
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// enable or disable (else show).
    #[arg(value_parser = ["enable", "disable"])]
    pub change: Option<String>,
}

/// The connection, built from the options and the environment.
struct Connection {
    endpoints: Endpoints,
    client_id: String,
    credential: Option<ClientCredential>,
    cache_path: PathBuf,
}

impl EntraOptions {
    /// Whether an app credential for Graph is configured (a console signs
    /// in as the app, never as a person).
    pub fn app_configured(&self) -> bool {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        set(&self.tenant)
            && set(&self.client_id)
            && (self.certificate.is_some()
                || self.client_secret_file.is_some()
                || std::env::var(CLIENT_SECRET_ENV).is_ok_and(|s| !s.is_empty()))
    }

    fn connection(&self) -> Result<Connection> {
        let tenant = self
            .tenant
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                anyhow!("which tenant? set OATHDESK_ENTRA_TENANT (or --tenant) to its id or domain")
            })?;
        let client_id = self
            .client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "which app? set OATHDESK_ENTRA_CLIENT_ID (or --client-id) to the app registration's \
                     Application (client) ID"
                )
            })?;
        let endpoints = Endpoints::new(&self.authority_url, &self.graph_url, &tenant)?;
        let secret = match &self.client_secret_file {
            Some(path) => Some(first_line(path)?),
            None => std::env::var(CLIENT_SECRET_ENV)
                .ok()
                .filter(|s| !s.is_empty())
                .map(Zeroizing::new),
        };
        let credential = match (&self.certificate, secret) {
            (Some(_), Some(_)) => bail!(
                "both a certificate and a client secret are configured: use one (unset {CLIENT_SECRET_ENV} \
                 or drop --certificate)"
            ),
            (Some(path), None) => {
                let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the certificate file {}", path.display())
                })?);
                Some(ClientCredential::Certificate(
                    CertificateCredential::from_pem(&text)
                        .map_err(|e| anyhow!("{}: {e}", path.display()))?,
                ))
            }
            (None, Some(secret)) => Some(ClientCredential::Secret(secret)),
            (None, None) => None,
        };
        Ok(Connection {
            endpoints,
            client_id,
            credential,
            cache_path: self.cache_path()?,
        })
    }

    fn cache_path(&self) -> Result<PathBuf> {
        if let Some(path) = &self.token_cache {
            return Ok(path.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))
            .ok_or_else(|| {
                anyhow!("cannot tell where to keep sign-in tokens: set OATHDESK_ENTRA_TOKEN_CACHE")
            })?;
        Ok(base.join("oathdesk").join("entra-tokens.json"))
    }
}

fn load_cache(path: &Path) -> TokenCache {
    match std::fs::read(path) {
        Ok(bytes) => TokenCache::from_bytes(&Zeroizing::new(bytes)),
        Err(_) => TokenCache::default(),
    }
}

fn save_cache(path: &Path, auth: &Authenticator<'_>) -> Result<()> {
    let Some(cache) = auth.changed_cache() else {
        return Ok(());
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700));
        }
    }
    input::write_private(path, &cache.to_bytes())
}

pub fn run(args: EntraArgs, vault: &VaultOptions) -> Result<ExitCode> {
    let device_code = matches!(
        &args.command,
        EntraCommand::Login(LoginArgs { device_code: true })
    );
    let options = args.options.clone();
    with_graph(&options, device_code, |auth, http, tenant| {
        dispatch(args.command, &options, auth, http, tenant, vault)
    })
}

/// Signs in as the options say and runs `work` with the connection; the
/// tokens fetched are kept even when the work failed later.
pub(crate) fn with_graph<T>(
    options: &EntraOptions,
    device_code: bool,
    work: impl FnOnce(&Authenticator<'_>, &Http, &str) -> Result<T>,
) -> Result<T> {
    let connection = options.connection()?;
    let http = Http::new(RetryPolicy::default());
    let delegated = connection.credential.is_none();
    let cache = load_cache(&connection.cache_path);
    let sign_in = SignIn::new(
        &http,
        connection.endpoints.clone(),
        &connection.client_id,
        connection.credential,
    )?;
    let tenant = connection.endpoints.tenant.clone();
    let auth = Authenticator::new(sign_in, delegated || device_code, cache);
    let outcome = work(&auth, &http, &tenant);
    save_cache(&connection.cache_path, &auth)?;
    outcome
}

/// `oathdesk helpdesk tap`: the vault decides, Entra issues, the vault
/// records Entra's answer; the pass is printed once and kept nowhere.
pub fn run_tap(args: crate::commands::helpdesk::TapArgs, vault: &VaultOptions) -> Result<ExitCode> {
    let mut session = vault.unlock()?;
    let policy = session.helpdesk_policy()?;
    let request = crate::commands::helpdesk::caller_request(&args.caller, &policy)?;
    let permit = session.helpdesk_tap(&request, input::now())?;
    match issue_tap(&args.entra, &permit)? {
        Ok(pass) => {
            session.helpdesk_tap_outcome(&permit, Ok(&pass.id), input::now())?;
            if args.entra.json {
                println!(
                    "{}",
                    json!({"user": permit.user, "temporary_access_pass": pass.pass.as_str(),
                           "lifetime_minutes": pass.lifetime_in_minutes,
                           "usable_once": pass.is_usable_once,
                           "start": pass.start_date_time})
                );
            } else {
                println!(
                    "{}  Temporary Access Pass for {}: {} minute(s){}; read it to the caller now, it is not kept",
                    pass.pass.as_str(),
                    permit.user,
                    pass.lifetime_in_minutes,
                    if pass.is_usable_once {
                        ", one sign-in"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            session.helpdesk_tap_outcome(&permit, Err(&tap_refusal(&error)), input::now())?;
            Err(error.into())
        }
    }
}

/// Asks Entra for a pass the vault permitted. The outer error is ours
/// (no connection configured, sign-in failed); the inner one is Graph's
/// answer, which the vault records as the outcome.
pub fn issue_tap(
    options: &EntraOptions,
    permit: &oathdesk_vault::TapPermit,
) -> Result<std::result::Result<TemporaryAccessPass, oathdesk_entra::Error>> {
    with_graph(options, false, |auth, http, _| {
        let graph = Graph::new(http, auth);
        Ok(graph.user(&permit.user).and_then(|user| {
            graph.create_temporary_access_pass(
                &user.id,
                Some(permit.lifetime_minutes),
                permit.usable_once,
            )
        }))
    })
}

/// Entra's reason for refusing a pass, in its own words when it gave some.
pub fn tap_refusal(error: &oathdesk_entra::Error) -> String {
    error
        .entra_message()
        .map_or_else(|| error.to_string(), str::to_owned)
}

fn dispatch(
    command: EntraCommand,
    options: &EntraOptions,
    auth: &Authenticator<'_>,
    http: &Http,
    tenant: &str,
    vault: &VaultOptions,
) -> Result<ExitCode> {
    let graph = Graph::new(http, auth);
    match command {
        EntraCommand::Login(args) => login(args, options, auth),
        EntraCommand::Status => status(options, auth, &graph),
        EntraCommand::Push(args) => push(args, options, &graph, tenant, vault),
        EntraCommand::Sync(args) => run_sync(args, options, &graph, tenant, vault),
        EntraCommand::List(args) => list(&args, options, &graph),
        EntraCommand::Unassign(args) => {
            let mut session = vault.unlock()?;
            let mut lines = Vec::new();
            for token in &args.tokens {
                lines.push(sync::unassign(
                    &mut session,
                    &graph,
                    tenant,
                    token,
                    input::now(),
                )?);
            }
            print_lines(&lines, options.json)?;
            Ok(ExitCode::SUCCESS)
        }
        EntraCommand::Delete(args) => {
            let mut session = vault.unlock()?;
            let mut lines = Vec::new();
            for token in &args.tokens.tokens {
                lines.push(sync::delete(
                    &mut session,
                    &graph,
                    tenant,
                    token,
                    args.unassign,
                    input::now(),
                )?);
            }
            print_lines(&lines, options.json)?;
            Ok(ExitCode::SUCCESS)
        }
        EntraCommand::Users(UsersCommand::Sync { create, page_size }) => {
            let mut session = vault.unlock()?;
            let report = oathdesk_entra::directory::sync_users(
                &mut session,
                &graph,
                create,
                page_size,
                &input::now,
            )?;
            if options.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} directory user(s) in {} page(s): {} updated, {} unchanged, {} created, \
                     {} not in the vault, {} without a manager",
                    report.directory_users,
                    report.pages,
                    report.facts.updated,
                    report.facts.unchanged,
                    report.facts.created,
                    report.facts.not_in_vault.len(),
                    report.without_manager
                );
                for id in &report.without_upn {
                    eprintln!("oathdesk: directory user {id} has no UPN: skipped");
                }
                if !report.facts.not_in_vault.is_empty() {
                    eprintln!(
                        "oathdesk: {} directory user(s) are not in the vault (list them with --json; add them with --create)",
                        report.facts.not_in_vault.len()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EntraCommand::Policy(args) => {
            if let Some(change) = &args.change {
                graph.set_policy_state(change == "enable")?;
            }
            let policy = graph.policy()?;
            if options.json {
                println!("{}", serde_json::to_string(&policy)?);
            } else {
                println!("hardware OATH tokens: {}", policy.state);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn login(args: LoginArgs, options: &EntraOptions, auth: &Authenticator<'_>) -> Result<ExitCode> {
    let sign_in = auth.sign_in();
    let token = if args.device_code {
        let code = sign_in.start_device_code()?;
        // The admin needs this on a terminal even when stdout is piped.
        eprintln!("{}", printable(&code.message));
        let token = sign_in.poll_device_code(&code, &input::now, &|d| std::thread::sleep(d))?;
        auth.store(token.clone());
        token
    } else {
        auth.token(input::now(), true)?;
        auth.cached()
            .ok_or_else(|| anyhow!("the sign-in returned no token"))?
    };
    let who = match (&token.account, args.device_code) {
        (Some(account), _) => account.clone(),
        (None, true) => "an admin".into(),
        (None, false) => format!("app {}", sign_in.client_id()),
    };
    if options.json {
        println!(
            "{}",
            json!({"signed_in": who, "tenant": sign_in.endpoints().tenant, "expires_at": token.expires_at,
                   "delegated": args.device_code})
        );
    } else {
        println!(
            "signed in as {} to tenant {} (token valid until {})",
            printable(&who),
            sign_in.endpoints().tenant,
            rfc3339(token.expires_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn status(options: &EntraOptions, auth: &Authenticator<'_>, graph: &Graph<'_>) -> Result<ExitCode> {
    auth.token(input::now(), false)?;
    let token = auth.cached().ok_or_else(|| anyhow!("not signed in"))?;
    let who = token
        .account
        .clone()
        .unwrap_or_else(|| format!("app {}", auth.sign_in().client_id()));
    let policy = graph.policy().map(|p| p.state).map_err(|e| e.to_string());
    // A role that may not read the inventory still learns the rest.
    let devices = graph.devices().map_err(|e| e.to_string());
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    for device in devices.iter().flatten() {
        *by_status
            .entry(device.status.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
    }
    if options.json {
        println!(
            "{}",
            json!({"tenant": auth.sign_in().endpoints().tenant, "signed_in": who,
                   "delegated": auth.delegated(), "token_expires_at": token.expires_at,
                   "policy": policy.as_ref().ok(), "policy_error": policy.as_ref().err(),
                   "tokens": devices.as_ref().ok().map(Vec::len),
                   "inventory_error": devices.as_ref().err(), "by_status": by_status})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("tenant     {}", auth.sign_in().endpoints().tenant);
    println!("graph      {}", auth.sign_in().endpoints().graph);
    println!(
        "signed in  {} ({}; token valid until {})",
        printable(&who),
        if auth.delegated() {
            "delegated"
        } else {
            "application"
        },
        rfc3339(token.expires_at)
    );
    match &policy {
        Ok(state) => println!("policy     hardware OATH tokens {state}"),
        Err(error) => println!("policy     unknown: {error}"),
    }
    let counts: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    match &devices {
        Ok(devices) => println!(
            "inventory  {} token(s){}",
            devices.len(),
            if counts.is_empty() {
                String::new()
            } else {
                format!(": {}", counts.join(", "))
            }
        ),
        Err(error) => println!("inventory  unknown: {error}"),
    }
    if policy.as_deref() == Ok("disabled") {
        eprintln!(
            "oathdesk: warning: the hardware OATH method is disabled in this tenant: users cannot sign \
             in with these tokens until it is enabled ('oathdesk entra policy enable')"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn push(
    args: PushArgs,
    options: &EntraOptions,
    graph: &Graph<'_>,
    tenant: &str,
    vault: &VaultOptions,
) -> Result<ExitCode> {
    if !args.profile_serial.contains("{serial}") || !args.profile_serial.contains("{slot}") {
        bail!(
            "--profile-serial needs both {{serial}} and {{slot}}, or profiles of one device would share a serial"
        );
    }
    let mut session = vault.unlock()?;
    let filter = CredentialFilter {
        user_upn: args.user.clone(),
        device_serial: args.serial.clone(),
        state: args.state,
        ..CredentialFilter::default()
    };
    let push_options = PushOptions {
        assign: args.assign,
        activate: args.activate,
        batch: args.batch.clamp(1, 1000),
        profile_serial: args.profile_serial.clone(),
        adopt: args.adopt,
        dry_run: args.dry_run,
    };
    let report = sync::push(
        &mut session,
        graph,
        tenant,
        &filter,
        &push_options,
        &Clock::system(),
    )?;
    if options.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_lines(&report.lines, false)?;
        if args.explain {
            print_lines(&report.left_out, false)?;
        }
        let mut counts: Vec<String> = Vec::new();
        for result in [
            "created",
            "adopted",
            "assigned",
            "activated",
            "present",
            "to create",
            "to assign",
            "to activate",
            "refused",
            "failed",
        ] {
            let n = report.count(result);
            if n > 0 {
                counts.push(format!("{n} {result}"));
            }
        }
        if !report.left_out.is_empty() {
            counts.push(format!(
                "{} left out{}",
                report.left_out.len(),
                if args.explain {
                    ""
                } else {
                    " (--explain lists them and why)"
                }
            ));
        }
        if counts.is_empty() {
            counts.push("nothing to push".into());
        }
        eprintln!(
            "oathdesk: {}; {} request(s) to Entra, {} retried",
            counts.join(", "),
            report.requests,
            report.retries
        );
    }
    if let Some(reason) = &report.stopped {
        eprintln!("oathdesk: the push stopped: {}", printable(reason));
    }
    if !args.dry_run {
        let on_lost = oathdesk_entra::lifecycle::apply_on_lost(
            &mut session,
            graph,
            tenant,
            None,
            input::now(),
        )?;
        crate::commands::entra_lifecycle::print_outcome(&on_lost, options.json)?;
    }
    if report.failed() {
        eprintln!("oathdesk: some tokens failed; run the same command again to resume");
        return Ok(ExitCode::from(1));
    }
    Ok(if report.count("refused") > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `entra list --user UPN`: the user's hardware and software OATH methods.
fn list(args: &ListArgs, options: &EntraOptions, graph: &Graph<'_>) -> Result<ExitCode> {
    let user = graph.user(&args.user)?;
    let upn = user
        .user_principal_name
        .clone()
        .unwrap_or_else(|| args.user.clone());
    let hardware = graph.methods(&user.id)?;
    let software = graph.software_oath_method_list(&user.id)?;
    // Named fields only: a device's secret is never printed (Graph does
    // not return it, and this would not show it if it did).
    let hardware_json: Vec<serde_json::Value> = hardware
        .iter()
        .map(|m| {
            let device = m.device.as_ref();
            json!({"method_id": m.id,
                   "device_id": device.and_then(|d| d.id.clone()),
                   "serial": device.and_then(|d| d.serial_number.clone()),
                   "status": device.and_then(|d| d.status.clone()),
                   "display_name": device.and_then(|d| d.display_name.clone()),
                   "manufacturer": device.and_then(|d| d.manufacturer.clone()),
                   "model": device.and_then(|d| d.model.clone()),
                   "created": m.created_date_time})
        })
        .collect();
    if options.json {
        println!(
            "{}",
            json!({"user": upn, "user_id": user.id, "hardware": hardware_json,
                   "software": software})
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (method, shown) in hardware.iter().zip(&hardware_json) {
        let field = |name: &str| shown[name].as_str().unwrap_or("-").to_owned();
        println!(
            "{}",
            format!(
                "hardware  {:<20} {:<10} {:<36} {}",
                printable(&field("serial")),
                printable(&field("status")),
                printable(&method.id),
                printable(&field("display_name"))
            )
            .trim_end()
        );
    }
    for method in &software {
        println!(
            "software  {:<20} {:<10} {}",
            "authenticator app",
            "-",
            printable(&method.id)
        );
    }
    eprintln!(
        "oathdesk: {} has {} hardware token(s) and {} authenticator app(s) in Entra \
         ({} of {} OATH methods)",
        printable(&upn),
        hardware.len(),
        software.len(),
        hardware.len() + software.len(),
        sync::MAX_OATH_METHODS_PER_USER
    );
    Ok(ExitCode::SUCCESS)
}

fn run_sync(
    args: SyncArgs,
    options: &EntraOptions,
    graph: &Graph<'_>,
    tenant: &str,
    vault: &VaultOptions,
) -> Result<ExitCode> {
    let mut session = vault.unlock()?;
    let (report, on_lost) = oathdesk_entra::lifecycle::sync_with_policy(
        &mut session,
        graph,
        tenant,
        &args.profile_serial,
        input::now(),
    )?;
    if options.json {
        // The report as before, with what the policy did added.
        let mut shown = serde_json::to_value(&report)?;
        shown["on_lost"] = serde_json::to_value(&on_lost)?;
        println!("{shown}");
    } else {
        crate::commands::entra_lifecycle::print_outcome(&on_lost, false)?;
        for d in &report.differences {
            println!(
                "{:<9} {:<20} {:<16} {}",
                d.kind,
                printable(d.credential.as_deref().unwrap_or("-")),
                printable(&d.serial),
                printable(&d.detail)
            );
        }
        eprintln!(
            "oathdesk: {} in sync, {} difference(s); {} token(s) in Entra",
            report.in_sync,
            report.differences.len(),
            report.in_entra
        );
    }
    Ok(if report.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub(crate) fn print_lines(lines: &[Line], as_json: bool) -> Result<()> {
    if as_json {
        println!("{}", serde_json::to_string(lines)?);
        return Ok(());
    }
    for line in lines {
        let text = format!(
            "{:<20} {:<20} {:<10} {}",
            printable(&line.credential),
            printable(&line.serial),
            line.result,
            printable(line.detail.as_deref().unwrap_or_default())
        );
        println!("{}", text.trim_end());
    }
    Ok(())
}

/// Sends one mail through Graph (a self-service delivery link).
pub fn send_mail(
    options: &EntraOptions,
    from: &str,
    to: &str,
    subject: &str,
    text: &str,
) -> Result<()> {
    with_graph(options, false, |auth, http, _| {
        Graph::new(http, auth)
            .send_mail(from, to, subject, text)
            .map_err(|e| anyhow!("{e}"))
    })
}

/// Sends the queued notices as mail through Graph (`oathdesk notify send`
/// when the policy's channel is mail); returns (sent, not sent).
pub fn send_notices_by_mail(
    session: &mut oathdesk_vault::Session,
    options: &EntraOptions,
) -> Result<(u64, u64)> {
    let policy = session.helpdesk_policy()?;
    let from = policy
        .notify
        .mail_from
        .clone()
        .ok_or_else(|| anyhow!("the policy's notify.mail_from is not set"))?;
    let queued = session.notices(Some("queued"))?;
    if queued.is_empty() {
        return Ok((0, 0));
    }
    with_graph(options, false, |auth, http, _| {
        let graph = Graph::new(http, auth);
        let (mut sent, mut failed) = (0, 0);
        for notice in &queued {
            let mail =
                oathdesk_notify::render_mail(&crate::commands::notify::notice_of(notice, &policy)?);
            let outcome = graph
                .send_mail(&from, &notice.address, &mail.subject, &mail.text)
                .map(|()| 1)
                .map_err(|e| e.to_string());
            crate::commands::notify::record_outcome(
                session,
                notice,
                outcome,
                &mut sent,
                &mut failed,
            )?;
        }
        Ok((sent, failed))
    })
}
