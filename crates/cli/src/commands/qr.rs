//! `oathdesk qr`: show a credential as a QR code, and read QR codes from
//! screenshots.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_formats::qr;
use oathdesk_otp::{migration, uri};

use crate::commands::uri::LabelArgs;
use crate::input::{self, EncodingArgs, ParamArgs};

#[derive(Subcommand, Debug)]
pub enum QrCommand {
    /// Show a secret or otpauth URI as a QR code (terminal, PNG or SVG).
    #[command(after_help = "\
The QR code holds the secret: a PNG or SVG file is created readable by its owner only; \
delete it once the token or app is enrolled.

Examples:
  oathdesk qr show @secret.txt --issuer Contoso --account alice@contoso.com
  oathdesk qr show 'otpauth://totp/...' --png enrol.png")]
    Show(ShowArgs),
    /// Find every QR code in PNG/JPEG images and print the otpauth URIs.
    #[command(after_help = "\
Google Authenticator export codes (otpauth-migration://) are expanded into one otpauth URI \
per account. QR codes that hold something else are reported on stderr and skipped.

Example:
  oathdesk qr read screenshot.png")]
    Read(ReadArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A secret or an otpauth:// URI ('-', @FILE, or OATHDESK_SECRET when left out).
    #[arg(value_name = "SECRET|URI")]
    pub secret: Option<String>,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub label: LabelArgs,
    /// Write a PNG image to FILE instead of drawing in the terminal.
    #[arg(long, value_name = "FILE", conflicts_with = "svg")]
    pub png: Option<PathBuf>,
    /// Write an SVG image to FILE instead of drawing in the terminal.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// PNG or JPEG files.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
}

pub fn run(command: QrCommand) -> Result<()> {
    match command {
        QrCommand::Show(args) => show(args),
        QrCommand::Read(args) => read(args),
    }
}

fn show(args: ShowArgs) -> Result<()> {
    let mut credential = input::credential(args.secret.as_deref(), &args.encoding, &args.params)?;
    args.label.apply(&mut credential);
    let text = zeroize::Zeroizing::new(uri::format(&credential).map_err(|e| anyhow!("{e}"))?);
    if let Some(path) = &args.png {
        let bytes = qr::png(&text).map_err(|e| anyhow!("{e}"))?;
        input::write_private(path, &bytes)?;
        eprintln!(
            "oathdesk: wrote {} (it holds the secret: delete it after enrolment)",
            path.display()
        );
    } else if let Some(path) = &args.svg {
        let svg = qr::svg(&text).map_err(|e| anyhow!("{e}"))?;
        input::write_private(path, svg.as_bytes())?;
        eprintln!(
            "oathdesk: wrote {} (it holds the secret: delete it after enrolment)",
            path.display()
        );
    } else {
        print!(
            "{}",
            qr::render_terminal(&text).map_err(|e| anyhow!("{e}"))?
        );
        println!("{}", credential.display_name());
    }
    Ok(())
}

fn read(args: ReadArgs) -> Result<()> {
    let mut failures = 0usize;
    let mut found = 0usize;
    for path in &args.images {
        let name = path.display();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("oathdesk: {name}: cannot read: {e}");
                failures += 1;
                continue;
            }
        };
        let texts = match qr::decode_image(&bytes) {
            Ok(texts) => texts,
            Err(e) => {
                eprintln!("oathdesk: {name}: {e}");
                failures += 1;
                continue;
            }
        };
        if texts.is_empty() {
            eprintln!(
                "oathdesk: {name}: no QR code found (crop the screenshot to the code or take it at a larger size)"
            );
            failures += 1;
            continue;
        }
        for (index, text) in texts.iter().enumerate() {
            let lower: String = text
                .chars()
                .take(21)
                .collect::<String>()
                .to_ascii_lowercase();
            let which = format!("{name}: QR code {}", index + 1);
            if lower.starts_with("otpauth://") {
                match uri::parse(text) {
                    Ok(credential) => {
                        // A QR code is untrusted input: print the URI as
                        // read, unless it holds control characters, then
                        // as oathdesk writes it (percent-encoded).
                        if text.chars().any(char::is_control) {
                            println!("{}", uri::format(&credential).map_err(|e| anyhow!("{e}"))?);
                        } else {
                            println!("{text}");
                        }
                        found += 1;
                    }
                    Err(e) => {
                        eprintln!("oathdesk: {which}: {e}");
                        failures += 1;
                    }
                }
            } else if lower.starts_with("otpauth-migration://") {
                match migration::parse(text) {
                    Ok(batch) => {
                        for credential in &batch.credentials {
                            println!("{}", uri::format(credential).map_err(|e| anyhow!("{e}"))?);
                            found += 1;
                        }
                    }
                    Err(e) => {
                        eprintln!("oathdesk: {which}: {e}");
                        failures += 1;
                    }
                }
            } else {
                eprintln!(
                    "oathdesk: {which} is not an otpauth URI ({} characters); skipped",
                    text.chars().count()
                );
            }
        }
    }
    if failures > 0 {
        bail!("{failures} image(s) or code(s) could not be read; {found} URI(s) printed");
    }
    if found == 0 {
        bail!("no otpauth URI found in the QR codes");
    }
    Ok(())
}
