//! The config file against the real command tree: the shipped example
//! cannot drift from the flags, and the precedence holds for each kind of
//! flag (the environment-backed ones are tested on the built binary, in
//! tests/ops_cli.rs, since the environment is the process's).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;

use super::{ConfigError, ConfigFile, keys};
use crate::commands::serve::ServeArgs;
use crate::{Cli, Command, parse_from};

const EXAMPLE: &str = include_str!("../../../packaging/oathdesk.toml");

/// The `#key = value` lines of the example (prose comments have a space
/// after '#').
fn example_settings() -> Vec<(String, String)> {
    EXAMPLE
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()))
        .map(|setting| {
            let key = setting.split('=').next().unwrap().trim().to_owned();
            (key, setting.to_owned())
        })
        .collect()
}

fn given(args: &[&str]) -> clap::ArgMatches {
    Cli::command()
        .try_get_matches_from(args)
        .expect("the command line parses")
}

#[test]
fn the_example_names_every_key_once() {
    let cli = Cli::command();
    let wanted: BTreeSet<&str> = keys(&cli).iter().map(|key| key.long).collect();
    let settings = example_settings();
    let shown: Vec<&str> = settings.iter().map(|(key, _)| key.as_str()).collect();
    let shown_set: BTreeSet<&str> = shown.iter().copied().collect();
    assert_eq!(shown.len(), shown_set.len(), "a key twice: {shown:?}");
    assert_eq!(
        wanted, shown_set,
        "packaging/oathdesk.toml and the flags of 'oathdesk serve' differ"
    );
    // Some keys are sure to be there (keys() is not empty by accident).
    for key in [
        "listen",
        "trusted-proxy",
        "vault",
        "database",
        "log-format",
        "tenant",
    ] {
        assert!(wanted.contains(key), "{key}");
    }
    for key in ["help", "config", "json", "operator", "server"] {
        assert!(!wanted.contains(key), "{key}");
    }
}

#[test]
fn every_example_setting_is_valid_when_uncommented() {
    let cli = Cli::command();
    let given = given(&["oathdesk", "serve"]);
    for (key, line) in example_settings() {
        let file = ConfigFile::parse(Path::new("oathdesk.toml"), &line)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let arguments = file
            .arguments(&cli, &given)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        // A `false` switch adds nothing; every other setting adds its flag.
        if !line.ends_with("false") && !location_env_set() {
            assert!(
                arguments
                    .iter()
                    .any(|a| a.to_string_lossy().starts_with(&format!("--{key}"))),
                "{line}: {arguments:?}"
            );
        }
    }
    // The whole example, as shipped, parses (to no settings at all).
    let whole = ConfigFile::parse(Path::new("oathdesk.toml"), EXAMPLE).unwrap();
    assert!(whole.arguments(&cli, &given).unwrap().is_empty());
}

/// Whether the environment names a vault (then the file's `vault` and
/// `database` rightly add nothing).
fn location_env_set() -> bool {
    super::LOCATION_ENV
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// `oathdesk ARGS… serve --config FILE REST…` parsed as `main` does, with
/// `text` as the file.
fn serve_with(text: &str, rest: &[&str]) -> Result<(ServeArgs, Cli), clap::Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oathdesk.toml");
    std::fs::write(&path, text).unwrap();
    let mut args: Vec<OsString> = vec!["oathdesk".into(), "serve".into(), "--config".into()];
    args.push(path.into_os_string());
    args.extend(rest.iter().map(OsString::from));
    let mut cli = parse_from(args)?;
    let Command::Serve(serve) = std::mem::replace(
        &mut cli.command,
        Command::Man(crate::commands::ops::ManArgs { out: None }),
    ) else {
        panic!("not serve");
    };
    Ok((*serve, cli))
}

#[test]
fn a_single_value_flag_beats_the_file_which_beats_the_default() {
    let (serve, _) = serve_with("session-idle = 45\n", &[]).unwrap();
    assert_eq!(serve.session_idle, 45);
    let (serve, _) = serve_with("session-idle = 45\n", &["--session-idle", "5"]).unwrap();
    assert_eq!(serve.session_idle, 5);
    let (serve, _) = serve_with("listen = \"0.0.0.0:8443\"\n", &[]).unwrap();
    assert_eq!(serve.listen, "0.0.0.0:8443");
    // Not in the file: the default.
    assert_eq!(serve.session_hours, 12);
}

#[test]
fn a_repeatable_flag_on_the_command_line_replaces_the_files_list() {
    let file = "trusted-proxy = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\n";
    let (serve, _) = serve_with(file, &[]).unwrap();
    assert_eq!(serve.trusted_proxy.len(), 2);
    assert_eq!(serve.trusted_proxy[1], "192.168.0.0/16".parse().unwrap());
    let (serve, _) = serve_with(file, &["--trusted-proxy", "172.16.0.0/12"]).unwrap();
    assert_eq!(serve.trusted_proxy, vec!["172.16.0.0/12".parse().unwrap()]);
}

