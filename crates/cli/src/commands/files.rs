//! `oathdesk convert`, `oathdesk lint`, `oathdesk import FORMAT`,
//! `oathdesk export FORMAT`: seed files in every format admins meet.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use oathdesk_formats::entra::DEFAULT_PROFILE_SERIAL;
use oathdesk_formats::format::{self, Format, Protection, ProtectionError, WriteOptions};
use oathdesk_formats::lint::{self, Target};
use oathdesk_formats::{Keys, Read, Record, Written};
use oathdesk_vault::model::State;
use oathdesk_vault::store::CredentialFilter;
use zeroize::Zeroizing;

use crate::input;
use crate::unlock::VaultOptions;

/// Where passwords and keys for encrypted files come from (never argv).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "File encryption")]
pub struct KeyArgs {
    /// Password of an encrypted input (PSKC, Aegis, 2FAS, andOTP), first line of FILE
    /// [else env OATHDESK_FILE_PASSWORD].
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Pre-shared key of an encrypted PSKC input, hex in FILE [else env OATHDESK_FILE_KEY].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl KeyArgs {
    pub fn keys(&self) -> Result<Keys> {
        let password = match &self.password_file {
            Some(path) => Some(first_line(path)?),
            None => std::env::var("OATHDESK_FILE_PASSWORD")
                .ok()
                .map(Zeroizing::new),
        };
        let key_text = match &self.key_file {
            Some(path) => Some(first_line(path)?),
            None => std::env::var("OATHDESK_FILE_KEY").ok().map(Zeroizing::new),
        };
        let key = match key_text {
            Some(text) => Some(Zeroizing::new(
                oathdesk_otp::Secret::from_hex(&text)
                    .map_err(|e| anyhow!("the key file: {e}"))?
                    .as_bytes()
                    .to_vec(),
            )),
            None => None,
        };
        Ok(Keys { password, key })
    }
}

/// The first line of a file holding a password, key or secret.
pub(crate) fn first_line(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or_default().trim_end();
    if line.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(Zeroizing::new(line.to_owned()))
}

/// How output is written.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Write to FILE (created readable by its owner only) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Allow secrets in a plaintext file (formats that cannot encrypt need this). Refused
    /// together with a password or key for the output: an encrypted output is never plain.
    #[arg(long)]
    pub plaintext: bool,
    /// Serial of a multi-profile device's profile for Entra: {serial} and {slot} (two digits).
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_PROFILE_SERIAL)]
    pub profile_serial: String,
}

/// Convert a seed file from one format to another, without a vault.
#[derive(Args, Debug)]
#[command(after_help = "\
Formats: entra-csv, entra-json, pskc, privacyidea, privacyidea-v2, linotp, otpauth, google, aegis, \
2fas, andotp, oathdesk. Without --from the format is detected. Records the output format cannot \
take are listed on stderr with the reason, and the exit code is then 2.

--password-file and --key-file open the input only; the output is encrypted with \
--out-password-file or --out-key-file (give the same file to re-use a password or key).

Examples:
  oathdesk convert vendor.pskc --key-file psk.hex --to entra-csv --plaintext --out entra.csv
  oathdesk convert tokens.csv --to pskc --out-password-file pw.txt --out tokens.pskc
  oathdesk convert tokens.csv --to pskc --out-key-file transport.hex --out tokens.pskc")]
