//! Microsoft Entra ID hardware OATH tokens: the legacy CSV upload and the
//! Graph `hardwareOathDevices` JSON.
//!
//! What Entra takes: TOTP, SHA-1 (CSV) or SHA-1/SHA-256 (Graph), 6 digits,
//! 30 or 60 seconds, a Base32 secret of at most 128 characters, and a
//! serial number per token. Records outside that are not written: they come
//! back in [`Written::skipped`] with the reason.
//!
//! Multi-profile devices (a Molto-2 has 100 profiles) need one serial per
//! profile, because Entra's activation and assignment flows look tokens up
//! by serial number alone. The default is `SERIAL-NN` (NN = the slot, two
//! digits), configurable with a template.

use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use serde::{Deserialize, Serialize};

use crate::record::{FormatError, Location, Record, Skipped, Written, check_size};

/// The header Entra documents, in its order.
pub const CSV_HEADER: &str = "upn,serial number,secret key,time interval,manufacturer,model";

/// The most Base32 characters Entra takes in a secret.
pub const MAX_SECRET_CHARS: usize = 128;

/// The default serial of a profile: `{serial}` and `{slot}` (two digits).
pub const DEFAULT_PROFILE_SERIAL: &str = "{serial}-{slot}";

/// The serial Entra sees for a record.
pub fn entra_serial(record: &Record, template: &str) -> Option<String> {
    let serial = record.serial.as_ref()?;
    Some(profile_serial(serial, record.slot, template))
}

/// The serial Entra sees for a device's serial and, on a multi-profile
/// device, the profile's slot.
pub fn profile_serial(serial: &str, slot: Option<u32>, template: &str) -> String {
    match slot {
        Some(slot) => template
            .replace("{serial}", serial)
            .replace("{slot}", &format!("{slot:02}")),
        None => serial.to_owned(),
    }
}

/// The device serial and slot a profile serial names under `template`
/// (the inverse of [`profile_serial`]): `2100123456-07` is slot 7 of
/// device `2100123456` under the default `{serial}-{slot}`. The slot must be
/// the two digits `profile_serial` writes; anything else is not a profile
/// serial, and `None` says to keep it whole.
pub fn split_profile_serial(serial: &str, template: &str) -> Option<(String, u32)> {
    let (before, rest) = template.split_once("{serial}")?;
    let (between, after) = rest.split_once("{slot}")?;
    let inner = serial.strip_prefix(before)?.strip_suffix(after)?;
    let digits_at = inner.len().checked_sub(2)?;
    let digits = inner.get(digits_at..)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let device = inner[..digits_at].strip_suffix(between)?;
    if device.is_empty() {
        return None;
    }
    Some((device.to_owned(), digits.parse().ok()?))
}

/// Gives records read from an Entra file (which knows serials only) their
/// device and slot back where the serial has the profile form of
/// `template`, as oathdesk writes it for multi-profile devices; returns
/// how many it changed.
pub fn restore_profiles(records: &mut [Record], template: &str) -> usize {
    let mut restored = 0;
    for record in records.iter_mut().filter(|r| r.slot.is_none()) {
        let Some(serial) = record.serial.as_deref() else {
            continue;
        };
        if let Some((device, slot)) = split_profile_serial(serial, template) {
            record.serial = Some(device);
            record.slot = Some(slot);
            restored += 1;
        }
    }
    restored
}

