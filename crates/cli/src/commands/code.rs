//! `oathdesk code`: the current code, a table around now, or a code that
//! lasts.

use anyhow::{Result, anyhow, bail};
use clap::Args;
use oathdesk_otp::{
    Algorithm, Credential, Interval, Kind, STEAM_CODE_LEN, Steam, TimeStep, TimedCode, Verifier,
    Window,
};
use serde::Serialize;

use crate::input::{self, EncodingArgs, ParamArgs};

/// Print the current code of a secret, or codes around now with the exact
/// time each one is valid.
#[derive(Args, Debug)]
#[command(after_help = "\
SECRET is Base32 unless --hex/--base64 is given; it may also be an otpauth:// URI, \
'-' (one line from standard input), @FILE (first line of FILE), or left out to read \
OATHDESK_SECRET. Keep secrets off the command line on shared machines.

Times are half-open: a code is current from valid_from up to, not including, valid_until.

Examples:
  oathdesk code JBSWY3DPEHPK3PXP
  oathdesk code --past 2 --future 2 @secret.txt
  oathdesk code --valid-for 3m --verifier entra -      (a code to send by e-mail)
  oathdesk code --hex --algorithm sha256 --digits 8 --at 2009-02-13T23:31:30Z -
  oathdesk code --steam @steam-secret.txt          (a Steam Guard code, e.g. from an Aegis backup)

