//! The OTP engine of oathdesk: HOTP (RFC 4226) and TOTP (RFC 6238) codes,
//! verification with signed drift, validity windows, secrets and the texts
//! they travel in (`otpauth://` URIs and Google Authenticator exports).
//!
//! No I/O happens here, except reading the OS random number generator for
//! new seeds ([`seed::generate`]).
//!
//! ```
//! use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp, Window};
//!
//! let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
//! let totp = Totp::new(&secret, Algorithm::Sha1, Digits::EIGHT, TimeStep::DEFAULT);
//! let code = totp.generate_at(1_234_567_890).unwrap();
//! assert_eq!(code.to_string(), "89005924");
//!
//! // A token running 30 s slow is found one step behind.
//! let found = totp.verify_at("89005924", 1_234_567_920, Window::symmetric(1)).unwrap();
//! assert_eq!(found.unwrap().offset, -1);
//! ```
#![forbid(unsafe_code)]

mod credential;
pub mod drift;
mod engine;
mod params;
mod secret;
mod stateful;
mod steam;
mod text;
mod verifier;

pub mod forensic;
pub mod migration;
pub mod seed;
pub mod selftest;
pub mod sha1_pads;
pub mod uri;

pub use credential::{Credential, Kind};
pub use engine::{
    Code, CodeError, Hotp, LastingCode, Match, TimedCode, Totp, ValidForError, VerifyError, Window,
    parse_code,
};
pub use params::{
    Algorithm, BadDigits, Digits, Interval, TimeStep, TimeStepError, UnknownAlgorithm,
};
pub use secret::{CharClass, Encoding, Secret, SecretError, looks_like_hex};
pub use stateful::{Outcome, Remembered, verify_remembering};
pub use steam::{STEAM_ALPHABET, STEAM_CODE_LEN, Steam, SteamCode};
pub use verifier::{Verifier, VerifierError};
