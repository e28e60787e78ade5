//! Aegis Authenticator vaults (`aegis-export*.json`, Android, GPLv3 app).
//!
//! `{"version":1,"header":{"slots":…,"params":…},"db":…}`:
//! - plain: `header.slots` and `header.params` are `null` and `db` is the
//!   content object;
//! - encrypted: `db` is Base64 AES-256-GCM ciphertext under a random master
//!   key (nonce and tag in `header.params`, hex); each password slot
//!   (`type` 1) wraps that key with AES-256-GCM under
//!   scrypt(password, `salt`, `n`, `r`, `p`) (nonce and tag in
//!   `key_params`). Biometric slots (type 2) need the phone and are skipped.
//!
//! The content is `{"version":…,"entries":[{"type":"totp"|"hotp",…,"name",
//! "issuer","info":{"secret","algo","digits","period"|"counter"}}]}`; other
//! fields (icons, notes, groups, favourites) are ignored. Steam, Yandex and
//! mOTP entries make the whole read fail, naming the entry: an import is all
//! or nothing.
//!
//! Written vaults use the content version 1 that every Aegis release reads,
//! scrypt N = 2^15, r = 8, p = 1 (what Aegis itself uses) and fresh random
//! salt, nonces and master key.

use oathdesk_otp::{Credential, Kind};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::record::{FormatError, Keys, Location, Read, Record, Skipped, Written, check_size};
use common::{Obj, credential};

/// The vault file version this module reads and writes.
const FILE_VERSION: u64 = 1;
/// Aegis's scrypt cost: N = 2^15.
const LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// Largest scrypt N accepted from a file (2^20).
const MAX_LOG_N: u32 = 20;
/// Largest scrypt memory (128·r·N bytes) accepted from a file: 8 times what
/// Aegis uses.
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// Largest scrypt work (N·r·p) accepted from a file: 16 times Aegis's
/// (about a second in a release build).
const MAX_SCRYPT_WORK: u64 = 1 << 22;
/// Password slots tried at most (each costs one scrypt; Aegis writes one,
/// plus one for a separate backup password).
const MAX_PASSWORD_SLOTS: usize = 4;

/// Reads every entry of a plain or password-encrypted vault; an entry of
/// a kind oathdesk does not handle (Steam, Yandex, mOTP) is an error. See
/// [`read_all`] to read the others and list those.
pub fn read(bytes: &[u8], keys: &Keys) -> Result<Vec<Record>, FormatError> {
    common::strict(read_all(bytes, keys)?, "entries")
}

/// Reads every TOTP and HOTP entry of a plain or password-encrypted vault,
/// and lists the entries of other kinds (Steam, Yandex, mOTP) with their
/// place, issuer and reason. A damaged TOTP or HOTP entry is still an error.
pub fn read_all(bytes: &[u8], keys: &Keys) -> Result<Read, FormatError> {
    let mut content = content(bytes, keys)?;
    let read = records(&content);
    common::wipe(&mut content);
    read
}

/// Writes a vault: plain with `None`, password-encrypted with `Some`.
/// Records Aegis cannot hold (a TOTP start time other than 0, an empty
/// secret) are left out and listed in [`Written::skipped`].
pub fn write(records: &[Record], password: Option<&str>) -> Result<Written, FormatError> {
    write_with_log_n(records, password, LOG_N)
}

/// [`write`] with another scrypt cost N = 2^`log_n` (tests use a small one;
/// real files should use [`write`]).
#[doc(hidden)]
pub fn write_with_log_n(
    records: &[Record],
    password: Option<&str>,
    log_n: u8,
) -> Result<Written, FormatError> {
    let mut entries = Vec::with_capacity(records.len());
    let mut skipped = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match common::unsupported(record, "Aegis") {
            Some(skip) => skipped.push(skip.at(index, record)),
            None => entries.push(entry_json(&record.credential)?),
        }
    }
    let mut db = json!({ "version": 1, "entries": entries });
    let file = match password {
        None => json!({
            "version": FILE_VERSION,
            "header": { "slots": null, "params": null },
            "db": db,
        }),
        Some(password) => {
            let encrypted = encrypt(&db, password, log_n);
            common::wipe(&mut db);
            encrypted?
        }
    };
    common::finish(file, skipped)
}

