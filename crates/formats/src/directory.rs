//! A user directory as CSV: the data a helpdesk verifies callers against
//! (phone numbers, manager, employee id…), one user per row.
//!
//! Read as forgivingly as the helpdesk spreadsheet ([`crate::spreadsheet`]):
//! a byte-order mark, `;` or tab separators, header names in any case and
//! with spaces ("Mobile Phone", "employeeId"). The user column is required;
//! every other column is data on file, named as oathdesk names it
//! (`mobile_phone`, `office_phone`, `mail`, `manager`, `employee_id`,
//! `department`, `location`, `groups`) or, for a column it does not know,
//! by its header in lower case with `_` for spaces (`Cost Centre` →
//! `cost_centre`). The columns of a helpdesk spreadsheet that hold secrets
//! or describe the token (secret, serial, model…) are never data on file,
//! so the same file can feed both imports.
//!
//! An empty cell means "nothing on file": importing it removes the value.

use crate::spreadsheet::SheetError;

/// One user's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryRow {
    /// Line in the file (1 = the header).
    pub line: u64,
    pub user: String,
    pub display_name: Option<String>,
    /// (name, value) for every data column, in header order; `None` for an
    /// empty cell.
    pub values: Vec<(String, Option<String>)>,
}

/// A bad row or column: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryProblem {
    pub line: u64,
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for DirectoryProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, {}: {}", self.line, self.field, self.problem)
    }
}

/// What a directory file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// The data columns, as named on file.
    pub columns: Vec<String>,
    pub rows: Vec<DirectoryRow>,
    pub problems: Vec<DirectoryProblem>,
}

const USER: &[&str] = &[
    "username",
    "user",
    "upn",
    "user name",
    "userprincipalname",
    "user principal name",
    "email",
    "e-mail",
    "login",
    "account",
];
const DISPLAY_NAME: &[&str] = &[
    "display name",
    "displayname",
    "display_name",
    "name",
    "full name",
];
/// Columns of the helpdesk spreadsheet that are about the token, not the user.
const NOT_DATA: &[&str] = &[
    "secret",
    "secret key",
    "secretkey",
    "seed",
    "key",
    "totp secret",
    "serial",
    "serial number",
    "serialnumber",
    "serial no",
    "model",
    "manufacturer",
    "vendor",
    "make",
    "interval",
    "time interval",
    "timeinterval",
    "period",
    "step",
    "time step",
];
/// Known data names and the headers that mean them.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "mobile_phone",
        &[
            "mobile",
            "mobile phone",
            "mobilephone",
            "mobile_phone",
            "cell",
            "cell phone",
        ],
    ),
    (
        "office_phone",
        &[
            "office phone",
            "office_phone",
            "business phone",
            "businessphones",
            "businessphone",
            "telephone",
            "phone",
            "work phone",
        ],
    ),
    ("mail", &["mail", "email address", "contact email"]),
    (
        "manager",
        &["manager", "manager upn", "manager_upn", "manager email"],
    ),
    (
        "employee_id",
        &[
            "employee id",
            "employeeid",
            "employee_id",
            "staff id",
            "employee number",
        ],
    ),
    ("department", &["department", "dept"]),
    (
        "location",
        &[
            "location",
            "office",
            "officelocation",
            "office location",
            "site",
        ],
    ),
    ("groups", &["groups", "group"]),
];

/// The data name of a header: a known one, or the header in lower case
/// with `_` for anything but letters and digits.
pub fn data_name(header: &str) -> String {
    let lower = header.trim().to_lowercase();
    if let Some((name, _)) = KNOWN
        .iter()
        .find(|(_, aliases)| aliases.contains(&lower.as_str()))
    {
        return (*name).to_owned();
    }
    let mut name = String::new();
    for c in lower.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('_') && !name.is_empty() {
            name.push('_');
        }
    }
    name.trim_end_matches('_').to_owned()
}