pub struct ConvertArgs {
    pub input: PathBuf,
    #[arg(long, value_name = "FORMAT")]
    pub from: Option<Format>,
    #[arg(long, value_name = "FORMAT")]
    pub to: Format,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Password for an encrypted output (PSKC, Aegis, 2FAS, andOTP), first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub out_password_file: Option<PathBuf>,
    /// Pre-shared AES key for an encrypted PSKC output: hex in FILE, 16, 24 or 32 bytes
    /// (AES-CBC, with an encrypted MAC key and a MAC on every secret, as RFC 6030 figure 6).
    #[arg(long, value_name = "FILE")]
    pub out_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Check a seed file before importing it. Exit 0 clean, 2 with findings, 1 unreadable.
#[derive(Args, Debug)]
#[command(after_help = "\
Formats: 'spreadsheet' (the helpdesk's username,secret CSV that 'oathdesk import spreadsheet' \
takes) or any convert format (see 'oathdesk convert --help'); without --from the format is \
detected. ';'- and tab-separated files are read (and reported).

Targets: entra, entra-graph, privacyidea, linotp, molto2, single-profile.

Examples:
  oathdesk lint vendor-seeds.csv --target entra
  oathdesk lint helpdesk.csv --from spreadsheet")]
pub struct LintArgs {
    pub input: PathBuf,
    #[arg(long, value_name = "FORMAT")]
    pub from: Option<String>,
    /// Also check what this system cannot take.
    #[arg(long, value_name = "TARGET")]
    pub target: Option<Target>,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[arg(long)]
    pub json: bool,
}

/// Import a file into the vault: all of it, or nothing.
#[derive(Args, Debug)]
#[command(after_help = "\
FORMAT is 'spreadsheet' (the helpdesk's username,secret CSV) or any convert format (see \
'oathdesk convert --help'); 'auto' detects it.

An Entra CSV or JSON that oathdesk exported names a multi-profile device's profile SERIAL-NN: \
it is imported as device SERIAL, slot NN (--whole-serials keeps serials whole).

Examples:
  oathdesk import spreadsheet helpdesk.csv --dry-run
  oathdesk import pskc vendor.pskc --key-file psk.hex
  oathdesk import entra-csv entra.csv")]
pub struct ImportArgs {
    pub format: String,
    pub file: PathBuf,
    /// Check and report, without importing.
    #[arg(long)]
    pub dry_run: bool,
    /// Spreadsheet only: import the good rows even if some are bad.
    #[arg(long)]
    pub skip_bad: bool,
    /// Entra files: the form of a multi-profile device's profile serial, read back into
    /// device and slot ({serial} and {slot}, two digits).
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_PROFILE_SERIAL)]
    pub profile_serial: String,
    /// Entra files: keep every serial whole (a vendor's own serial that ends in -NN).
    #[arg(long)]
    pub whole_serials: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Export credentials whose secrets the vault holds. Audited.
#[derive(Args, Debug)]
#[command(after_help = "\
Formats: entra-csv, entra-json, pskc, privacyidea, privacyidea-v2, linotp, otpauth, google, aegis, \
2fas, andotp, oathdesk. pskc, aegis, 2fas and andotp are encrypted with --password-file (pskc also \
with --key-file); the others hold secrets in plain text and need --plaintext. Credentials the \
format cannot take are listed on stderr with the reason, and the exit code is then 2.

Examples:
  oathdesk export pskc --password-file pw.txt --out tokens.pskc
  oathdesk export entra-csv --plaintext --state assigned --out entra.csv")]
pub struct ExportArgs {
    pub format: Format,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Password for an encrypted output, first line of FILE [else env OATHDESK_FILE_PASSWORD].
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Pre-shared AES key for an encrypted PSKC output: hex in FILE, 16, 24 or 32 bytes
    /// [else env OATHDESK_FILE_KEY].
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Only this user's.
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// Only in this state.
    #[arg(long)]
    pub state: Option<State>,
    /// Only this device's.
    #[arg(long)]
    pub serial: Option<String>,
}

fn read_input(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if metadata.len() > oathdesk_formats::record::MAX_INPUT_BYTES as u64 {
        bail!(
            "{} is {} MiB; files over {} MiB are refused",
            path.display(),
            metadata.len() / (1024 * 1024),
            oathdesk_formats::record::MAX_INPUT_BYTES / (1024 * 1024)
        );
    }
    Ok(Zeroizing::new(std::fs::read(path).with_context(|| {
        format!("cannot read {}", path.display())
    })?))
}

/// Reads every record the file holds; entries oathdesk does not handle (an
/// app backup's Steam or Yandex entry) are listed on stderr, each with its
/// place, issuer and reason, and returned in [`Read::skipped`].
pub(crate) fn read_records(
    path: &Path,
    from: Option<Format>,
    keys: &Keys,
) -> Result<(Format, Read)> {
    let bytes = read_input(path)?;
    let name = path.display();
    let format = match from {
        Some(format) => format,
        None => format::detect(&bytes).map_err(|e| anyhow!("{name}: {e}"))?,
    };
    let read = format::read_all(format, &bytes, keys).map_err(|e| anyhow!("{name}: {e}"))?;
    for skipped in &read.skipped {
        eprintln!(
            "oathdesk: {name}: not read: {}: {}",
            skipped.reference, skipped.reason
        );
    }
    Ok((format, read))
}

/// The line saying how many entries were left out of the input, if any.
fn report_unread(read: &Read, name: &str) {
    if !read.skipped.is_empty() {
        eprintln!(
            "oathdesk: {} entr{} of {name} left out (see above); the others were read",
            read.skipped.len(),
            if read.skipped.len() == 1 { "y" } else { "ies" }
        );
    }
}

/// Writes the output and reports skipped records; exit 2 when any was skipped.
fn emit(written: Written, output: &OutputArgs, what: &str) -> Result<ExitCode> {
    match &output.out {
        Some(path) => input::write_private(path, &written.bytes)?,
        None => std::io::stdout().write_all(&written.bytes)?,
    }
    for skipped in &written.skipped {
        eprintln!(
            "oathdesk: not written: {}: {}",
            skipped.reference, skipped.reason
        );
    }
    if written.skipped.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "oathdesk: {} record(s) left out of the {what}; see the reasons above",
            written.skipped.len()
        );
        Ok(ExitCode::from(2))
    }
}

