//! oathdesk JSON: the documented canonical form, one object per credential,
//! for scripts and tests.
//!
//! ```json
//! [{"type":"totp","secret":"JBSWY3DPEHPK3PXP","algorithm":"sha1","digits":6,"period":30,
//!   "issuer":"Contoso","account":"bob@contoso.com","serial":"2100123456","slot":null,
//!   "manufacturer":"Token2","model":"C202","user":"bob@contoso.com"}]
//! ```
//!
//! `secret` is Base32 without padding; `period` (and `t0` when not 0) for
//! TOTP, `counter` for HOTP. Unknown fields are refused, so a misspelt
//! field name is an error rather than a silent default.

use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use serde::{Deserialize, Serialize};

use crate::record::{FormatError, Location, Record, Written, check_size};

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Entry {
    r#type: String,
    secret: String,
    #[serde(default = "default_algorithm")]
    algorithm: String,
    #[serde(default = "default_digits")]
    digits: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t0: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    account: String,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    slot: Option<u32>,
    #[serde(default)]
    manufacturer: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label_issuer: Option<String>,
}

fn default_algorithm() -> String {
    "sha1".into()
}

fn default_digits() -> u64 {
    6
}

/// Reads an array of credential objects.
pub fn read(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    check_size(bytes)?;
    let entries: Vec<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::new(format!("not a JSON array: {e}")))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let at = || Location::element(format!("[{i}]"));
            let entry: Entry =
                serde_json::from_value(value).map_err(|e| FormatError::at(at(), e.to_string()))?;
            let secret = Secret::from_base32(&entry.secret)
                .map_err(|e| FormatError::at(at(), e.to_string()).field("secret"))?;
            let algorithm: Algorithm =
                entry
                    .algorithm
                    .parse()
                    .map_err(|e: oathdesk_otp::UnknownAlgorithm| {
                        FormatError::at(at(), e.to_string()).field("algorithm")
                    })?;
            let digits = Digits::new(entry.digits)
                .map_err(|e| FormatError::at(at(), e.to_string()).field("digits"))?;
            let kind = match entry.r#type.to_ascii_lowercase().as_str() {
                "totp" => Kind::Totp {
                    step: TimeStep::new(entry.period.unwrap_or(30), entry.t0.unwrap_or(0))
                        .map_err(|e| FormatError::at(at(), e.to_string()).field("period"))?,
                },
                "hotp" => Kind::Hotp {
                    counter: entry.counter.unwrap_or(0),
                },
                other => {
                    return Err(
                        FormatError::at(at(), format!("'{other}' is not totp or hotp"))
                            .field("type"),
                    );
                }
            };
            Ok(Record {
                credential: Credential {
                    secret,
                    kind,
                    algorithm,
                    digits,
                    issuer: entry.issuer,
                    account: entry.account,
                    label_issuer: entry.label_issuer,
                },
                serial: entry.serial,
                slot: entry.slot,
                manufacturer: entry.manufacturer,
                model: entry.model,
                user: entry.user,
                location: at(),
            })
        })
        .collect()
}

/// Writes every record (the canonical form carries all of them).
pub fn write(records: &[Record]) -> Result<Written, FormatError> {
    let entries: Vec<Entry> = records
        .iter()
        .map(|r| {
            let c = &r.credential;
            let (period, t0, counter) = match c.kind {
                Kind::Totp { step } => (
                    Some(step.period()),
                    Some(step.t0()).filter(|t| *t != 0),
                    None,
                ),
                Kind::Hotp { counter } => (None, None, Some(counter)),
            };
            Entry {
                r#type: c.kind.name().into(),
                secret: c.secret.to_base32().to_string(),
                algorithm: c.algorithm.to_string(),
                digits: u64::from(c.digits.get()),
                period,
                t0,
                counter,
                issuer: c.issuer.clone(),
                account: c.account.clone(),
                serial: r.serial.clone(),
                slot: r.slot,
                manufacturer: r.manufacturer.clone(),
                model: r.model.clone(),
                user: r.user.clone(),
                label_issuer: c.label_issuer.clone(),
            }
        })
        .collect();
    let mut bytes =
        serde_json::to_vec_pretty(&entries).map_err(|e| FormatError::new(e.to_string()))?;
    bytes.push(b'\n');
    Ok(Written {
        bytes,
        skipped: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let json = r#"[{"type":"totp","secret":"JBSWY3DPEHPK3PXP","period":60,"serial":"S1","slot":3,"user":"bob"},
                       {"type":"hotp","secret":"GEZDGNBV","counter":9,"algorithm":"sha256","digits":8}]"#;
        let records = read(json.as_bytes()).unwrap();
        assert_eq!(records[0].slot, Some(3));
        assert_eq!(records[1].credential.kind, Kind::Hotp { counter: 9 });
        let again = read(&write(&records).unwrap().bytes).unwrap();
        assert_eq!(
            again.iter().map(|r| &r.credential).collect::<Vec<_>>(),
            records.iter().map(|r| &r.credential).collect::<Vec<_>>()
        );
        let err = read(br#"[{"type":"totp","secret":"JBSWY3DPEHPK3PXP","perod":60}]"#).unwrap_err();
        assert!(
            err.to_string().starts_with("[0]: unknown field `perod`"),
            "{err}"
        );
    }
}
