//! Pure byte-level readers and writers for the file formats oathdesk handles.
//!
//! Every function here takes bytes or text and returns bytes or text: the
//! library never touches files or the network, so callers decide where data
//! comes from and where it goes, and everything is easy to test.
//!
//! Modules:
//! - [`aegis`]: Aegis Authenticator vaults, plain or password-encrypted.
//! - [`twofas`]: 2FAS Authenticator backups, plain or password-encrypted.
//! - [`andotp`]: andOTP backups, plain or password-encrypted.
//! - [`pskc`]: read and write PSKC (RFC 6030) seed files, plain or encrypted.
//! - [`qr`]: encode an `otpauth://` URI as a QR code (terminal, SVG, PNG) and
//!   find every QR code in a PNG or JPEG screenshot.
//! - [`entra`]: Entra ID CSV upload and Graph `hardwareOathDevices` JSON.
//! - [`oathcsv`]: privacyIDEA and LinOTP OATH CSV.
//! - [`otpauth`]: `otpauth://` lists and Google Authenticator export links.
//! - [`canonical`]: oathdesk's own JSON.
//! - [`mod@format`]: every format by name, detection, one read/write.
//! - [`lint`]: findings about a seed file before it is imported.
//! - [`record`]: the [`Record`] every reader returns and every writer takes.
//! - [`spreadsheet`]: the helpdesk's plaintext `username,secret` CSV.
//! - [`directory`]: users' data on file (phones, manager…) as CSV.

pub mod aegis;
pub mod andotp;
pub mod canonical;
pub mod directory;
pub mod entra;
pub mod format;
pub mod lint;
pub mod oathcsv;
pub mod otpauth;
pub mod pskc;
pub mod qr;
pub mod record;
pub mod spreadsheet;
pub mod twofas;

pub use record::{FormatError, Keys, Location, Record, Skipped, Written};

/// A secret error as a reader reports it, with the fix for the usual
/// mistake (a hex seed where Base32 belongs).
pub(crate) fn secret_hint(error: oathdesk_otp::SecretError) -> String {
    match error {
        oathdesk_otp::SecretError::LooksLikeHex => {
            "the secret looks like hex, but this format needs Base32: \
             convert it with 'oathdesk seed convert --hex VALUE --to base32'"
                .into()
        }
        oathdesk_otp::SecretError::Base32Character {
            class: oathdesk_otp::CharClass::DigitNotInBase32,
            ..
        } => format!(
            "{error}; if it is hex, convert it with 'oathdesk seed convert --hex VALUE --to base32'"
        ),
        other => other.to_string(),
    }
}
