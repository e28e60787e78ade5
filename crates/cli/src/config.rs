//! `oathdesk serve --config FILE`: the settings of `serve` in a TOML file,
//! for a service that runs unattended (`/etc/oathdesk/oathdesk.toml`).
//!
//! The file's keys are the long flags of `serve` as typed on the command
//! line (`session-idle = 30`), plus where the vault is (`vault` or
//! `database`). Nothing here lists the flags a second time: the file is
//! checked against the clap definitions and turned into extra arguments
//! (`--session-idle=30`), which clap then parses like any other, so a new
//! flag is a new key without a line of code here.
//!
//! Precedence: command-line flag > environment variable > config file >
//! built-in default. A first parse of the command line alone tells, for
//! every flag, whether the user or the environment gave it (clap's
//! `value_source`); the file adds only the others. So a repeatable flag
//! given on the command line replaces the file's list rather than adding
//! to it, and a flag that conflicts with one the user gave (`--tls-cert`
//! against the file's `tls-self-signed`) yields to the user's choice.
//!
//! Secrets never live in the file by value: like the flags, it only names
//! files that hold them (`unseal-key-file`, `client-secret-file`), and a
//! `database` URL with a password in it is refused.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::{Spanned, Value};

/// The environment variable that names the file (as `--config`).
pub const CONFIG_ENV: &str = "OATHDESK_CONFIG";

/// Long flags of `serve` that are not keys of the file, and why: `help`
/// is not a setting, `config` cannot name itself, and `json` shapes the
/// output of `oathdesk entra` commands (it is there because `serve` takes
/// Entra's options), which the console does not print.
const NOT_KEYS: [&str; 3] = ["help", "config", "json"];

/// The keys for where the vault is: options of `oathdesk` itself (global),
/// each the other's alternative.
const LOCATION_KEYS: [&str; 2] = ["vault", "database"];

/// The environment variables that say where the vault is (they beat the
/// file's `vault` or `database`, as any environment variable does).
const LOCATION_ENV: [&str; 2] = ["OATHDESK_VAULT", "OATHDESK_DATABASE_URL"];