/// Why Entra cannot take a record, if it cannot. `graph` allows SHA-256.
pub fn entra_refusal(record: &Record, graph: bool) -> Option<String> {
    let c = &record.credential;
    let period = match c.kind {
        Kind::Hotp { .. } => return Some("Entra ID does not support HOTP (event) tokens".into()),
        Kind::Totp { step } => step,
    };
    if period.t0() != 0 {
        return Some(format!(
            "Entra counts time from 1970 (T0 = 0), not T0 = {}",
            period.t0()
        ));
    }
    if !matches!(period.period(), 30 | 60) {
        return Some(format!(
            "Entra takes 30 or 60 second tokens, not {} s",
            period.period()
        ));
    }
    match (c.algorithm, graph) {
        (Algorithm::Sha1, _) | (Algorithm::Sha256, true) => {}
        (Algorithm::Sha256, false) => {
            return Some(
                "the Entra CSV is SHA-1 only; write Entra Graph JSON (hashFunction hmacsha256)"
                    .into(),
            );
        }
        (Algorithm::Sha512, _) => return Some("Entra does not take SHA-512 tokens".into()),
    }
    if c.digits != Digits::SIX {
        return Some(format!("Entra takes 6-digit codes, not {}", c.digits));
    }
    let chars = c.secret.to_base32().len();
    if chars > MAX_SECRET_CHARS {
        return Some(format!(
            "the secret is {chars} Base32 characters; Entra takes at most {MAX_SECRET_CHARS}"
        ));
    }
    if record.serial.is_none() {
        return Some("Entra needs a serial number for every token".into());
    }
    None
}

/// Reads an Entra CSV: the documented header, and the variants vendors ship
/// (`timeinterval`, Title Case, quoted fields, a byte-order mark).
pub fn read_csv(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    check_size(bytes)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| FormatError::at(Location::line(1), e.to_string()))?
        .clone();
    let folded: Vec<String> = headers
        .iter()
        .map(|h| h.to_ascii_lowercase().replace([' ', '_'], ""))
        .collect();
    let column = |name: &'static str| {
        folded.iter().position(|h| h == name).ok_or_else(|| {
            FormatError::at(
                Location::line(1),
                format!("the header has no '{name}' column; Entra's header is: {CSV_HEADER}"),
            )
        })
    };
    let upn = column("upn")?;
    let serial = column("serialnumber")?;
    let secret = column("secretkey")?;
    let interval = column("timeinterval")?;
    let manufacturer = column("manufacturer").ok();
    let model = column("model").ok();
    let mut records = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            FormatError::at(
                Location::line(crate::record::csv_line(bytes, e.position())),
                e.to_string(),
            )
        })?;
        let line = crate::record::csv_line(bytes, row.position());
        if row.iter().all(str::is_empty) {
            continue;
        }
        let at = || Location::line(line);
        let get = |i: usize| row.get(i).unwrap_or_default();
        let text = get(secret);
        if text.is_empty() {
            return Err(FormatError::at(at(), "is empty").field("secret key"));
        }
        // Entra's own example secret is all hex letters and digits; the
        // column is Base32 by definition (the linter flags look-alikes).
        let secret = Secret::from_base32(text)
            .map_err(|e| FormatError::at(at(), crate::secret_hint(e)).field("secret key"))?;
        let period: u64 = get(interval).parse().map_err(|_| {
            FormatError::at(
                at(),
                format!("'{}' is not a number of seconds (30 or 60)", get(interval)),
            )
            .field("time interval")
        })?;
        let step = TimeStep::new(period, 0)
            .map_err(|e| FormatError::at(at(), e.to_string()).field("time interval"))?;
        let mut credential = Credential::totp(secret);
        credential.kind = Kind::Totp { step };
        let optional = |i: Option<usize>| i.map(get).filter(|v| !v.is_empty()).map(str::to_owned);
        let user = optional(Some(upn));
        credential.account = user.clone().unwrap_or_default();
        credential.issuer = optional(manufacturer);
        records.push(Record {
            credential,
            serial: optional(Some(serial)),
            slot: None,
            manufacturer: optional(manufacturer),
            model: optional(model),
            user,
            location: at(),
        });
    }
    Ok(records)
}

