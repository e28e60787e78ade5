//! The seed-file linter: what will go wrong with a file before it is
//! imported anywhere.
//!
//! Three kinds of finding:
//! - damage to the file itself (a byte-order mark, `;` separators from a
//!   European Excel, serials turned into `2.10012E+09` or stripped of their
//!   leading zeros);
//! - problems with records (hex where Base32 belongs, padding, a key length
//!   that contradicts the hash — the RFC 6238 SHA-256/512 trap — duplicate
//!   serials or secrets);
//! - what a target system cannot take (`--target entra|entra-graph|
//!   privacyidea|linotp|molto2|single-profile`).
//!
//! Line-oriented files are checked line by line, so one bad row does not hide
//! the next.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use oathdesk_otp::{Algorithm, Kind, looks_like_hex};
use serde::Serialize;

use crate::entra;
use crate::format::{self, Format};
use crate::oathcsv::hash_from_seed_len;
use crate::record::{FormatError, Keys, Location, Record};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; the import will probably work.
    Warning,
    /// The import will fail or produce wrong codes.
    Error,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// `line 4`, `KeyPackage 2`, ... (empty for the whole file).
    pub location: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{severity}: ")?;
        match (&self.location, &self.field) {
            (Some(place), Some(field)) => write!(f, "{place}, {field}: ")?,
            (Some(place), None) => write!(f, "{place}: ")?,
            (None, Some(field)) => write!(f, "{field}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// A system the file is meant for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Entra,
    EntraGraph,
    PrivacyIdea,
    LinOtp,
    Molto2,
    SingleProfile,
}

impl FromStr for Target {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Target, FormatError> {
        match s.to_ascii_lowercase().as_str() {
            "entra" | "entra-csv" | "azure" => Ok(Target::Entra),
            "entra-graph" | "entra-json" | "graph" => Ok(Target::EntraGraph),
            "privacyidea" => Ok(Target::PrivacyIdea),
            "linotp" => Ok(Target::LinOtp),
            "molto2" | "molto-2" => Ok(Target::Molto2),
            "single-profile" | "nfc" => Ok(Target::SingleProfile),
            _ => Err(FormatError::new(format!(
                "unknown target '{s}': use entra, entra-graph, privacyidea, linotp, molto2 or single-profile"
            ))),
        }
    }
}

/// The linter's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format: String,
    pub records: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

fn finding(
    severity: Severity,
    location: &Location,
    field: Option<&str>,
    message: impl Into<String>,
) -> Finding {
    Finding {
        severity,
        location: location.describe(),
        field: field.map(str::to_owned),
        message: message.into(),
    }
}

/// Lints a file. `Err` only when nothing can be read at all (an unknown
/// format, a file that is not text, an encrypted file without its key).
pub fn lint(
    bytes: &[u8],
    format: Option<Format>,
    keys: &Keys,
    target: Option<Target>,
) -> Result<Report, FormatError> {
    let format = match format {
        Some(format) => format,
        None => format::detect(bytes)?,
    };
    let mut findings = file_damage(bytes, format);
    // A `;`- or tab-separated file is read as its comma-separated self
    // (file_damage has said so); its lines stay where they were.
    let commas = crate::comma_separated(bytes);
    let bytes = commas.as_deref().map_or(bytes, Vec::as_slice);
    let mut unread_serials = Vec::new();
    let records = match format {
        Format::EntraCsv
        | Format::PrivacyIdea
        | Format::PrivacyIdeaV2
        | Format::LinOtp
        | Format::Otpauth
        | Format::Google => {
            read_line_by_line(bytes, format, keys, &mut findings, &mut unread_serials)?
        }
        _ => match format::read_all(format, bytes, keys) {
            Ok(read) => {
                for skipped in &read.skipped {
                    findings.push(finding(
                        Severity::Warning,
                        &Location::default(),
                        None,
                        format!("{}: left out: {}", skipped.reference, skipped.reason),
                    ));
                }
                read.records
            }
            Err(e) if e.location == Location::default() => return Err(e),
            Err(e) => {
                findings.push(finding(
                    Severity::Error,
                    &e.location,
                    e.field.as_deref(),
                    e.message,
                ));
                Vec::new()
            }
        },
    };
    findings.extend(record_findings(&records, format, bytes));
    findings.extend(duplicate_serials(&records, &unread_serials));
    if let Some(target) = target {
        for record in &records {
            if let Some(message) = target_refusal(record, target) {
                findings.push(finding(Severity::Error, &record.location, None, message));
            }
        }
    }
    Ok(Report {
        format: format.name().into(),
        records: records.len(),
        findings,
    })
}

/// Lints the helpdesk's `username,secret` spreadsheet (what `oathdesk
/// import spreadsheet` takes): every bad row, then the checks every record
/// gets. `Err` when it cannot be read as a spreadsheet at all.
pub fn lint_spreadsheet(bytes: &[u8], target: Option<Target>) -> Result<Report, FormatError> {
    let sheet = crate::spreadsheet::read(bytes).map_err(|e| FormatError::new(e.to_string()))?;
    let mut findings = Vec::new();
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        findings.push(finding(
            Severity::Warning,
            &Location::default(),
            None,
            "the file starts with a byte-order mark (Excel's 'CSV UTF-8'); oathdesk reads it, \
             some importers read it as part of the first column",
        ));
    }
    for problem in &sheet.problems {
        findings.push(finding(
            Severity::Error,
            &Location::line(problem.line),
            Some(problem.field),
            problem.problem.clone(),
        ));
    }
    let records: Vec<Record> = sheet
        .rows
        .iter()
        .map(|row| {
            let mut credential = oathdesk_otp::Credential::totp(row.secret.clone());
            if let Ok(step) = oathdesk_otp::TimeStep::new(row.period, 0) {
                credential.kind = Kind::Totp { step };
            }
            credential.account = row.user.clone();
            Record {
                credential,
                serial: row.serial.clone(),
                slot: None,
                manufacturer: row.manufacturer.clone(),
                model: row.model.clone(),
                user: Some(row.user.clone()),
                location: Location::line(row.line),
            }
        })
        .collect();
    findings.extend(record_findings(&records, Format::Oathdesk, bytes));
    if let Some(target) = target {
        for record in &records {
            if let Some(message) = target_refusal(record, target) {
                findings.push(finding(Severity::Error, &record.location, None, message));
            }
        }
    }
    Ok(Report {
        format: "spreadsheet".into(),
        records: records.len(),
        findings,
    })
}

