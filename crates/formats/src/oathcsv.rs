//! "OATH CSV", the hex-seed import format of privacyIDEA and LinOTP.
//!
//! - privacyIDEA: `serial, seed, TOTP, digits, step` or `serial, seed, HOTP,
//!   digits, counter`; version 2 (first line `# version: 2`) puts `user,
//!   resolver, realm` in front. There is no hash column: privacyIDEA derives
//!   the hash from the seed length (32 bytes SHA-256, 64 bytes SHA-512,
//!   otherwise SHA-1), so a seed whose length says another hash cannot be
//!   written.
//! - LinOTP: `serial, key, [hotp|totp], [6|8], [30|60], [sha1|sha256|sha512]`;
//!   the type defaults to HOTP, and an empty hash column means the same
//!   length rule. No counter column: an HOTP token starts at 0.

use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};

use crate::record::{FormatError, Location, Record, Skipped, Written, check_size};

/// Which server's dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// privacyIDEA, version 1 (no user).
    PrivacyIdea,
    /// privacyIDEA, version 2 (`user, resolver, realm` first).
    PrivacyIdeaV2,
    /// LinOTP (with the hash column).
    LinOtp,
}

/// The hash a server infers from a seed of this many bytes.
pub fn hash_from_seed_len(len: usize) -> Algorithm {
    match len {
        32 => Algorithm::Sha256,
        64 => Algorithm::Sha512,
        _ => Algorithm::Sha1,
    }
}

/// Reads an OATH CSV in the given dialect (privacyIDEA files say their
/// version in a `# version: 2` first line; that wins over `dialect`).
pub fn read(bytes: &[u8], dialect: Dialect) -> Result<Vec<Record>, FormatError> {
    check_size(bytes)?;
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        .map_err(|e| FormatError::new(format!("not UTF-8 text: {e}")))?;
    let mut dialect = dialect;
    let mut records = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let trimmed = raw.trim();
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim().to_ascii_lowercase();
            if comment.replace(' ', "") == "version:2" {
                dialect = Dialect::PrivacyIdeaV2;
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        records.push(read_row(&fields, dialect, line)?);
    }
    Ok(records)
}

fn read_row(fields: &[&str], dialect: Dialect, line: u64) -> Result<Record, FormatError> {
    let at = || Location::line(line);
    let (user, rest) = match dialect {
        Dialect::PrivacyIdeaV2 => {
            if fields.len() < 5 {
                return Err(FormatError::at(
                    at(),
                    "a version-2 row is: user, resolver, realm, serial, seed, type, ...",
                ));
            }
            (
                Some(fields[0].to_owned()).filter(|u| !u.is_empty()),
                &fields[3..],
            )
        }
        _ => (None, fields),
    };
    let serial = rest.first().copied().unwrap_or_default();
    if serial.is_empty() {
        return Err(FormatError::at(at(), "is empty").field("serial"));
    }
    let seed_text = rest.get(1).copied().unwrap_or_default();
    if seed_text.is_empty() {
        return Err(FormatError::at(at(), "is empty").field("seed"));
    }
    let secret = Secret::from_hex(seed_text).map_err(|e| {
        FormatError::at(at(), format!("{e} (OATH CSV seeds are hex)")).field("seed")
    })?;
    // Both servers read a row without a type as HOTP.
    let kind_name = rest
        .get(2)
        .copied()
        .filter(|t| !t.is_empty())
        .unwrap_or("hotp");
    let digits = match rest.get(3).copied().filter(|d| !d.is_empty()) {
        Some(text) => {
            let number: u64 = text.parse().map_err(|_| {
                FormatError::at(at(), format!("'{text}' is not a number")).field("digits")
            })?;
            Digits::new(number).map_err(|e| FormatError::at(at(), e.to_string()).field("digits"))?
        }
        None => Digits::SIX,
    };
    let fourth = rest.get(4).copied().filter(|v| !v.is_empty());
    let number = |name: &'static str, text: &str| {
        text.parse::<u64>().map_err(|_| {
            FormatError::at(at(), format!("'{text}' is not a whole number")).field(name)
        })
    };
    let kind = match kind_name.to_ascii_lowercase().as_str() {
        "totp" => Kind::Totp {
            step: TimeStep::new(
                fourth.map(|t| number("step", t)).transpose()?.unwrap_or(30),
                0,
            )
            .map_err(|e| FormatError::at(at(), e.to_string()).field("step"))?,
        },
        "hotp" | "hmac" => Kind::Hotp {
            counter: match dialect {
                Dialect::LinOtp => 0,
                _ => fourth
                    .map(|c| number("counter", c))
                    .transpose()?
                    .unwrap_or(0),
            },
        },
        other => {
            return Err(FormatError::at(
                at(),
                format!("'{other}' tokens are not handled; oathdesk reads TOTP and HOTP"),
            )
            .field("type"));
        }
    };
    let algorithm = match (dialect, rest.get(5).copied().filter(|h| !h.is_empty())) {
        (Dialect::LinOtp, Some(name)) => name.parse().map_err(|_| {
            FormatError::at(at(), format!("'{name}' is not sha1, sha256 or sha512")).field("hash")
        })?,
        _ => hash_from_seed_len(secret.len()),
    };
    let mut credential = Credential::totp(secret);
    credential.kind = kind;
    credential.algorithm = algorithm;
    credential.digits = digits;
    credential.account = user.clone().unwrap_or_default();
    Ok(Record {
        credential,
        serial: Some(serial.to_owned()),
        slot: None,
        manufacturer: None,
        model: None,
        user,
        location: at(),
    })
}

