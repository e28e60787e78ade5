//! 2FAS Authenticator backups (`*.2fas`).
//!
//! `{"schemaVersion":N,"services":[{"name","secret","otp":{"issuer","account",
//! "digits","period","algorithm","tokenType","counter"},…}],…}`. An encrypted
//! backup has `"services":[]` and `"servicesEncrypted":"A:B:C"`: Base64 of
//! the AES-256-GCM ciphertext with its tag, of the salt and of the 12-byte
//! IV; the key is PBKDF2-HMAC-SHA256(password, salt, 10,000 iterations).
//! Its `reference` field is a known text encrypted the same way, which the
//! 2FAS app decrypts to check a password; it is written, not needed to read.
//!
//! Schema 1 and 2 services have no `tokenType` and are TOTP. A missing
//! `otp.issuer` falls back to the service `name` (unless that is just the
//! account). Steam services make the whole read fail, naming the service.
//!
//! Written backups are schema 4 (what 2FAS 5 writes and Aegis imports):
//! plain with `services`, or encrypted with `services: []`,
//! `servicesEncrypted` and `reference`.

use oathdesk_otp::{Credential, Kind};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::aegis::common::{self, Obj};
use crate::record::{FormatError, Keys, Location, Read, Record, Skipped, Written, check_size};

/// PBKDF2-HMAC-SHA256 iterations, fixed by the format.
const ITERATIONS: u32 = 10_000;
/// The schema version written.
const SCHEMA_VERSION: u64 = 4;
/// Salt length written (what the 2FAS app uses).
const SALT_LEN: usize = 256;
/// Largest salt accepted from a file.
const MAX_SALT_LEN: usize = 4096;
/// The text the 2FAS app encrypts into `reference` and decrypts to check a
/// password (as found in 2FAS's own encrypted backups).
const REFERENCE: &str = "tRViSsLKzd86Hprh4ceC2OP7xazn4rrt4xhfEUbOjxLX8Rc3mkISXE0lWbmnWfggogbBJhtYgpK6fMl1D6mtsy92R3HkdGfwuXbzLebqVFJsR7IZ2w58t938iymwG4824igYy1wi6n2WDpO1Q1P69zwJGs2F5a1qP4MyIiDSD7NCV2OvidXQCBnDlGfmz0f1BQySRkkt4ryiJeCjD2o4QsveJ9uDBUn8ELyOrESv5R5DMDkD4iAF8TXU7KyoJujd";

/// Reads every service of a plain or encrypted backup; a Steam service is
/// an error. See [`read_all`] to read the others and list those.
pub fn read(bytes: &[u8], keys: &Keys) -> Result<Vec<Record>, FormatError> {
    common::strict(read_all(bytes, keys)?, "services")
}

/// Reads every TOTP and HOTP service of a plain or encrypted backup, and
/// lists the services of other kinds (Steam) with their place, issuer and
/// reason.
pub fn read_all(bytes: &[u8], keys: &Keys) -> Result<Read, FormatError> {
    let mut services = services(bytes, keys)?;
    let read = records(&services);
    common::wipe(&mut services);
    read
}

/// Writes a schema-4 backup: plain with `None`, encrypted with `Some`.
/// Records 2FAS cannot hold (a TOTP start time other than 0, an empty
/// secret) are left out and listed in [`Written::skipped`].
pub fn write(records: &[Record], password: Option<&str>) -> Result<Written, FormatError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut services = Vec::with_capacity(records.len());
    let mut skipped = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match common::unsupported(record, "2FAS") {
            Some(skip) => skipped.push(skip.at(index, record)),
            None => services.push(service_json(&record.credential, services.len(), now)),
        }
    }
    let mut file = json!({
        "services": [],
        "groups": [],
        "updatedAt": now,
        "schemaVersion": SCHEMA_VERSION,
        "appVersionCode": 5000009,
        "appVersionName": "5.1.0",
        "appOrigin": "android",
    });
    let mut services = Value::Array(services);
    match password {
        None => file["services"] = services,
        Some(password) => {
            let encrypted = encrypt(&services, password);
            common::wipe(&mut services);
            let (services_encrypted, reference) = encrypted?;
            file["servicesEncrypted"] = services_encrypted.into();
            file["reference"] = reference.into();
        }
    }
    common::finish(file, skipped)
}

