//! Every format by name, auto-detection, and one `read`/`write` over all.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::oathcsv::Dialect;
use crate::record::{FormatError, Keys, Read, Record, Written};
use crate::{aegis, andotp, canonical, entra, oathcsv, otpauth, pskc, twofas};

/// A file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Entra ID legacy CSV (`upn,serial number,secret key,...`).
    EntraCsv,
    /// Entra ID Graph `hardwareOathDevices` JSON.
    EntraJson,
    /// privacyIDEA OATH CSV.
    PrivacyIdea,
    /// privacyIDEA OATH CSV, version 2 (with users).
    PrivacyIdeaV2,
    /// LinOTP OATH CSV.
    LinOtp,
    /// One `otpauth://` URI per line.
    Otpauth,
    /// Google Authenticator export links, one per QR code.
    Google,
    /// oathdesk's canonical JSON.
    Oathdesk,
    /// PSKC (RFC 6030), plain or encrypted.
    Pskc,
    /// Aegis vault JSON, plain or password-encrypted.
    Aegis,
    /// 2FAS backup, plain or password-encrypted.
    TwoFas,
    /// andOTP backup, plain or password-encrypted.
    AndOtp,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 12] = [
        Format::EntraCsv,
        Format::EntraJson,
        Format::Pskc,
        Format::PrivacyIdea,
        Format::PrivacyIdeaV2,
        Format::LinOtp,
        Format::Otpauth,
        Format::Google,
        Format::Aegis,
        Format::TwoFas,
        Format::AndOtp,
        Format::Oathdesk,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::EntraCsv => "entra-csv",
            Format::EntraJson => "entra-json",
            Format::PrivacyIdea => "privacyidea",
            Format::PrivacyIdeaV2 => "privacyidea-v2",
            Format::LinOtp => "linotp",
            Format::Otpauth => "otpauth",
            Format::Google => "google",
            Format::Oathdesk => "oathdesk",
            Format::Pskc => "pskc",
            Format::Aegis => "aegis",
            Format::TwoFas => "2fas",
            Format::AndOtp => "andotp",
        }
    }

    /// Whether the format can hold secrets encrypted.
    pub fn can_encrypt(self) -> bool {
        matches!(
            self,
            Format::Pskc | Format::Aegis | Format::TwoFas | Format::AndOtp
        )
    }

    /// All names, for messages.
    pub fn names() -> String {
        Format::ALL
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Format, FormatError> {
        let lower = s.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "entra" | "azure" | "azure-csv" => Some(Format::EntraCsv),
            "graph" | "entra-graph" => Some(Format::EntraJson),
            "oath-csv" | "privacyidea-v1" => Some(Format::PrivacyIdea),
            "google-authenticator" | "migration" | "otpauth-migration" => Some(Format::Google),
            "json" | "canonical" => Some(Format::Oathdesk),
            "twofas" => Some(Format::TwoFas),
            "rfc6030" | "pskcxml" => Some(Format::Pskc),
            _ => None,
        };
        alias
            .or_else(|| Format::ALL.into_iter().find(|f| f.name() == lower))
            .ok_or_else(|| {
                FormatError::new(format!(
                    "unknown format '{s}': use one of {}",
                    Format::names()
                ))
            })
    }
}

/// Options for writing.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Serial of a profile of a multi-profile device (Entra): `{serial}`,
    /// `{slot}`.
    pub profile_serial: String,
    /// Password for formats that encrypt with one.
    pub password: Option<Zeroizing<String>>,
    /// Pre-shared key for formats that encrypt with one.
    pub key: Option<Zeroizing<Vec<u8>>>,
    /// The Google export's batch id.
    pub batch_id: i32,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            profile_serial: entra::DEFAULT_PROFILE_SERIAL.into(),
            password: None,
            key: None,
            batch_id: 1,
        }
    }
}

/// The protection asked for an output: what [`check_protection`] judges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protection {
    /// A password for the output was given (`Some(true)` when it is empty).
    pub password: Option<bool>,
    /// A pre-shared key for the output was given: its length in bytes.
    pub key_len: Option<usize>,
    /// A plaintext file of secrets is allowed.
    pub plaintext: bool,
}

impl Protection {
    /// What `options` asks (the plaintext allowance is the caller's).
    pub fn of(options: &WriteOptions, plaintext: bool) -> Protection {
        Protection {
            password: options.password.as_ref().map(|p| p.is_empty()),
            key_len: options.key.as_ref().map(|k| k.len()),
            plaintext,
        }
    }

