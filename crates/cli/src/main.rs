//! `oathdesk`: the command line of oathdesk.
//!
//! The command line is glue: every computation happens in the library crates
//! (`oathdesk-otp`, `oathdesk-formats`), which the web console and the tests
//! call too.
//!
//! Exit codes (oathtool's convention): 0 success, 1 bad usage or input,
//! 2 a code that does not verify, 3 a helpdesk request waiting for approval.

mod commands;
mod config;
mod input;
// pow, exp2 and log without libm.so.6 (see there).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod math;
mod remote;
// The executable's entry for the one-shot `code` (linked in by build.rs).
#[cfg(oathdesk_wrap_main)]
mod start;
mod unlock;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{
    code, custody, device, entra, files, fleet, forensic, helpdesk, notify, oidc, ops, qr, seed,
    selftest, serve, token, uri, vault, verify,
};

/// oathdesk — OATH HOTP/TOTP codes, secrets, URIs and QR codes for the
/// people who run hardware tokens.
#[derive(Parser, Debug)]
#[command(name = "oathdesk", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "\
Secrets can come from an argument, '-' (standard input), @FILE or the OATHDESK_SECRET \
environment variable; prefer the last three on shared machines. Errors never print secrets.

Exit codes: 0 success, 1 bad usage or input or refused, 2 code not verified (or a code the \
helpdesk gave out, or a row altered outside oathdesk), 3 waiting for a second operator's approval.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    vault: unlock::VaultOptions,
    #[command(flatten)]
    remote: remote::RemoteOptions,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Print the current code, codes around now, or a code that lasts.
    Code(code::CodeArgs),
    /// Check a code and print the signed step offset of the match.
    Verify(verify::VerifyArgs),
    /// Generate or re-encode secrets.
    #[command(subcommand)]
    Seed(seed::SeedCommand),
    /// Build or inspect otpauth:// URIs and Google Authenticator exports.
    #[command(subcommand)]
    Uri(uri::UriCommand),
    /// Show a credential as a QR code, or read QR codes from screenshots.
    #[command(subcommand)]
    Qr(qr::QrCommand),
    /// Check this build against the RFC 4226 and RFC 6238 vectors.
    Selftest(selftest::SelftestArgs),
    /// Create the encrypted vault, rekey it, change its settings.
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Who may open the vault.
    #[command(subcommand)]
    Operator(vault::OperatorCommand),
    /// The people tokens are for.
    #[command(subcommand)]
    User(token::UserCommand),
    /// Tokens and their lifecycle: add, assign, ship, deliver, lost, retire, purge.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Custody of serial ranges: encrypted export to a recipient, recorded per token; check a file.
    #[command(subcommand)]
    Custody(custody::CustodyCommand),
    /// Codes for users whose token is not with them yet.
    #[command(subcommand)]
    Helpdesk(helpdesk::HelpdeskCommand),
    /// Tell users what the helpdesk did in their name (queued notices).
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Which groups of the organisation's identity provider sign in as which role.
    #[command(subcommand)]
    Oidc(oidc::OidcCommand),
    /// Find which token shows a code.
    Identify(helpdesk::IdentifyArgs),
    /// The fleet's clocks and batteries: drift report, end-of-life forecast.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// When was this code valid? Past intervals of a user's or token's code (audited).
    Forensic(forensic::ForensicArgs),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(vault::AuditCommand),
    /// Bring a file's secrets into the vault (spreadsheet, or any seed-file format).
    Import(files::ImportArgs),
    /// Write the vault's held secrets in a seed-file format (audited).
    Export(files::ExportArgs),
    /// Convert a seed file between formats, without a vault.
    Convert(files::ConvertArgs),
    /// Check a seed file before importing it.
    Lint(files::LintArgs),
    /// Program Token2 Molto-2 and single-profile tokens (USB, PC/SC, exec bridge, simulators).
    Device(Box<device::DeviceArgs>),
    /// Enrol a user's account onto a token from the QR code of their setup page.
    Enroll(Box<device::EnrollArgs>),
    /// Microsoft Entra ID: push tokens, assign and activate them, compare, unassign, delete.
    Entra(entra::EntraArgs),
    /// Run the web console and REST API over the vault (creates the vault on first start).
    Serve(Box<serve::ServeArgs>),
    /// Print the shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(ops::CompletionsArgs),
    /// Write the man pages (all of them with --out DIR, else the top page to stdout).
    Man(ops::ManArgs),
}