/// Writes an Entra CSV with the documented header. `template` names the
/// serial of a profile of a multi-profile device.
pub fn write_csv(records: &[Record], template: &str) -> Result<Written, FormatError> {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let fail = |e: csv::Error| FormatError::new(e.to_string());
    writer.write_record(CSV_HEADER.split(',')).map_err(fail)?;
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, record) in records.iter().enumerate() {
        let reason = entra_refusal(record, false).or_else(|| {
            record
                .user
                .is_none()
                .then(|| "the Entra CSV needs the user's UPN".to_owned())
        });
        let serial = entra_serial(record, template).unwrap_or_default();
        let reason = reason.or_else(|| {
            [
                ("upn", record.user.as_deref()),
                ("serial number", Some(serial.as_str())),
                ("manufacturer", record.manufacturer.as_deref()),
                ("model", record.model.as_deref()),
            ]
            .into_iter()
            .find_map(|(field, cell)| {
                crate::cells::formula_start(cell?).map(|why| format!("the {field} {why}"))
            })
        });
        let reason = reason.or_else(|| {
            (!seen.insert(serial.clone()))
                .then(|| format!("serial {serial} is already in this file"))
        });
        if let Some(reason) = reason {
            skipped.push(Skipped {
                index,
                reference: record.reference(index),
                reason,
            });
            continue;
        }
        let Kind::Totp { step } = record.credential.kind else {
            unreachable!("entra_refusal lets only TOTP through")
        };
        let secret = record.credential.secret.to_base32();
        writer
            .write_record([
                record.user.as_deref().unwrap_or_default(),
                &serial,
                secret.as_str(),
                &step.period().to_string(),
                record.manufacturer.as_deref().unwrap_or_default(),
                record.model.as_deref().unwrap_or_default(),
            ])
            .map_err(fail)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| FormatError::new(e.to_string()))?;
    Ok(Written { bytes, skipped })
}

/// One `hardwareOathTokenAuthenticationMethodDevice` as Graph takes and
/// returns it: the bulk-create payload's items, and the inventory's
/// listings (`id`, `status`, `assignedTo` and `lastUsedDateTime` come only
/// in responses; `secretKey` only in requests). oathdesk's Entra client and
/// its Graph simulator use this one shape.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GraphDevice {
    #[serde(
        rename = "@contentId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub content_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Write-only: Graph answers `null`.
    #[serde(default)]
    pub secret_key: Option<String>,
    #[serde(default)]
    pub time_interval_in_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash_function: Option<String>,
    /// `available`, `assigned`, `activated` or `failedActivation`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assign_to: Option<GraphId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assigned_to: Option<GraphIdentity>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_used_date_time: Option<String>,
}

impl GraphDevice {
    /// The device Graph should create for `record`, or why Entra cannot take
    /// it. `template` names the serial of a multi-profile device's profile.
    pub fn from_record(record: &Record, template: &str) -> Result<GraphDevice, String> {
        if let Some(reason) = entra_refusal(record, true) {
            return Err(reason);
        }
        let Kind::Totp { step } = record.credential.kind else {
            unreachable!("entra_refusal lets only TOTP through")
        };
        Ok(GraphDevice {
            serial_number: entra_serial(record, template),
            // Graph requires both; "Unknown" rather than a refusal, because
            // many seed files and vault entries do not name them.
            manufacturer: Some(known_or_unknown(record.manufacturer.as_deref())),
            model: Some(known_or_unknown(record.model.as_deref())),
            secret_key: Some(record.credential.secret.to_base32().to_string()),
            time_interval_in_seconds: Some(step.period()),
            hash_function: Some(hash_function_name(record.credential.algorithm).into()),
            assign_to: record
                .user
                .as_ref()
                .filter(|u| is_object_id(u))
                .map(|id| GraphId { id: id.clone() }),
            ..GraphDevice::default()
        })
    }
}

fn known_or_unknown(value: Option<&str>) -> String {
    match value.map(str::trim) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => "Unknown".to_owned(),
    }
}