    fn encrypts(&self) -> bool {
        self.password.is_some() || self.key_len.is_some()
    }
}

/// Why an output cannot be written as asked. Every case where secrets
/// would be written in plain text although encryption was asked for is
/// one of these: an encrypted output is encrypted or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtectionError {
    /// Encryption (a password or key) and a plaintext file were both asked.
    #[error("both an encrypted and a plaintext {0} file were asked for")]
    EncryptedAndPlaintext(Format),
    /// A password or key for a format that holds secrets in plain text.
    #[error("{0} files cannot be encrypted")]
    CannotEncrypt(Format),
    /// A pre-shared key for a format that encrypts with a password only.
    #[error("{0} files are encrypted with a password; only PSKC takes a pre-shared key")]
    KeyNeedsPskc(Format),
    /// A password and a pre-shared key at once: which one should encrypt?
    #[error("both a password and a pre-shared key were given; PSKC is encrypted with one")]
    PasswordAndKey,
    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,
    /// A pre-shared key that is no AES key.
    #[error(
        "the pre-shared key is {0} bytes long; an AES key is 16, 24 or 32 bytes (AES-128, -192, -256)"
    )]
    KeyLength(usize),
    /// A plaintext-only format without the plaintext allowance.
    #[error("{0} files hold secrets in plain text, and a plaintext file was not allowed")]
    PlaintextNotAllowed(Format),
    /// An encrypting format without a password or key, nor the allowance.
    #[error("{0} output is encrypted, and neither a password or key nor plain text was given")]
    NoEncryption(Format),
}

/// Judges a request for a `format` output before anything is written.
/// Encryption asked for is never dropped: with a format that cannot carry
/// it, or together with the plaintext allowance, the request is refused.
pub fn check_protection(format: Format, asked: Protection) -> Result<(), ProtectionError> {
    check_encryption(format, asked)?;
    match (asked.encrypts(), asked.plaintext) {
        (true, true) => Err(ProtectionError::EncryptedAndPlaintext(format)),
        (false, false) if format.can_encrypt() => Err(ProtectionError::NoEncryption(format)),
        (false, false) => Err(ProtectionError::PlaintextNotAllowed(format)),
        _ => Ok(()),
    }
}

/// The part of [`check_protection`] that [`write()`] enforces itself: a
/// password or key it is given is one it can honour.
fn check_encryption(format: Format, asked: Protection) -> Result<(), ProtectionError> {
    if !asked.encrypts() {
        return Ok(());
    }
    if !format.can_encrypt() {
        return Err(ProtectionError::CannotEncrypt(format));
    }
    if asked.key_len.is_some() && format != Format::Pskc {
        return Err(ProtectionError::KeyNeedsPskc(format));
    }
    if asked.password.is_some() && asked.key_len.is_some() {
        return Err(ProtectionError::PasswordAndKey);
    }
    if asked.password == Some(true) {
        return Err(ProtectionError::EmptyPassword);
    }
    match asked.key_len {
        Some(len) if !pskc::KEY_LENGTHS.contains(&len) => Err(ProtectionError::KeyLength(len)),
        _ => Ok(()),
    }
}

/// Reads `bytes` as `format`, keeping going past entries oathdesk does not
/// handle (an authenticator app's Steam or Yandex entry): those are listed
/// in [`Read::skipped`] with their place, issuer and reason. Every other
/// problem is an error.
pub fn read_all(format: Format, bytes: &[u8], keys: &Keys) -> Result<Read, FormatError> {
    match format {
        Format::Aegis => aegis::read_all(bytes, keys),
        Format::TwoFas => twofas::read_all(bytes, keys),
        Format::AndOtp => andotp::read_all(bytes, keys),
        other => read(other, bytes, keys).map(Read::all),
    }
}

/// Reads `bytes` as `format`: every entry, or an error (an entry oathdesk
/// does not handle is one; [`read_all`] lists those instead).
pub fn read(format: Format, bytes: &[u8], keys: &Keys) -> Result<Vec<Record>, FormatError> {
    // A `;`- or tab-separated CSV from a European Excel reads as its
    // comma-separated self.
    let csv = matches!(
        format,
        Format::EntraCsv | Format::PrivacyIdea | Format::PrivacyIdeaV2 | Format::LinOtp
    );
    let commas = if csv {
        crate::comma_separated(bytes)
    } else {
        None
    };
    let bytes = commas.as_deref().map_or(bytes, Vec::as_slice);
    match format {
        Format::Pskc => pskc::read(bytes, keys),
        Format::Aegis => aegis::read(bytes, keys),
        Format::TwoFas => twofas::read(bytes, keys),
        Format::AndOtp => andotp::read(bytes, keys),
        Format::EntraCsv => entra::read_csv(bytes),
        Format::EntraJson => entra::read_json(bytes),
        Format::PrivacyIdea => oathcsv::read(bytes, Dialect::PrivacyIdea),
        Format::PrivacyIdeaV2 => oathcsv::read(bytes, Dialect::PrivacyIdeaV2),
        Format::LinOtp => oathcsv::read(bytes, Dialect::LinOtp),
        Format::Otpauth | Format::Google => otpauth::read(bytes),
        Format::Oathdesk => canonical::read(bytes),
    }
}

