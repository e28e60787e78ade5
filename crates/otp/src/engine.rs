//! HOTP (RFC 4226) and TOTP (RFC 6238) generation and verification.
//!
//! Speed: HMAC hashes the key, XORed with two pads, before any message
//! byte. [`Hotp::new`] does that once and keeps the two hash states, so each
//! code afterwards costs two compressions for SHA-1 (one for the counter
//! block, one for the outer block), which is what scanning thousands of
//! counters or secrets needs.

use std::fmt;

use hmac::HmacCore;
use hmac::digest::core_api::{Buffer, FixedOutputCore};
use hmac::digest::typenum::{IsLess, Le, NonZero, U256};
use hmac::digest::{KeyInit, Output};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::params::{Algorithm, Digits, Interval, TimeStep, TimeStepError};
use crate::secret::Secret;
use crate::sha1_pads::Sha1Pads;

/// An HMAC keyed with a secret, pads already absorbed.
///
/// This holds the block-level cores of the RustCrypto `hmac` crate rather
/// than `Hmac<D>`: `Hmac<D>` wraps the core with a 64- or 128-byte message
/// buffer that every code would copy, fill through `update` and pad again.
/// A code's message is only the 8-byte counter, so a fresh buffer holding
/// it is handed straight to the core's finalization (the same code path
/// `Hmac::finalize` ends in); about 15% of a SHA-1 code.
#[derive(Clone)]
enum KeyedMac {
    /// SHA-1 at the compression level, so a scan can batch codes
    /// ([`crate::sha1_pads`]).
    Sha1(Sha1Pads),
    Sha256(HmacCore<sha2::Sha256>),
    Sha512(HmacCore<sha2::Sha512>),
}

impl KeyedMac {
    fn new(algorithm: Algorithm, key: &[u8]) -> KeyedMac {
        // HMAC takes keys of any length, so these cannot fail.
        const ANY_LENGTH: &str = "HMAC accepts keys of any length";
        match algorithm {
            Algorithm::Sha1 => KeyedMac::Sha1(Sha1Pads::new(key)),
            Algorithm::Sha256 => KeyedMac::Sha256(KeyInit::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha512 => KeyedMac::Sha512(KeyInit::new_from_slice(key).expect(ANY_LENGTH)),
        }
    }

    /// RFC 4226 §5.3 dynamic truncation of HMAC(K, counter): a 31-bit value.
    #[inline]
    fn truncated(&self, counter: u64) -> u32 {
        #[inline(always)]
        fn run<C>(keyed: &C, counter: u64) -> u32
        where
            C: FixedOutputCore + Clone,
            C::BlockSize: IsLess<U256>,
            Le<C::BlockSize, U256>: NonZero,
        {
            let mut mac = keyed.clone();
            // The message so far: the counter, shorter than one block.
            let mut buffer = Buffer::<C>::new(&counter.to_be_bytes());
            let mut out = Output::<C>::default();
            mac.finalize_fixed_core(&mut buffer, &mut out);
            dynamic_truncation(&out)
        }
        match self {
            KeyedMac::Sha1(pads) => pads.truncated(counter),
            KeyedMac::Sha256(mac) => run(mac, counter),
            KeyedMac::Sha512(mac) => run(mac, counter),
        }
    }
}

#[inline(always)]
pub(crate) fn dynamic_truncation(hmac: &[u8]) -> u32 {
    let offset = usize::from(hmac[hmac.len() - 1] & 0x0f);
    let word = [
        hmac[offset],
        hmac[offset + 1],
        hmac[offset + 2],
        hmac[offset + 3],
    ];
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// A one-time code: its numeric value and how many digits it is shown with.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    value: u32,
    digits: Digits,
}

impl Code {
    /// The numeric value (leading zeros are implied by [`Code::digits`]).
    pub fn value(self) -> u32 {
        self.value
    }

    /// The number of digits.
    pub fn digits(self) -> Digits {
        self.digits
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits.get())
        )
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({self})")
    }
}

/// A code typed by a person that cannot be a code of this credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a code is made of digits only (spaces are allowed between them)")]
    NotDigits,
    #[error("the code has {given} digits but this credential makes {expected}-digit codes")]
    WrongLength { given: usize, expected: u8 },
}