/// Graph's name of a hash function (`hmacsha1`, `hmacsha256`).
pub fn hash_function_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Sha256 => "hmacsha256",
        _ => "hmacsha1",
    }
}

/// A reference to a directory object: `{"id": "…"}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GraphId {
    pub id: String,
}

/// An `identity` in Graph responses: `{"id": "…", "displayName": "…"}`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GraphIdentity {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The bulk-create payload: `{"@context": "#$delta", "value": […]}`.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct GraphPayload {
    #[serde(rename = "@context", default)]
    pub context: Option<String>,
    pub value: Vec<GraphDevice>,
}

/// Reads Graph JSON: the bulk-create payload (`{"@context":"#$delta",
/// "value":[…]}`) or the plain array of devices vendors ship.
pub fn read_json(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    check_size(bytes)?;
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| FormatError::new(format!("not JSON: {e}")))?;
    let devices: Vec<GraphDevice> = match value {
        serde_json::Value::Array(_) => serde_json::from_value(value),
        serde_json::Value::Object(ref map) if map.contains_key("value") => {
            serde_json::from_value::<GraphPayload>(value).map(|p| p.value)
        }
        serde_json::Value::Object(_) => serde_json::from_value(value).map(|d| vec![d]),
        _ => {
            return Err(FormatError::new(
                "expected a JSON array of devices or a {\"value\": […]} payload",
            ));
        }
    }
    .map_err(|e| FormatError::new(format!("not Entra hardwareOathDevices JSON: {e}")))?;
    devices
        .into_iter()
        .enumerate()
        .map(|(i, device)| {
            let at = || Location::element(format!("value[{i}]"));
            let text = device
                .secret_key
                .ok_or_else(|| FormatError::at(at(), "is missing").field("secretKey"))?;
            let secret = Secret::from_base32(&text)
                .map_err(|e| FormatError::at(at(), crate::secret_hint(e)).field("secretKey"))?;
            let period = device.time_interval_in_seconds.unwrap_or(30);
            let step = TimeStep::new(period, 0)
                .map_err(|e| FormatError::at(at(), e.to_string()).field("timeIntervalInSeconds"))?;
            let algorithm = match device.hash_function.as_deref() {
                None => Algorithm::Sha1,
                Some(name) => name.parse().map_err(|_| {
                    FormatError::at(at(), format!("'{name}' is not hmacsha1 or hmacsha256"))
                        .field("hashFunction")
                })?,
            };
            let mut credential = Credential::totp(secret);
            credential.kind = Kind::Totp { step };
            credential.algorithm = algorithm;
            credential.issuer = device.manufacturer.clone();
            credential.account = device.display_name.clone().unwrap_or_default();
            Ok(Record {
                credential,
                serial: device.serial_number,
                slot: None,
                manufacturer: device.manufacturer,
                model: device.model,
                user: device.assign_to.map(|a| a.id),
                location: at(),
            })
        })
        .collect()
}

