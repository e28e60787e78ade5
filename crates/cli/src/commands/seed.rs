//! `oathdesk seed`: make new secrets and re-encode existing ones.

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use oathdesk_otp::{Algorithm, Encoding, seed};

use crate::input::{self, EncodingArgs};

#[derive(Subcommand, Debug)]
pub enum SeedCommand {
    /// Generate random secrets from the operating system's CSPRNG.
    #[command(after_help = "\
Default sizes follow the algorithm: 20 bytes for sha1, 32 for sha256, 64 for sha512. \
A warning is printed (on stderr) above 63 bytes, the Token2 hardware limit, and below 16 bytes.

Examples:
  oathdesk seed new
  oathdesk seed new --algorithm sha256 --count 100 --format hex > seeds.txt")]
    New(NewArgs),
    /// Re-encode a secret: Base32, hex or Base64.
    #[command(after_help = "\
VALUE is read as Base32 unless --hex or --base64 is given ('-' reads standard input, @FILE a file).

Example:
  oathdesk seed convert --hex 3132333435363738393031323334353637383930 --to base32")]
    Convert(ConvertArgs),
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Seed size in bytes.
    #[arg(long, value_name = "N", conflicts_with = "algorithm")]
    pub bytes: Option<usize>,
    /// Pick the size that suits this algorithm.
    #[arg(long, value_name = "ALG")]
    pub algorithm: Option<Algorithm>,
    /// How many seeds, one per line.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: usize,
    /// Output encoding.
    #[arg(long, value_name = "ENC", default_value = "base32")]
    pub format: Encoding,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The secret to convert.
    #[arg(value_name = "VALUE")]
    pub value: Option<String>,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    /// Target encoding: base32, hex or base64.
    #[arg(long, value_name = "ENC")]
    pub to: Encoding,
}

pub fn run(command: SeedCommand) -> Result<()> {
    match command {
        SeedCommand::New(args) => {
            let bytes = args
                .bytes
                .unwrap_or_else(|| seed::default_len(args.algorithm.unwrap_or_default()));
            if let Some(warning) = seed::size_warning(bytes) {
                eprintln!("oathdesk: warning: {warning}");
            }
            let mut out = String::new();
            for _ in 0..args.count {
                let secret = seed::generate(bytes).map_err(|e| anyhow!("{e}"))?;
                out.push_str(&secret.encode(args.format));
                out.push('\n');
            }
            print!("{out}");
            zeroize::Zeroize::zeroize(&mut out);
            Ok(())
        }
        SeedCommand::Convert(args) => {
            let text = input::secret_text(args.value.as_deref())?;
            let secret = input::decode_secret(&text, &args.encoding)?;
            println!("{}", secret.encode(args.to).as_str());
            Ok(())
        }
    }
}