/// Reads a line-oriented file one data line at a time (with its header, if
/// it has one), so every bad line is reported.
fn read_line_by_line(
    bytes: &[u8],
    format: Format,
    keys: &Keys,
    findings: &mut Vec<Finding>,
    unread_serials: &mut Vec<(Location, String)>,
) -> Result<Vec<Record>, FormatError> {
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        .map_err(|e| FormatError::new(format!("not UTF-8 text: {e}")))?;
    let mut lines = text.lines();
    let header = match format {
        Format::EntraCsv => lines.next().map(|h| format!("{h}\n")),
        Format::PrivacyIdeaV2 => Some(String::from("# version: 2\n")),
        _ => None,
    };
    let offset = u64::from(format == Format::EntraCsv);
    let mut records = Vec::new();
    for (index, line) in lines.enumerate() {
        let line_number = index as u64 + 1 + offset;
        if line.trim().is_empty()
            || (format == Format::PrivacyIdeaV2 && line.trim_start().starts_with('#'))
        {
            continue;
        }
        let chunk = format!("{}{line}\n", header.as_deref().unwrap_or_default());
        match format::read(format, chunk.as_bytes(), keys) {
            Ok(mut found) => {
                for record in &mut found {
                    record.location.line = Some(line_number);
                }
                records.extend(found);
            }
            Err(e) => {
                // The row still counts for duplicate serials.
                if let Some(serial) = raw_field(line, serial_column(format)) {
                    unread_serials.push((Location::line(line_number), serial));
                }
                let mut location = e.location.clone();
                if location.line.is_some() {
                    location.line = Some(line_number);
                }
                if location == Location::default() {
                    location = Location::line(line_number);
                }
                findings.push(finding(
                    Severity::Error,
                    &location,
                    e.field.as_deref(),
                    e.message,
                ));
            }
        }
    }
    Ok(records)
}

