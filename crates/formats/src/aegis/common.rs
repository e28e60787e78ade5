//! Helpers shared by the authenticator-app formats ([`crate::aegis`],
//! [`crate::twofas`], [`crate::andotp`]): JSON fields with located errors,
//! credentials, AES-256-GCM, randomness and the messages about passwords.

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::record::{FormatError, Keys, Location, Read, Record, Skipped, Written};

/// The message for an encrypted file read without a password.
pub(crate) fn missing_password() -> FormatError {
    FormatError::new(
        "the file is encrypted: give its password with --password-file FILE or the \
         environment variable OATHDESK_FILE_PASSWORD",
    )
}

/// The message when the authentication tag does not verify.
pub(crate) fn wrong_password() -> FormatError {
    FormatError::new("wrong password (or the file is damaged): the AES-GCM tag does not verify")
}

/// The password from `keys`, or the message saying how to give one.
pub(crate) fn password(keys: &Keys) -> Result<&[u8], FormatError> {
    keys.password
        .as_ref()
        .map(|p| p.as_bytes())
        .ok_or_else(missing_password)
}

/// Refuses to encrypt under an empty password.
pub(crate) fn check_new_password(password: &str) -> Result<(), FormatError> {
    if password.is_empty() {
        return Err(FormatError::new(
            "the password is empty; give a password or write the file plain",
        ));
    }
    Ok(())
}

/// AES-256-GCM decryption of `ciphertext ‖ tag`; `None` when the tag
/// does not verify or the sizes are wrong.
pub(crate) fn open(key: &[u8; 32], nonce: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if nonce.len() != 12 || sealed.len() < 16 {
        return None;
    }
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .decrypt(Nonce::from_slice(nonce), sealed)
        .ok()
        .map(Zeroizing::new)
}

/// AES-256-GCM encryption; returns `ciphertext ‖ tag`.
pub(crate) fn seal(key: &[u8; 32], nonce: &[u8; 12], plain: &[u8]) -> Result<Vec<u8>, FormatError> {
    let cipher = Aes256Gcm::new_from_slice(key)
        .map_err(|_| FormatError::new("AES-256-GCM key setup failed"))?;
    cipher
        .encrypt(Nonce::from_slice(nonce), plain)
        .map_err(|_| FormatError::new("AES-256-GCM encryption failed"))
}

/// Bytes from the operating system's random number generator.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], FormatError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        FormatError::new(format!(
            "the operating system's random number generator failed: {e}"
        ))
    })?;
    Ok(bytes)
}

/// A random (version 4) UUID in its usual text form.
pub(crate) fn uuid_v4() -> Result<String, FormatError> {
    let mut b = random::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = data_encoding::HEXLOWER.encode(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Standard or URL-safe Base64, padded or not, whitespace ignored.
pub(crate) fn base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let unpadded = compact.trim_end_matches('=');
    let engine = if unpadded.contains(['-', '_']) {
        &data_encoding::BASE64URL_NOPAD
    } else {
        &data_encoding::BASE64_NOPAD
    };
    engine.decode(unpadded.as_bytes()).ok()
}

pub(crate) fn check_nonce(obj: &Obj<'_>, field: &str, nonce: &[u8]) -> Result<(), FormatError> {
    if nonce.len() != 12 {
        return Err(obj.error(
            field,
            format!("the AES-GCM nonce must be 12 bytes, not {}", nonce.len()),
        ));
    }
    Ok(())
}

pub(crate) fn check_tag(obj: &Obj<'_>, field: &str, tag: &[u8]) -> Result<(), FormatError> {
    if tag.len() != 16 {
        return Err(obj.error(
            field,
            format!("the AES-GCM tag must be 16 bytes, not {}", tag.len()),
        ));
    }
    Ok(())
}

pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Whether the first non-whitespace byte is `first`.
pub(crate) fn starts_with(bytes: &[u8], first: u8) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&first)
}

/// Parses JSON, reporting the line and column of a syntax error.
pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Value, FormatError> {
    serde_json::from_slice(strip_bom(bytes)).map_err(|e| {
        let location = if e.line() > 0 {
            Location::line(e.line() as u64)
        } else {
            Location::default()
        };
        FormatError::at(
            location,
            format!("not {what}: the JSON does not parse ({e})"),
        )
    })
}