/// Where a command takes the output's password and key from.
struct OutputSources {
    password_flag: &'static str,
    key_flag: &'static str,
    /// OATHDESK_FILE_PASSWORD / OATHDESK_FILE_KEY stand in for the flags.
    environment: bool,
    /// The command also has the input's --password-file / --key-file.
    has_input_keys: bool,
}

const CONVERT_OUTPUT: OutputSources = OutputSources {
    password_flag: "--out-password-file",
    key_flag: "--out-key-file",
    environment: false,
    has_input_keys: true,
};

const EXPORT_OUTPUT: OutputSources = OutputSources {
    password_flag: "--password-file",
    key_flag: "--key-file",
    environment: true,
    has_input_keys: false,
};

/// A password and key asked for the output, each with where it came from
/// (a flag or the environment), for messages. Never the value.
struct OutputSecrets {
    password: Option<(Zeroizing<String>, String)>,
    key: Option<(Zeroizing<Vec<u8>>, String)>,
}

impl OutputSecrets {
    fn load(
        sources: &OutputSources,
        password_file: Option<&Path>,
        key_file: Option<&Path>,
    ) -> Result<OutputSecrets> {
        let from_env = |name: &str| {
            sources
                .environment
                .then(|| std::env::var(name).ok())
                .flatten()
                .map(|value| {
                    (
                        Zeroizing::new(value),
                        format!("{name} (set in the environment)"),
                    )
                })
        };
        let password = match password_file {
            Some(path) => Some((first_line(path)?, sources.password_flag.to_owned())),
            None => from_env("OATHDESK_FILE_PASSWORD"),
        };
        let key_text = match key_file {
            Some(path) => Some((first_line(path)?, sources.key_flag.to_owned())),
            None => from_env("OATHDESK_FILE_KEY"),
        };
        let key = match key_text {
            Some((text, source)) => {
                let key = oathdesk_otp::Secret::from_hex(&text)
                    .map_err(|e| anyhow!("{source}: the key is not hex: {e}"))?;
                Some((Zeroizing::new(key.as_bytes().to_vec()), source))
            }
            None => None,
        };
        Ok(OutputSecrets { password, key })
    }