/// Parses a typed code (`"123 456"` is fine) into its value.
/// A typed code's value, checked against the credential's digits.
pub fn parse_code(text: &str, digits: Digits) -> Result<u32, CodeError> {
    let mut value: u64 = 0;
    let mut count = 0usize;
    for c in text.chars() {
        match c {
            ' ' | '\t' | '-' => continue,
            '0'..='9' => {
                count += 1;
                // Overlong input is reported below; keep the value bounded.
                value = (value * 10 + u64::from(c as u8 - b'0')) % 100_000_000_000;
            }
            _ => return Err(CodeError::NotDigits),
        }
    }
    if count == 0 {
        return Err(CodeError::NotDigits);
    }
    if count != usize::from(digits.get()) {
        return Err(CodeError::WrongLength {
            given: count,
            expected: digits.get(),
        });
    }
    // Ten-digit codes are 31-bit values; anything larger cannot match.
    u32::try_from(value).map_err(|_| CodeError::NotDigits)
}

/// How far a verifier looks around the expected counter: `behind` steps into
/// the past (a slow token) and `ahead` steps into the future (a fast one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Window {
    /// Steps accepted before the expected counter.
    pub behind: u64,
    /// Steps accepted after it.
    pub ahead: u64,
}

impl Window {
    /// Only the expected counter.
    pub const EXACT: Window = Window {
        behind: 0,
        ahead: 0,
    };

    /// ±`steps`.
    pub fn symmetric(steps: u64) -> Window {
        Window {
            behind: steps,
            ahead: steps,
        }
    }
}

/// A successful verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Match {
    /// Signed distance from the expected counter: negative means the token
    /// is behind (slow clock, or for HOTP an old code), positive ahead.
    pub offset: i64,
    /// The counter whose code matched.
    pub counter: u64,
}

/// Candidate offsets in order of distance from zero, past before future:
/// 0, -1, +1, -2, +2, ... within the window. When two counters of a window
/// give the same code, the nearest one is the likelier truth.
fn offsets_nearest_first(window: Window) -> impl Iterator<Item = i64> {
    let reach = window.behind.max(window.ahead).min(i64::MAX as u64) as i64;
    (0..=reach).flat_map(move |distance| {
        let past = (distance > 0 && distance as u64 <= window.behind).then_some(-distance);
        let future = (distance as u64 <= window.ahead).then_some(distance);
        past.into_iter().chain(future)
    })
}

/// An HOTP generator: a secret keyed into HMAC, and the number of digits.
#[derive(Clone)]
pub struct Hotp {
    mac: KeyedMac,
    algorithm: Algorithm,
    digits: Digits,
}

impl fmt::Debug for Hotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hotp")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

impl Hotp {
    /// Keys HMAC with `secret`. Do this once per secret and reuse the value.
    pub fn new(secret: &Secret, algorithm: Algorithm, digits: Digits) -> Hotp {
        Hotp {
            mac: KeyedMac::new(algorithm, secret.as_bytes()),
            algorithm,
            digits,
        }
    }

    /// The hash function.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The number of digits.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The keyed SHA-1 states of a SHA-1 generator, for scans that batch
    /// codes of many secrets ([`crate::sha1_pads::truncated_batch`]).
    pub fn sha1_pads(&self) -> Option<&Sha1Pads> {
        match &self.mac {
            KeyedMac::Sha1(pads) => Some(pads),
            _ => None,
        }
    }

    /// The code of a truncated value (RFC 4226 §5.3's last step).
    #[inline]
    pub fn code_of_truncated(&self, raw: u32) -> Code {
        let value = match self.digits.modulus() {
            Some(modulus) => raw % modulus,
            None => raw,
        };
        Code {
            value,
            digits: self.digits,
        }
    }

    /// The 31-bit value of RFC 4226 §5.3 before the decimal reduction.
    pub fn truncated_value(&self, counter: u64) -> u32 {
        self.mac.truncated(counter)
    }

    /// The code for `counter`.
    #[inline]
    pub fn generate(&self, counter: u64) -> Code {
        self.code_of_truncated(self.mac.truncated(counter))
    }