/// True when `bytes` is JSON with the shape of an Aegis vault (an object
/// with `header` and `db`); plain or encrypted, no password needed.
pub fn looks_like(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Sniff {
        header: Option<serde::de::IgnoredAny>,
        db: Option<serde::de::IgnoredAny>,
    }
    let bytes = common::strip_bom(bytes);
    if bytes.len() > crate::record::MAX_INPUT_BYTES || !common::starts_with(bytes, b'{') {
        return false;
    }
    matches!(
        serde_json::from_slice::<Sniff>(bytes),
        Ok(Sniff {
            header: Some(_),
            db: Some(_)
        })
    )
}

/// The decrypted content (`db`) as JSON text, for conformance tests and
/// debugging; never logged.
#[doc(hidden)]
pub fn decrypt(bytes: &[u8], keys: &Keys) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let mut content = content(bytes, keys)?;
    let text = serde_json::to_vec(&content).map_err(|e| FormatError::new(e.to_string()));
    common::wipe(&mut content);
    text.map(Zeroizing::new)
}

/// The master key of an encrypted vault, unwrapped with the password (a
/// conformance check against Aegis's own test vault).
#[doc(hidden)]
pub fn master_key(bytes: &[u8], keys: &Keys) -> Result<Zeroizing<[u8; 32]>, FormatError> {
    check_size(bytes)?;
    let mut file = common::parse(bytes, "an Aegis vault")?;
    let key = top_object(&file).and_then(|top| {
        let header = header(&top)?.ok_or_else(|| FormatError::new("the vault is not encrypted"))?;
        unlock(&header, common::password(keys)?)
    });
    common::wipe(&mut file);
    key
}

/// The content object, decrypted when the vault is encrypted.
fn content(bytes: &[u8], keys: &Keys) -> Result<Value, FormatError> {
    check_size(bytes)?;
    let mut file = common::parse(bytes, "an Aegis vault")?;
    let result = content_of(&file, keys);
    common::wipe(&mut file);
    result
}

fn content_of(file: &Value, keys: &Keys) -> Result<Value, FormatError> {
    let top = top_object(file)?;
    if let Some(version) = top.uint_opt("version")?
        && version > FILE_VERSION
    {
        return Err(top.error(
            "version",
            format!(
                "vault file version {version} is newer than the version oathdesk reads \
                 ({FILE_VERSION}); export the vault again or update oathdesk"
            ),
        ));
    }
    let Some(header) = header(&top)? else {
        return match top.get("db") {
            Some(db @ Value::Object(_)) => Ok(db.clone()),
            Some(_) => Err(top.error(
                "db",
                "the header says the vault is plain, so db must be an object",
            )),
            None => Err(top.error("db", "is missing")),
        };
    };
    let password = common::password(keys)?;
    let ciphertext = top.str_req("db")?;
    let ciphertext = common::base64(ciphertext).ok_or_else(|| {
        top.error(
            "db",
            "is not Base64 (an encrypted vault's db is Base64 text)",
        )
    })?;
    let params = header.obj_req("params")?;
    let nonce = hex_field(&params, "nonce")?;
    let tag = hex_field(&params, "tag")?;
    common::check_nonce(&params, "nonce", &nonce)?;
    common::check_tag(&params, "tag", &tag)?;
    let master = unlock(&header, password)?;
    let mut sealed = ciphertext;
    sealed.extend_from_slice(&tag);
    let plain = common::open(&master, &nonce, &sealed).ok_or_else(|| {
        FormatError::new(
            "the file is damaged: the password unlocked the master key, but the AES-GCM tag \
             of db does not verify",
        )
        .field("db")
    })?;
    let content = serde_json::from_slice::<Value>(&plain).map_err(|e| {
        FormatError::new(format!(
            "the decrypted db is not valid JSON ({e}); the file is damaged"
        ))
        .field("db")
    })?;
    Ok(content)
}

fn top_object(file: &Value) -> Result<Obj<'_>, FormatError> {
    match file {
        Value::Object(map) => Ok(Obj::new(map, Location::default(), "")),
        _ => Err(FormatError::new(
            "not an Aegis vault: expected a JSON object with version, header and db",
        )),
    }
}