/// Parses the command line.
///
/// `oathdesk code` is what scripts run in loops, so it gets a parser of its
/// own: building clap's tree for every subcommand is most of the run time of
/// a one-shot call (see BENCHMARKS.md), and its plainest form needs no clap
/// at all ([`plain_code`]). Help requests take the full parser,
/// which knows every command's description. The clap command tree is leaked
/// on purpose: the process ends soon after, and freeing hundreds of small
/// allocations is measurable too.
fn parse_arguments() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os().collect())
}

/// [`parse_arguments`] of `args` (the program name first).
fn parse_from(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::{Args, CommandFactory, FromArgMatches};
    if let Some(code) = plain_code(&args) {
        return Ok(Cli {
            command: Command::Code(code),
            vault: unlock::VaultOptions::default(),
            remote: remote::RemoteOptions::default(),
        });
    }
    let wants_help = args.iter().any(|a| a == "--help" || a == "-h");
    if args.get(1).is_some_and(|a| a == "code") && !wants_help {
        let code = code::CodeArgs::augment_args(clap::Command::new("code"));
        let command = Box::leak(Box::new(clap::Command::new("oathdesk").subcommand(code)));
        let matches = command.try_get_matches_from_mut(args)?;
        let (_, code_matches) = matches.subcommand().expect("the code subcommand was given");
        return Ok(Cli {
            command: Command::Code(code::CodeArgs::from_arg_matches(code_matches)?),
            vault: unlock::VaultOptions::default(),
            remote: remote::RemoteOptions::default(),
        });
    }
    let command = Box::leak(Box::new(Cli::command()));
    let matches = command.try_get_matches_from_mut(args.clone());
    // `serve --config FILE`: the file's settings join the command line.
    if let Some(merged) = with_config_file(&args, matches.as_ref().ok())? {
        let matches = Cli::command()
            .try_get_matches_from(&merged.arguments)
            .map_err(|e| merged.blame(e))?;
        return Cli::from_arg_matches(&matches);
    }
    Cli::from_arg_matches(&matches?)
}

/// `oathdesk code` or `oathdesk code SECRET` and nothing else: the form
/// scripts loop over, read without clap (whose parse is a tenth of such a
/// run). Anything more — a flag, a second value, a value that starts with
/// '-' other than '-' itself, an empty or non-UTF-8 one — is left to clap,
/// so every message and corner case stays clap's; `plain_code_parses_as_clap`
/// holds the two to the same answer.
fn plain_code(args: &[std::ffi::OsString]) -> Option<code::CodeArgs> {
    let secret = match args {
        [_, command] if command == "code" => None,
        [_, command, secret] if command == "code" => match secret.to_str() {
            Some(s) if s == "-" || !(s.is_empty() || s.starts_with('-')) => Some(s.to_owned()),
            _ => return None,
        },
        _ => return None,
    };
    Some(code::CodeArgs::of_secret(secret))
}

/// The command line with the settings of `serve --config FILE` added, or
/// `None` when no config file is named.
///
/// `matches` is the strict parse of the command line alone; when that
/// failed (the file may supply what the command line lacks, such as the
/// --tls-key that goes with a given --tls-cert), a lenient parse tells
/// whether a config file is named and which flags the user gave.
fn with_config_file(
    args: &[std::ffi::OsString],
    matches: Option<&clap::ArgMatches>,
) -> Result<Option<config::Merged>, clap::Error> {
    use clap::CommandFactory;
    let lenient;
    let given = match matches {
        Some(matches) => matches,
        None => match Cli::command()
            .ignore_errors(true)
            .try_get_matches_from(args)
        {
            Ok(matches) => {
                lenient = matches;
                &lenient
            }
            // Help and version: the strict parse's answer stands.
            Err(_) => return Ok(None),
        },
    };
    config::merge(&Cli::command(), args, given)
}