    /// Where the encryption asked for comes from: "--password-file", …
    fn sources(&self) -> String {
        let password = self.password.iter().map(|(_, source)| source.as_str());
        let key = self.key.iter().map(|(_, source)| source.as_str());
        password.chain(key).collect::<Vec<_>>().join(" and ")
    }
}

/// Judges the output's protection (the formats crate's policy) and builds
/// the write options; the refusals name the flags of this command.
fn write_options(
    format: Format,
    output: &OutputArgs,
    secrets: OutputSecrets,
    sources: &OutputSources,
) -> Result<WriteOptions> {
    let asked = Protection {
        password: secrets.password.as_ref().map(|(p, _)| p.is_empty()),
        key_len: secrets.key.as_ref().map(|(k, _)| k.len()),
        plaintext: output.plaintext,
    };
    if let Err(error) = format::check_protection(format, asked) {
        bail!("{}", refusal(error, &secrets, sources));
    }
    let mut batch = [0u8; 4];
    getrandom_fill(&mut batch);
    Ok(WriteOptions {
        profile_serial: output.profile_serial.clone(),
        password: secrets.password.map(|(p, _)| p),
        key: secrets.key.map(|(k, _)| k),
        batch_id: i32::from_le_bytes(batch) & i32::MAX,
    })
}

/// Why the output is not written, in this command's words.
fn refusal(error: ProtectionError, secrets: &OutputSecrets, sources: &OutputSources) -> String {
    let asked = secrets.sources();
    let password = secrets
        .password
        .as_ref()
        .map_or(sources.password_flag, |(_, s)| s.as_str());
    let key = secrets
        .key
        .as_ref()
        .map_or(sources.key_flag, |(_, s)| s.as_str());
    let (password_flag, key_flag) = (sources.password_flag, sources.key_flag);
    match error {
        ProtectionError::EncryptedAndPlaintext(format) => format!(
            "{asked} asks for an encrypted {format} file, and --plaintext for a plaintext one; \
             nothing was written: drop --plaintext to write it encrypted, or drop {asked} to \
             write it in plain text"
        ),
        ProtectionError::CannotEncrypt(format) => format!(
            "{format} files cannot be encrypted, but {asked} asks for encryption; nothing was \
             written: choose a format that encrypts (pskc, aegis, 2fas, andotp), or drop {asked} \
             and pass --plaintext to write a plaintext {format} file"
        ),
        ProtectionError::KeyNeedsPskc(format) => format!(
            "{key} gives a pre-shared key, but {format} files are encrypted with a password (only \
             pskc takes a key): give {password_flag} instead"
        ),
        ProtectionError::PasswordAndKey => format!(
            "{password} and {key} both ask to encrypt the output, and a PSKC file is encrypted \
             with one of them: give only one"
        ),
        ProtectionError::EmptyPassword => format!("{password}: the password is empty"),
        ProtectionError::KeyLength(len) => format!(
            "{key}: the key is {len} bytes ({} hex digits); a pre-shared AES key is 16, 24 or 32 \
             bytes (32, 48 or 64 hex digits)",
            len * 2
        ),
        ProtectionError::PlaintextNotAllowed(format) => format!(
            "{format} files hold secrets in plain text: pass --plaintext to write one (and \
             protect the file)"
        ),
        ProtectionError::NoEncryption(format) => {
            let hint = if sources.has_input_keys {
                " (--password-file and --key-file open the input only)"
            } else {
                ""
            };
            if format == Format::Pskc {
                format!(
                    "{format} output is encrypted: give {password_flag} or {key_flag}, or pass \
                     --plaintext{hint}"
                )
            } else {
                format!(
                    "{format} output is encrypted: give {password_flag}, or pass --plaintext{hint}"
                )
            }
        }
    }
}