/// The header of an encrypted vault, or `None` for a plain one.
fn header<'a>(top: &Obj<'a>) -> Result<Option<Obj<'a>>, FormatError> {
    let header = top.obj_req("header")?;
    let plain = header.get("slots").is_none() && header.get("params").is_none();
    Ok((!plain).then_some(header))
}

/// Tries every password slot; the first whose tag verifies gives the key.
fn unlock(header: &Obj<'_>, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, FormatError> {
    let slots = header.array_req("slots")?;
    let mut password_slots = 0usize;
    let mut other_types = Vec::new();
    for (index, slot) in slots.iter().enumerate() {
        let field = format!("header.slots[{index}]");
        let Value::Object(map) = slot else {
            return Err(FormatError::new("must be an object").field(field));
        };
        let slot = Obj::new(map, Location::default(), &field);
        let kind = slot.uint_req("type")?;
        if kind != 1 {
            other_types.push(kind);
            continue;
        }
        password_slots += 1;
        if password_slots > MAX_PASSWORD_SLOTS {
            return Err(FormatError::new(format!(
                "the vault has more than {MAX_PASSWORD_SLOTS} password slots; refused"
            ))
            .field("header.slots"));
        }
        let params = scrypt_params(&slot)?;
        let salt = hex_field(&slot, "salt")?;
        let wrapped = hex_field(&slot, "key")?;
        let key_params = slot.obj_req("key_params")?;
        let nonce = hex_field(&key_params, "nonce")?;
        let tag = hex_field(&key_params, "tag")?;
        common::check_nonce(&key_params, "nonce", &nonce)?;
        common::check_tag(&key_params, "tag", &tag)?;
        let mut derived = Zeroizing::new([0u8; 32]);
        scrypt::scrypt(password, &salt, &params, derived.as_mut_slice())
            .map_err(|_| slot.error("n", "scrypt refused these parameters"))?;
        let mut sealed = wrapped;
        sealed.extend_from_slice(&tag);
        if let Some(master) = common::open(&derived, &nonce, &sealed) {
            let key: [u8; 32] = master.as_slice().try_into().map_err(|_| {
                slot.error(
                    "key",
                    format!(
                        "the unwrapped master key has {} bytes, not 32; the file is damaged",
                        master.len()
                    ),
                )
            })?;
            return Ok(Zeroizing::new(key));
        }
    }
    if password_slots == 0 {
        let kinds = if other_types.is_empty() {
            "none".to_owned()
        } else {
            other_types
                .iter()
                .map(|t| match t {
                    0 => "raw (type 0)".to_owned(),
                    2 => "biometric (type 2)".to_owned(),
                    other => format!("type {other}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(FormatError::new(format!(
            "the vault has no password slot (slots: {kinds}); in Aegis, export it with a \
             password or set one"
        ))
        .field("header.slots"));
    }
    Err(common::wrong_password())
}

/// scrypt parameters from a slot, refused when a hostile file asks for
/// more than a bounded amount of memory or work.
fn scrypt_params(slot: &Obj<'_>) -> Result<scrypt::Params, FormatError> {
    let n = slot.uint_req("n")?;
    let r = slot.uint_req("r")?;
    let p = slot.uint_req("p")?;
    if n < 2 || !n.is_power_of_two() {
        return Err(slot.error("n", format!("scrypt N must be a power of two, not {n}")));
    }
    let log_n = n.trailing_zeros();
    if log_n > MAX_LOG_N {
        return Err(slot.error(
            "n",
            format!("scrypt N = 2^{log_n} is above the 2^{MAX_LOG_N} oathdesk accepts; refused"),
        ));
    }
    if r == 0 || p == 0 {
        return Err(slot.error("r", "scrypt r and p must be at least 1"));
    }
    let memory = 128u64.saturating_mul(r).saturating_mul(n);
    let work = n.saturating_mul(r).saturating_mul(p);
    if memory > MAX_SCRYPT_MEMORY || work > MAX_SCRYPT_WORK {
        return Err(slot.error(
            "r",
            format!(
                "scrypt N = {n}, r = {r}, p = {p} needs more memory or work than oathdesk \
                 allows for a file (Aegis uses N = 32768, r = 8, p = 1); refused"
            ),
        ));
    }
    // The bounds above keep r and p far below u32::MAX.
    scrypt::Params::new(log_n as u8, r as u32, p as u32, 32)
        .map_err(|_| slot.error("n", "scrypt refused these parameters"))
}

fn hex_field(obj: &Obj<'_>, field: &str) -> Result<Vec<u8>, FormatError> {
    let text = obj.str_req(field)?;
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.trim().as_bytes())
        .map_err(|_| obj.error(field, "is not hex"))
}