/// What is wrong with a config file. Every message names the file, and the
/// key and line where there is one, and never repeats a value that could
/// be a secret.
#[derive(Debug)]
pub enum ConfigError {
    /// The file cannot be read.
    Unreadable { file: PathBuf, reason: String },
    /// The file is not TOML.
    Syntax {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    /// A key that is no setting of `serve`.
    UnknownKey {
        file: PathBuf,
        line: usize,
        key: String,
        nearest: Option<String>,
    },
    /// A value of the wrong TOML type (a string where a number belongs).
    WrongType {
        file: PathBuf,
        line: usize,
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A value of the right type that the flag does not accept.
    InvalidValue {
        file: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
    /// Both `vault` and `database`.
    TwoLocations { file: PathBuf },
    /// A `database` URL with a password in it.
    PasswordInUrl { file: PathBuf, line: usize },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unreadable { file, reason } => write!(
                f,
                "cannot read the config file {}: {reason} (give another with --config FILE or \
                 {CONFIG_ENV})",
                file.display()
            ),
            ConfigError::Syntax { file, line, reason } => write!(
                f,
                "{} line {line}: not valid TOML: {reason}",
                file.display()
            ),
            ConfigError::UnknownKey {
                file,
                line,
                key,
                nearest,
            } => {
                write!(f, "{} line {line}: unknown key '{key}'", file.display())?;
                match nearest {
                    Some(nearest) => write!(f, "; did you mean '{nearest}'?"),
                    None => write!(
                        f,
                        "; the keys are the long flags of 'oathdesk serve --help' without the \
                         leading '--', plus 'vault' and 'database'"
                    ),
                }
            }
            ConfigError::WrongType {
                file,
                line,
                key,
                expected,
                found,
            } => write!(
                f,
                "{} line {line}: '{key}' must be {expected}, not {found}",
                file.display()
            ),
            ConfigError::InvalidValue {
                file,
                line,
                key,
                reason,
            } => write!(
                f,
                "{} line {line}: '{key}' is not valid: {reason}",
                file.display()
            ),
            ConfigError::TwoLocations { file } => write!(
                f,
                "{}: both 'vault' and 'database' are set; keep the one where the vault is",
                file.display()
            ),
            ConfigError::PasswordInUrl { file, line } => write!(
                f,
                "{} line {line}: the 'database' URL holds a password; secrets do not go in the \
                 config file: remove it from the URL and give it to the service in PGPASSWORD \
                 (or a ~/.pgpass file)",
                file.display()
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One `key = value` of the file, with the line it is on.
struct Setting {
    key: String,
    value: Value,
    line: usize,
}

/// A config file, read and parsed as TOML (not yet checked against the
/// flags).
pub struct ConfigFile {
    path: PathBuf,
    settings: Vec<Setting>,
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            file: path.to_owned(),
            reason: e.to_string(),
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Parses `text`; `path` is what messages call it.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let table: BTreeMap<Spanned<String>, Spanned<Value>> =
            toml::from_str(text).map_err(|e| ConfigError::Syntax {
                file: path.to_owned(),
                line: e.span().map_or(1, |span| line_of(span.start)),
                // The message only: toml's full report quotes the line,
                // which could hold a secret someone put there by mistake.
                reason: e.message().trim_end().to_owned(),
            })?;
        let mut settings: Vec<Setting> = table
            .into_iter()
            .map(|(key, value)| Setting {
                line: line_of(key.span().start),
                key: key.into_inner(),
                value: value.into_inner(),
            })
            .collect();
        settings.sort_by_key(|setting| setting.line);
        Ok(ConfigFile {
            path: path.to_owned(),
            settings,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The extra arguments the file adds to the command line: every
    /// setting checked against the flag it stands for, and left out
    /// where the user's command line or environment already decides.
    ///
    /// `cli` is the whole `oathdesk` command; `given` the matches of the
    /// command line alone.
    pub fn arguments(
        &self,
        cli: &Command,
        given: &ArgMatches,
    ) -> Result<Vec<OsString>, ConfigError> {
        let serve = cli
            .find_subcommand("serve")
            .expect("oathdesk has a serve command");
        let serve_given = given
            .subcommand_matches("serve")
            .expect("only 'serve' reads a config file");
        let keys = keys(cli);
        let location_given = LOCATION_KEYS
            .iter()
            .any(|key| from_user(given.value_source(key)))
            || LOCATION_ENV
                .iter()
                .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
        let mut arguments = Vec::new();
        let mut location_seen = false;
        for setting in &self.settings {
            let Some(key) = keys.iter().find(|key| key.long == setting.key) else {
                return Err(ConfigError::UnknownKey {
                    file: self.path.clone(),
                    line: setting.line,
                    key: setting.key.clone(),
                    nearest: nearest_key(&setting.key, &keys),
                });
            };
            let values = self.checked_values(setting, key.arg)?;
            let is_location = LOCATION_KEYS.contains(&key.long);
            if is_location {
                if location_seen {
                    return Err(ConfigError::TwoLocations {
                        file: self.path.clone(),
                    });
                }
                location_seen = true;
                if key.long == "database" {
                    self.refuse_password(setting)?;
                }
                if location_given {
                    continue;
                }
            } else if user_decides(serve, serve_given, key.arg) {
                continue;
            }
            arguments.extend(as_arguments(key.long, key.arg, values));
        }
        Ok(arguments)
    }

    /// The setting's values as the flag would be given them, after
    /// checking the TOML type and clap's own parser of the flag.
    fn checked_values(&self, setting: &Setting, arg: &Arg) -> Result<Vec<String>, ConfigError> {
        let wrong_type = |expected: &'static str, value: &Value| ConfigError::WrongType {
            file: self.path.clone(),
            line: setting.line,
            key: setting.key.clone(),
            expected,
            found: type_name(value),
        };
        let values = match (arg.get_action(), &setting.value) {
            (ArgAction::SetTrue, Value::Boolean(yes)) => return Ok(vec![yes.to_string()]),
            (ArgAction::SetTrue, other) => return Err(wrong_type("true or false", other)),
            (ArgAction::Append, Value::Array(items)) => items
                .iter()
                .map(|item| scalar(arg, item).map_err(|expected| wrong_type(expected, item)))
                .collect::<Result<Vec<_>, _>>()?,
            (_, value) => {
                vec![scalar(arg, value).map_err(|expected| wrong_type(expected, value))?]
            }
        };
        for value in &values {
            validate(arg, value).map_err(|reason| ConfigError::InvalidValue {
                file: self.path.clone(),
                line: setting.line,
                key: setting.key.clone(),
                reason,
            })?;
        }
        Ok(values)
    }

    fn refuse_password(&self, setting: &Setting) -> Result<(), ConfigError> {
        if let Value::String(url) = &setting.value
            && oathdesk_vault::location::mask_password(url) != *url
        {
            return Err(ConfigError::PasswordInUrl {
                file: self.path.clone(),
                line: setting.line,
            });
        }
        Ok(())
    }
}

/// A key of the file and the flag it stands for.
pub struct Key<'a> {
    pub long: &'a str,
    pub arg: &'a Arg,
}

/// Every key the file accepts: the long flags of `serve` (less
/// [`NOT_KEYS`]) and the vault location options of `oathdesk`.
pub fn keys(cli: &Command) -> Vec<Key<'_>> {
    let serve = cli
        .find_subcommand("serve")
        .expect("oathdesk has a serve command");
    // A built command repeats the global options of `oathdesk` in
    // `serve`; of those, only the location keys below are settings.
    let inherited = |arg: &Arg| cli.get_arguments().any(|top| top.get_id() == arg.get_id());
    let serve_keys = serve.get_arguments().filter_map(move |arg| {
        let long = arg.get_long()?;
        (!NOT_KEYS.contains(&long) && !inherited(arg)).then_some(Key { long, arg })
    });
    let location_keys = cli.get_arguments().filter_map(|arg| {
        let long = arg.get_long()?;
        LOCATION_KEYS.contains(&long).then_some(Key { long, arg })
    });
    serve_keys.chain(location_keys).collect()
}

/// Whether the command line or the environment gave this value.
fn from_user(source: Option<ValueSource>) -> bool {
    matches!(
        source,
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// Whether the user's command line or environment decides `arg`: it gave
/// the flag itself, or one that cannot go with it.
fn user_decides(serve: &Command, given: &ArgMatches, arg: &Arg) -> bool {
    let id = arg.get_id().as_str();
    if from_user(given.value_source(id)) {
        return true;
    }
    // Conflicts are declared on one side only (tls-cert against
    // tls-self-signed): look both ways.
    let conflicting = serve.get_arguments().filter(|other| {
        other.get_id() != arg.get_id()
            && (serve
                .get_arg_conflicts_with(arg)
                .iter()
                .any(|c| c.get_id() == other.get_id())
                || serve
                    .get_arg_conflicts_with(other)
                    .iter()
                    .any(|c| c.get_id() == arg.get_id()))
    });
    conflicting
        .into_iter()
        .any(|other| from_user(given.value_source(other.get_id().as_str())))
}

/// The extra arguments for one setting. `--key=value` keeps a value that
/// starts with '-' a value; a `false` switch adds nothing (off is every
/// switch's default).
fn as_arguments(long: &str, arg: &Arg, values: Vec<String>) -> Vec<OsString> {
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return if values.iter().any(|v| v == "true") {
            vec![format!("--{long}").into()]
        } else {
            Vec::new()
        };
    }
    values
        .into_iter()
        .map(|value| format!("--{long}={value}").into())
        .collect()
}

/// One value as text, if its TOML type fits the flag: a whole number for
/// numeric flags, a string for every other.
fn scalar(arg: &Arg, value: &Value) -> Result<String, &'static str> {
    let numeric = is_numeric(arg);
    let list = matches!(arg.get_action(), ArgAction::Append);
    match value {
        Value::Integer(number) if numeric => Ok(number.to_string()),
        Value::String(text) if !numeric => Ok(text.clone()),
        _ if numeric => Err("a whole number (no quotes)"),
        _ if list => Err("a list of strings, like [\"…\", \"…\"]"),
        _ => Err("a string (in quotes)"),
    }
}

/// Runs `value` through the flag's own clap parser (the same check the
/// command line gets); the reason without clap's framing.
fn validate(arg: &Arg, value: &str) -> Result<(), String> {
    let probe = Command::new("probe").no_binary_name(true).arg(
        Arg::new("value")
            .long("value")
            .action(ArgAction::Set)
            .value_parser(arg.get_value_parser().clone()),
    );
    let Err(error) = probe.try_get_matches_from([format!("--value={value}")]) else {
        return Ok(());
    };
    if let Some(possible) = arg.get_value_parser().possible_values() {
        let names: Vec<String> = possible.map(|p| p.get_name().to_owned()).collect();
        return Err(format!("use one of: {}", names.join(", ")));
    }
    let reason = match std::error::Error::source(&error) {
        Some(reason) => reason.to_string(),
        None => "the flag does not accept this value".to_owned(),
    };
    // Rust's number parser says "invalid digit found in string" of -3;
    // say what a good value looks like too.
    Err(if is_numeric(arg) {
        format!("{value}: {reason}; expected a whole number of 0 or more")
    } else {
        reason
    })
}

/// Whether the flag takes a whole number.
fn is_numeric(arg: &Arg) -> bool {
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
    ]
    .iter()
    .any(|id| arg.get_value_parser().type_id() == *id)
}

/// The valid key closest in spelling to a wrong one, if any is close.
fn nearest_key(wrong: &str, keys: &[Key<'_>]) -> Option<String> {
    let (likeness, nearest) = keys
        .iter()
        .map(|key| (strsim::jaro_winkler(wrong, key.long), key.long))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    (likeness > 0.8).then(|| nearest.to_owned())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "a number",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// A command line with a config file's settings added.
pub struct Merged {
    /// The user's arguments, then the file's.
    pub arguments: Vec<OsString>,
    file: PathBuf,
}

impl Merged {
    /// Says that the file took part in an error of the merged command line
    /// (clap's message names flags, which may have come from the file).
    pub fn blame(&self, error: clap::Error) -> clap::Error {
        let rendered = error.render().to_string();
        let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
        clap::Error::raw(
            error.kind(),
            format!(
                "{}\n(some of these settings come from the config file {})\n",
                message.trim_end(),
                self.file.display()
            ),
        )
    }
}

/// `args` with the settings of the config file that `given` (the parse of
/// `args`) names, or `None` if it names none or is not `serve`.
pub fn merge(
    cli: &Command,
    args: &[OsString],
    given: &ArgMatches,
) -> Result<Option<Merged>, clap::Error> {
    let Some(("serve", serve_given)) = given.subcommand() else {
        return Ok(None);
    };
    let Some(path) = serve_given.get_one::<PathBuf>("config") else {
        return Ok(None);
    };
    let to_clap =
        |e: ConfigError| clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{e}\n"));
    let file = ConfigFile::read(path).map_err(to_clap)?;
    let extra = file.arguments(cli, given).map_err(to_clap)?;
    let mut arguments = args.to_vec();
    arguments.extend(extra);
    Ok(Some(Merged {
        arguments,
        file: file.path().to_owned(),
    }))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