/// Writes `records` as `format`. A password or key in `options` is always
/// honoured: one `format` cannot use (a key for Aegis, a password for the
/// Entra CSV, both for PSKC, a key of the wrong length) is an error, never
/// a plaintext file.
pub fn write(
    format: Format,
    records: &[Record],
    options: &WriteOptions,
) -> Result<Written, FormatError> {
    check_encryption(format, Protection::of(options, false))
        .map_err(|e| FormatError::new(e.to_string()))?;
    let password = options.password.as_ref().map(|p| p.as_str());
    match format {
        Format::Pskc => {
            let encryption = match (&options.key, &options.password) {
                (Some(key), _) => pskc::Encryption::pre_shared(key.to_vec()),
                (None, Some(password)) => pskc::Encryption::password(password.to_string()),
                (None, None) => pskc::Encryption::None,
            };
            // Always with a MAC (RFC 6030 figure 6 for a pre-shared key).
            pskc::write(records, &pskc::WriteOptions::new(encryption))
        }
        Format::Aegis => aegis::write(records, password),
        Format::TwoFas => twofas::write(records, password),
        Format::AndOtp => andotp::write(records, password),
        Format::EntraCsv => entra::write_csv(records, &options.profile_serial),
        Format::EntraJson => entra::write_json(records, &options.profile_serial),
        Format::PrivacyIdea => oathcsv::write(records, Dialect::PrivacyIdea),
        Format::PrivacyIdeaV2 => oathcsv::write(records, Dialect::PrivacyIdeaV2),
        Format::LinOtp => oathcsv::write(records, Dialect::LinOtp),
        Format::Otpauth => otpauth::write(records),
        Format::Google => otpauth::write_migration(records, options.batch_id),
        Format::Oathdesk => canonical::write(records),
    }
}

/// What writing `records` as `format` loses without leaving a record out:
/// the fields the format has no place for (an Aegis vault keeps no serial
/// or user). One note per kind of loss, with how many records it touches.
pub fn write_notes(format: Format, records: &[Record]) -> Vec<String> {
    let app = matches!(
        format,
        Format::Aegis | Format::TwoFas | Format::AndOtp | Format::Otpauth | Format::Google
    );
    if !app {
        return Vec::new();
    }
    type Has = fn(&Record) -> bool;
    let fields: [(&str, Has); 5] = [
        ("serial", |r| r.serial.is_some()),
        ("slot", |r| r.slot.is_some()),
        ("manufacturer", |r| r.manufacturer.is_some()),
        ("model", |r| r.model.is_some()),
        ("user", |r| r.user.is_some()),
    ];
    let dropped: Vec<&str> = fields
        .iter()
        .filter(|(_, has)| records.iter().any(has))
        .map(|(name, _)| *name)
        .collect();
    if dropped.is_empty() {
        return Vec::new();
    }
    let touched = records
        .iter()
        .filter(|r| fields.iter().any(|(_, has)| has(r)))
        .count();
    vec![format!(
        "{format} files have no place for a token's {}: dropped from {touched} record(s); \
         write pskc or oathdesk to keep them",
        dropped.join(", ")
    )]
}

