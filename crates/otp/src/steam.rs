//! Steam Guard codes: TOTP (SHA-1, 30 s steps from T0 = 0) whose code is
//! five characters from Steam's 26-letter alphabet instead of decimal
//! digits. The 31-bit value of RFC 4226's dynamic truncation is written in
//! base 26, least significant character first.
//!
//! ```
//! use oathdesk_otp::{Secret, Steam};
//!
//! let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
//! assert_eq!(Steam::new(&secret).generate_at(59).unwrap().to_string(), "PV9M4");
//! ```

use std::fmt;

use crate::engine::Hotp;
use crate::params::{Algorithm, Digits, TimeStep, TimeStepError};
use crate::secret::Secret;

/// The characters of a Steam Guard code.
pub const STEAM_ALPHABET: &[u8; 26] = b"23456789BCDFGHJKMNPQRTVWXY";

/// Characters in a Steam Guard code.
pub const STEAM_CODE_LEN: usize = 5;

/// A Steam Guard code generator for one secret.
#[derive(Clone)]
pub struct Steam {
    hotp: Hotp,
}

impl fmt::Debug for Steam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Steam { .. }")
    }
}

/// A Steam Guard code: five characters of [`STEAM_ALPHABET`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SteamCode([u8; STEAM_CODE_LEN]);

impl SteamCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Every byte comes from STEAM_ALPHABET, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for SteamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Steam {
    /// Steam Guard always uses SHA-1 and 30-second steps.
    pub fn new(secret: &Secret) -> Steam {
        Steam {
            hotp: Hotp::new(secret, Algorithm::Sha1, Digits::SIX),
        }
    }

    /// The code for a time step counter.
    pub fn generate(&self, counter: u64) -> SteamCode {
        let mut value = self.hotp.truncated_value(counter);
        let mut code = [0u8; STEAM_CODE_LEN];
        for slot in &mut code {
            *slot = STEAM_ALPHABET[(value % 26) as usize];
            value /= 26;
        }
        SteamCode(code)
    }

    /// The code at `time` (Unix seconds).
    pub fn generate_at(&self, time: u64) -> Result<SteamCode, TimeStepError> {
        Ok(self.generate(TimeStep::DEFAULT.counter_at(time)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed once with Python's `hmac` module, independently of this
    /// code: HMAC-SHA1(b"12345678901234567890", counter as 8 big-endian
    /// bytes), dynamic truncation to 31 bits, then five times
    /// `ALPHABET[v % 26]; v //= 26`.
    const VECTORS: [(u64, &str); 4] = [
        (59, "PV9M4"),
        (1_111_111_109, "PY4YB"),
        (1_234_567_890, "VHHQY"),
        (2_000_000_000, "9N776"),
    ];

    #[test]
    fn rfc_key_vectors() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        let steam = Steam::new(&secret);
        for (time, expected) in VECTORS {
            assert_eq!(
                steam.generate_at(time).unwrap().as_str(),
                expected,
                "{time}"
            );
        }
    }
}
