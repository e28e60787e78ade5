//! Pure byte-level readers and writers for the file formats oathdesk handles.
//!
//! Every function here takes bytes or text and returns bytes or text: the
//! library never touches files or the network, so callers decide where data
//! comes from and where it goes, and everything is easy to test.
//!
//! Modules:
//! - [`qr`]: encode an `otpauth://` URI as a QR code (terminal, SVG, PNG) and
//!   find every QR code in a PNG or JPEG screenshot.
//! - [`record`]: the [`Record`] every reader returns and every writer takes.
//! - [`spreadsheet`]: the helpdesk's plaintext `username,secret` CSV.

pub mod qr;
pub mod record;
pub mod spreadsheet;

pub use record::{FormatError, Keys, Location, Record, Skipped, Written};
