//! Programming Token2 TOTP tokens: the Molto-2 (USB, 100 profiles) and the
//! single-profile NFC tokens, from the facts in `shared/specs/token2-devices.md`.
//!
//! The crate is layered so that the protocol can be read and tested without
//! hardware:
//!
//! - [`crypto`], [`apdu`], [`molto2`], [`single`], [`params`] — the protocol
//!   as data and pure functions: APDU builders, response parsers, SM4 with the
//!   tokens' MAC and padding rules, and what each family can be programmed
//!   with. No I/O.
//! - [`transport`] — one trait, [`transport::Transport`], over which APDUs
//!   travel: direct USB CCID (`nusb`, feature `usb`), PC/SC (feature `pcsc`, on by
//!   default, loaded at run time),
//!   an exec bridge to another program, and the simulators.
//! - [`sim`] — simulators of both families that behave as the spec says
//!   (status words, attempt counters, MAC checks, de-padding, restricted
//!   sync, the ▲ button, per-profile clocks) and show codes computed from
//!   what was burned.
//! - [`programmer`] — one token: safe burn order, refusals with reasons,
//!   verification.
//! - `recorded` (feature `vault`, on by default) — burns recorded in the
//!   vault before their first write: what the CLI and the web console call
//!   for `burn`, `enroll` and `provision`.
// Only the PC/SC loader (`transport::pcsc::sys`) calls C, and says why each
// call is sound.
#![deny(unsafe_code)]

pub mod apdu;
pub mod crypto;
pub mod enrolment;
pub mod hex;
pub mod molto2;
pub mod params;
pub mod programmer;
#[cfg(feature = "vault")]
pub mod recorded;
pub mod sim;
pub mod single;
pub mod transport;
pub mod vpcd;

pub use params::{DisplayTimeout, Family, ProfileConfig, Unsupported};
pub use programmer::{BurnReport, BurnRequest, Confirmation, DeviceError, PreparedBurn, Token};