    /// Checks `code` against the counters `expected - behind ..= expected +
    /// ahead` and returns the nearest match. Every counter in the window is
    /// computed and compared in constant time, so the time taken does not
    /// tell an attacker how close a guess was.
    pub fn verify(
        &self,
        code: &str,
        expected: u64,
        window: Window,
    ) -> Result<Option<Match>, CodeError> {
        let wanted = parse_code(code, self.digits)?;
        let mut found = subtle::Choice::from(0);
        let mut found_offset = 0i64;
        for offset in offsets_nearest_first(window) {
            let Some(counter) = expected.checked_add_signed(offset) else {
                continue;
            };
            let hit = self.generate(counter).value.ct_eq(&wanted) & !found;
            found_offset.conditional_assign(&offset, hit);
            found |= hit;
        }
        Ok(bool::from(found).then(|| Match {
            offset: found_offset,
            counter: expected.wrapping_add_signed(found_offset),
        }))
    }
}

/// One code of a table of codes around a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedCode {
    /// Steps from the counter in force at the reference time.
    pub offset: i64,
    /// The counter.
    pub counter: u64,
    /// The code.
    pub code: Code,
    /// When this code is the current one.
    pub current: Interval,
}

/// A TOTP generator: HOTP over the time-step counter.
#[derive(Clone, Debug)]
pub struct Totp {
    hotp: Hotp,
    step: TimeStep,
}

impl Totp {
    /// Keys HMAC with `secret` once; see [`Hotp::new`].
    pub fn new(secret: &Secret, algorithm: Algorithm, digits: Digits, step: TimeStep) -> Totp {
        Totp {
            hotp: Hotp::new(secret, algorithm, digits),
            step,
        }
    }

    /// The underlying HOTP generator.
    pub fn hotp(&self) -> &Hotp {
        &self.hotp
    }

    /// The time step.
    pub fn step(&self) -> TimeStep {
        self.step
    }

    /// The code current at Unix time `time`.
    #[inline]
    pub fn generate_at(&self, time: u64) -> Result<Code, TimeStepError> {
        Ok(self.hotp.generate(self.step.counter_at(time)?))
    }

    /// The code for a counter and when it is current.
    pub fn at_counter(&self, counter: u64, offset: i64) -> TimedCode {
        TimedCode {
            offset,
            counter,
            code: self.hotp.generate(counter),
            current: self.step.interval(counter),
        }
    }

    /// The codes from `past` steps before to `future` steps after the one
    /// current at `time` (steps before T0 are left out).
    pub fn codes_around(
        &self,
        time: u64,
        past: u64,
        future: u64,
    ) -> Result<Vec<TimedCode>, TimeStepError> {
        let now = self.step.counter_at(time)?;
        let first = now.saturating_sub(past);
        let last = now.saturating_add(future);
        Ok((first..=last)
            .map(|counter| self.at_counter(counter, signed_distance(now, counter)))
            .collect())
    }

    /// Verifies a code typed at `time` with a window of steps.
    pub fn verify_at(
        &self,
        code: &str,
        time: u64,
        window: Window,
    ) -> Result<Option<Match>, VerifyError> {
        let expected = self.step.counter_at(time)?;
        Ok(self.hotp.verify(code, expected, window)?)
    }

    /// When a verifier with `window` accepts the code of `counter`: from the
    /// moment its own counter is `counter - ahead` to the end of
    /// `counter + behind` (a verifier that accepts old codes keeps accepting
    /// this one until it is `behind` steps old).
    pub fn accepted_interval(&self, counter: u64, window: Window) -> Interval {
        self.step.span(
            counter.saturating_sub(window.ahead),
            counter.saturating_add(window.behind),
        )
    }

    /// The code to hand out at `time` that a verifier with `window` keeps
    /// accepting for at least `min_seconds`: the current code if it lasts,
    /// else the earliest later code that the verifier already accepts and
    /// keeps accepting until `time + min_seconds`. Useful for a code sent by
    /// e-mail or read out over the phone.
    pub fn code_valid_for(
        &self,
        time: u64,
        min_seconds: u64,
        window: Window,
    ) -> Result<LastingCode, ValidForError> {
        let now = self.step.counter_at(time)?;
        let deadline = time.saturating_add(min_seconds);
        // The verifier accepts counters now - behind ..= now + ahead; the later
        // the counter, the longer it stays accepted. Older codes than the
        // current one never last longer, so start from the current code and
        // take the first that lasts.
        let first = now;
        let last = now.saturating_add(window.ahead);
        for counter in first..=last {
            let accepted = self.accepted_interval(counter, window);
            if accepted.until >= deadline {
                return Ok(LastingCode {
                    code: self.at_counter(counter, signed_distance(now, counter)),
                    accepted,
                });
            }
        }
        let longest = self
            .accepted_interval(last, window)
            .until
            .saturating_sub(time);
        // At the very start of a step, the latest accepted code stays
        // accepted for `ahead + behind + 1` whole steps: no code lasts longer.
        let most = window
            .ahead
            .saturating_add(window.behind)
            .saturating_add(1)
            .saturating_mul(self.step.period());
        Err(ValidForError::TooLong {
            wanted: min_seconds,
            longest,
            most,
        })
    }
}