/// What spreadsheets and editors do to files.
fn file_damage(bytes: &[u8], format: Format) -> Vec<Finding> {
    let mut found = Vec::new();
    let whole = Location::default();
    let csv_like = matches!(
        format,
        Format::EntraCsv | Format::PrivacyIdea | Format::PrivacyIdeaV2 | Format::LinOtp
    );
    if !csv_like {
        return found;
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        found.push(finding(
            Severity::Warning,
            &whole,
            None,
            "the file starts with a byte-order mark (Excel's 'CSV UTF-8'); some importers read it as part of the first column",
        ));
    }
    let text = String::from_utf8_lossy(bytes);
    let first = text.lines().next().unwrap_or_default();
    if let Some(separator) = crate::csv_separator(bytes) {
        let (name, origin) = match separator {
            b';' => ("';'", "Excel in a European locale"),
            _ => ("tabs", "a spreadsheet's 'Unicode text'"),
        };
        found.push(finding(
            Severity::Warning,
            &Location::line(1),
            None,
            format!(
                "fields are separated by {name} ({origin}); oathdesk reads it, but other importers \
                 (Entra's upload among them) need commas: save as 'CSV UTF-8 (comma delimited)' or \
                 rewrite it with 'oathdesk convert --to {}'",
                format.name()
            ),
        ));
    }
    if format == Format::EntraCsv
        && crate::csv_separator(bytes).is_none()
        && first.trim_start_matches('\u{feff}') != entra::CSV_HEADER
    {
        found.push(finding(
            Severity::Warning,
            &Location::line(1),
            None,
            format!(
                "the header differs from Entra's documented one: {}",
                entra::CSV_HEADER
            ),
        ));
    }
    // Serials: scientific notation and lost leading zeros.
    let serial_column = serial_column(format);
    let data_start = usize::from(format == Format::EntraCsv);
    let mut digit_lengths: HashMap<usize, usize> = HashMap::new();
    let mut numeric_serials = Vec::new();
    for (index, line) in text.lines().enumerate().skip(data_start) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some(serial) = line.split([',', ';']).nth(serial_column) else {
            continue;
        };
        let serial = serial.trim().trim_matches('"');
        let at = Location::line(index as u64 + 1);
        if is_scientific(serial) {
            found.push(finding(
                Severity::Error,
                &at,
                Some("serial"),
                format!(
                    "'{serial}' is a number in scientific notation: a spreadsheet rounded the serial; \
                     re-export with the column formatted as text"
                ),
            ));
        } else if !serial.is_empty() && serial.bytes().all(|b| b.is_ascii_digit()) {
            *digit_lengths.entry(serial.len()).or_default() += 1;
            numeric_serials.push((at, serial.to_owned()));
        }
    }
    if let Some((&usual, &count)) = digit_lengths
        .iter()
        .max_by_key(|(len, count)| (**count, **len))
        && count >= 2
    {
        for (at, serial) in numeric_serials {
            if serial.len() < usual {
                found.push(finding(
                    Severity::Warning,
                    &at,
                    Some("serial"),
                    format!(
                        "'{serial}' has {} digits where the others have {usual}: leading zeros lost in a spreadsheet?",
                        serial.len()
                    ),
                ));
            }
        }
    }
    found
}

/// The column of the serial in a CSV format's rows.
fn serial_column(format: Format) -> usize {
    match format {
        Format::EntraCsv => 1,
        Format::PrivacyIdeaV2 => 3,
        _ => 0,
    }
}

/// A CSV row's field, trimmed and unquoted; `None` when empty or absent.
fn raw_field(line: &str, column: usize) -> Option<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let row = reader.records().next()?.ok()?;
    let field = row.get(column)?.trim();
    (!field.is_empty()).then(|| field.to_owned())
}

/// Serials used twice, counting rows that could not be read (a row with a
/// bad secret is still a row with a serial).
fn duplicate_serials(records: &[Record], unread: &[(Location, String)]) -> Vec<Finding> {
    let mut rows: Vec<(&Location, &str, Option<u32>)> = records
        .iter()
        .filter_map(|r| r.serial.as_deref().map(|s| (&r.location, s, r.slot)))
        .chain(
            unread
                .iter()
                .map(|(at, serial)| (at, serial.as_str(), None)),
        )
        .collect();
    rows.sort_by_key(|(at, ..)| at.line);
    let mut seen: HashMap<(&str, Option<u32>), &Location> = HashMap::new();
    let mut found = Vec::new();
    for (at, serial, slot) in rows {
        if let Some(first) = seen.insert((serial, slot), at) {
            found.push(finding(
                Severity::Error,
                at,
                Some("serial"),
                format!(
                    "serial {serial} is also at {}",
                    first.describe().unwrap_or_else(|| "another record".into())
                ),
            ));
            // Later rows are reported against the first one.
            seen.insert((serial, slot), first);
        }
    }
    found
}