/// The records of a content object.
fn records(content: &Value) -> Result<Read, FormatError> {
    let Value::Object(map) = content else {
        return Err(FormatError::new("the vault content (db) must be an object").field("db"));
    };
    let db = Obj::new(map, Location::default(), "db.");
    let entries = db.array_req("entries")?;
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
    let lower = kind.to_ascii_lowercase();
    let hotp = match lower.as_str() {
        "totp" => false,
        "hotp" => true,
        _ => {
            return Ok(Err(common::skipped_entry(
                &entry,
                index,
                kind,
                entry.str_opt("issuer").ok().flatten(),
                entry.str_opt("name").ok().flatten(),
            )));
        }
    };
    let info = entry.obj_req("info")?;
    let secret = info.str_req("secret")?;
    let algorithm = info.str_req("algo")?;
    let digits = info.uint_req("digits")?;
    let kind = if hotp {
        common::hotp(info.uint_req("counter")?)
    } else {
        common::totp(&info, "period", info.uint_req("period")?)?
    };
    let account = entry.str_opt("name")?.unwrap_or_default();
    let issuer = entry.str_opt("issuer")?;
    let credential = credential(&info, secret, algorithm, digits, kind, issuer, account)?;
    let mut record = Record::new(credential);
    record.location = entry.location().clone();
    Ok(Ok(record))
}

fn entry_json(credential: &Credential) -> Result<Value, FormatError> {
    let mut info = Map::new();
    info.insert(
        "secret".into(),
        Value::String(credential.secret.to_base32().to_string()),
    );
    info.insert("algo".into(), credential.algorithm.uri_name().into());
    info.insert("digits".into(), credential.digits.get().into());
    let kind = match credential.kind {
        Kind::Totp { step } => {
            info.insert("period".into(), step.period().into());
            "totp"
        }
        Kind::Hotp { counter } => {
            info.insert("counter".into(), counter.into());
            "hotp"
        }
    };
    Ok(json!({
        "type": kind,
        "uuid": common::uuid_v4()?,
        "name": credential.account,
        "issuer": credential.issuer.clone().unwrap_or_default(),
        "note": "",
        "favorite": false,
        "icon": null,
        "info": info,
    }))
}

/// An encrypted vault around `db`: random master key, one password slot.
fn encrypt(db: &Value, password: &str, log_n: u8) -> Result<Value, FormatError> {
    common::check_new_password(password)?;
    let plain = Zeroizing::new(
        serde_json::to_vec(db).map_err(|e| FormatError::new(format!("cannot encode: {e}")))?,
    );
    let master = Zeroizing::new(common::random::<32>()?);
    let salt = common::random::<32>()?;
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|_| FormatError::new("invalid scrypt cost"))?;
    let mut derived = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.as_bytes(), &salt, &params, derived.as_mut_slice())
        .map_err(|_| FormatError::new("scrypt failed"))?;
    let key_nonce = common::random::<12>()?;
    let wrapped = common::seal(&derived, &key_nonce, master.as_slice())?;
    let db_nonce = common::random::<12>()?;
    let sealed = common::seal(&master, &db_nonce, &plain)?;
    let (wrapped_key, key_tag) = wrapped.split_at(wrapped.len() - 16);
    let (ciphertext, db_tag) = sealed.split_at(sealed.len() - 16);
    let hex = |bytes: &[u8]| data_encoding::HEXLOWER.encode(bytes);
    Ok(json!({
        "version": FILE_VERSION,
        "header": {
            "slots": [{
                "type": 1,
                "uuid": common::uuid_v4()?,
                "key": hex(wrapped_key),
                "key_params": { "nonce": hex(&key_nonce), "tag": hex(key_tag) },
                "n": 1u64 << log_n,
                "r": SCRYPT_R,
                "p": SCRYPT_P,
                "salt": hex(&salt),
                "repaired": true,
            }],
            "params": { "nonce": hex(&db_nonce), "tag": hex(db_tag) },
        },
        "db": data_encoding::BASE64.encode(ciphertext),
    }))
}

pub(crate) mod common;
