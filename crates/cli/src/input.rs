//! Reading what the user gives: secrets (argument, `-`, `@FILE`, env var),
//! credential parameters, times and durations.

use std::io::BufRead;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use oathdesk_otp::{
    Algorithm, Credential, Digits, Encoding, Kind, Secret, SecretError, TimeStep, migration, uri,
};
use zeroize::Zeroizing;

/// The environment variable a secret may come from.
pub const SECRET_ENV: &str = "OATHDESK_SECRET";

/// How the secret text is encoded (Base32 unless told otherwise).
#[derive(Args, Debug, Clone, Default)]
pub struct EncodingArgs {
    /// The secret is hex (as oathtool and PSKC tools write it).
    #[arg(long, group = "encoding")]
    pub hex: bool,
    /// The secret is Base64.
    #[arg(long, group = "encoding")]
    pub base64: bool,
    /// The secret is Base32 even though it looks like hex.
    #[arg(long, group = "encoding")]
    pub base32: bool,
}

impl EncodingArgs {
    /// The encoding named by a flag, if any.
    pub fn explicit(&self) -> Option<Encoding> {
        if self.hex {
            Some(Encoding::Hex)
        } else if self.base64 {
            Some(Encoding::Base64)
        } else if self.base32 {
            Some(Encoding::Base32)
        } else {
            None
        }
    }
}

/// Parameters that override the defaults (or what an otpauth URI says).
#[derive(Args, Debug, Clone, Default)]
pub struct ParamArgs {
    /// HMAC hash: sha1, sha256 or sha512 [default: sha1, or the URI's].
    #[arg(long, value_name = "ALG")]
    pub algorithm: Option<Algorithm>,
    /// Code length, 4 to 10 [default: 6, or the URI's].
    #[arg(long, value_name = "N")]
    pub digits: Option<u64>,
    /// TOTP time step in seconds [default: 30, or the URI's].
    #[arg(long, value_name = "S")]
    pub period: Option<u64>,
    /// TOTP start time T0 (Unix seconds or RFC 3339) [default: 0].
    #[arg(long, value_name = "TIME")]
    pub t0: Option<String>,
    /// HOTP mode with this counter (event tokens).
    #[arg(long, value_name = "N")]
    pub counter: Option<u64>,
}

/// Reads the secret text from an argument, `-` (one line of stdin),
/// `@FILE` (its first line) or the environment.
pub fn secret_text(argument: Option<&str>) -> Result<Zeroizing<String>> {
    let text = match argument {
        Some("-") => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the secret from standard input")?;
            if line.trim().is_empty() {
                bail!("standard input held no secret (expected one line)");
            }
            line
        }
        Some(arg) if arg.starts_with('@') && arg.len() > 1 => {
            let path = &arg[1..];
            let content = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the secret file {path}"))?,
            );
            let first = content.lines().find(|l| !l.trim().is_empty());
            match first {
                Some(line) => Zeroizing::new(line.to_owned()),
                None => bail!("the secret file {path} is empty"),
            }
        }
        Some(arg) => Zeroizing::new(arg.to_owned()),
        None => match std::env::var(SECRET_ENV) {
            Ok(value) if !value.trim().is_empty() => Zeroizing::new(value),
            _ => bail!(
                "no secret given: pass it as an argument, '-' to read it from standard input, \
                 @FILE to read it from a file, or set {SECRET_ENV}"
            ),
        },
    };
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// Turns secret text into a credential: an otpauth URI, a one-entry Google
/// Authenticator export, or a bare secret in the chosen encoding.
pub fn credential_from_text(text: &str, encoding: &EncodingArgs) -> Result<Credential> {
    let lower_head: String = text
        .chars()
        .take(21)
        .collect::<String>()
        .to_ascii_lowercase();
    if lower_head.starts_with("otpauth://") {
        return uri::parse(text).map_err(|e| anyhow!("{e}"));
    }
    if lower_head.starts_with("otpauth-migration://") {
        let batch = migration::parse(text).map_err(|e| anyhow!("{e}"))?;
        let count = batch.credentials.len();
        return match <[Credential; 1]>::try_from(batch.credentials) {
            Ok([only]) => Ok(only),
            Err(_) => bail!(
                "this Google Authenticator export holds {count} accounts; \
                 list them with 'oathdesk uri show LINK --reveal' and pick one"
            ),
        };
    }
    Ok(Credential::totp(decode_secret(text, encoding)?))
}

/// Decodes a bare secret in the encoding the flags name, or as Base32 with
/// hex-looking text refused.
pub fn decode_secret(text: &str, encoding: &EncodingArgs) -> Result<Secret> {
    match encoding.explicit() {
        Some(enc) => Secret::decode(text, enc),
        None => Secret::from_unspecified(text),
    }
    .map_err(|e| secret_error(e, encoding.explicit()))
}