fn is_scientific(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    let Some((mantissa, exponent)) = upper.split_once('E') else {
        return false;
    };
    let exponent = exponent.trim_start_matches(['+', '-']);
    !mantissa.is_empty()
        && mantissa
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// Problems with the records themselves.
fn record_findings(records: &[Record], format: Format, bytes: &[u8]) -> Vec<Finding> {
    let mut found = Vec::new();
    let base32_source = matches!(format, Format::EntraCsv | Format::EntraJson);
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut secrets: HashMap<Vec<u8>, &Location> = HashMap::new();
    for record in records {
        let at = &record.location;
        let c = &record.credential;
        if base32_source && let Some(line) = at.line.and_then(|l| lines.get(l as usize - 1)) {
            let raw = line
                .split(',')
                .nth(2)
                .unwrap_or_default()
                .trim()
                .trim_matches('"');
            if raw.contains('=') {
                found.push(finding(
                    Severity::Warning,
                    at,
                    Some("secret key"),
                    "the secret has '=' padding; Entra's documented alphabet has no '='",
                ));
            }
            if raw.contains([' ', '-']) {
                found.push(finding(
                    Severity::Error,
                    at,
                    Some("secret key"),
                    "the secret contains spaces or hyphens; Entra takes only A-Z and 2-7",
                ));
            }
            if looks_like_hex(raw) {
                found.push(finding(
                    Severity::Warning,
                    at,
                    Some("secret key"),
                    "the secret is made only of hex characters: if the vendor meant hex, convert it \
                     with 'oathdesk seed convert --hex - --to base32' (it reads the secret from \
                     standard input; keep secrets off the command line); Base32 read from hex gives \
                     wrong codes",
                ));
            }
        }
        let length = c.secret.len();
        let natural = c.algorithm.output_len();
        if c.algorithm != Algorithm::Sha1 && length == 20 {
            found.push(finding(
                Severity::Warning,
                at,
                Some("secret"),
                format!(
                    "a 20-byte key with {}: RFC 6238's {} test key is {natural} bytes; 20 bytes is the SHA-1 key \
                     reused by mistake in many implementations — check which the token uses",
                    c.algorithm, c.algorithm
                ),
            ));
        } else if c.algorithm == Algorithm::Sha1 && matches!(length, 32 | 64) {
            found.push(finding(
                Severity::Warning,
                at,
                Some("secret"),
                format!(
                    "a {length}-byte key with SHA-1: the length suggests {}",
                    hash_from_seed_len(length)
                ),
            ));
        }
        if length < 16 {
            found.push(finding(
                Severity::Warning,
                at,
                Some("secret"),
                format!(
                    "a {length}-byte key is shorter than the 16 bytes (128 bits) RFC 4226 requires"
                ),
            ));
        }
        if let Some(first) = secrets.insert(c.secret.as_bytes().to_vec(), at) {
            found.push(finding(
                Severity::Error,
                at,
                Some("secret"),
                format!(
                    "the same secret as {}: two tokens would show the same codes",
                    first.describe().unwrap_or_else(|| "another record".into())
                ),
            ));
        }
    }
    found
}

/// Why `target` cannot take `record`, if it cannot.
pub fn target_refusal(record: &Record, target: Target) -> Option<String> {
    let c = &record.credential;
    let step = match c.kind {
        Kind::Totp { step } => Some(step),
        Kind::Hotp { .. } => None,
    };
    match target {
        Target::Entra => entra::entra_refusal(record, false).or_else(|| {
            record
                .user
                .is_none()
                .then(|| "the Entra CSV needs the user's UPN".to_owned())
        }),
        Target::EntraGraph => entra::entra_refusal(record, true),
        Target::PrivacyIdea => {
            let implied = hash_from_seed_len(c.secret.len());
            (c.algorithm != implied).then(|| {
                format!(
                    "privacyIDEA derives the hash from the seed length: this {}-byte seed would be read as {implied}, not {}",
                    c.secret.len(),
                    c.algorithm
                )
            })
        }
        Target::LinOtp => {
            if !matches!(c.digits.get(), 6 | 8) {
                Some(format!("LinOTP takes 6 or 8 digits, not {}", c.digits))
            } else {
                step.filter(|s| !matches!(s.period(), 30 | 60)).map(|step| {
                    format!(
                        "LinOTP takes 30 or 60 second steps, not {} s",
                        step.period()
                    )
                })
            }
        }
        Target::Molto2 | Target::SingleProfile => {
            let Some(step) = step else {
                return Some("Token2 programmable tokens are TOTP only".into());
            };
            if c.algorithm == Algorithm::Sha512 {
                Some("Token2 programmable tokens take SHA-1 or SHA-256, not SHA-512".into())
            } else if !matches!(step.period(), 30 | 60) || step.t0() != 0 {
                Some(format!(
                    "Token2 programmable tokens take 30 or 60 second steps from T0 = 0, not {} s",
                    step.period()
                ))
            } else if c.secret.len() > oathdesk_otp::seed::TOKEN2_MAX_SEED_BYTES {
                Some(format!(
                    "a {}-byte seed is longer than the {} bytes Token2 tokens take",
                    c.secret.len(),
                    oathdesk_otp::seed::TOKEN2_MAX_SEED_BYTES
                ))
            } else if target == Target::Molto2 && !matches!(c.digits.get(), 4 | 6 | 8 | 10) {
                Some(format!(
                    "the Molto-2 shows 4, 6, 8 or 10 digits, not {}",
                    c.digits
                ))
            } else if target == Target::SingleProfile && c.digits.get() != 6 {
                Some(format!(
                    "single-profile Token2 tokens show 6 digits, not {}",
                    c.digits
                ))
            } else if target == Target::Molto2 && record.slot.is_some_and(|s| s > 99) {
                Some("the Molto-2 has profiles 0 to 99".into())
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(report: &Report) -> Vec<String> {
        report.findings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn excel_damage_and_bad_rows_are_all_reported() {
        let file = "\u{feff}upn,serial number,secret key,time interval,manufacturer,model\n\
                    a@contoso.com,2.10012E+09,JBSWY3DPEHPK3PXP,30,Token2,C202\n\
                    b@contoso.com,0210012346,1669EBDCC7108C272FD876ED6E7F562583BE16A9,30,Token2,C202\n\
                    c@contoso.com,0210012347,GEZDGNBVGY3TQOJQ====,30,Token2,C202\n\
                    d@contoso.com,210012348,JBSWY3DPEHPK3PXP,45,Token2,C202\n\
                    e@contoso.com,0210012347,KRSXG5CTMVRXEZLU,30,Token2,C202\n";
        let report = lint(file.as_bytes(), None, &Keys::default(), Some(Target::Entra)).unwrap();
        assert_eq!(report.format, "entra-csv");
        let found = messages(&report);
        let expect = [
            "warning: the file starts with a byte-order mark",
            "error: line 2, serial: '2.10012E+09' is a number in scientific notation",
            "warning: line 5, serial: '210012348' has 9 digits where the others have 10",
            "error: line 3, secret key: character 1 of the Base32 secret is a digit 0, 1, 8 or 9",
            "warning: line 4, secret key: the secret has '=' padding",
            "error: line 6, serial: serial 0210012347 is also at line 4",
            "error: line 5: Entra takes 30 or 60 second tokens, not 45 s",
            "error: line 5, secret: the same secret as line 2",
        ];
        for expected in expect {
            assert!(
                found.iter().any(|f| f.starts_with(expected)),
                "missing '{expected}' in {found:#?}"
            );
        }
        assert!(report.has_errors());
        assert!(
            found.iter().all(|f| !f.contains("1669EB")),
            "no secret in findings"
        );
    }

    #[test]
    fn key_length_traps_and_targets() {
        let file = "[{\"type\":\"totp\",\"secret\":\"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\",\"algorithm\":\"sha256\",\"serial\":\"M\",\"slot\":1},\
                     {\"type\":\"totp\",\"secret\":\"KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU\",\"algorithm\":\"sha512\",\"digits\":7,\"serial\":\"M\",\"slot\":2}]";
        let report = lint(
            file.as_bytes(),
            None,
            &Keys::default(),
            Some(Target::Molto2),
        )
        .unwrap();
        let found = messages(&report);
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("warning: [0], secret: a 20-byte key with sha256")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|f| f
                == "error: [1]: Token2 programmable tokens take SHA-1 or SHA-256, not SHA-512"),
            "{found:#?}"
        );
        let clean = lint(
            b"otpauth://totp/A:b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=A\n",
            None,
            &Keys::default(),
            None,
        )
        .unwrap();
        assert!(clean.findings.is_empty(), "{:?}", clean.findings);
        assert!(lint(b"\x00\x01garbage", None, &Keys::default(), None).is_err());
    }
}
