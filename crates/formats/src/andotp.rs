//! andOTP backups (`otp_accounts.json`, `otp_accounts.json.aes`).
//!
//! Plain: a JSON array of `{"secret","issuer","label","digits","type":
//! "TOTP"|"HOTP"|"STEAM","algorithm","period"|"counter","thumbnail","tags",…}`.
//! Without `issuer`, a label `Issuer - account` is split as andOTP's older
//! versions wrote it.
//!
//! Encrypted ("new format", andOTP 0.6.3 and later): a 4-byte big-endian
//! PBKDF2 iteration count, a 12-byte salt, a 12-byte AES-GCM nonce, then the
//! AES-256-GCM ciphertext of the plain JSON with its 16-byte tag; the key is
//! PBKDF2-HMAC-SHA1(password, salt, iterations). The file has no magic
//! number: text starting with `[` is read as plain, anything else as
//! encrypted. The older SHA-256(password) format is not read.
//!
//! Written backups use a random iteration count in andOTP's own range,
//! 140,000 to 160,000.

use oathdesk_otp::{Credential, Kind};
use serde_json::{Map, Value, json};
use sha1::Sha1;
use zeroize::Zeroizing;

use crate::aegis::common::{self, Obj};
use crate::record::{FormatError, Keys, Location, Read, Record, Skipped, Written, check_size};

const ITERATIONS_LEN: usize = 4;
const SALT_LEN: usize = 12;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = ITERATIONS_LEN + SALT_LEN + NONCE_LEN;
/// andOTP's range of PBKDF2 iterations for backups.
const MIN_ITERATIONS: u32 = 140_000;
const MAX_ITERATIONS: u32 = 160_000;
/// Most iterations accepted from a file: over six times andOTP's most, so
/// more means it is not an andOTP backup, or a hostile one (Aegis's importer
/// allows 10,000,000, which costs ten seconds; the fuzzer found such files).
const MAX_FILE_ITERATIONS: u32 = 1_000_000;

/// Reads every entry of a plain or encrypted backup; a Steam entry is an
/// error. See [`read_all`] to read the others and list those.
pub fn read(bytes: &[u8], keys: &Keys) -> Result<Vec<Record>, FormatError> {
    common::strict(read_all(bytes, keys)?, "entries")
}

/// Reads every TOTP and HOTP entry of a plain or encrypted backup, and lists
/// the entries of other kinds (Steam) with their place, issuer and reason.
pub fn read_all(bytes: &[u8], keys: &Keys) -> Result<Read, FormatError> {
    let mut entries = entries(bytes, keys)?;
    let read = records(&entries);
    common::wipe(&mut entries);
    read
}

/// Writes a backup: plain JSON with `None`, encrypted with `Some`.
/// Records andOTP cannot hold (a TOTP start time other than 0, an empty
/// secret) are left out and listed in [`Written::skipped`].
pub fn write(records: &[Record], password: Option<&str>) -> Result<Written, FormatError> {
    let iterations = match password {
        Some(_) => {
            let random = u32::from_be_bytes(common::random::<4>()?);
            MIN_ITERATIONS + random % (MAX_ITERATIONS - MIN_ITERATIONS + 1)
        }
        None => 0,
    };
    write_with_iterations(records, password, iterations)
}