/// Overwrites every string of a JSON value (secrets included) before it
/// is dropped.
pub(crate) fn wipe(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

/// Serialises a file and wipes the value.
pub(crate) fn finish(mut file: Value, skipped: Vec<Skipped>) -> Result<Written, FormatError> {
    let bytes = serde_json::to_vec_pretty(&file);
    wipe(&mut file);
    let mut bytes = bytes.map_err(|e| FormatError::new(format!("cannot encode: {e}")))?;
    bytes.push(b'\n');
    Ok(Written { bytes, skipped })
}

/// Why a record cannot go into an app's file.
pub(crate) struct Unsupported(String);

impl Unsupported {
    pub(crate) fn at(self, index: usize, record: &Record) -> Skipped {
        Skipped {
            index,
            reference: record.reference(index),
            reason: self.0,
        }
    }
}

/// What stops `record` from going into `app`'s file, if anything.
pub(crate) fn unsupported(record: &Record, app: &str) -> Option<Unsupported> {
    let credential = &record.credential;
    if credential.secret.is_empty() {
        return Some(Unsupported("it has no secret".into()));
    }
    match credential.kind {
        Kind::Totp { step } if step.t0() != 0 => Some(Unsupported(format!(
            "its TOTP start time T0 is {}; {app} counts time steps from 0 only",
            step.t0()
        ))),
        Kind::Totp { step } if step.period() > i32::MAX as u64 => Some(Unsupported(format!(
            "its period of {} s is beyond what {app} stores",
            step.period()
        ))),
        Kind::Hotp { counter } if counter > i64::MAX as u64 => Some(Unsupported(format!(
            "its counter is beyond what {app} stores (2^63 - 1)"
        ))),
        _ => None,
    }
}

/// What an entry of a kind oathdesk does not handle is, e.g. "a Steam
/// entry".
fn unsupported_what(kind: &str) -> String {
    match kind.to_ascii_lowercase().as_str() {
        "steam" => "a Steam entry".to_owned(),
        "yandex" => "a Yandex entry".to_owned(),
        "motp" => "an mOTP entry".to_owned(),
        _ => format!("an entry of unknown type {}", quote(kind)),
    }
}

/// An entry of a kind oathdesk does not handle, left out of the read:
/// its position, issuer and account, and why (never its secret).
pub(crate) fn skipped_entry(
    obj: &Obj<'_>,
    index: usize,
    kind: &str,
    issuer: Option<&str>,
    account: Option<&str>,
) -> Skipped {
    let place = obj
        .location()
        .describe()
        .unwrap_or_else(|| format!("entry {}", index + 1));
    let named: Vec<String> = [("issuer", issuer), ("account", account)]
        .into_iter()
        .filter_map(|(what, text)| {
            text.filter(|t| !t.is_empty())
                .map(|t| format!("{what} {}", quote(t)))
        })
        .collect();
    let reference = if named.is_empty() {
        place
    } else {
        format!("{place} ({})", named.join(", "))
    };
    let hint = if kind.eq_ignore_ascii_case("steam") {
        " (show its codes with 'oathdesk code --steam')"
    } else {
        ""
    };
    Skipped {
        index,
        reference,
        reason: format!(
            "{}; oathdesk handles TOTP and HOTP only{hint}",
            unsupported_what(kind)
        ),
    }
}

/// The records of a read that must hold every entry: the first entry
/// left out is an error at its place, e.g. "entries[3]: a Steam entry;
/// oathdesk handles TOTP and HOTP only".
pub(crate) fn strict(read: Read, array: &str) -> Result<Vec<Record>, FormatError> {
    match read.skipped.first() {
        None => Ok(read.records),
        Some(skipped) => {
            let reason = skipped
                .reason
                .split_once(" (show its codes")
                .map_or(skipped.reason.as_str(), |(reason, _)| reason);
            Err(FormatError::at(
                Location::element(format!("{array}[{}]", skipped.index)),
                reason,
            ))
        }
    }
}

/// A short, escaped rendering of a non-secret value for a message.
pub(crate) fn quote(text: &str) -> String {
    let short: String = text.chars().take(32).collect();
    let ellipsis = if short.len() < text.len() { "…" } else { "" };
    format!("{:?}{ellipsis}", short)
}

pub(crate) fn hotp(counter: u64) -> Kind {
    Kind::Hotp { counter }
}

pub(crate) fn totp(obj: &Obj<'_>, field: &str, period: u64) -> Result<Kind, FormatError> {
    TimeStep::new(period, 0)
        .map(|step| Kind::Totp { step })
        .map_err(|e| obj.error(field, e.to_string()))
}

/// A credential from an entry's fields; errors name the field in `obj`
/// (the object holding the secret).
pub(crate) fn credential(
    obj: &Obj<'_>,
    secret: &str,
    algorithm: &str,
    digits: u64,
    kind: Kind,
    issuer: Option<&str>,
    account: &str,
) -> Result<Credential, FormatError> {
    credential_named(
        obj,
        ["secret", "algo", "digits"],
        secret,
        algorithm,
        digits,
        kind,
        issuer,
        account,
    )
}

/// [`credential`] with the format's field names for secret, algorithm
/// and digits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn credential_named(
    obj: &Obj<'_>,
    fields: [&str; 3],
    secret: &str,
    algorithm: &str,
    digits: u64,
    kind: Kind,
    issuer: Option<&str>,
    account: &str,
) -> Result<Credential, FormatError> {
    let [secret_field, algorithm_field, digits_field] = fields;
    let secret =
        Secret::from_base32(secret).map_err(|e| obj.error(secret_field, crate::secret_hint(e)))?;
    let algorithm = algorithm.parse::<Algorithm>().map_err(|_| {
        obj.error(
            algorithm_field,
            format!(
                "the algorithm {} is not supported; oathdesk handles SHA1, SHA256 and SHA512",
                quote(algorithm)
            ),
        )
    })?;
    let digits = Digits::new(digits).map_err(|e| obj.error(digits_field, e.to_string()))?;
    Ok(Credential {
        secret,
        kind,
        algorithm,
        digits,
        issuer: issuer.filter(|i| !i.is_empty()).map(str::to_owned),
        account: account.to_owned(),
        label_issuer: None,
    })
}