/// True for a Microsoft Entra object id (a GUID), which `assignTo` needs.
pub fn is_object_id(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Writes the Graph bulk-create payload. A record's user becomes `assignTo`
/// only when it is an object id; assigning by UPN needs a directory lookup
/// (oathdesk's Entra integration does that).
pub fn write_json(records: &[Record], template: &str) -> Result<Written, FormatError> {
    let mut value = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, record) in records.iter().enumerate() {
        let device = GraphDevice::from_record(record, template).and_then(|device| {
            let serial = device.serial_number.clone().unwrap_or_default();
            if seen.insert(serial.clone()) {
                Ok(device)
            } else {
                Err(format!("serial {serial} is already in this file"))
            }
        });
        match device {
            Ok(device) => value.push(GraphDevice {
                content_id: Some((value.len() + 1).to_string()),
                ..device
            }),
            Err(reason) => skipped.push(Skipped {
                index,
                reference: record.reference(index),
                reason,
            }),
        }
    }
    let payload = GraphPayload {
        context: Some("#$delta".into()),
        value,
    };
    let bytes = serde_json::to_vec_pretty(&payload).map_err(|e| FormatError::new(e.to_string()))?;
    Ok(Written { bytes, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(serial: &str, slot: Option<u32>, secret: &[u8]) -> Record {
        let mut r = Record::new(Credential::totp(Secret::from_bytes(secret.to_vec())));
        r.serial = Some(serial.into());
        r.slot = slot;
        r.user = Some("helga@contoso.com".into());
        r.manufacturer = Some("Token2".into());
        r.model = Some("C202".into());
        r
    }

    #[test]
    fn reads_the_documented_example_and_vendor_variants() {
        let documented = "upn,serial number,secret key,time interval,manufacturer,model\n\
                          Helga@contoso.com,1234567,2234567abcdef2234567abcdef,60,Contoso,HardwareKey\n";
        let records = read_csv(documented.as_bytes()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].user.as_deref(), Some("Helga@contoso.com"));
        assert_eq!(records[0].serial.as_deref(), Some("1234567"));
        assert_eq!(
            records[0].credential.kind,
            Kind::Totp {
                step: TimeStep::new(60, 0).unwrap()
            }
        );
        let title = "\u{feff}\"UPN\",\"Serial Number\",\"Secret Key\",\"Time Interval\",\"Manufacturer\",\"Model\"\r\n\
                     \"a@contoso.com\",\"0012\",\"JBSWY3DPEHPK3PXP\",\"30\",\"Thales\",\"OTP 110\"\r\n";
        assert_eq!(
            read_csv(title.as_bytes()).unwrap()[0].serial.as_deref(),
            Some("0012")
        );
        let token2 = "upn,serial number,secret key,timeinterval,manufacturer,model\n\
                      b@contoso.com,60234567,JBSWY3DPEHPK3PXP,30,Token2,C202\n";
        assert_eq!(read_csv(token2.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn hex_secrets_are_named_by_line_and_field() {
        let file = "upn,serial number,secret key,time interval,manufacturer,model\n\
                    a@contoso.com,1,JBSWY3DPEHPK3PXP,30,X,Y\n\
                    b@contoso.com,2,1669EBDCC7108C272FD876ED6E7F562583BE16A9,30,X,Y\n";
        let err = read_csv(file.as_bytes()).unwrap_err();
        assert_eq!(err.location, Location::line(3));
        assert_eq!(err.field.as_deref(), Some("secret key"));
        assert!(err.to_string().starts_with("line 3, secret key: "), "{err}");
        assert!(!err.to_string().contains("1669EB"), "{err}");
    }

    #[test]
    fn a_cell_a_spreadsheet_would_run_leaves_its_record_out() {
        let mut upn = record("S1", None, b"12345678901234567890");
        upn.user = Some("=HYPERLINK(\"http://x\")@contoso.com".into());
        let mut model = record("S2", None, b"12345678901234567890");
        model.model = Some("-cmd|' /C calc'!A0".into());
        let serial = record("+S3", None, b"12345678901234567890");
        let mut plain = record("S4", None, b"12345678901234567890");
        plain.user = Some("-ops@contoso.com".into());
        let written = write_csv(&[upn, model, serial, plain], DEFAULT_PROFILE_SERIAL).unwrap();
        let text = String::from_utf8(written.bytes).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("\n-ops@contoso.com,S4,"), "{text}");
        let reasons: Vec<(usize, &str)> = written
            .skipped
            .iter()
            .map(|s| (s.index, s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    0,
                    "the upn starts with '=', which a spreadsheet would run as a formula"
                ),
                (
                    1,
                    "the model starts with '-' with more than a UPN's characters, which a spreadsheet would run as a formula"
                ),
                (
                    2,
                    "the serial number starts with '+', which a spreadsheet would run as a formula"
                ),
            ]
        );
    }

    #[test]
    fn writes_what_entra_takes_and_lists_the_rest() {
        let mut sha256 = record("S2", None, &[2; 32]);
        sha256.credential.algorithm = Algorithm::Sha256;
        let mut hotp = record("S3", None, &[3; 20]);
        hotp.credential.kind = Kind::Hotp { counter: 0 };
        let records = vec![
            record("MOLTO", Some(7), b"12345678901234567890"),
            sha256,
            hotp,
            record("MOLTO", Some(7), &[4; 20]),
        ];
        let written = write_csv(&records, DEFAULT_PROFILE_SERIAL).unwrap();
        let text = String::from_utf8(written.bytes).unwrap();
        assert_eq!(
            text,
            format!(
                "{CSV_HEADER}\nhelga@contoso.com,MOLTO-07,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30,Token2,C202\n"
            )
        );
        let reasons: Vec<(usize, &str)> = written
            .skipped
            .iter()
            .map(|s| (s.index, s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    1,
                    "the Entra CSV is SHA-1 only; write Entra Graph JSON (hashFunction hmacsha256)"
                ),
                (2, "Entra ID does not support HOTP (event) tokens"),
                (3, "serial MOLTO-07 is already in this file"),
            ]
        );
        // Graph JSON takes the SHA-256 one.
        let written = write_json(&records, "{serial}/{slot}").unwrap();
        let back = read_json(&written.bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].serial.as_deref(), Some("MOLTO/07"));
        assert_eq!(back[1].credential.algorithm, Algorithm::Sha256);
        assert_eq!(back[1].credential.secret.as_bytes(), &[2; 32]);
    }

    #[test]
    fn profile_serials_split_back_into_device_and_slot() {
        let template = DEFAULT_PROFILE_SERIAL;
        assert_eq!(
            split_profile_serial("2100123456-07", template),
            Some(("2100123456".into(), 7))
        );
        assert_eq!(
            split_profile_serial(
                &profile_serial("MOLTO", Some(0), "P{serial}/{slot}x"),
                "P{serial}/{slot}x"
            ),
            Some(("MOLTO".into(), 0))
        );
        for whole in ["2100123456", "ABC-7", "ABC-1x", "-07", "ABC_07"] {
            assert_eq!(split_profile_serial(whole, template), None, "{whole}");
        }
        let mut records = vec![
            record("M2-00", None, b"12345678901234567890"),
            record("1234", None, b"12345678901234567890"),
        ];
        assert_eq!(restore_profiles(&mut records, template), 1);
        assert_eq!(
            (records[0].serial.as_deref(), records[0].slot),
            (Some("M2"), Some(0))
        );
        assert_eq!(
            (records[1].serial.as_deref(), records[1].slot),
            (Some("1234"), None)
        );
    }

    #[test]
    fn graph_plain_array_and_assign_to() {
        let json = r#"[{"serialNumber":"TOTP123456","manufacturer":"Contoso","model":"Hardware Token 1000",
            "secretKey":"6PJ4UKIW33NNXYZAEHQNFUFTZF7WFTFB","timeIntervalInSeconds":30,"hashFunction":"HMACSHA1",
            "assignTo":{"id":"0cadbf92-1111-2222-3333-444455556666"}}]"#;
        let records = read_json(json.as_bytes()).unwrap();
        assert_eq!(
            records[0].user.as_deref(),
            Some("0cadbf92-1111-2222-3333-444455556666")
        );
        let written = write_json(&records, DEFAULT_PROFILE_SERIAL).unwrap();
        let text = String::from_utf8(written.bytes).unwrap();
        assert!(text.contains("\"@context\": \"#$delta\""), "{text}");
        assert!(text.contains("\"assignTo\""), "{text}");
        assert!(
            read_json(b"{\"value\": [{\"serialNumber\": \"x\"}]}")
                .unwrap_err()
                .to_string()
                .contains("secretKey")
        );
    }
}
