//! What a token can be programmed with, and why the rest is refused.
//!
//! The tokens take a small subset of what OATH allows (spec §3.7, §4.5, §6):
//! HMAC-SHA1 or HMAC-SHA256, a 30 or 60 second step counted from the epoch,
//! and 4/6/8/10 digits on the Molto-2 (always 6 on single-profile tokens).
//! [`ProfileConfig::check`] turns an OATH credential's parameters into the
//! wire values or says exactly what the token cannot do.

use std::fmt;
use std::str::FromStr;

use oathdesk_otp::{Algorithm, Credential, Kind};
use serde::{Deserialize, Serialize};

/// The two families of Token2 programmable TOTP tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Molto-2 / Molto-2 v2: USB, 50 or 100 profiles, changeable customer key.
    Molto2,
    /// The NFC single-profile tokens (OTPC-P2-i, miniOTP-3-i, C302-i…):
    /// one profile, fixed public key.
    SingleProfile,
}

impl Family {
    /// The name used in commands and files.
    pub fn name(self) -> &'static str {
        match self {
            Family::Molto2 => "molto2",
            Family::SingleProfile => "single-profile",
        }
    }

    /// How people call it.
    pub fn product(self) -> &'static str {
        match self {
            Family::Molto2 => "Molto-2",
            Family::SingleProfile => "single-profile token",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Family, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "molto2" | "molto-2" | "multi-profile" | "multi" => Ok(Family::Molto2),
            "single-profile" | "single" | "nfc" => Ok(Family::SingleProfile),
            _ => Err(format!(
                "unknown device family '{s}': use molto2 or single-profile"
            )),
        }
    }
}

/// How long the display stays on after a button press (TLV tag `1F`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DisplayTimeout {
    Secs15,
    #[default]
    Secs30,
    Secs60,
    Secs120,
}

impl DisplayTimeout {
    /// The wire byte: 0 = 15 s, 1 = 30 s, 2 = 60 s, 3 = 120 s.
    pub fn wire(self) -> u8 {
        self as u8
    }

    /// From the wire byte.
    pub fn from_wire(byte: u8) -> Option<DisplayTimeout> {
        [Self::Secs15, Self::Secs30, Self::Secs60, Self::Secs120]
            .get(usize::from(byte))
            .copied()
    }

    /// Seconds.
    pub fn seconds(self) -> u32 {
        [15, 30, 60, 120][self as usize]
    }

    /// From seconds (15, 30, 60 or 120), as the vault records it.
    pub fn from_seconds(seconds: u64) -> Option<DisplayTimeout> {
        [Self::Secs15, Self::Secs30, Self::Secs60, Self::Secs120]
            .into_iter()
            .find(|t| u64::from(t.seconds()) == seconds)
    }
}

impl FromStr for DisplayTimeout {
    type Err = String;
    /// `15`, `30s`, `60`, `120s`.
    fn from_str(s: &str) -> Result<DisplayTimeout, String> {
        match s.trim().trim_end_matches('s') {
            "15" => Ok(DisplayTimeout::Secs15),
            "30" => Ok(DisplayTimeout::Secs30),
            "60" => Ok(DisplayTimeout::Secs60),
            "120" => Ok(DisplayTimeout::Secs120),
            _ => Err(format!(
                "display timeout '{s}': the tokens offer 15, 30, 60 or 120 seconds"
            )),
        }
    }
}

impl fmt::Display for DisplayTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.seconds())
    }
}

/// The HMAC of a profile (TLV tag `0A`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hmac {
    Sha1,
    Sha256,
}

impl Hmac {
    /// 1 = SHA1, 2 = SHA256.
    pub fn wire(self) -> u8 {
        match self {
            Hmac::Sha1 => 1,
            Hmac::Sha256 => 2,
        }
    }

    pub fn from_wire(byte: u8) -> Option<Hmac> {
        match byte {
            1 => Some(Hmac::Sha1),
            2 => Some(Hmac::Sha256),
            _ => None,
        }
    }

    /// The OTP engine's algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Hmac::Sha1 => Algorithm::Sha1,
            Hmac::Sha256 => Algorithm::Sha256,
        }
    }
}

/// The time step of a profile (TLV tag `0D`): the seconds form only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Period {
    Secs30,
    Secs60,
}

impl Period {
    /// `1E` or `3C`.
    pub fn wire(self) -> u8 {
        self.seconds() as u8
    }

    pub fn from_wire(byte: u8) -> Option<Period> {
        match byte {
            0x1E => Some(Period::Secs30),
            0x3C => Some(Period::Secs60),
            _ => None,
        }
    }

    pub fn seconds(self) -> u64 {
        match self {
            Period::Secs30 => 30,
            Period::Secs60 => 60,
        }
    }
}