/// A JSON object with the place it sits, so that errors say where.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    location: Location,
    /// Prefix of field names in messages, e.g. `info.`.
    path: String,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>, location: Location, path: &str) -> Obj<'a> {
        let mut path = path.to_owned();
        if !path.is_empty() && !path.ends_with('.') {
            path.push('.');
        }
        Obj {
            map,
            location,
            path,
        }
    }

    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// An error about `field` of this object.
    pub(crate) fn error(&self, field: &str, message: impl Into<String>) -> FormatError {
        FormatError::at(self.location.clone(), message).field(format!("{}{field}", self.path))
    }

    /// A field, `null` counting as absent.
    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub(crate) fn str_opt(&self, field: &str) -> Result<Option<&'a str>, FormatError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.error(field, "must be text")),
        }
    }

    pub(crate) fn str_req(&self, field: &str) -> Result<&'a str, FormatError> {
        self.str_opt(field)?
            .ok_or_else(|| self.error(field, "is missing"))
    }

    /// A whole number ≥ 0, written as a JSON number or as digits in a
    /// string.
    pub(crate) fn uint_opt(&self, field: &str) -> Result<Option<u64>, FormatError> {
        let bad = || self.error(field, "must be a whole number, 0 or more");
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(number)) => {
                if let Some(value) = number.as_u64() {
                    Ok(Some(value))
                } else {
                    match number.as_f64() {
                        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
                        _ => Err(bad()),
                    }
                }
            }
            Some(Value::String(text)) => text.trim().parse::<u64>().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    pub(crate) fn uint_req(&self, field: &str) -> Result<u64, FormatError> {
        self.uint_opt(field)?
            .ok_or_else(|| self.error(field, "is missing"))
    }

    pub(crate) fn obj_opt(&self, field: &str) -> Result<Option<Obj<'a>>, FormatError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj::new(
                map,
                self.location.clone(),
                &format!("{}{field}", self.path),
            ))),
            Some(_) => Err(self.error(field, "must be an object")),
        }
    }

    pub(crate) fn obj_req(&self, field: &str) -> Result<Obj<'a>, FormatError> {
        self.obj_opt(field)?
            .ok_or_else(|| self.error(field, "is missing"))
    }

    pub(crate) fn array_req(&self, field: &str) -> Result<&'a Vec<Value>, FormatError> {
        match self.get(field) {
            None => Err(self.error(field, "is missing")),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.error(field, "must be an array")),
        }
    }
}