fn getrandom_fill(buffer: &mut [u8]) {
    // A batch id only groups export QR codes; any value works if the RNG fails.
    if let Ok(secret) = oathdesk_otp::seed::generate(buffer.len()) {
        buffer.copy_from_slice(secret.as_bytes());
    }
}

pub fn run_convert(args: ConvertArgs) -> Result<ExitCode> {
    // The output is encrypted with what is given for it (--out-password-file,
    // --out-key-file) and nothing else. The input's password or key is not
    // re-used: it belongs to whoever sent the file (a vendor's transport
    // key), and handing it on with another file is a decision the admin
    // makes by naming it again, not a default. Re-using it would also make
    // the usual `--key-file vendor.hex --to entra-csv --plaintext` a
    // contradiction, or silently drop a key that was asked for.
    let secrets = OutputSecrets::load(
        &CONVERT_OUTPUT,
        args.out_password_file.as_deref(),
        args.out_key_file.as_deref(),
    )?;
    let options = write_options(args.to, &args.output, secrets, &CONVERT_OUTPUT)?;
    let keys = args.keys.keys()?;
    let (_, read) = read_records(&args.input, args.from, &keys)?;
    let records = &read.records;
    let written = format::write(args.to, records, &options).map_err(|e| anyhow!("{e}"))?;
    for note in format::write_notes(args.to, records) {
        eprintln!("oathdesk: note: {note}");
    }
    eprintln!(
        "oathdesk: {} of {} record(s) written as {}",
        records.len() - written.skipped.len(),
        records.len(),
        args.to
    );
    let code = emit(written, &args.output, "output")?;
    report_unread(&read, &args.input.display().to_string());
    Ok(if read.skipped.is_empty() {
        code
    } else {
        ExitCode::from(2)
    })
}