/// A profile's TOTP configuration, in values the token accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProfileConfig {
    pub hmac: Hmac,
    /// 4, 6, 8 or 10 on the Molto-2; 6 on single-profile tokens.
    pub digits: u8,
    pub period: Period,
    pub display_timeout: DisplayTimeout,
}

/// A parameter a token cannot take, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unsupported {
    /// The parameter (`algorithm`, `digits`, `period`, `t0`, `type`, `seed`, `title`).
    pub what: &'static str,
    pub reason: String,
}

fn unsupported(what: &'static str, reason: String) -> Unsupported {
    Unsupported { what, reason }
}

impl ProfileConfig {
    /// Checks an OATH credential against what `family` can be programmed
    /// with. Returns the configuration, or the first parameter the token
    /// cannot take with the reason and what to do instead.
    pub fn check(
        family: Family,
        credential: &Credential,
        display_timeout: DisplayTimeout,
    ) -> Result<ProfileConfig, Unsupported> {
        let product = family.product();
        let step = match credential.kind {
            Kind::Totp { step } => step,
            Kind::Hotp { .. } => {
                return Err(unsupported(
                    "type",
                    format!(
                        "the {product} is a time-based (TOTP) token: an HOTP (counter) credential cannot be programmed"
                    ),
                ));
            }
        };
        let hmac = match credential.algorithm {
            Algorithm::Sha1 => Hmac::Sha1,
            Algorithm::Sha256 => Hmac::Sha256,
            Algorithm::Sha512 => {
                return Err(unsupported(
                    "algorithm",
                    format!(
                        "the {product} computes HMAC-SHA1 or HMAC-SHA256 only: SHA-512 cannot be programmed \
                         (use --algorithm sha1 or sha256 with a new seed, or keep this account in an authenticator app)"
                    ),
                ));
            }
        };
        let digits = credential.digits.get();
        match family {
            Family::Molto2 if ![4, 6, 8, 10].contains(&digits) => {
                return Err(unsupported(
                    "digits",
                    format!(
                        "the Molto-2 shows 4, 6, 8 or 10 digits: {digits} digits cannot be programmed"
                    ),
                ));
            }
            Family::SingleProfile if digits != 6 => {
                return Err(unsupported(
                    "digits",
                    format!(
                        "single-profile tokens always show 6 digits: {digits} digits cannot be programmed"
                    ),
                ));
            }
            _ => {}
        }
        let period = match step.period() {
            30 => Period::Secs30,
            60 => Period::Secs60,
            other => {
                return Err(unsupported(
                    "period",
                    format!(
                        "the {product} steps every 30 or 60 seconds: a {other} s period cannot be programmed"
                    ),
                ));
            }
        };
        if step.t0() != 0 {
            return Err(unsupported(
                "t0",
                format!(
                    "the {product} counts time steps from the Unix epoch: T0 = {} cannot be programmed",
                    step.t0()
                ),
            ));
        }
        check_seed(credential.secret.as_bytes())?;
        Ok(ProfileConfig {
            hmac,
            digits,
            period,
            display_timeout,
        })
    }
}

/// The shortest seed oathdesk writes: Token2's own NFC Burner refuses
/// secrets under 10 bytes (spec §4.4), and RFC 4226 asks for at least 16.
pub const MIN_SEED_LEN: usize = 10;

/// Seeds are 10 to 63 bytes and not all zero (spec §2.5, §3.5, §4.4): the
/// tokens hold at most 63; Token2's tools treat an all-zero seed as "delete
/// this profile", so burning one as a secret would leave a token whose
/// vendor software thinks it empty.
pub fn check_seed(seed: &[u8]) -> Result<(), Unsupported> {
    let len = seed.len();
    match len {
        0 => Err(unsupported("seed", "the seed is empty".into())),
        _ if seed.iter().all(|&b| b == 0) => Err(unsupported(
            "seed",
            "the seed is all zero bytes, which Token2's tools treat as 'delete this profile', not as a \
             secret: generate a real one (--generate)"
                .into(),
        )),
        1..MIN_SEED_LEN => Err(unsupported(
            "seed",
            format!(
                "the seed has {len} byte(s); oathdesk writes at least {MIN_SEED_LEN} (Token2's tools refuse \
                 shorter ones, and RFC 4226 asks for 16 or more): generate a longer one (--generate)"
            ),
        )),
        MIN_SEED_LEN..=63 => Ok(()),
        _ => Err(unsupported(
            "seed",
            format!(
                "the seed has {len} bytes; the tokens hold at most 63 (a SHA-512-sized 64-byte seed does not fit)"
            ),
        )),
    }
}