/// [`write`] with a chosen PBKDF2 iteration count (tests use a small one;
/// real files should use [`write`]).
#[doc(hidden)]
pub fn write_with_iterations(
    records: &[Record],
    password: Option<&str>,
    iterations: u32,
) -> Result<Written, FormatError> {
    let mut entries = Vec::with_capacity(records.len());
    let mut skipped = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match common::unsupported(record, "andOTP") {
            Some(skip) => skipped.push(skip.at(index, record)),
            None => entries.push(entry_json(&record.credential)),
        }
    }
    let array = Value::Array(entries);
    let Some(password) = password else {
        return common::finish(array, skipped);
    };
    let mut array = array;
    let plain = serde_json::to_vec(&array).map(Zeroizing::new);
    common::wipe(&mut array);
    let plain = plain.map_err(|e| FormatError::new(format!("cannot encode: {e}")))?;
    common::check_new_password(password)?;
    if iterations == 0 || iterations > MAX_FILE_ITERATIONS {
        return Err(FormatError::new(format!(
            "the PBKDF2 iteration count must be 1 to {MAX_FILE_ITERATIONS}"
        )));
    }
    let salt = common::random::<SALT_LEN>()?;
    let nonce = common::random::<NONCE_LEN>()?;
    let key = derive(password.as_bytes(), &salt, iterations);
    let sealed = common::seal(&key, &nonce, &plain)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + sealed.len());
    bytes.extend_from_slice(&iterations.to_be_bytes());
    bytes.extend_from_slice(&salt);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    Ok(Written { bytes, skipped })
}

/// True for a plain backup (a JSON array of objects with `secret` and
/// `type`, or `[]`) and for what looks like an encrypted one: at least
/// header and tag long, with a plausible iteration count (1 to 1,000,000)
/// in the first four bytes. The encrypted check is weak, since the format
/// has no magic number: try the other formats first.
pub fn looks_like(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[allow(dead_code)]
        secret: serde::de::IgnoredAny,
        #[allow(dead_code)]
        r#type: serde::de::IgnoredAny,
    }
    if bytes.len() > crate::record::MAX_INPUT_BYTES {
        return false;
    }
    let text = common::strip_bom(bytes);
    if common::starts_with(text, b'[') {
        return serde_json::from_slice::<Vec<Entry>>(text).is_ok();
    }
    encrypted_header(bytes).is_some()
}

/// The plain entries as JSON text, decrypted when the backup is encrypted
/// (conformance tests and debugging; never logged).
#[doc(hidden)]
pub fn decrypt(bytes: &[u8], keys: &Keys) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let mut entries = entries(bytes, keys)?;
    let text = serde_json::to_vec(&entries).map_err(|e| FormatError::new(e.to_string()));
    common::wipe(&mut entries);
    text.map(Zeroizing::new)
}

/// The iteration count when `bytes` can be an encrypted backup.
fn encrypted_header(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < HEADER_LEN + TAG_LEN {
        return None;
    }
    let iterations = u32::from_be_bytes(bytes[..ITERATIONS_LEN].try_into().ok()?);
    (1..=MAX_FILE_ITERATIONS)
        .contains(&iterations)
        .then_some(iterations)
}

fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, key.as_mut_slice());
    key
}

/// The entries array, decrypted when needed.
fn entries(bytes: &[u8], keys: &Keys) -> Result<Value, FormatError> {
    check_size(bytes)?;
    let text = common::strip_bom(bytes);
    if common::starts_with(text, b'[') {
        let value = common::parse(text, "an andOTP backup")?;
        return Ok(value);
    }
    if common::starts_with(text, b'{') {
        return Err(FormatError::new(
            "not an andOTP backup: a plain one is a JSON array, not an object",
        ));
    }
    if bytes.len() < HEADER_LEN + TAG_LEN {
        return Err(FormatError::new(format!(
            "not an andOTP backup: an encrypted one has at least {} bytes (iterations, salt, \
             nonce, tag); this has {}",
            HEADER_LEN + TAG_LEN,
            bytes.len()
        )));
    }
    let Some(iterations) = encrypted_header(bytes) else {
        return Err(FormatError::new(format!(
            "not an andOTP backup: the first four bytes of an encrypted one give the PBKDF2 \
             iteration count (andOTP writes {MIN_ITERATIONS}-{MAX_ITERATIONS}); these give \
             {}, outside 1-{MAX_FILE_ITERATIONS}",
            u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        )));
    };
    let password = common::password(keys)?;
    let salt = &bytes[ITERATIONS_LEN..ITERATIONS_LEN + SALT_LEN];
    let nonce = &bytes[ITERATIONS_LEN + SALT_LEN..HEADER_LEN];
    let sealed = &bytes[HEADER_LEN..];
    let key = derive(password, salt, iterations);
    let plain = common::open(&key, nonce, sealed).ok_or_else(common::wrong_password)?;
    let value = serde_json::from_slice::<Value>(&plain).map_err(|e| {
        FormatError::new(format!(
            "the decrypted backup is not valid JSON ({e}); the file is damaged"
        ))
    })?;
    Ok(value)
}