A Steam Guard URI (otpauth://steam/..., or otpauth://totp/...&encoder=steam) gives Steam Guard \
codes without --steam.")]
pub struct CodeArgs {
    /// The secret (see below); OATHDESK_SECRET when left out.
    #[arg(value_name = "SECRET")]
    pub secret: Option<String>,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Compute at this moment instead of now (Unix seconds or RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Also list this many earlier codes (at most 100000).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub past: u64,
    /// Also list this many later codes (at most 100000).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub future: u64,
    /// Print the earliest code that the verifier keeps accepting for at least
    /// this long (90, 90s, 5m, 1h 30m), and until when.
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["past", "future"])]
    pub valid_for: Option<String>,
    /// The server's tolerance: entra (±1 min for 30 s tokens, ±2 min for 60 s),
    /// exact, steps=K or seconds=S. Adds acceptance times to the output.
    #[arg(long, value_name = "PROFILE")]
    pub verifier: Option<Verifier>,
    /// Steam Guard codes: five characters of 23456789BCDFGHJKMNPQRTVWXY (SHA-1, 30 s); implied
    /// by an otpauth://steam/ URI.
    #[arg(long, conflicts_with_all = ["valid_for", "verifier"])]
    pub steam: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl CodeArgs {
    /// `oathdesk code [SECRET]` with every option at its default.
    pub fn of_secret(secret: Option<String>) -> Self {
        CodeArgs {
            secret,
            encoding: EncodingArgs::default(),
            params: ParamArgs::default(),
            at: None,
            past: 0,
            future: 0,
            valid_for: None,
            verifier: None,
            steam: false,
            json: false,
        }
    }
}

#[derive(Serialize)]
struct CodeJson {
    offset: i64,
    code: String,
    counter: u64,
    valid_from: Option<u64>,
    valid_until: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_until: Option<u64>,
}

#[derive(Serialize)]
struct OutputJson {
    r#type: &'static str,
    algorithm: String,
    digits: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t0: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verifier: Option<String>,
    codes: Vec<CodeJson>,
}

/// One row to print.
struct Row {
    offset: i64,
    counter: u64,
    code: String,
    current: Option<Interval>,
    accepted: Option<Interval>,
}

/// The most codes `--past` or `--future` may list, each: about 35 days of
/// 30-second steps. Every code is a row in memory before it is printed, so
/// an unbounded count would run the machine out of memory instead of failing
/// (`--future 18446744073709551615`). Searching further back is `oathdesk
/// forensic`'s job.
pub const MAX_AROUND: u64 = 100_000;

pub fn run(args: CodeArgs) -> Result<()> {
    for (flag, count) in [("--past", args.past), ("--future", args.future)] {
        if count > MAX_AROUND {
            bail!(
                "{flag} {count}: at most {MAX_AROUND} codes either side of now \
                 (about 35 days of 30-second steps); 'oathdesk forensic' searches further"
            );
        }
    }
    let text = input::secret_text(args.secret.as_deref())?;
    // Steam Guard URIs: `otpauth://steam/…` (Aegis, andOTP) or a TOTP URI
    // with `encoder=steam` (KeePassXC).
    let lower = text.to_ascii_lowercase();
    let steam_scheme = lower.starts_with("otpauth://steam/");
    let steam_uri =
        steam_scheme || (lower.starts_with("otpauth://") && lower.contains("encoder=steam"));
    let text = match text.get("otpauth://steam/".len()..) {
        Some(rest) if steam_scheme => zeroize::Zeroizing::new(format!("otpauth://totp/{rest}")),
        _ => text,
    };
    let mut credential = input::credential_from_text(&text, &args.encoding)?;
    input::apply_params(&mut credential, &args.params)?;
    if args.steam || steam_uri {
        if args.valid_for.is_some() || args.verifier.is_some() {
            bail!("--valid-for and --verifier do not apply to Steam Guard codes");
        }
        return run_steam(&args, &credential);
    }
    match credential.kind {
        Kind::Hotp { counter } => {
            if args.at.is_some() || args.valid_for.is_some() || args.verifier.is_some() {
                bail!("--at, --valid-for and --verifier apply to TOTP; this is an HOTP credential");
            }
            let hotp = credential.hotp();
            let first = counter.saturating_sub(args.past);
            let last = counter.saturating_add(args.future);
            let rows = (first..=last)
                .map(|c| Row {
                    offset: c.wrapping_sub(counter) as i64,
                    counter: c,
                    code: hotp.generate(c).to_string(),
                    current: None,
                    accepted: None,
                })
                .collect();
            print(&args, &credential, None, rows)
        }
        Kind::Totp { step } => {
            let totp = credential
                .totp_generator()
                .expect("a TOTP credential has a TOTP generator");
            let time = match &args.at {
                Some(text) => input::parse_time(text)?,
                None => input::now(),
            };
            let window = match args.verifier {
                Some(verifier) => Some(verifier.window(step.period()).map_err(|e| anyhow!("{e}"))?),
                None => None,
            };
            let rows = if let Some(text) = &args.valid_for {
                let seconds = input::parse_duration(text)?;
                let window = window.unwrap_or(Window::EXACT);
                let lasting = totp
                    .code_valid_for(time, seconds, window)
                    .map_err(|e| match args.verifier {
                        None => anyhow!("{e}; the default verifier is exact, try --verifier entra"),
                        Some(_) => anyhow!("{e}"),
                    })?;
                vec![row(&lasting.code, Some(lasting.accepted))]
            } else {
                totp.codes_around(time, args.past, args.future)?
                    .iter()
                    .map(|timed| {
                        let accepted = window.map(|w| totp.accepted_interval(timed.counter, w));
                        row(timed, accepted)
                    })
                    .collect()
            };
            print(&args, &credential, Some(time), rows)
        }
    }
}

/// Steam Guard codes: SHA-1, 30 s steps from 0, five letters.
fn run_steam(args: &CodeArgs, credential: &Credential) -> Result<()> {
    match credential.kind {
        Kind::Totp { step } if step == TimeStep::DEFAULT => {}
        Kind::Totp { step } => bail!(
            "Steam Guard codes use 30-second steps from T0 = 0, not {} s from {}",
            step.period(),
            step.t0()
        ),
        Kind::Hotp { .. } => bail!("Steam Guard codes are time-based; this is an HOTP credential"),
    }
    if credential.algorithm != Algorithm::Sha1 {
        bail!("Steam Guard codes use SHA-1, not {}", credential.algorithm);
    }
    let time = match &args.at {
        Some(text) => input::parse_time(text)?,
        None => input::now(),
    };
    let step = TimeStep::DEFAULT;
    let counter = step.counter_at(time)?;
    let steam = Steam::new(&credential.secret);
    let first = counter.saturating_sub(args.past);
    let last = counter.saturating_add(args.future);
    let rows = (first..=last)
        .map(|c| Row {
            offset: c.wrapping_sub(counter) as i64,
            counter: c,
            code: steam.generate(c).to_string(),
            current: Some(step.interval(c)),
            accepted: None,
        })
        .collect();
    print(args, credential, Some(time), rows)
}

fn row(timed: &TimedCode, accepted: Option<Interval>) -> Row {
    Row {
        offset: timed.offset,
        counter: timed.counter,
        code: timed.code.to_string(),
        current: Some(timed.current),
        accepted,
    }
}

fn print(
    args: &CodeArgs,
    credential: &Credential,
    time: Option<u64>,
    rows: Vec<Row>,
) -> Result<()> {
    if args.json {
        let (period, t0) = match credential.kind {
            Kind::Totp { step } => (Some(step.period()), Some(step.t0())),
            Kind::Hotp { .. } => (None, None),
        };
        let output = OutputJson {
            r#type: if args.steam {
                "steam"
            } else {
                credential.kind.name()
            },
            algorithm: credential.algorithm.to_string(),
            digits: if args.steam {
                STEAM_CODE_LEN as u8
            } else {
                credential.digits.get()
            },
            period,
            t0,
            time,
            verifier: args.verifier.map(|v| v.to_string()),
            codes: rows
                .into_iter()
                .map(|r| CodeJson {
                    offset: r.offset,
                    code: r.code,
                    counter: r.counter,
                    valid_from: r.current.map(|i| i.from),
                    valid_until: r.current.map(|i| i.until),
                    accepted_from: r.accepted.map(|i| i.from),
                    accepted_until: r.accepted.map(|i| i.until),
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&output)?);
        return Ok(());
    }
    // One code and nothing asked about it: just the code, like oathtool.
    if rows.len() == 1 && args.verifier.is_none() && args.valid_for.is_none() {
        println!("{}", rows[0].code);
        return Ok(());
    }
    if args.valid_for.is_some() {
        let r = &rows[0];
        let accepted = r.accepted.expect("--valid-for rows carry acceptance");
        let now = time.unwrap_or_default();
        println!(
            "{}  accepted until {} ({} from now, verifier {})",
            r.code,
            input::rfc3339(accepted.until),
            human_seconds(accepted.until.saturating_sub(now)),
            args.verifier.unwrap_or(oathdesk_otp::Verifier::Exact)
        );
        return Ok(());
    }
    let width = if args.steam {
        STEAM_CODE_LEN
    } else {
        credential.digits.get() as usize
    };
    let timed = rows.first().is_some_and(|r| r.current.is_some());
    let mut header = format!("{:>6}  {:<width$}  {:>12}", "OFFSET", "CODE", "COUNTER");
    if timed {
        header.push_str(&format!("  {:<44}", "CURRENT (UTC)"));
    }
    if args.verifier.is_some() {
        header.push_str("  ACCEPTED (UTC)");
    }
    println!("{}", header.trim_end());
    for r in rows {
        let offset = match r.offset {
            0 => "0".to_owned(),
            n => format!("{n:+}"),
        };
        let mut line = format!("{offset:>6}  {:<width$}  {:>12}", r.code, r.counter);
        if let Some(current) = r.current {
            line.push_str(&format!("  {:<44}", span(current)));
        }
        if let Some(accepted) = r.accepted {
            line.push_str(&format!("  {}", span(accepted)));
        }
        println!("{}", line.trim_end());
    }
    Ok(())
}

fn span(interval: Interval) -> String {
    format!(
        "{} .. {}",
        input::rfc3339(interval.from),
        input::rfc3339(interval.until)
    )
}

fn human_seconds(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}