/// Reads a directory file.
pub fn read(bytes: &[u8]) -> Result<Directory, SheetError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SheetError::Empty);
    }
    let header_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
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
    let lower: Vec<String> = headers.iter().map(|h| h.trim().to_lowercase()).collect();
    let user = lower
        .iter()
        .position(|h| USER.contains(&h.as_str()))
        .ok_or(SheetError::MissingColumn("user (username, upn)"))?;
    let display = lower
        .iter()
        .position(|h| DISPLAY_NAME.contains(&h.as_str()));
    let mut directory = Directory::default();
    // (column index, data name)
    let mut data: Vec<(usize, String)> = Vec::new();
    for (index, header) in lower.iter().enumerate() {
        if index == user || Some(index) == display || NOT_DATA.contains(&header.as_str()) {
            continue;
        }
        let name = data_name(header);
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase()) && name.len() <= 40;
        if !valid {
            directory.problems.push(DirectoryProblem {
                line: 1,
                field: headers[index].to_owned(),
                problem: "this column's name does not make a name for data on file (start it with a letter, at most 40 characters); the column was not imported".into(),
            });
            continue;
        }
        if data.iter().any(|(_, n)| *n == name) {
            directory.problems.push(DirectoryProblem {
                line: 1,
                field: headers[index].to_owned(),
                problem: format!("a second column for {name}; only the first was imported"),
            });
            continue;
        }
        directory.columns.push(name.clone());
        data.push((index, name));
    }
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                directory.problems.push(DirectoryProblem {
                    line,
                    field: "row".into(),
                    problem: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let upn = record.get(user).unwrap_or_default().trim();
        if upn.is_empty() {
            directory.problems.push(DirectoryProblem {
                line,
                field: headers[user].to_owned(),
                problem: "no user on this row; the row was not imported".into(),
            });
            continue;
        }
        if let Some(bad) = record
            .iter()
            .find(|cell| cell.chars().any(char::is_control))
        {
            let column = record.iter().position(|c| c == bad).unwrap_or(0);
            directory.problems.push(DirectoryProblem {
                line,
                field: headers.get(column).unwrap_or("?").to_owned(),
                problem: "a control character (tab, line break or escape) in the cell; the row was not imported".into(),
            });
            continue;
        }
        let values = data
            .iter()
            .map(|(index, name)| {
                let value = record.get(*index).unwrap_or_default().trim();
                (
                    name.clone(),
                    Some(value.to_owned()).filter(|v| !v.is_empty()),
                )
            })
            .collect();
        directory.rows.push(DirectoryRow {
            line,
            user: upn.to_owned(),
            display_name: display
                .and_then(|d| record.get(d))
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            values,
        });
    }
    Ok(directory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_and_free_columns_and_never_a_secret() {
        let file = "\u{feff}UPN;Display Name;Mobile Phone;businessPhones;Manager;employeeId;Cost Centre;secret;serial\n\
                    alice@contoso.com;Alice A;+44 7700 900123;;bob@contoso.com;E1;CC-1;JBSWY3DPEHPK3PXP;S1\n\
                    ;nobody;1;2;3;4;5;6;7\n";
        let directory = read(file.as_bytes()).unwrap();
        assert_eq!(
            directory.columns,
            [
                "mobile_phone",
                "office_phone",
                "manager",
                "employee_id",
                "cost_centre"
            ]
        );
        let alice = &directory.rows[0];
        assert_eq!(alice.line, 2);
        assert_eq!(alice.display_name.as_deref(), Some("Alice A"));
        assert_eq!(
            alice.values,
            [
                (
                    "mobile_phone".to_owned(),
                    Some("+44 7700 900123".to_owned())
                ),
                ("office_phone".to_owned(), None),
                ("manager".to_owned(), Some("bob@contoso.com".to_owned())),
                ("employee_id".to_owned(), Some("E1".to_owned())),
                ("cost_centre".to_owned(), Some("CC-1".to_owned())),
            ]
        );
        assert!(!format!("{directory:?}").contains("JBSWY3DP"));
        assert_eq!(directory.problems.len(), 1);
        assert_eq!(directory.problems[0].line, 3);
        assert!(directory.problems[0].problem.contains("no user"));
    }

    #[test]
    fn a_file_without_a_user_column_is_refused() {
        assert!(matches!(
            read(b"mobile,manager\n1,2\n"),
            Err(SheetError::MissingColumn(_))
        ));
        assert!(matches!(read(b"  \n"), Err(SheetError::Empty)));
    }

    #[test]
    fn odd_headers_are_named_or_reported() {
        assert_eq!(data_name("Cost  Centre (EU)"), "cost_centre_eu");
        assert_eq!(data_name("Office Location"), "location");
        let directory = read(b"upn,2fa,phone,telephone\na@x,1,2,3\n").unwrap();
        assert_eq!(directory.columns, ["office_phone"]);
        assert_eq!(directory.problems.len(), 2, "{:?}", directory.problems);
    }
}