/// True when `bytes` is JSON with the shape of a 2FAS backup (an object with
/// `schemaVersion` and `services` or `servicesEncrypted`).
pub fn looks_like(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Sniff {
        schema_version: Option<serde::de::IgnoredAny>,
        services: Option<serde::de::IgnoredAny>,
        services_encrypted: Option<serde::de::IgnoredAny>,
    }
    let bytes = common::strip_bom(bytes);
    if bytes.len() > crate::record::MAX_INPUT_BYTES || !common::starts_with(bytes, b'{') {
        return false;
    }
    match serde_json::from_slice::<Sniff>(bytes) {
        Ok(sniff) => {
            sniff.schema_version.is_some()
                && (sniff.services.is_some() || sniff.services_encrypted.is_some())
        }
        Err(_) => false,
    }
}

/// The services array as JSON text, decrypted when the backup is encrypted
/// (conformance tests and debugging; never logged).
#[doc(hidden)]
pub fn decrypt(bytes: &[u8], keys: &Keys) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let mut services = services(bytes, keys)?;
    let text = serde_json::to_vec(&services).map_err(|e| FormatError::new(e.to_string()));
    common::wipe(&mut services);
    text.map(Zeroizing::new)
}

/// The services array, decrypted when needed.
fn services(bytes: &[u8], keys: &Keys) -> Result<Value, FormatError> {
    check_size(bytes)?;
    let mut file = common::parse(bytes, "a 2FAS backup")?;
    let result = services_of(&file, keys);
    common::wipe(&mut file);
    result
}

fn services_of(file: &Value, keys: &Keys) -> Result<Value, FormatError> {
    let Value::Object(map) = file else {
        return Err(FormatError::new(
            "not a 2FAS backup: expected a JSON object with schemaVersion and services",
        ));
    };
    let top = Obj::new(map, Location::default(), "");
    top.uint_opt("schemaVersion")?;
    let Some(encrypted) = top.str_opt("servicesEncrypted")? else {
        let services = top.array_req("services")?;
        return Ok(Value::Array(services.clone()));
    };
    let password = common::password(keys)?;
    let field = "servicesEncrypted";
    let parts: Vec<&str> = encrypted.split(':').collect();
    let [ciphertext, salt, iv] = parts.as_slice() else {
        return Err(top.error(
            field,
            format!(
                "must be three Base64 parts separated by ':' (ciphertext:salt:iv), not {}",
                parts.len()
            ),
        ));
    };
    let decode = |text: &str, what: &str| {
        common::base64(text)
            .ok_or_else(|| top.error(field, format!("the {what} part is not Base64")))
    };
    let sealed = decode(ciphertext, "ciphertext")?;
    let salt = decode(salt, "salt")?;
    let iv = decode(iv, "IV")?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(top.error(
            field,
            format!(
                "the salt has {} bytes; 1 to {MAX_SALT_LEN} are accepted",
                salt.len()
            ),
        ));
    }
    common::check_nonce(&top, field, &iv)?;
    if sealed.len() < 16 {
        return Err(top.error(field, "the ciphertext is shorter than an AES-GCM tag"));
    }
    let key = derive(password, &salt);
    let plain = common::open(&key, &iv, &sealed).ok_or_else(common::wrong_password)?;
    let services = serde_json::from_slice::<Value>(&plain).map_err(|e| {
        top.error(
            field,
            format!("the decrypted services are not valid JSON ({e}); the file is damaged"),
        )
    })?;
    if !services.is_array() {
        let mut services = services;
        common::wipe(&mut services);
        return Err(top.error(field, "the decrypted services are not a JSON array"));
    }
    Ok(services)
}

fn derive(password: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ITERATIONS, key.as_mut_slice());
    key
}

fn records(services: &Value) -> Result<Read, FormatError> {
    let Value::Array(services) = services else {
        return Err(FormatError::new("services must be an array").field("services"));
    };
    let mut read = Read::default();
    for (index, service) in services.iter().enumerate() {
        let location = Location::element(format!("services[{index}]"));
        let Value::Object(map) = service else {
            return Err(FormatError::at(location, "must be an object"));
        };
        match service_record(Obj::new(map, location, ""), index)? {
            Ok(record) => read.records.push(record),
            Err(skipped) => read.skipped.push(skipped),
        }
    }
    Ok(read)
}