/// Writes an OATH CSV. The slot of a multi-profile record is appended to
/// the serial as `SERIAL-NN`.
pub fn write(records: &[Record], dialect: Dialect) -> Result<Written, FormatError> {
    let mut out = String::new();
    if dialect == Dialect::PrivacyIdeaV2 {
        out.push_str("# version: 2\n");
    }
    let mut skipped = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let skip = |reason: String| Skipped {
            index,
            reference: record.reference(index),
            reason,
        };
        let c = &record.credential;
        let Some(serial) = &record.serial else {
            skipped.push(skip(
                "OATH CSV needs a serial number for every token".into(),
            ));
            continue;
        };
        if serial.contains(',') {
            skipped.push(skip(
                "the serial contains a comma, which OATH CSV cannot quote".into(),
            ));
            continue;
        }
        let serial = match record.slot {
            Some(slot) => format!("{serial}-{slot:02}"),
            None => serial.clone(),
        };
        let user = record
            .user
            .as_deref()
            .filter(|_| dialect == Dialect::PrivacyIdeaV2);
        if let Some(why) = [("serial", Some(serial.as_str())), ("user", user)]
            .into_iter()
            .find_map(|(field, cell)| {
                crate::cells::formula_start(cell?).map(|why| format!("the {field} {why}"))
            })
        {
            skipped.push(skip(why));
            continue;
        }
        let implied = hash_from_seed_len(c.secret.len());
        if dialect != Dialect::LinOtp && c.algorithm != implied {
            skipped.push(skip(format!(
                "privacyIDEA derives the hash from the seed length: a {}-byte seed is read as {implied}, not {}",
                c.secret.len(),
                c.algorithm
            )));
            continue;
        }
        if dialect == Dialect::LinOtp && !matches!(c.digits.get(), 6 | 8) {
            skipped.push(skip(format!(
                "LinOTP takes 6 or 8 digits, not {}",
                c.digits
            )));
            continue;
        }
        let hex = c.secret.encode(oathdesk_otp::Encoding::Hex);
        let row = match (dialect, c.kind) {
            (Dialect::LinOtp, Kind::Totp { step }) => {
                if !matches!(step.period(), 30 | 60) || step.t0() != 0 {
                    skipped.push(skip(
                        "LinOTP takes 30 or 60 second steps from T0 = 0".into(),
                    ));
                    continue;
                }
                format!(
                    "{serial}, {}, totp, {}, {}, {}",
                    hex.as_str(),
                    c.digits,
                    step.period(),
                    c.algorithm
                )
            }
            (Dialect::LinOtp, Kind::Hotp { counter }) => {
                if counter != 0 {
                    skipped.push(skip(format!(
                        "LinOTP's CSV has no counter column; this HOTP token is at counter {counter}"
                    )));
                    continue;
                }
                format!(
                    "{serial}, {}, hotp, {}, , {}",
                    hex.as_str(),
                    c.digits,
                    c.algorithm
                )
            }
            (_, Kind::Totp { step }) => {
                if step.t0() != 0 {
                    skipped.push(skip(format!(
                        "privacyIDEA counts time from T0 = 0, not {}",
                        step.t0()
                    )));
                    continue;
                }
                format!(
                    "{serial}, {}, TOTP, {}, {}",
                    hex.as_str(),
                    c.digits,
                    step.period()
                )
            }
            (_, Kind::Hotp { counter }) => {
                format!("{serial}, {}, HOTP, {}, {counter}", hex.as_str(), c.digits)
            }
        };
        if dialect == Dialect::PrivacyIdeaV2 {
            let Some(user) = record.user.as_deref().filter(|u| !u.contains(',')) else {
                skipped.push(skip("version 2 needs the user (without commas)".into()));
                continue;
            };
            out.push_str(&format!("{user}, , , "));
        }
        out.push_str(&row);
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

    #[test]
    fn a_cell_a_spreadsheet_would_run_leaves_its_record_out() {
        let file = "=1+1, 3132333435363738393031323334353637383930, TOTP, 6, 30\n\
                    OATH0002, 3132333435363738393031323334353637383930, TOTP, 6, 30\n";
        let mut records = read(file.as_bytes(), Dialect::PrivacyIdea).unwrap();
        let written = write(&records, Dialect::PrivacyIdea).unwrap();
        let text = String::from_utf8(written.bytes).unwrap();
        assert!(
            text.starts_with("OATH0002,") && text.lines().count() == 1,
            "{text}"
        );
        assert_eq!(written.skipped.len(), 1);
        assert_eq!(written.skipped[0].index, 0);
        assert_eq!(
            written.skipped[0].reason,
            "the serial starts with '=', which a spreadsheet would run as a formula"
        );
        // Version 2 writes the user too.
        records[1].user = Some("@SUM(A1)".into());
        let written = write(&records[1..], Dialect::PrivacyIdeaV2).unwrap();
        assert_eq!(
            written.skipped[0].reason,
            "the user starts with '@', which a spreadsheet would run as a formula"
        );
    }

    #[test]
    fn privacyidea_rows() {
        let file = "OATH0001, 3132333435363738393031323334353637383930, TOTP, 8, 60\n\
                    OATH0002, 3132333435363738393031323334353637383930313233343536373839303132, TOTP, 6, 30\n\
                    \n# a comment\n\
                    OATH0003, 3132333435363738393031323334353637383930, HOTP, 6, 7\n";
        let records = read(file.as_bytes(), Dialect::PrivacyIdea).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].credential.digits, Digits::EIGHT);
        assert_eq!(records[1].credential.algorithm, Algorithm::Sha256);
        assert_eq!(records[2].credential.kind, Kind::Hotp { counter: 7 });
        assert_eq!(records[2].location, Location::line(5));
        let written = write(&records, Dialect::PrivacyIdea).unwrap();
        assert!(written.skipped.is_empty());
        assert_eq!(read(&written.bytes, Dialect::PrivacyIdea).unwrap().len(), 3);
    }

    #[test]
    fn version_two_and_linotp() {
        let v2 = "# version: 2\nalice, ldap, realm1, OATH9, 3132333435363738393031323334353637383930, TOTP, 6, 30\n";
        let records = read(v2.as_bytes(), Dialect::PrivacyIdea).unwrap();
        assert_eq!(records[0].user.as_deref(), Some("alice"));
        let written = write(&records, Dialect::PrivacyIdeaV2).unwrap();
        assert_eq!(
            String::from_utf8(written.bytes).unwrap(),
            "# version: 2\nalice, , , OATH9, 3132333435363738393031323334353637383930, TOTP, 6, 30\n"
        );
        let lin =
            "L1, 3132333435363738393031323334353637383930, totp, 6, 30, sha256\nL2, 3132, , , , \n";
        let records = read(lin.as_bytes(), Dialect::LinOtp).unwrap();
        assert_eq!(records[0].credential.algorithm, Algorithm::Sha256);
        assert_eq!(records[1].credential.kind, Kind::Hotp { counter: 0 });
        let err = read(b"X, 31g2, TOTP, 6, 30\n", Dialect::PrivacyIdea).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, seed: character 3 of the hex secret is a letter or digit outside the alphabet; hex uses only 0-9 and A-F (OATH CSV seeds are hex)"
        );
    }

    #[test]
    fn writing_refuses_a_hash_the_seed_length_contradicts() {
        let mut record = Record::new(Credential::totp(Secret::from_bytes(vec![1; 20])));
        record.serial = Some("S".into());
        record.credential.algorithm = Algorithm::Sha256;
        let written = write(std::slice::from_ref(&record), Dialect::PrivacyIdea).unwrap();
        assert_eq!(written.skipped.len(), 1);
        assert!(
            written.skipped[0]
                .reason
                .contains("a 20-byte seed is read as sha1")
        );
        // LinOTP has a hash column and takes it.
        assert!(
            write(&[record], Dialect::LinOtp)
                .unwrap()
                .skipped
                .is_empty()
        );
    }
}
