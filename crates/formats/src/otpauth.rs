//! Lists of `otpauth://` URIs (one per line), and Google Authenticator
//! export links (`otpauth-migration://`), which a list may also hold.
//!
//! Writing the Google format splits the accounts into batches that each fit
//! one QR code (at the error-correction level [`crate::qr`] uses), with a
//! shared batch id, so the export can be scanned code by code.

use oathdesk_otp::{migration, uri};

use crate::record::{FormatError, Location, Record, Skipped, Written, check_size};

/// Reads one URI or export link per line; blank lines and `#` comments are
/// skipped.
pub fn read(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    check_size(bytes)?;
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        .map_err(|e| FormatError::new(format!("not UTF-8 text: {e}")))?;
    let mut records = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let lower = trimmed.get(..20).unwrap_or(trimmed).to_ascii_lowercase();
        if lower.starts_with("otpauth-migration:") {
            let batch = migration::parse(trimmed)
                .map_err(|e| FormatError::at(Location::line(line), e.to_string()))?;
            for (entry, credential) in batch.credentials.into_iter().enumerate() {
                let mut record = Record::new(credential);
                record.location = Location {
                    line: Some(line),
                    element: Some(format!("entry {}", entry + 1)),
                };
                records.push(record);
            }
        } else {
            let credential = uri::parse(trimmed)
                .map_err(|e| FormatError::at(Location::line(line), e.to_string()))?;
            let mut record = Record::new(credential);
            record.location = Location::line(line);
            records.push(record);
        }
    }
    Ok(records)
}

/// Writes one `otpauth://` URI per line.
pub fn write(records: &[Record]) -> Result<Written, FormatError> {
    let mut out = String::new();
    let mut skipped = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match uri::format(&labelled(record)) {
            Ok(text) => {
                out.push_str(&text);
                out.push('\n');
            }
            Err(e) => skipped.push(Skipped {
                index,
                reference: record.reference(index),
                reason: e.to_string(),
            }),
        }
    }
    Ok(Written {
        bytes: out.into_bytes(),
        skipped,
    })
}

/// The credential with an account name: its own, else the user, else the
/// serial (an authenticator needs something to show).
fn labelled(record: &Record) -> oathdesk_otp::Credential {
    let mut credential = record.credential.clone();
    if credential.account.is_empty() {
        credential.account = record
            .user
            .clone()
            .or_else(|| record.serial.clone())
            .unwrap_or_default();
    }
    credential
}

/// Writes Google Authenticator export links, one per line, each small
/// enough for one QR code. `batch_id` ties them together.
pub fn write_migration(records: &[Record], batch_id: i32) -> Result<Written, FormatError> {
    let mut skipped = Vec::new();
    let mut batches: Vec<Vec<oathdesk_otp::Credential>> = Vec::new();
    let fits = |credentials: &[oathdesk_otp::Credential]| {
        let probe = migration::MigrationBatch {
            credentials: credentials.to_vec(),
            version: 1,
            batch_size: i32::MAX,
            batch_index: i32::MAX,
            batch_id,
        };
        migration::format(&probe).map(|link| link.len() <= crate::qr::MAX_TEXT_BYTES)
    };
    for (index, record) in records.iter().enumerate() {
        if let oathdesk_otp::Kind::Totp { step } = record.credential.kind
            && (step.period() != 30 || step.t0() != 0)
        {
            let what = if step.t0() != 0 {
                format!("its TOTP start time T0 is {}", step.t0())
            } else {
                format!("its period is {} s", step.period())
            };
            skipped.push(Skipped {
                index,
                reference: record.reference(index),
                reason: format!(
                    "{what}, and a Google Authenticator export has no period or start-time field \
                     (the app reads every entry as 30 s from T0 = 0, so it would show wrong codes): \
                     write it as an otpauth URI instead (--to otpauth; 'oathdesk qr' shows one as a \
                     QR code)"
                ),
            });
            continue;
        }
        let credential = labelled(record);
        let alone = [credential.clone()];
        match fits(&alone) {
            Err(e) => {
                skipped.push(Skipped {
                    index,
                    reference: record.reference(index),
                    reason: e.to_string(),
                });
                continue;
            }
            Ok(false) => {
                skipped.push(Skipped {
                    index,
                    reference: record.reference(index),
                    reason: "this account alone is too large for one QR code".into(),
                });
                continue;
            }
            Ok(true) => {}
        }
        let joined = match batches.last() {
            Some(last) => {
                let mut candidate = last.clone();
                candidate.push(credential.clone());
                fits(&candidate).unwrap_or(false)
            }
            None => false,
        };
        match (joined, batches.last_mut()) {
            (true, Some(last)) => last.push(credential),
            _ => batches.push(vec![credential]),
        }
    }
    let size = batches.len() as i32;
    let mut out = String::new();
    for (index, credentials) in batches.into_iter().enumerate() {
        let link = migration::format(&migration::MigrationBatch {
            credentials,
            version: 1,
            batch_size: size,
            batch_index: index as i32,
            batch_id,
        })
        .map_err(|e| FormatError::new(e.to_string()))?;
        out.push_str(&link);
        out.push('\n');
    }
    Ok(Written {
        bytes: out.into_bytes(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oathdesk_otp::{Credential, Secret};

    #[test]
    fn lists_round_trip_and_errors_have_lines() {
        let text = "# exported\n\
                    otpauth://totp/ACME:alice?secret=JBSWY3DPEHPK3PXP&issuer=ACME\n\n\
                    otpauth-migration://offline?data=CjEKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZTAC\n";
        let records = read(text.as_bytes()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[1].location.describe().as_deref(),
            Some("line 4, entry 1")
        );
        let written = write(&records).unwrap();
        assert_eq!(read(&written.bytes).unwrap().len(), 2);
        let err =
            read(b"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP\nhttps://example.com\n").unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: not an otpauth URI"),
            "{err}"
        );
    }

    #[test]
    fn migration_batches_each_fit_a_qr_code() {
        let records: Vec<Record> = (0..60u8)
            .map(|i| {
                let mut c = Credential::totp(Secret::from_bytes(vec![i; 32]));
                c.issuer = Some("Contoso Corporation".into());
                c.account = format!("user{i:03}@contoso-corporation.example.com");
                Record::new(c)
            })
            .collect();
        let written = write_migration(&records, 4242).unwrap();
        let text = String::from_utf8(written.bytes).unwrap();
        let links: Vec<&str> = text.lines().collect();
        assert!(links.len() > 1, "60 accounts do not fit one code");
        let mut total = 0;
        for (index, link) in links.iter().enumerate() {
            assert!(link.len() <= crate::qr::MAX_TEXT_BYTES);
            let batch = migration::parse(link).unwrap();
            assert_eq!(batch.batch_id, 4242);
            assert_eq!(batch.batch_index, index as i32);
            assert_eq!(batch.batch_size, links.len() as i32);
            total += batch.credentials.len();
        }
        assert_eq!(total, 60);
        assert_eq!(read(text.as_bytes()).unwrap().len(), 60);
    }
}