fn service_record(service: Obj<'_>, index: usize) -> Result<Result<Record, Skipped>, FormatError> {
    let empty = Map::new();
    let otp = service
        .obj_opt("otp")?
        .unwrap_or_else(|| Obj::new(&empty, service.location().clone(), "otp"));
    let hotp = match otp.str_opt("tokenType")? {
        None => false,
        Some(kind) if kind.eq_ignore_ascii_case("totp") => false,
        Some(kind) if kind.eq_ignore_ascii_case("hotp") => true,
        Some(kind) => {
            return Ok(Err(common::skipped_entry(
                &otp,
                index,
                kind,
                otp.str_opt("issuer")
                    .ok()
                    .flatten()
                    .or(service.str_opt("name").ok().flatten()),
                otp.str_opt("account").ok().flatten(),
            )));
        }
    };
    let secret = service.str_req("secret")?;
    let algorithm = otp.str_opt("algorithm")?.unwrap_or("SHA1");
    let digits = otp.uint_opt("digits")?.unwrap_or(6);
    let kind = if hotp {
        common::hotp(otp.uint_opt("counter")?.unwrap_or(0))
    } else {
        common::totp(&otp, "period", otp.uint_opt("period")?.unwrap_or(30))?
    };
    let account = match otp.str_opt("account")? {
        Some(account) => account,
        None => otp.str_opt("label")?.unwrap_or_default(),
    };
    let name = service
        .str_opt("name")?
        .filter(|n| !n.is_empty() && *n != account);
    let issuer = otp.str_opt("issuer")?.filter(|i| !i.is_empty()).or(name);
    let credential = common::credential_named(
        &service,
        ["secret", "otp.algorithm", "otp.digits"],
        secret,
        algorithm,
        digits,
        kind,
        issuer,
        account,
    )?;
    let mut record = Record::new(credential);
    record.location = service.location().clone();
    Ok(Ok(record))
}

fn service_json(credential: &Credential, position: usize, now: u64) -> Value {
    let mut otp = Map::new();
    otp.insert("label".into(), credential.account.clone().into());
    otp.insert("account".into(), credential.account.clone().into());
    if let Some(issuer) = &credential.issuer {
        otp.insert("issuer".into(), issuer.clone().into());
    }
    otp.insert("digits".into(), credential.digits.get().into());
    otp.insert("algorithm".into(), credential.algorithm.uri_name().into());
    match credential.kind {
        Kind::Totp { step } => {
            otp.insert("period".into(), step.period().into());
            otp.insert("tokenType".into(), "TOTP".into());
        }
        Kind::Hotp { counter } => {
            otp.insert("counter".into(), counter.into());
            otp.insert("tokenType".into(), "HOTP".into());
        }
    }
    otp.insert("source".into(), "Manual".into());
    let name = credential
        .issuer
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| credential.account.clone());
    json!({
        "name": name,
        "secret": credential.secret.to_base32().to_string(),
        "updatedAt": now,
        "otp": otp,
        "order": { "position": position },
    })
}

/// `servicesEncrypted` and `reference`: one salt and key, two IVs.
fn encrypt(services: &Value, password: &str) -> Result<(String, String), FormatError> {
    common::check_new_password(password)?;
    let plain = Zeroizing::new(
        serde_json::to_vec(services)
            .map_err(|e| FormatError::new(format!("cannot encode: {e}")))?,
    );
    let salt = common::random::<SALT_LEN>()?;
    let key = derive(password.as_bytes(), &salt);
    let part = |plain: &[u8]| -> Result<String, FormatError> {
        let iv = common::random::<12>()?;
        let sealed = common::seal(&key, &iv, plain)?;
        let b64 = |bytes: &[u8]| data_encoding::BASE64.encode(bytes);
        Ok(format!("{}:{}:{}", b64(&sealed), b64(&salt), b64(&iv)))
    };
    Ok((part(&plain)?, part(REFERENCE.as_bytes())?))
}