pub fn run_lint(args: LintArgs) -> Result<ExitCode> {
    let keys = args.keys.keys()?;
    let bytes = read_input(&args.input)?;
    let name = args.input.display();
    let report = match args.from.as_deref() {
        Some(from) if from.eq_ignore_ascii_case("spreadsheet") => {
            lint::lint_spreadsheet(&bytes, args.target)
        }
        Some(from) => {
            let format = from
                .parse::<Format>()
                .map_err(|e| anyhow!("{e}, or spreadsheet (the helpdesk's username,secret CSV)"))?;
            lint::lint(&bytes, Some(format), &keys, args.target)
        }
        None => lint::lint(&bytes, None, &keys, args.target),
    }
    .map_err(|e| anyhow!("{name}: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for finding in &report.findings {
            println!("{name}: {finding}");
        }
        println!(
            "{name}: {} record(s) read as {}, {} finding(s)",
            report.records,
            report.format,
            report.findings.len()
        );
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub fn run_import(args: ImportArgs, options: &VaultOptions) -> Result<ExitCode> {
    if args.format.eq_ignore_ascii_case("spreadsheet") {
        return crate::commands::token::import_spreadsheet(
            &args.file,
            args.dry_run,
            args.skip_bad,
            options,
        )
        .map(|()| ExitCode::SUCCESS);
    }
    if args.skip_bad {
        bail!(
            "--skip-bad is for spreadsheets; other imports are all or nothing (check them with 'oathdesk lint')"
        );
    }
    let from = if args.format.eq_ignore_ascii_case("auto") {
        None
    } else {
        Some(args.format.parse::<Format>().map_err(|e| anyhow!("{e}"))?)
    };
    let keys = args.keys.keys()?;
    let (format, mut read) = read_records(&args.file, from, &keys)?;
    let name = args.file.display().to_string();
    if matches!(format, Format::EntraCsv | Format::EntraJson) && !args.whole_serials {
        // Entra knows serials only: oathdesk wrote a profile of a
        // multi-profile device as SERIAL-NN, which is device and slot.
        let restored =
            oathdesk_formats::entra::restore_profiles(&mut read.records, &args.profile_serial);
        if restored > 0 {
            eprintln!(
                "oathdesk: {name}: {restored} serial(s) of the form {} read as device and slot \
                 (--whole-serials keeps them whole)",
                args.profile_serial
            );
        }
    }
    let exit = if read.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    };
    if args.dry_run {
        preview(&args.file, format, &keys, &read)?;
        println!(
            "{} record(s) read as {format}, {} entr{} left out; nothing imported (--dry-run)",
            read.records.len(),
            read.skipped.len(),
            if read.skipped.len() == 1 { "y" } else { "ies" }
        );
        return Ok(exit);
    }
    if read.records.is_empty() {
        bail!("{name}: no record to import; nothing was imported");
    }
    let count = read.records.len();
    let Read { records, skipped } = read;
    let read = Read {
        records: Vec::new(),
        skipped,
    };
    let mut session = options.unlock()?;
    // Tokens this vault handed over before: say so (to whom, when).
    let sha = oathdesk_vault::custody::file_sha256(&read_input(&args.file)?);
    crate::commands::custody::note_on_import(&mut session, &name, &sha, &records);
    session
        .import_records(records, format, input::now())
        .map_err(|e| anyhow!("{name}: {e}; nothing was imported"))?;
    println!("imported {count} credential(s) from {name} ({format})");
    report_unread(&read, &name);
    Ok(exit)
}

/// What an import would bring in: every record (secret masked) and every
/// finding of the linter.
fn preview(path: &Path, format: Format, keys: &Keys, read: &Read) -> Result<()> {
    let name = path.display();
    for (index, record) in read.records.iter().enumerate() {
        println!("{name}: {}", describe_record(record, index));
    }
    let bytes = read_input(path)?;
    let report =
        lint::lint(&bytes, Some(format), keys, None).map_err(|e| anyhow!("{name}: {e}"))?;
    for finding in &report.findings {
        println!("{name}: {finding}");
    }
    Ok(())
}

/// One record for a preview: where, who, what, and the secret masked.
pub(crate) fn describe_record(record: &Record, index: usize) -> String {
    let c = &record.credential;
    let place = record
        .location
        .describe()
        .unwrap_or_else(|| format!("record {}", index + 1));
    let mut parts = vec![place];
    if let Some(serial) = &record.serial {
        parts.push(match record.slot {
            Some(slot) => format!("serial {serial} slot {slot}"),
            None => format!("serial {serial}"),
        });
    }
    if let Some(user) = &record.user {
        parts.push(format!("user {user}"));
    }
    let name = c.display_name();
    if !name.is_empty() {
        parts.push(format!("{name:?}"));
    }
    let kind = match c.kind {
        oathdesk_otp::Kind::Totp { step } => format!("totp {} s", step.period()),
        oathdesk_otp::Kind::Hotp { counter } => format!("hotp counter {counter}"),
    };
    parts.push(format!("{kind}, {}, {} digits", c.algorithm, c.digits));
    parts.push(format!("secret ******** ({} bytes)", c.secret.len()));
    parts.join(", ")
}

pub fn run_export(args: ExportArgs, options: &VaultOptions) -> Result<ExitCode> {
    let secrets = OutputSecrets::load(
        &EXPORT_OUTPUT,
        args.password_file.as_deref(),
        args.key_file.as_deref(),
    )?;
    let write = write_options(args.format, &args.output, secrets, &EXPORT_OUTPUT)?;
    let mut session = options.unlock()?;
    let filter = CredentialFilter {
        user_upn: args.user.clone(),
        state: args.state,
        device_serial: args.serial.clone(),
        ..CredentialFilter::default()
    };
    let written = session.export(&filter, args.format, &write, input::now())?;
    let code = emit(written, &args.output, "export")?;
    // On stderr: standard output may be the export itself.
    match &args.output.out {
        Some(path) => eprintln!(
            "oathdesk: {} export written to {} (audited)",
            args.format,
            path.display()
        ),
        None => eprintln!(
            "oathdesk: {} export written to standard output (audited)",
            args.format
        ),
    }
    Ok(code)
}