/// Adds the command-line fix to a secret error.
pub fn secret_error(error: SecretError, encoding: Option<Encoding>) -> anyhow::Error {
    let hint = match (&error, encoding) {
        (SecretError::LooksLikeHex, _) => ": pass --hex, or --base32 if it really is Base32",
        (
            SecretError::Base32Character {
                class: oathdesk_otp::CharClass::DigitNotInBase32,
                ..
            },
            None,
        ) => "; pass --hex if the secret is hex",
        _ => "",
    };
    anyhow!("{error}{hint}")
}

/// Reads the secret and applies parameter overrides.
pub fn credential(
    argument: Option<&str>,
    encoding: &EncodingArgs,
    params: &ParamArgs,
) -> Result<Credential> {
    let text = secret_text(argument)?;
    let mut credential = credential_from_text(&text, encoding)?;
    apply_params(&mut credential, params)?;
    Ok(credential)
}

/// Applies `--algorithm`, `--digits`, `--period`, `--t0`, `--counter`.
pub fn apply_params(credential: &mut Credential, params: &ParamArgs) -> Result<()> {
    if let Some(algorithm) = params.algorithm {
        credential.algorithm = algorithm;
    }
    if let Some(digits) = params.digits {
        credential.digits = Digits::new(digits).map_err(|e| anyhow!("--digits: {e}"))?;
    }
    if let Some(counter) = params.counter {
        if params.period.is_some() || params.t0.is_some() {
            bail!("--counter selects HOTP, which has no --period or --t0; drop one of them");
        }
        credential.kind = Kind::Hotp { counter };
        return Ok(());
    }
    if params.period.is_some() || params.t0.is_some() {
        let current = match credential.kind {
            Kind::Totp { step } => step,
            Kind::Hotp { .. } => bail!(
                "the URI is for an HOTP (counter) credential; --period and --t0 apply to TOTP only"
            ),
        };
        let period = params.period.unwrap_or(current.period());
        let t0 = match &params.t0 {
            Some(text) => parse_time(text).context("--t0")?,
            None => current.t0(),
        };
        let step = TimeStep::new(period, t0).map_err(|e| anyhow!("--period: {e}"))?;
        credential.kind = Kind::Totp { step };
    }
    Ok(())
}

/// A moment: Unix seconds, `now`, or an RFC 3339 timestamp.
pub fn parse_time(text: &str) -> Result<u64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now());
    }
    if let Some(digits) = text.strip_prefix('@').or(Some(text))
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return digits
            .parse::<u64>()
            .map_err(|_| anyhow!("time '{text}' is too large"));
    }
    let timestamp: jiff::Timestamp = text.parse().map_err(|_| {
        anyhow!(
            "cannot read the time '{text}': give Unix seconds (1700000000) or RFC 3339 \
             (2026-11-22T10:00:00Z, 2026-11-22T11:00:00+01:00)"
        )
    })?;
    u64::try_from(timestamp.as_second())
        .map_err(|_| anyhow!("time '{text}' is before 1970; TOTP counts from the Unix epoch"))
}

/// A duration: plain seconds (`90`), or `90s`, `5m`, `1h 30m`, `PT5M`.
pub fn parse_duration(text: &str) -> Result<u64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map_err(|_| anyhow!("duration '{text}' is too large"));
    }
    let duration: jiff::SignedDuration = text.parse().map_err(|_| {
        anyhow!("cannot read the duration '{text}': use seconds (90) or units (90s, 5m, 1h 30m)")
    })?;
    u64::try_from(duration.as_secs()).map_err(|_| anyhow!("the duration '{text}' is negative"))
}

/// Text from a file, a QR code or a URI made safe for a terminal: control
/// characters (which could move the cursor or rewrite the screen) are shown
/// as escapes.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        std::borrow::Cow::Owned(
            text.chars()
                .flat_map(char::escape_default)
                .collect::<String>(),
        )
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Writes a file that holds secrets: created readable and writable by its
/// owner only, and narrowed to that if it already existed.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
    }
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The current Unix time in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A Unix time as RFC 3339 UTC.
pub fn rfc3339(time: u64) -> String {
    i64::try_from(time)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| format!("@{time}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("1234567890").unwrap(), 1_234_567_890);
        assert_eq!(parse_time("@59").unwrap(), 59);
        assert_eq!(parse_time("2009-02-13T23:31:30Z").unwrap(), 1_234_567_890);
        assert_eq!(
            parse_time("2009-02-14T00:31:30+01:00").unwrap(),
            1_234_567_890
        );
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("1h 30m").unwrap(), 5400);
        assert_eq!(parse_duration("PT2M").unwrap(), 120);
        assert!(parse_duration("soon").is_err());
        assert_eq!(rfc3339(1_234_567_890), "2009-02-13T23:31:30Z");
        assert_eq!(printable("alice"), "alice");
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }
}
