//! `oathdesk verify`: does a code match, and how far off is the token?

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use oathdesk_otp::{Kind, Window};
use serde::Serialize;

use crate::input::{self, EncodingArgs, ParamArgs};

/// Check a code against a secret. Prints the signed step offset of the match
/// (negative: the token is behind, positive: ahead) and exits 0; exits 2 when
/// no code in the window matches, 1 on bad input.
#[derive(Args, Debug)]
#[command(after_help = "\
Give SECRET and CODE, or only CODE with the secret in OATHDESK_SECRET. SECRET takes \
the same forms as for 'oathdesk code' ('-', @FILE, otpauth:// URI, --hex, --base64).

For HOTP (--counter N, or an hotp URI) the window runs from the counter given; \
the offset says how many codes the token has moved on.

Examples:
  oathdesk verify @secret.txt 287082 --counter 0 --window 3     (prints 1)
  OATHDESK_SECRET=... oathdesk verify 123456 --behind 4 --ahead 1 --json
  OATHDESK_SECRET=... oathdesk verify 123456 --state verify.state --state-key-file verify.key

With --state, a code already accepted exits 2 (replay), as does a code older than the \
last accepted one; the window is centred on the drift learned from the last accepted code. \
Concurrent verifiers sharing the file take turns (a lock on FILE.lock).")]
pub struct VerifyArgs {
    /// SECRET CODE, or just CODE with the secret in OATHDESK_SECRET.
    #[arg(value_name = "SECRET CODE", num_args = 1..=2, required = true)]
    pub values: Vec<String>,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Accept codes up to N steps either side.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with_all = ["behind", "ahead"])]
    pub window: u64,
    /// Accept codes up to N steps in the past (a slow token); with --ahead.
    #[arg(long, value_name = "N")]
    pub behind: Option<u64>,
    /// Accept codes up to N steps in the future (a fast token); with --behind.
    #[arg(long, value_name = "N")]
    pub ahead: Option<u64>,
    /// Verify at this moment instead of now (Unix seconds or RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Print {"valid":…,"offset":…,"counter":…}.
    #[arg(long)]
    pub json: bool,
    /// Remember accepted codes in this encrypted state file: each code is
    /// accepted once, never an older one, and the window follows the
    /// token's drift. Needs --state-key-file or OATHDESK_STATE_KEY.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// The state file's key: 32 random bytes in base64 or hex, in a file
    /// only you can read (or in OATHDESK_STATE_KEY).
    #[arg(long, value_name = "FILE", requires = "state")]
    pub state_key_file: Option<PathBuf>,
}

#[derive(Serialize)]
struct VerifyJson {
    valid: bool,
    offset: Option<i64>,
    counter: Option<u64>,
}

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let (secret_arg, code) = match args.values.as_slice() {
        [code] => (None, code.as_str()),
        [secret, code] => (Some(secret.as_str()), code.as_str()),
        _ => bail!("give SECRET and CODE, or CODE alone with OATHDESK_SECRET set"),
    };
    let credential = input::credential(secret_arg, &args.encoding, &args.params)?;
    let window = match (args.behind, args.ahead) {
        (None, None) => Window::symmetric(args.window),
        (behind, ahead) => Window {
            behind: behind.unwrap_or(0),
            ahead: ahead.unwrap_or(0),
        },
    };
    if let Some(state) = &args.state {
        let key = super::verify_state::load_key(args.state_key_file.as_deref())?;
        let (expected, now) = match credential.kind {
            Kind::Hotp { counter } => {
                if args.at.is_some() {
                    bail!("--at applies to TOTP; this is an HOTP credential");
                }
                (counter, input::now())
            }
            Kind::Totp { step } => {
                let time = match &args.at {
                    Some(text) => input::parse_time(text)?,
                    None => input::now(),
                };
                (step.counter_at(time)?, time)
            }
        };
        let check = super::verify_state::Check {
            credential: &credential,
            code,
            expected,
            window,
            now,
        };
        return super::verify_state::run(state, &key, check, args.json);
    }
    let (expected, found) = match credential.kind {
        Kind::Hotp { counter } => {
            if args.at.is_some() {
                bail!("--at applies to TOTP; this is an HOTP credential");
            }
            let found = credential
                .hotp()
                .verify(code, counter, window)
                .map_err(|e| anyhow!("{e}"))?;
            (counter, found)
        }
        Kind::Totp { step } => {
            let time = match &args.at {
                Some(text) => input::parse_time(text)?,
                None => input::now(),
            };
            let expected = step.counter_at(time)?;
            let found = credential
                .hotp()
                .verify(code, expected, window)
                .map_err(|e| anyhow!("{e}"))?;
            (expected, found)
        }
    };
    if args.json {
        let output = VerifyJson {
            valid: found.is_some(),
            offset: found.map(|m| m.offset),
            counter: found.map(|m| m.counter),
        };
        println!("{}", serde_json::to_string(&output)?);
    } else if let Some(found) = found {
        println!("{}", found.offset);
    } else {
        eprintln!(
            "oathdesk: code not accepted: no code matches counters {} .. {} (window -{} .. +{})",
            expected.saturating_sub(window.behind),
            expected.saturating_add(window.ahead),
            window.behind,
            window.ahead
        );
    }
    Ok(if found.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