/// Guesses the format from the content, or says why it cannot.
pub fn detect(bytes: &[u8]) -> Result<Format, FormatError> {
    let candidates = candidates(bytes);
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => Err(FormatError::new(format!(
            "cannot tell the file's format; name it with --from ({})",
            Format::names()
        ))),
        many => Err(FormatError::new(format!(
            "the file could be {}; name it with --from",
            many.iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
    }
}

/// The formats `bytes` could be.
pub fn candidates(bytes: &[u8]) -> Vec<Format> {
    let commas = crate::comma_separated(bytes);
    let bytes = commas.as_deref().map_or(bytes, Vec::as_slice);
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let trimmed = head.trim_start();
    let raw_first_line = trimmed.lines().next().unwrap_or_default();
    let first_line = raw_first_line.to_ascii_lowercase();
    let folded_header = first_line.replace(['"', ' ', '_'], "");
    let mut found = Vec::new();
    if trimmed.starts_with('<') && head.contains("KeyContainer") {
        found.push(Format::Pskc);
        return found;
    }
    // oathdesk JSON and a plain andOTP backup are both arrays of objects
    // with `secret` and `type`; the canonical form is strict (unknown fields
    // are errors), so reading it is the test.
    if trimmed.starts_with('[') && canonical::read(bytes).is_ok() {
        found.push(Format::Oathdesk);
        return found;
    }
    for (format, looks) in [
        (Format::Aegis, aegis::looks_like as fn(&[u8]) -> bool),
        (Format::TwoFas, twofas::looks_like),
        (Format::AndOtp, andotp::looks_like),
    ] {
        if looks(bytes) {
            found.push(format);
        }
    }
    if !found.is_empty() {
        return found;
    }
    if folded_header.starts_with("upn,serialnumber,secretkey") {
        found.push(Format::EntraCsv);
    } else if trimmed.starts_with('[') || trimmed.starts_with('{') {
        if head.contains("\"secretKey\"") || head.contains("\"serialNumber\"") {
            found.push(Format::EntraJson);
        } else if trimmed.starts_with('[')
            && head.contains("\"secret\"")
            && head.contains("\"type\"")
        {
            found.push(Format::Oathdesk);
        }
    } else if first_line.starts_with("otpauth-migration:") {
        found.push(Format::Google);
    } else if first_line.starts_with("otpauth:")
        || first_line.starts_with('#') && head.contains("otpauth")
    {
        found.push(Format::Otpauth);
    } else if first_line.replace(' ', "") == "#version:2" {
        found.push(Format::PrivacyIdeaV2);
    } else if first_line.split(',').count() >= 2 {
        let fields: Vec<&str> = first_line.split(',').map(str::trim).collect();
        let hex_seed = fields
            .get(1)
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()));
        if hex_seed {
            let has_hash_column = fields
                .get(5)
                .is_some_and(|h| matches!(*h, "sha1" | "sha256" | "sha512"));
            let raw_fields: Vec<&str> = raw_first_line.split(',').map(str::trim).collect();
            let lower_type = raw_fields
                .get(2)
                .is_some_and(|t| matches!(*t, "hotp" | "totp"));
            if has_hash_column {
                found.push(Format::LinOtp);
            } else if lower_type {
                // privacyIDEA writes TOTP/HOTP in capitals, LinOTP in lower case.
                found.push(Format::PrivacyIdea);
                found.push(Format::LinOtp);
            } else {
                found.push(Format::PrivacyIdea);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_detection() {
        assert_eq!("Entra".parse::<Format>().unwrap(), Format::EntraCsv);
        assert_eq!("linotp".parse::<Format>().unwrap(), Format::LinOtp);
        assert!(
            "excel"
                .parse::<Format>()
                .unwrap_err()
                .to_string()
                .contains("entra-csv")
        );
        assert_eq!(
            detect(b"upn,serial number,secret key,time interval,manufacturer,model\n").unwrap(),
            Format::EntraCsv
        );
        assert_eq!(
            detect(b"\"UPN\",\"Serial Number\",\"Secret Key\",\"Time Interval\"\n").unwrap(),
            Format::EntraCsv
        );
        assert_eq!(
            detect(b"otpauth://totp/x?secret=AA\n").unwrap(),
            Format::Otpauth
        );
        assert_eq!(
            detect(b"otpauth-migration://offline?data=AA\n").unwrap(),
            Format::Google
        );
        assert_eq!(
            detect(b"# version: 2\na,b,c,S,3132,TOTP\n").unwrap(),
            Format::PrivacyIdeaV2
        );
        assert_eq!(
            detect(b"S1, 3132, TOTP, 6, 30\n").unwrap(),
            Format::PrivacyIdea
        );
        assert_eq!(
            detect(b"S1, 3132, totp, 6, 30, sha1\n").unwrap(),
            Format::LinOtp
        );
        let err = detect(b"S1, 3132, totp, 6, 30\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the file could be privacyidea or linotp; name it with --from"
        );
        assert_eq!(
            detect(br#"{"value":[{"serialNumber":"1","secretKey":"AA"}]}"#).unwrap(),
            Format::EntraJson
        );
        assert_eq!(
            detect(br#"[{"type":"totp","secret":"AA"}]"#).unwrap(),
            Format::Oathdesk
        );
        assert!(detect(b"hello").is_err());
    }
}