fn records(entries: &Value) -> Result<Read, FormatError> {
    let Value::Array(entries) = entries else {
        return Err(FormatError::new(
            "not an andOTP backup: the content must be a JSON array of entries",
        ));
    };
    let mut read = Read::default();
    for (index, entry) in entries.iter().enumerate() {
        let location = Location::element(format!("entries[{index}]"));
        let Value::Object(map) = entry else {
            return Err(FormatError::at(location, "must be an object"));
        };
        match entry_record(Obj::new(map, location, ""), index)? {
            Ok(record) => read.records.push(record),
            Err(skipped) => read.skipped.push(skipped),
        }
    }
    Ok(read)
}

fn entry_record(entry: Obj<'_>, index: usize) -> Result<Result<Record, Skipped>, FormatError> {
    let kind = entry.str_req("type")?;
    let hotp = if kind.eq_ignore_ascii_case("totp") {
        false
    } else if kind.eq_ignore_ascii_case("hotp") {
        true
    } else {
        return Ok(Err(common::skipped_entry(
            &entry,
            index,
            kind,
            entry.str_opt("issuer").ok().flatten(),
            entry.str_opt("label").ok().flatten(),
        )));
    };
    let secret = entry.str_req("secret")?;
    let algorithm = entry.str_req("algorithm")?;
    let digits = entry.uint_req("digits")?;
    let kind = if hotp {
        common::hotp(entry.uint_req("counter")?)
    } else {
        common::totp(&entry, "period", entry.uint_req("period")?)?
    };
    let label = entry.str_opt("label")?.unwrap_or_default();
    let (issuer, account) = match entry.str_opt("issuer")? {
        Some(issuer) => (Some(issuer), label),
        None => match label.split_once(" - ") {
            Some((issuer, account)) => (Some(issuer), account),
            None => (None, label),
        },
    };
    let credential = common::credential_named(
        &entry,
        ["secret", "algorithm", "digits"],
        secret,
        algorithm,
        digits,
        kind,
        issuer,
        account,
    )?;
    let mut record = Record::new(credential);
    record.location = entry.location().clone();
    Ok(Ok(record))
}

fn entry_json(credential: &Credential) -> Value {
    let mut entry = Map::new();
    entry.insert(
        "secret".into(),
        data_encoding::BASE32
            .encode(credential.secret.as_bytes())
            .into(),
    );
    entry.insert(
        "issuer".into(),
        credential.issuer.clone().unwrap_or_default().into(),
    );
    entry.insert("label".into(), credential.account.clone().into());
    entry.insert("digits".into(), credential.digits.get().into());
    entry.insert("algorithm".into(), credential.algorithm.uri_name().into());
    entry.insert("thumbnail".into(), "Default".into());
    entry.insert("last_used".into(), 0.into());
    entry.insert("used_frequency".into(), 0.into());
    entry.insert("tags".into(), json!([]));
    match credential.kind {
        Kind::Totp { step } => {
            entry.insert("type".into(), "TOTP".into());
            entry.insert("period".into(), step.period().into());
        }
        Kind::Hotp { counter } => {
            entry.insert("type".into(), "HOTP".into());
            entry.insert("counter".into(), counter.into());
        }
    }
    Value::Object(entry)
}