#[test]
fn a_switch_from_the_file_yields_to_a_conflicting_choice_on_the_command_line() {
    let file = "tls-self-signed = true\ntls-name = [\"desk.example\"]\ndemo = false\n";
    let (serve, _) = serve_with(file, &[]).unwrap();
    assert!(serve.tls_self_signed);
    assert_eq!(serve.tls_name, vec!["desk.example".to_owned()]);
    assert!(!serve.demo);
    // `demo = false` in the file does not stop --demo.
    let (serve, _) = serve_with(file, &["--demo"]).unwrap();
    assert!(serve.demo);
    // The command line's certificate wins over the file's self-signed one
    // (they cannot go together), instead of a conflict error.
    let (serve, _) = serve_with(
        "tls-self-signed = true\n",
        &["--tls-cert", "/c.pem", "--tls-key", "/k.pem"],
    )
    .unwrap();
    assert!(!serve.tls_self_signed);
    assert_eq!(serve.tls_cert.as_deref(), Some(Path::new("/c.pem")));
}

#[test]
fn the_file_may_complete_a_pair_the_command_line_starts() {
    // --tls-cert alone fails to parse; the file's tls-key completes it.
    let (serve, _) = serve_with("tls-key = \"/k.pem\"\n", &["--tls-cert", "/c.pem"]).unwrap();
    assert_eq!(serve.tls_key.as_deref(), Some(Path::new("/k.pem")));
}

#[test]
fn the_command_lines_vault_beats_the_files_database() {
    if location_env_set() {
        return; // the environment decides; tested on the binary
    }
    let file = "database = \"postgres://desk@db.example/vault\"\n";
    let (_, cli) = serve_with(file, &[]).unwrap();
    assert_eq!(
        cli.vault.database.as_deref(),
        Some("postgres://desk@db.example/vault")
    );
    let (_, cli) = serve_with(file, &["--vault", "/srv/vault.db"]).unwrap();
    assert_eq!(cli.vault.database, None);
    assert_eq!(cli.vault.vault.as_deref(), Some(Path::new("/srv/vault.db")));
}

fn checked(text: &str) -> ConfigError {
    ConfigFile::parse(Path::new("/etc/oathdesk/oathdesk.toml"), text)
        .and_then(|file| file.arguments(&Cli::command(), &given(&["oathdesk", "serve"])))
        .expect_err("an error")
}

#[test]
fn an_unknown_key_is_named_with_the_nearest_valid_one() {
    match checked("listen = \"127.0.0.1:8080\"\n\nsesion-idle = 30\n") {
        ConfigError::UnknownKey {
            file,
            line,
            key,
            nearest,
        } => {
            assert_eq!(file, Path::new("/etc/oathdesk/oathdesk.toml"));
            assert_eq!(line, 3);
            assert_eq!(key, "sesion-idle");
            assert_eq!(nearest.as_deref(), Some("session-idle"));
        }
        other => panic!("{other:?}"),
    }
    match checked("[serve]\nlisten = \"x\"\n") {
        ConfigError::UnknownKey { nearest, .. } => assert_eq!(nearest, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_type_or_value_names_key_file_and_line() {
    let error = checked("# a comment\nsession-idle = \"thirty\"\n");
    assert!(
        matches!(&error, ConfigError::WrongType { line: 2, key, .. } if key == "session-idle"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("/etc/oathdesk/oathdesk.toml line 2"),
        "{message}"
    );
    assert!(message.contains("whole number"), "{message}");
    assert!(matches!(
        checked("tls-self-signed = \"yes\"\n"),
        ConfigError::WrongType { line: 1, .. }
    ));
    assert!(matches!(
        checked("trusted-proxy = [\"10.0.0.0/8\", 8]\n"),
        ConfigError::WrongType { .. }
    ));
    match checked("session-hours = -3\n") {
        ConfigError::InvalidValue { line, reason, .. } => {
            assert_eq!(line, 1);
            assert!(reason.contains("whole number of 0 or more"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match checked("\n\nlog-format = \"xml\"\n") {
        ConfigError::InvalidValue {
            line, key, reason, ..
        } => {
            assert_eq!((line, key.as_str()), (3, "log-format"));
            assert!(reason.contains("text, json"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        checked("listen = \"127.0.0.1:0\n"),
        ConfigError::Syntax { line: 1, .. }
    ));
}

#[test]
fn a_password_in_the_database_url_is_refused_without_being_repeated() {
    let error = checked("database = \"postgres://desk:hunter2-secret@db.example/vault\"\n");
    assert!(
        matches!(error, ConfigError::PasswordInUrl { line: 1, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("hunter2-secret"));
    assert!(error.to_string().contains("PGPASSWORD"));
    assert!(matches!(
        checked("vault = \"/v.db\"\ndatabase = \"postgres://desk@db/vault\"\n"),
        ConfigError::TwoLocations { .. }
    ));
}