fn signed_distance(from: u64, to: u64) -> i64 {
    if to >= from {
        i64::try_from(to - from).unwrap_or(i64::MAX)
    } else {
        i64::try_from(from - to).map(|d| -d).unwrap_or(i64::MIN)
    }
}

/// A code chosen to stay accepted for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastingCode {
    /// The code, with its counter and current interval.
    pub code: TimedCode,
    /// When the verifier accepts it.
    pub accepted: Interval,
}

/// Why verification could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error(transparent)]
    Time(#[from] TimeStepError),
}

/// Why no lasting code exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidForError {
    #[error(transparent)]
    Time(#[from] TimeStepError),
    #[error(
        "no code stays accepted for {wanted} s under this verifier: with its window and this \
         token's time step, a code lasts at most {most} s ({}), and the longest-lasting code right \
         now is accepted for {longest} s more (ask for less, or use a more tolerant verifier)",
        minutes(*most)
    )]
    TooLong {
        wanted: u64,
        /// How long the longest-lasting code is accepted from now.
        longest: u64,
        /// The most any code lasts under this verifier (from the start of a step).
        most: u64,
    },
}

/// `2½ min`, `1 min 10 s`, `45 s`.
fn minutes(seconds: u64) -> String {
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, 30) => format!("{m}½ min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc4226() -> Hotp {
        Hotp::new(
            &Secret::from_bytes(b"12345678901234567890".to_vec()),
            Algorithm::Sha1,
            Digits::SIX,
        )
    }

    #[test]
    fn rfc4226_truncated_values_and_ten_digits() {
        let hotp = rfc4226();
        assert_eq!(hotp.truncated_value(0), 1_284_755_224);
        assert_eq!(hotp.truncated_value(2), 137_359_152);
        let ten = Hotp::new(
            &Secret::from_bytes(b"12345678901234567890".to_vec()),
            Algorithm::Sha1,
            Digits::new(10).unwrap(),
        );
        assert_eq!(ten.generate(0).to_string(), "1284755224");
        assert_eq!(ten.generate(2).to_string(), "0137359152");
        let four = Hotp::new(
            &Secret::from_bytes(b"12345678901234567890".to_vec()),
            Algorithm::Sha1,
            Digits::new(4).unwrap(),
        );
        assert_eq!(four.generate(0).to_string(), "5224");
    }

    #[test]
    fn verify_returns_signed_offsets() {
        let hotp = rfc4226();
        // Counter 3 is 969429; expected 5 with ±2 finds it 2 behind.
        assert_eq!(
            hotp.verify("969429", 5, Window::symmetric(2)),
            Ok(Some(Match {
                offset: -2,
                counter: 3
            }))
        );
        assert_eq!(
            hotp.verify("969 429", 1, Window::symmetric(2)),
            Ok(Some(Match {
                offset: 2,
                counter: 3
            }))
        );
        assert_eq!(hotp.verify("969429", 6, Window::symmetric(2)), Ok(None));
        // Asymmetric: looking only ahead misses a code behind.
        let ahead_only = Window {
            behind: 0,
            ahead: 5,
        };
        assert_eq!(hotp.verify("969429", 4, ahead_only), Ok(None));
        assert_eq!(
            hotp.verify("969429", 0, ahead_only)
                .unwrap()
                .unwrap()
                .offset,
            3
        );
        // The window does not run below counter 0.
        assert_eq!(
            hotp.verify("755224", 1, Window::symmetric(3)),
            Ok(Some(Match {
                offset: -1,
                counter: 0
            }))
        );
    }

    #[test]
    fn verify_rejects_malformed_codes() {
        let hotp = rfc4226();
        assert_eq!(
            hotp.verify("96942", 0, Window::EXACT),
            Err(CodeError::WrongLength {
                given: 5,
                expected: 6
            })
        );
        assert_eq!(
            hotp.verify("96942x", 0, Window::EXACT),
            Err(CodeError::NotDigits)
        );
        assert_eq!(hotp.verify("", 0, Window::EXACT), Err(CodeError::NotDigits));
    }

    #[test]
    fn offsets_come_nearest_first() {
        let order: Vec<i64> = offsets_nearest_first(Window {
            behind: 1,
            ahead: 3,
        })
        .collect();
        assert_eq!(order, vec![0, -1, 1, 2, 3]);
        let order: Vec<i64> = offsets_nearest_first(Window::EXACT).collect();
        assert_eq!(order, vec![0]);
    }

    fn rfc6238_sha1() -> Totp {
        Totp::new(
            &Secret::from_bytes(b"12345678901234567890".to_vec()),
            Algorithm::Sha1,
            Digits::EIGHT,
            TimeStep::DEFAULT,
        )
    }

    #[test]
    fn totp_intervals_and_tables() {
        let totp = rfc6238_sha1();
        let table = totp.codes_around(1_234_567_890, 1, 1).unwrap();
        assert_eq!(table.len(), 3);
        assert_eq!(table[1].code.to_string(), "89005924");
        assert_eq!(table[1].offset, 0);
        assert_eq!(table[1].counter, 0x273EF07);
        assert_eq!(
            table[1].current,
            Interval {
                from: 1_234_567_890,
                until: 1_234_567_920
            }
        );
        assert_eq!(table[0].offset, -1);
        assert_eq!(table[0].current.until, table[1].current.from);
        // Near the epoch the table is cut at counter 0.
        assert_eq!(totp.codes_around(10, 3, 0).unwrap().len(), 1);
    }

    #[test]
    fn accepted_interval_follows_the_window() {
        let totp = rfc6238_sha1();
        let window = Window::symmetric(2);
        // Counter 10 is current in [300, 330); a ±2 verifier accepts it from
        // the start of counter 8 to the end of counter 12.
        assert_eq!(
            totp.accepted_interval(10, window),
            Interval {
                from: 240,
                until: 390
            }
        );
        let slow = Window {
            behind: 3,
            ahead: 0,
        };
        assert_eq!(
            totp.accepted_interval(10, slow),
            Interval {
                from: 300,
                until: 420
            }
        );
    }

    #[test]
    fn valid_for_picks_the_earliest_lasting_code() {
        let totp = rfc6238_sha1();
        let window = Window::symmetric(2);
        // At t=305 (counter 10): counter 10 lasts until 390, i.e. 85 s.
        let lasting = totp.code_valid_for(305, 60, window).unwrap();
        assert_eq!(lasting.code.counter, 10);
        assert_eq!(lasting.accepted.until, 390);
        // 100 s needs counter 11 (until 420).
        let lasting = totp.code_valid_for(305, 100, window).unwrap();
        assert_eq!(lasting.code.counter, 11);
        assert_eq!(lasting.code.offset, 1);
        assert!(lasting.accepted.contains(305));
        assert_eq!(lasting.accepted.until, 420);
        // The most a ±2 verifier gives at t=305 is counter 12, until 450.
        // A verifier that only looks back accepts no future code.
        let behind_only = Window {
            behind: 2,
            ahead: 0,
        };
        let lasting = totp.code_valid_for(305, 60, behind_only).unwrap();
        assert_eq!(lasting.code.counter, 10);
        assert_eq!(lasting.accepted.until, 390);
        assert!(totp.code_valid_for(305, 90, behind_only).is_err());
        assert_eq!(
            totp.code_valid_for(305, 146, window),
            Err(ValidForError::TooLong {
                wanted: 146,
                longest: 145,
                most: 150,
            })
        );
        // Entra's ±1 minute with a 30 s token: at most 2½ minutes.
        let error = totp.code_valid_for(305, 600, window).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("a code lasts at most 150 s (2½ min)"),
            "{error}"
        );
    }

    #[test]
    fn verify_at_uses_time() {
        let totp = rfc6238_sha1();
        let code = totp.generate_at(59).unwrap().to_string();
        assert_eq!(code, "94287082");
        assert_eq!(
            totp.verify_at(&code, 89, Window::symmetric(1)),
            Ok(Some(Match {
                offset: -1,
                counter: 1
            }))
        );
        assert_eq!(totp.verify_at(&code, 120, Window::symmetric(1)), Ok(None));
    }
}
