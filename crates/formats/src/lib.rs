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
pub mod cells;
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

pub use record::{FormatError, Keys, Location, Read, Record, Skipped, Written};

/// The separator of a CSV file saved by a spreadsheet in a locale where the
/// comma is the decimal mark (`;`), or as "Unicode text" (a tab), when its
/// first data line has no comma: `None` for a comma-separated file and for
/// files that are not CSV (XML, JSON, `otpauth://` lists).
pub fn csv_separator(bytes: &[u8]) -> Option<u8> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let lower = first.to_ascii_lowercase();
    if first.starts_with(['<', '{', '[']) || lower.starts_with("otpauth") || first.contains(',') {
        return None;
    }
    [b';', b'\t']
        .into_iter()
        .max_by_key(|d| first.bytes().filter(|b| b == d).count())
        .filter(|d| first.as_bytes().contains(d))
}

/// The file with its `;` or tab separators (see [`csv_separator`]) turned
/// into commas, quoting as needed; `None` when it needs no change. Line
/// numbers stay as they were.
pub fn comma_separated(bytes: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let separator = csv_separator(bytes)?;
    let bom = bytes.starts_with(b"\xEF\xBB\xBF");
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(bytes.len() + 16));
    if bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    {
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(&mut *out);
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => writer.write_byte_record(&record).ok()?,
                Ok(false) => break,
                Err(_) => return None,
            }
        }
        writer.flush().ok()?;
    }
    Some(out)
}

/// A secret error as a reader reports it, with the fix for the usual
/// mistake (a hex seed where Base32 belongs).
pub(crate) fn secret_hint(error: oathdesk_otp::SecretError) -> String {
    match error {
        oathdesk_otp::SecretError::LooksLikeHex => {
            "the secret looks like hex, but this format needs Base32: \
             convert it with 'oathdesk seed convert --hex - --to base32' (it reads the secret \
             from standard input: keep secrets off the command line)"
                .into()
        }
        oathdesk_otp::SecretError::Base32Character {
            class: oathdesk_otp::CharClass::DigitNotInBase32,
            ..
        } => format!(
            "{error}; if it is hex, convert it with 'oathdesk seed convert --hex - --to base32' \
             (it reads the secret from standard input)"
        ),
        other => other.to_string(),
    }
}