/// Exit 2 for a code that did not verify (a wrong delivery code) and where
/// the vault found a code or a row it cannot vouch for (a delivery code it
/// gave out itself, a row altered outside oathdesk); 1 for every other error. Decided by
/// the error's type, never its words.
fn exit_code_of(error: &anyhow::Error) -> ExitCode {
    use oathdesk_vault::Error as E;
    if let Some(remote) = error.downcast_ref::<remote::RemoteError>() {
        return remote.exit_code();
    }
    match error.downcast_ref::<E>() {
        Some(E::CodeReleased { .. } | E::CodeMismatch { .. } | E::Altered { .. }) => {
            ExitCode::from(2)
        }
        _ => ExitCode::from(1),
    }
}

fn main() -> ExitCode {
    run()
}

/// The command line's work, from its arguments to its exit code; `main`,
/// or for the one-shot `code` the short start-up of `start`, calls it.
pub(crate) fn run() -> ExitCode {
    let cli = match parse_arguments() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with 0; usage errors exit 1, not
            // clap's 2, because 2 means "code not verified".
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Keep the audit head outside the database when asked ('serve' logs
    // it and takes the file itself).
    if let Some(path) = std::env::var_os("OATHDESK_AUDIT_HEAD_FILE").filter(|p| !p.is_empty())
        && !matches!(cli.command, Command::Serve(_))
    {
        let path = std::path::PathBuf::from(path);
        oathdesk_vault::audit::set_head_sink(move |head| {
            if let Err(error) = oathdesk_vault::audit::append_head_line(&path, head) {
                eprintln!(
                    "oathdesk: warning: cannot append the audit head to {}: {error}",
                    path.display()
                );
            }
        });
    }
    // Every audit entry to a SIEM as it is committed ('serve' takes the
    // same variable through --audit-sink).
    let audit_shipper = match audit_sinks_from_env(&cli.command) {
        Ok(shipper) => shipper,
        Err(error) => {
            eprintln!("oathdesk: error: OATHDESK_AUDIT_SINK: {error}");
            return ExitCode::from(1);
        }
    };
    // With a console named (--server, OATHDESK_SERVER), what works on the
    // vault goes through it; the offline tools stay local.
    let works_on_vault = matches!(
        cli.command,
        Command::Vault(_)
            | Command::Operator(_)
            | Command::User(_)
            | Command::Token(_)
            | Command::Helpdesk(_)
            | Command::Notify(_)
            | Command::Identify(_)
            | Command::Fleet(_)
            | Command::Forensic(_)
            | Command::Audit(_)
            | Command::Import(_)
            | Command::Export(_)
            | Command::Device(_)
            | Command::Enroll(_)
            | Command::Entra(_)
    );
    if works_on_vault {
        match cli.remote.console() {
            Ok(Some(console)) => {
                return match remote::run(cli.command, &console) {
                    Ok(code) => code,
                    Err(error) => {
                        eprintln!("oathdesk: error: {error:#}");
                        exit_code_of(&error)
                    }
                };
            }
            Ok(None) => {}
            Err(error) => {
                eprintln!("oathdesk: error: {error:#}");
                return ExitCode::from(1);
            }
        }
    }
    let outcome = match cli.command {
        Command::Code(args) => code::run(args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::run(args),
        Command::Seed(command) => seed::run(command).map(|()| ExitCode::SUCCESS),
        Command::Uri(command) => uri::run(command).map(|()| ExitCode::SUCCESS),
        Command::Qr(command) => qr::run(command).map(|()| ExitCode::SUCCESS),
        Command::Selftest(args) => selftest::run(args).map(|()| ExitCode::SUCCESS),
        Command::Vault(command) => vault::run_vault(command, &cli.vault),
        Command::Operator(command) => {
            vault::run_operator(command, &cli.vault).map(|()| ExitCode::SUCCESS)
        }
        Command::User(command) => token::run_user(command, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Token(command) => {
            token::run_token(command, &cli.vault).map(|()| ExitCode::SUCCESS)
        }
        Command::Helpdesk(command) => helpdesk::run_helpdesk(command, &cli.vault),
        Command::Custody(command) => custody::run(command, &cli.vault),
        Command::Notify(command) => notify::run(command, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Oidc(command) => oidc::run(command, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Identify(args) => {
            helpdesk::run_identify(args, &cli.vault).map(|()| ExitCode::SUCCESS)
        }
        Command::Fleet(command) => fleet::run(command, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Forensic(args) => forensic::run(args, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Audit(command) => vault::run_audit(command, &cli.vault),
        Command::Import(args) => files::run_import(args, &cli.vault),
        Command::Export(args) => files::run_export(args, &cli.vault),
        Command::Convert(args) => files::run_convert(args),
        Command::Lint(args) => files::run_lint(args),
        Command::Device(args) => device::run(*args, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Enroll(args) => device::enroll(*args, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Entra(args) => entra::run(args, &cli.vault),
        Command::Serve(args) => serve::run(*args, &cli.vault).map(|()| ExitCode::SUCCESS),
        Command::Completions(args) => {
            ops::completions(args, <Cli as clap::CommandFactory>::command())
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Man(args) => {
            ops::man(args, <Cli as clap::CommandFactory>::command()).map(|()| ExitCode::SUCCESS)
        }
    };
    if let Some(shipper) = audit_shipper {
        finish_shipping(&shipper);
    }
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("oathdesk: error: {error:#}");
            exit_code_of(&error)
        }
    }
}

/// The shipper for OATHDESK_AUDIT_SINK (comma-separated sinks), if set and
/// this is not 'serve'.
fn audit_sinks_from_env(
    command: &Command,
) -> Result<Option<std::sync::Arc<oathdesk_auditsink::Shipper>>, oathdesk_auditsink::SpecError> {
    let Some(text) = std::env::var("OATHDESK_AUDIT_SINK")
        .ok()
        .filter(|t| !t.trim().is_empty())
    else {
        return Ok(None);
    };
    if matches!(command, Command::Serve(_)) {
        return Ok(None);
    }
    let sinks = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<oathdesk_auditsink::SinkSpec>, _>>()?;
    Ok(Some(oathdesk_auditsink::Shipper::install(
        sinks,
        |report| {
            eprintln!("oathdesk: warning: {report}");
        },
    )))
}

/// A command's entries reach its sinks before it exits, or it says which
/// did not (they are in the vault; 'audit ship' sends them).
fn finish_shipping(shipper: &oathdesk_auditsink::Shipper) {
    for missing in shipper.flush(std::time::Duration::from_secs(5)) {
        eprintln!(
            "oathdesk: warning: audit entries from {} on did not reach {}; they are in the vault: \
             send them with 'oathdesk audit ship --to {} --from {}'",
            missing.from, missing.sink, missing.sink, missing.from
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
        args.iter().map(Into::into).collect()
    }

    /// What clap's full parser makes of a `code` command line.
    fn clap_code(args: &[&str]) -> String {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(os(args)).unwrap();
        match Cli::from_arg_matches(&matches).unwrap().command {
            Command::Code(code) => format!("{code:?}"),
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn plain_code_parses_as_clap() {
        let plain = [
            &["oathdesk", "code"][..],
            &["oathdesk", "code", "JBSWY3DPEHPK3PXP"],
            &["oathdesk", "code", "-"],
            &["oathdesk", "code", "@secret.txt"],
            &[
                "oathdesk",
                "code",
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=8",
            ],
            &["oathdesk", "code", "help"],
            &["oathdesk", "code", "code"],
        ];
        for args in plain {
            let ours = plain_code(&os(args)).unwrap_or_else(|| panic!("{args:?} not plain"));
            assert_eq!(format!("{ours:?}"), clap_code(args), "{args:?}");
        }
        let left_to_clap = [
            &["oathdesk", "code", "--json", "JBSWY3DPEHPK3PXP"][..],
            &["oathdesk", "code", "JBSWY3DPEHPK3PXP", "--hex"],
            &["oathdesk", "code", "--help"],
            &["oathdesk", "code", "-h"],
            &["oathdesk", "code", "--"],
            &["oathdesk", "code", "-J"],
            &["oathdesk", "code", ""],
            &["oathdesk", "code", "a", "b"],
            &["oathdesk", "verify", "JBSWY3DPEHPK3PXP"],
            &["oathdesk", "--vault", "v.db", "code"],
            &["oathdesk"],
        ];
        for args in left_to_clap {
            assert!(plain_code(&os(args)).is_none(), "{args:?} taken as plain");
        }
    }

    #[cfg(unix)]
    #[test]
    fn plain_code_leaves_non_utf8_to_clap() {
        use std::os::unix::ffi::OsStringExt;
        let args = vec![
            "oathdesk".into(),
            "code".into(),
            std::ffi::OsString::from_vec(vec![0xff]),
        ];
        assert!(plain_code(&args).is_none());
    }
}
