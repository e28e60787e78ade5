//! `oathdesk uri`: build and inspect otpauth URIs and Google Authenticator
//! export links.

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_otp::{Credential, Kind, migration, uri};
use serde::Serialize;

use crate::input::{self, EncodingArgs, ParamArgs};

#[derive(Subcommand, Debug)]
pub enum UriCommand {
    /// Build an otpauth:// URI from a secret.
    #[command(after_help = "\
Parameters at their defaults (sha1, 6 digits, 30 s) are left out of the URI. \
--counter makes an HOTP URI.

Example:
  oathdesk uri build @secret.txt --issuer 'Contoso' --account alice@contoso.com")]
    Build(BuildArgs),
    /// Show what an otpauth:// URI or otpauth-migration:// link holds.
    #[command(after_help = "\
The secret is shown only with --reveal, which also prints each account as an otpauth:// URI \
(a Google Authenticator export becomes one URI per account).

Examples:
  oathdesk uri show 'otpauth://totp/ACME:bob?secret=...&issuer=ACME'
  oathdesk uri show --reveal - < export-link.txt")]
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The secret ('-', @FILE, or OATHDESK_SECRET when left out).
    #[arg(value_name = "SECRET")]
    pub secret: Option<String>,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub label: LabelArgs,
}

/// Who the credential is for.
#[derive(Args, Debug, Clone, Default)]
pub struct LabelArgs {
    /// The service or organisation, shown by authenticator apps.
    #[arg(long, value_name = "NAME")]
    pub issuer: Option<String>,
    /// The account (user name, e-mail or UPN).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
}

impl LabelArgs {
    /// Sets issuer and account on a credential, keeping what is not given.
    pub fn apply(&self, credential: &mut Credential) {
        if let Some(issuer) = &self.issuer {
            credential.issuer = Some(issuer.clone()).filter(|i| !i.is_empty());
            credential.label_issuer = None;
        }
        if let Some(account) = &self.account {
            credential.account = account.clone();
        }
    }
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The URI or link ('-' reads standard input, @FILE a file).
    #[arg(value_name = "URI")]
    pub uri: String,
    /// Also print the secret and the otpauth URI of each account.
    #[arg(long)]
    pub reveal: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: UriCommand) -> Result<()> {
    match command {
        UriCommand::Build(args) => {
            let mut credential =
                input::credential(args.secret.as_deref(), &args.encoding, &args.params)?;
            args.label.apply(&mut credential);
            println!("{}", uri::format(&credential).map_err(|e| anyhow!("{e}"))?);
            Ok(())
        }
        UriCommand::Show(args) => show(args),
    }
}

#[derive(Serialize)]
struct BatchJson {
    version: i32,
    batch_size: i32,
    batch_index: i32,
    batch_id: i32,
}

#[derive(Serialize)]
struct CredentialJson {
    r#type: &'static str,
    issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_issuer: Option<String>,
    account: String,
    algorithm: String,
    digits: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    secret_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
}

#[derive(Serialize)]
struct ShowJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<BatchJson>,
    credentials: Vec<CredentialJson>,
}

fn show(args: ShowArgs) -> Result<()> {
    let text = input::secret_text(Some(&args.uri))?;
    let lower: String = text
        .chars()
        .take(21)
        .collect::<String>()
        .to_ascii_lowercase();
    let (batch, credentials) = if lower.starts_with("otpauth-migration://") {
        let batch = migration::parse(&text).map_err(|e| anyhow!("{e}"))?;
        let info = BatchJson {
            version: batch.version,
            batch_size: batch.batch_size,
            batch_index: batch.batch_index,
            batch_id: batch.batch_id,
        };
        (Some(info), batch.credentials)
    } else if lower.starts_with("otpauth://") {
        (None, vec![uri::parse(&text).map_err(|e| anyhow!("{e}"))?])
    } else {
        bail!("not an otpauth:// URI or otpauth-migration:// link");
    };
    let credentials: Vec<CredentialJson> = credentials
        .iter()
        .map(|c| describe(c, args.reveal))
        .collect::<Result<_>>()?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&ShowJson { batch, credentials })?
        );
        return Ok(());
    }
    if let Some(batch) = &batch {
        println!(
            "Google Authenticator export: QR code {} of {} (batch id {}), {} account(s)",
            batch.batch_index + 1,
            batch.batch_size.max(1),
            batch.batch_id,
            credentials.len()
        );
    }
    for (index, c) in credentials.iter().enumerate() {
        if index > 0 || batch.is_some() {
            println!();
        }
        println!("type       {}", c.r#type);
        let issuer = c.issuer.as_deref().unwrap_or("(none)");
        println!("issuer     {}", input::printable(issuer));
        if let Some(label) = &c.label_issuer {
            println!(
                "label      {} (the label's issuer differs from issuer=)",
                input::printable(label)
            );
        }
        println!("account    {}", input::printable(&c.account));
        println!("algorithm  {}", c.algorithm);
        println!("digits     {}", c.digits);
        if let Some(period) = c.period {
            println!("period     {period} s");
        }
        if let Some(counter) = c.counter {
            println!("counter    {counter}");
        }
        match &c.secret {
            Some(secret) => println!("secret     {secret}"),
            None => println!("secret     ({} bytes; --reveal shows it)", c.secret_bytes),
        }
        if let Some(uri) = &c.uri {
            println!("uri        {uri}");
        }
    }
    Ok(())
}

fn describe(c: &Credential, reveal: bool) -> Result<CredentialJson> {
    let (period, counter) = match c.kind {
        Kind::Totp { step } => (Some(step.period()), None),
        Kind::Hotp { counter } => (None, Some(counter)),
    };
    Ok(CredentialJson {
        r#type: c.kind.name(),
        issuer: c.issuer.clone(),
        label_issuer: c.label_issuer.clone(),
        account: c.account.clone(),
        algorithm: c.algorithm.to_string(),
        digits: c.digits.get(),
        period,
        counter,
        secret_bytes: c.secret.len(),
        secret: reveal.then(|| c.secret.to_base32().to_string()),
        uri: if reveal {
            Some(uri::format(c).map_err(|e| anyhow!("{e}"))?)
        } else {
            None
        },
    })
}
