//! What every format reads into and writes from: a [`Record`] is one
//! credential plus the hardware and person it belongs to.
//!
//! Readers return every record of a file or a [`FormatError`] that says
//! where (line or element) and which field is wrong. Writers return the
//! bytes and the records they could not carry, each with the reason —
//! never a silently shortened file.

use std::fmt;

use oathdesk_otp::Credential;
use zeroize::Zeroizing;

/// One credential and its context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Secret and OTP parameters; issuer and account labels.
    pub credential: Credential,
    /// The token's serial number.
    pub serial: Option<String>,
    /// The profile of a multi-profile token.
    pub slot: Option<u32>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// The person it is for (a UPN for Entra).
    pub user: Option<String>,
    /// Where the record came from in its file (empty for records made in memory).
    pub location: Location,
}

impl Record {
    /// A record around a credential, with nothing else known.
    pub fn new(credential: Credential) -> Record {
        Record {
            credential,
            serial: None,
            slot: None,
            manufacturer: None,
            model: None,
            user: None,
            location: Location::default(),
        }
    }

    /// How to name the record in a message: serial (and slot), account, or
    /// position.
    pub fn reference(&self, index: usize) -> String {
        match (&self.serial, self.slot) {
            (Some(serial), Some(slot)) => format!("{serial}:{slot}"),
            (Some(serial), None) => serial.clone(),
            _ if !self.credential.account.is_empty() => self.credential.account.clone(),
            _ => match self.location.describe() {
                Some(place) => place,
                None => format!("record {}", index + 1),
            },
        }
    }
}

/// A place in an input file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Location {
    /// 1-based line, for line-oriented formats.
    pub line: Option<u64>,
    /// An element path or entry for structured formats, e.g. `KeyPackage 2`
    /// or `entries[3]`.
    pub element: Option<String>,
}

impl Location {
    /// At a line.
    pub fn line(line: u64) -> Location {
        Location {
            line: Some(line),
            element: None,
        }
    }

    /// At an element.
    pub fn element(element: impl Into<String>) -> Location {
        Location {
            line: None,
            element: Some(element.into()),
        }
    }

    /// `line 4`, `KeyPackage 2`, `line 4, entries[1]`, or nothing.
    pub fn describe(&self) -> Option<String> {
        match (&self.line, &self.element) {
            (Some(line), Some(element)) => Some(format!("line {line}, {element}")),
            (Some(line), None) => Some(format!("line {line}")),
            (None, Some(element)) => Some(element.clone()),
            (None, None) => None,
        }
    }
}

/// Why a file could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// Where, when it is one place.
    pub location: Location,
    /// Which field, when it is one field.
    pub field: Option<String>,
    /// What is wrong and, where there is one, what to do. Never a secret.
    pub message: String,
}

impl FormatError {
    /// An error about the whole input.
    pub fn new(message: impl Into<String>) -> FormatError {
        FormatError {
            location: Location::default(),
            field: None,
            message: message.into(),
        }
    }

    /// An error at a place.
    pub fn at(location: Location, message: impl Into<String>) -> FormatError {
        FormatError {
            location,
            field: None,
            message: message.into(),
        }
    }

    /// Names the field.
    pub fn field(mut self, field: impl Into<String>) -> FormatError {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = self.location.describe();
        match (&place, &self.field) {
            (Some(place), Some(field)) => write!(f, "{place}, {field}: {}", self.message),
            (Some(place), None) => write!(f, "{place}: {}", self.message),
            (None, Some(field)) => write!(f, "{field}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FormatError {}

/// Passwords and keys for encrypted files (never from the command line).
#[derive(Clone, Default)]
pub struct Keys {
    /// A password (PSKC PBKDF2, Aegis, 2FAS, andOTP).
    pub password: Option<Zeroizing<String>>,
    /// A raw key (PSKC pre-shared key).
    pub key: Option<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A record a writer could not carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its index in the input slice.
    pub index: usize,
    /// Serial, account or position.
    pub reference: String,
    /// Why the format cannot take it.
    pub reason: String,
}

/// What a writer produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The file.
    pub bytes: Vec<u8>,
    /// The records left out, with reasons.
    pub skipped: Vec<Skipped>,
}

/// What a reader produced: every record it could read, and the entries it
/// left out (an authenticator app's Steam or Yandex entry, …), each with its
/// place and the reason. Never a secret in either list's texts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub records: Vec<Record>,
    /// Entries not read: `index` is the entry's position in the file,
    /// `reference` its place and issuer.
    pub skipped: Vec<Skipped>,
}

impl Read {
    /// All records, nothing skipped.
    pub fn all(records: Vec<Record>) -> Read {
        Read {
            records,
            skipped: Vec::new(),
        }
    }
}

/// Input larger than this is refused before parsing (no admin seed file comes
/// near it; a hostile one must not exhaust memory).
pub const MAX_INPUT_BYTES: usize = 256 * 1024 * 1024;

/// Refuses oversized input.
pub fn check_size(bytes: &[u8]) -> Result<(), FormatError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(FormatError::new(format!(
            "the file is {} MiB; files over {} MiB are refused (split it)",
            bytes.len() / (1024 * 1024),
            MAX_INPUT_BYTES / (1024 * 1024)
        )));
    }
    Ok(())
}

/// The line a CSV record starts on. The `csv` crate ends a record at the
/// `\r` of a `\r\n` line end and takes the next record's position before
/// the `\n`, so in files with Windows line ends (every Entra CSV saved on
/// Windows) its line numbers are one short. Here they are right for both.
pub(crate) fn csv_line(bytes: &[u8], position: Option<&csv::Position>) -> u64 {
    match position {
        Some(p) => {
            let on_newline = usize::try_from(p.byte())
                .ok()
                .and_then(|at| bytes.get(at))
                .is_some_and(|b| *b == b'\n');
            p.line() + u64::from(on_newline)
        }
        None => 0,
    }
}

#[cfg(test)]
mod csv_line_tests {
    #[test]
    fn crlf_and_lf_files_number_lines_alike() {
        for text in ["a,b\nc,d\ne,f\n", "a,b\r\nc,d\r\ne,f\r\n"] {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let lines: Vec<u64> = reader
                .records()
                .map(|r| super::csv_line(text.as_bytes(), r.unwrap().position()))
                .collect();
            assert_eq!(lines, [2, 3], "{text:?}");
        }
    }
}