/// Molto-2 titles are 1 to 12 bytes of UTF-8 (spec §3.6).
pub fn check_title(title: &str) -> Result<(), Unsupported> {
    let len = title.len();
    if len == 0 || len > 12 {
        return Err(unsupported(
            "title",
            format!(
                "a Molto-2 title is 1 to 12 bytes of UTF-8; '{}' has {len}",
                title.escape_default()
            ),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(unsupported(
            "title",
            "a title cannot contain control characters".into(),
        ));
    }
    Ok(())
}

/// Cuts text to at most `max` bytes at a character boundary (for a title
/// made from a user name).
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A host time as the tokens' u32 Unix seconds; the field ends in 2106.
pub fn wire_time(unix: u64) -> Result<u32, Unsupported> {
    u32::try_from(unix).map_err(|_| {
        unsupported(
            "time",
            format!("time {unix} does not fit the tokens' 32-bit clock (it ends in 2106)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oathdesk_otp::{Digits, Secret, TimeStep};

    fn credential(algorithm: Algorithm, digits: u64, period: u64) -> Credential {
        let mut c = Credential::totp(Secret::from_bytes(vec![7; 20]));
        c.algorithm = algorithm;
        c.digits = Digits::new(digits).unwrap();
        c.kind = Kind::Totp {
            step: TimeStep::new(period, 0).unwrap(),
        };
        c
    }

    #[test]
    fn refusals_say_why() {
        let check = |family, c: &Credential| {
            ProfileConfig::check(family, c, DisplayTimeout::Secs30)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            check(Family::Molto2, &credential(Algorithm::Sha512, 6, 30)),
            "the Molto-2 computes HMAC-SHA1 or HMAC-SHA256 only: SHA-512 cannot be programmed \
             (use --algorithm sha1 or sha256 with a new seed, or keep this account in an authenticator app)"
        );
        assert_eq!(
            check(Family::Molto2, &credential(Algorithm::Sha1, 7, 30)),
            "the Molto-2 shows 4, 6, 8 or 10 digits: 7 digits cannot be programmed"
        );
        assert_eq!(
            check(Family::Molto2, &credential(Algorithm::Sha1, 6, 45)),
            "the Molto-2 steps every 30 or 60 seconds: a 45 s period cannot be programmed"
        );
        assert_eq!(
            check(Family::SingleProfile, &credential(Algorithm::Sha1, 8, 30)),
            "single-profile tokens always show 6 digits: 8 digits cannot be programmed"
        );
        let mut hotp = credential(Algorithm::Sha1, 6, 30);
        hotp.kind = Kind::Hotp { counter: 0 };
        assert!(check(Family::Molto2, &hotp).contains("HOTP"));
        let mut long = credential(Algorithm::Sha1, 6, 30);
        long.secret = Secret::from_bytes(vec![1; 64]);
        assert!(check(Family::Molto2, &long).contains("at most 63"));
    }

    /// Issue 15 item 9: Token2's tools read an all-zero seed as "delete",
    /// and refuse seeds under 10 bytes.
    #[test]
    fn zero_and_short_seeds_are_refused_with_the_reason() {
        let check = |seed: Vec<u8>| {
            let mut c = credential(Algorithm::Sha1, 6, 30);
            c.secret = Secret::from_bytes(seed);
            ProfileConfig::check(Family::Molto2, &c, DisplayTimeout::Secs30)
                .err()
                .map(|e| e.to_string())
        };
        let zero = check(vec![0; 20]).unwrap();
        assert!(
            zero.contains("all zero") && zero.contains("delete"),
            "{zero}"
        );
        let short = check(vec![7; 9]).unwrap();
        assert!(
            short.contains("9 byte(s)") && short.contains("at least 10"),
            "{short}"
        );
        assert_eq!(check(vec![7; 10]), None);
        let mut mostly_zero = vec![0; 20];
        mostly_zero[19] = 1;
        assert_eq!(check(mostly_zero), None);
    }

    #[test]
    fn accepted_configurations() {
        let c = ProfileConfig::check(
            Family::Molto2,
            &credential(Algorithm::Sha256, 10, 60),
            DisplayTimeout::Secs120,
        )
        .unwrap();
        assert_eq!(
            (
                c.hmac.wire(),
                c.digits,
                c.period.wire(),
                c.display_timeout.wire()
            ),
            (2, 10, 0x3C, 3)
        );
        assert_eq!("60s".parse::<DisplayTimeout>(), Ok(DisplayTimeout::Secs60));
        assert!("45".parse::<DisplayTimeout>().is_err());
        assert_eq!(truncate_utf8("bérénice.dupont", 3), "bé");
        assert!(check_title("thirteen byte").is_err());
        assert!(check_title("twelve bytes").is_ok());
        assert!(wire_time(1 << 32).is_err());
    }
}
