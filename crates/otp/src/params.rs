//! Credential parameters: hash algorithm, number of digits, time step.

use std::fmt;
use std::str::FromStr;

/// The HMAC hash function of a credential.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA-1: RFC 4226's function and what nearly every token uses.
    #[default]
    Sha1,
    /// HMAC-SHA-256 (RFC 6238; Entra via Graph; Molto-2).
    Sha256,
    /// HMAC-SHA-512 (RFC 6238; software authenticators only).
    Sha512,
}

impl Algorithm {
    /// All algorithms, in order of their RFC 6238 appearance.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    /// The name used in otpauth URIs: `SHA1`, `SHA256`, `SHA512`.
    pub fn uri_name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// The hash output size, which is also the natural seed size (RFC 6238
    /// Appendix A keys: 20, 32 and 64 bytes).
    pub fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        })
    }
}

/// An algorithm name that is not SHA-1, SHA-256 or SHA-512.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm: use sha1, sha256 or sha512")]
pub struct UnknownAlgorithm;

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    /// Accepts the spellings seen in the wild: `sha1`, `SHA-1`, `HMAC-SHA1`,
    /// `hmacsha256` (Graph), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        match folded.strip_prefix("hmac").unwrap_or(&folded) {
            "sha1" => Ok(Algorithm::Sha1),
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            _ => Err(UnknownAlgorithm),
        }
    }
}

/// The number of digits of a code, 4 to 10.
///
/// Ten digits is the whole 31-bit truncated value, zero-padded, as Token2
/// devices show it (2^31 - 1 has ten digits, so no modulus applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digits(u8);

/// A digit count outside 4..=10.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("codes have 4 to 10 digits, not {0}")]
pub struct BadDigits(pub u64);

impl Digits {
    /// Six digits, the default everywhere.
    pub const SIX: Digits = Digits(6);
    /// Eight digits, as in the RFC 6238 vectors.
    pub const EIGHT: Digits = Digits(8);
    /// The smallest supported count.
    pub const MIN: u8 = 4;
    /// The largest supported count.
    pub const MAX: u8 = 10;

    /// Checks the range.
    pub fn new(digits: u64) -> Result<Digits, BadDigits> {
        if (u64::from(Self::MIN)..=u64::from(Self::MAX)).contains(&digits) {
            Ok(Digits(digits as u8))
        } else {
            Err(BadDigits(digits))
        }
    }

    /// The count as a number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// 10^digits, or `None` for ten digits (the value is never reduced).
    pub(crate) fn modulus(self) -> Option<u32> {
        (self.0 < 10).then(|| 10u32.pow(u32::from(self.0)))
    }
}

impl Default for Digits {
    fn default() -> Digits {
        Digits::SIX
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The time step of a TOTP credential: period X and start time T0
/// (RFC 6238 §4.1), both in whole seconds of Unix time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeStep {
    period: u64,
    t0: u64,
}

/// A time step that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeStepError {
    #[error("the period must be at least 1 second")]
    ZeroPeriod,
    #[error("time {time} is before the start time T0 = {t0}; no code exists then")]
    BeforeStart { time: u64, t0: u64 },
}

/// A half-open interval of Unix seconds, `[from, until)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interval {
    /// The first second inside the interval.
    pub from: u64,
    /// The first second after it.
    pub until: u64,
}

impl Interval {
    /// Length in seconds.
    pub fn len(self) -> u64 {
        self.until.saturating_sub(self.from)
    }

    /// True when the interval holds no second.
    pub fn is_empty(self) -> bool {
        self.until <= self.from
    }

    /// Whether `time` is inside.
    pub fn contains(self, time: u64) -> bool {
        self.from <= time && time < self.until
    }
}

impl TimeStep {
    /// The RFC 6238 default: 30 s from the epoch.
    pub const DEFAULT: TimeStep = TimeStep { period: 30, t0: 0 };

    /// A step of `period` seconds counted from `t0`.
    pub fn new(period: u64, t0: u64) -> Result<TimeStep, TimeStepError> {
        if period == 0 {
            return Err(TimeStepError::ZeroPeriod);
        }
        Ok(TimeStep { period, t0 })
    }

    /// The period X in seconds.
    pub fn period(self) -> u64 {
        self.period
    }

    /// The start time T0.
    pub fn t0(self) -> u64 {
        self.t0
    }

    /// The counter T = floor((time - T0) / X) in force at `time`.
    pub fn counter_at(self, time: u64) -> Result<u64, TimeStepError> {
        time.checked_sub(self.t0)
            .map(|elapsed| elapsed / self.period)
            .ok_or(TimeStepError::BeforeStart { time, t0: self.t0 })
    }

    /// The wall-clock interval in which `counter` is the current counter.
    pub fn interval(self, counter: u64) -> Interval {
        self.span(counter, counter)
    }

    /// The interval from the start of counter `first` to the end of `last`.
    pub(crate) fn span(self, first: u64, last: u64) -> Interval {
        let start = |c: u64| c.saturating_mul(self.period).saturating_add(self.t0);
        Interval {
            from: start(first),
            until: start(last.saturating_add(1)),
        }
    }
}

impl Default for TimeStep {
    fn default() -> TimeStep {
        TimeStep::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        for (text, expected) in [
            ("sha1", Algorithm::Sha1),
            ("SHA-1", Algorithm::Sha1),
            ("HMAC-SHA1", Algorithm::Sha1),
            ("hmacsha256", Algorithm::Sha256),
            ("Sha512", Algorithm::Sha512),
        ] {
            assert_eq!(text.parse::<Algorithm>(), Ok(expected), "{text}");
        }
        assert_eq!("md5".parse::<Algorithm>(), Err(UnknownAlgorithm));
        assert_eq!(Algorithm::Sha256.to_string(), "sha256");
        assert_eq!(Algorithm::Sha512.uri_name(), "SHA512");
    }

    #[test]
    fn digits_range() {
        assert_eq!(Digits::new(3), Err(BadDigits(3)));
        assert_eq!(Digits::new(11), Err(BadDigits(11)));
        assert_eq!(Digits::new(4).unwrap().modulus(), Some(10_000));
        assert_eq!(Digits::new(10).unwrap().modulus(), None);
    }

    #[test]
    fn time_step_counters_and_intervals() {
        let step = TimeStep::new(30, 0).unwrap();
        assert_eq!(step.counter_at(59), Ok(1));
        assert_eq!(step.counter_at(20_000_000_000), Ok(0x27BC86AA));
        assert_eq!(
            step.interval(1),
            Interval {
                from: 30,
                until: 60
            }
        );
        let shifted = TimeStep::new(60, 100).unwrap();
        assert_eq!(shifted.counter_at(159), Ok(0));
        assert_eq!(shifted.counter_at(160), Ok(1));
        assert_eq!(
            shifted.counter_at(99),
            Err(TimeStepError::BeforeStart { time: 99, t0: 100 })
        );
        assert_eq!(TimeStep::new(0, 0), Err(TimeStepError::ZeroPeriod));
        // No overflow at the end of time.
        assert_eq!(step.interval(u64::MAX).until, u64::MAX);
    }
}
