//! The helpdesk spreadsheet: the plaintext CSV of `username,secret` rows
//! (with optional serial, model, manufacturer and interval columns) that
//! oathdesk's vault replaces.
//!
//! Reading is forgiving about what spreadsheets do to files — a byte-order
//! mark, `;` or tab separators from European Excel, header names in any
//! case, secrets written in groups with spaces — and exact about the rows:
//! every bad row is reported with its line number and field, so the admin
//! can fix the file and import it whole.

use oathdesk_otp::{Secret, SecretError};

/// A good row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRow {
    /// Line in the file (1 = the header).
    pub line: u64,
    pub user: String,
    pub secret: Secret,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
    /// Time step in seconds (30 unless the sheet says otherwise).
    pub period: u64,
}

/// A bad row: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetProblem {
    pub line: u64,
    pub field: &'static str,
    pub problem: String,
}

impl std::fmt::Display for SheetProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, {}: {}", self.line, self.field, self.problem)
    }
}

/// What a spreadsheet holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sheet {
    pub rows: Vec<SheetRow>,
    pub problems: Vec<SheetProblem>,
}

/// A file that cannot be read as a spreadsheet at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "the header has no {0} column: the first line must name the columns, e.g. \
         'username,secret' (optional: serial, model, manufacturer, interval)"
    )]
    MissingColumn(&'static str),
    #[error("line {line}: {problem}")]
    Csv { line: u64, problem: String },
}

/// Recognised header names, lower case, for each column.
const USER: &[&str] = &[
    "username",
    "user",
    "upn",
    "user name",
    "email",
    "e-mail",
    "login",
    "account",
];
const SECRET: &[&str] = &[
    "secret",
    "secret key",
    "secretkey",
    "seed",
    "key",
    "totp secret",
];
const SERIAL: &[&str] = &["serial", "serial number", "serialnumber", "serial no"];
const MODEL: &[&str] = &["model"];
const MANUFACTURER: &[&str] = &["manufacturer", "vendor", "make"];
const INTERVAL: &[&str] = &[
    "interval",
    "time interval",
    "timeinterval",
    "period",
    "step",
    "time step",
];

/// Reads a spreadsheet export.
pub fn read(bytes: &[u8]) -> Result<Sheet, SheetError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let header_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SheetError::Empty);
    }
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| header_line.iter().filter(|b| *b == d).count())
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| SheetError::Csv {
            line: 1,
            problem: e.to_string(),
        })?
        .clone();
    let column = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.contains(&h.trim().to_ascii_lowercase().as_str()))
    };
    let user_column = column(USER).ok_or(SheetError::MissingColumn("username"))?;
    let secret_column = column(SECRET).ok_or(SheetError::MissingColumn("secret"))?;
    let serial_column = column(SERIAL);
    let model_column = column(MODEL);
    let manufacturer_column = column(MANUFACTURER);
    let interval_column = column(INTERVAL);

    let mut sheet = Sheet::default();
    let mut serials_seen: std::collections::HashMap<String, u64> = Default::default();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = crate::record::csv_line(bytes, e.position());
                sheet.problems.push(SheetProblem {
                    line,
                    field: "row",
                    problem: e.to_string(),
                });
                continue;
            }
        };
        let line = crate::record::csv_line(bytes, record.position());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |index: Option<usize>| {
            index
                .and_then(|i| record.get(i))
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        let mut problem = |field: &'static str, problem: String| {
            sheet.problems.push(SheetProblem {
                line,
                field,
                problem,
            });
        };
        let user = field(Some(user_column));
        if user.is_none() {
            problem("username", "is empty".into());
        }
        let secret = match field(Some(secret_column)) {
            None => {
                problem("secret", "is empty".into());
                None
            }
            Some(text) => match Secret::from_unspecified(&text) {
                Ok(secret) => Some(secret),
                Err(SecretError::LooksLikeHex) => {
                    problem(
                        "secret",
                        "looks like hex, not Base32: convert it with 'oathdesk seed convert --hex - \
                         --to base32' (it reads the secret from standard input; keep secrets off \
                         the command line)"
                            .into(),
                    );
                    None
                }
                Err(e) => {
                    problem("secret", e.to_string());
                    None
                }
            },
        };
        let period = match field(interval_column) {
            None => Some(30),
            Some(text) => match text.trim_end_matches(['s', 'S']).trim().parse::<u64>() {
                Ok(period) if period > 0 => Some(period),
                _ => {
                    problem(
                        "interval",
                        format!("'{text}' is not a number of seconds (30 or 60)"),
                    );
                    None
                }
            },
        };
        let serial = field(serial_column);
        if let Some(serial) = &serial {
            if let Some(first) = serials_seen.get(serial) {
                problem("serial", format!("{serial} is also on line {first}"));
                continue;
            }
            serials_seen.insert(serial.clone(), line);
        }
        if let (Some(user), Some(secret), Some(period)) = (user, secret, period) {
            sheet.rows.push(SheetRow {
                line,
                user,
                secret,
                serial,
                model: field(model_column),
                manufacturer: field(manufacturer_column),
                period,
            });
        }
    }
    Ok(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_reports_bad_ones_by_line() {
        let file = "\u{feff}Username;Secret;Serial Number;Interval\n\
                    alice@contoso.com;JBSW Y3DP EHPK 3PXP;2100001;30\n\
                    bob@contoso.com;3132333435363738393031323334353637383930;2100002;30\n\
                    ;JBSWY3DPEHPK3PXP;2100003;30\n\
                    carol@contoso.com;JBSWY3DPEHPK3PXP;2100001;60\n\
                    dave@contoso.com;JBSWY3DPEHPK3PXP;2100004;half a minute\n\
                    erin@contoso.com;GEZDGNBVGY3TQOJQ;;60\n";
        let sheet = read(file.as_bytes()).unwrap();
        assert_eq!(sheet.rows.len(), 2);
        assert_eq!(sheet.rows[0].user, "alice@contoso.com");
        assert_eq!(
            sheet.rows[0].secret.to_base32().as_str(),
            "JBSWY3DPEHPK3PXP"
        );
        assert_eq!(sheet.rows[0].serial.as_deref(), Some("2100001"));
        assert_eq!(sheet.rows[1].period, 60);
        assert_eq!(sheet.rows[1].serial, None);
        let problems: Vec<String> = sheet.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            vec![
                "line 3, secret: looks like hex, not Base32: convert it with 'oathdesk seed \
                 convert --hex - --to base32' (it reads the secret from standard input; keep \
                 secrets off the command line)",
                "line 4, username: is empty",
                "line 5, serial: 2100001 is also on line 2",
                "line 6, interval: 'half a minute' is not a number of seconds (30 or 60)",
            ]
        );
        assert!(problems.iter().all(|p| !p.contains("3132333435")));
    }

    #[test]
    fn refuses_files_without_the_columns() {
        assert_eq!(read(b"").unwrap_err(), SheetError::Empty);
        assert_eq!(
            read(b"name,token\nalice,JBSWY3DPEHPK3PXP\n").unwrap_err(),
            SheetError::MissingColumn("username")
        );
        assert_eq!(
            read(b"upn,serial\nalice,1\n").unwrap_err(),
            SheetError::MissingColumn("secret")
        );
    }
}
