//! Named verifier profiles: how much clock drift a server tolerates.
//!
//! A code is *current* for one period, but servers accept it for longer to
//! allow for drifting token clocks. Answering "until when will the user's
//! server accept this code?" needs the server's tolerance, so common servers
//! get a name here.

use std::fmt;
use std::str::FromStr;

use crate::engine::Window;

/// A verifier's tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verifier {
    /// Only the current code.
    Exact,
    /// ±K steps.
    Steps(u64),
    /// ±S seconds, whole steps only (a verifier cannot accept half a step).
    Seconds(u64),
    /// Microsoft Entra ID sign-in: ±1 minute for 30 s tokens, ±2 minutes for
    /// 60 s tokens (Microsoft's "Time drift correction" table). Entra takes no
    /// other period.
    Entra,
}

/// A profile that cannot apply to a credential, or a misspelt one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    #[error("unknown verifier: use entra, exact, steps=K or seconds=S")]
    Unknown,
    #[error("Entra accepts only 30 s and 60 s tokens, not {period} s")]
    EntraPeriod { period: u64 },
}

impl Verifier {
    /// The window of steps this verifier searches for a credential whose
    /// period is `period` seconds.
    pub fn window(self, period: u64) -> Result<Window, VerifierError> {
        let steps = match self {
            Verifier::Exact => 0,
            Verifier::Steps(steps) => steps,
            Verifier::Seconds(seconds) => seconds / period.max(1),
            Verifier::Entra => match period {
                30 => 60 / 30,
                60 => 120 / 60,
                _ => return Err(VerifierError::EntraPeriod { period }),
            },
        };
        Ok(Window::symmetric(steps))
    }
}

impl FromStr for Verifier {
    type Err = VerifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let number = |text: &str| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| VerifierError::Unknown)
        };
        if let Some(k) = lower.strip_prefix("steps=") {
            return Ok(Verifier::Steps(number(k)?));
        }
        if let Some(s) = lower.strip_prefix("seconds=") {
            return Ok(Verifier::Seconds(number(s)?));
        }
        match lower.as_str() {
            "exact" => Ok(Verifier::Exact),
            "entra" | "azure" | "microsoft" => Ok(Verifier::Entra),
            _ => Err(VerifierError::Unknown),
        }
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verifier::Exact => f.write_str("exact"),
            Verifier::Steps(k) => write!(f, "steps={k}"),
            Verifier::Seconds(s) => write!(f, "seconds={s}"),
            Verifier::Entra => f.write_str("entra"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_is_one_minute_for_30s_and_two_for_60s() {
        assert_eq!(Verifier::Entra.window(30), Ok(Window::symmetric(2)));
        assert_eq!(Verifier::Entra.window(60), Ok(Window::symmetric(2)));
        assert_eq!(
            Verifier::Entra.window(45),
            Err(VerifierError::EntraPeriod { period: 45 })
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("entra".parse(), Ok(Verifier::Entra));
        assert_eq!("Exact".parse(), Ok(Verifier::Exact));
        assert_eq!("steps=3".parse(), Ok(Verifier::Steps(3)));
        assert_eq!("seconds=90".parse(), Ok(Verifier::Seconds(90)));
        assert_eq!("steps=x".parse::<Verifier>(), Err(VerifierError::Unknown));
        assert_eq!("okta".parse::<Verifier>(), Err(VerifierError::Unknown));
        assert_eq!(Verifier::Seconds(90).window(30), Ok(Window::symmetric(3)));
        assert_eq!(Verifier::Steps(4).to_string(), "steps=4");
    }
}
