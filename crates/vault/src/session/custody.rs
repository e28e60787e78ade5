//! Custody of serial ranges: choose tokens by a serial range or pattern,
//! export their secrets encrypted to one recipient (an age X25519 key), and
//! record for each token to whom, when and in which file (by SHA-256) its
//! secret went — signed records ([`kind::CUSTODY`]), copied with the vault.
//! Whoever receives the file later checks it against that record: by the
//! file's hash ([`Session::custody_of_file`]) or by its tokens' secrets and
//! serials ([`Session::custody_check`], in `custody_match`).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use oathdesk_formats::format::{self, Format, WriteOptions};

use super::records;
use super::*;
use crate::audit::hex;

/// Which serials: `A..B` (same prefix, numbers of the same width, both
/// ends included), a glob (`*`, `?`), or one serial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialSelector {
    Range {
        prefix: String,
        width: usize,
        from: u64,
        to: u64,
    },
    Glob(String),
    Exact(String),
}

/// A serial's prefix and trailing number (`OATH0042` → `OATH`, `0042`).
fn split_number(serial: &str) -> Option<(&str, &str)> {
    let digits = serial
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit())
        .last()
        .map(|(i, _)| i)?;
    Some((&serial[..digits], &serial[digits..]))
}

impl SerialSelector {
    pub fn parse(text: &str) -> Result<SerialSelector> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Invalid(
                "--serial is empty: give FIRST..LAST, a pattern with * or ?, or a serial".into(),
            ));
        }
        if let Some((first, last)) = text.split_once("..") {
            let bad = |why: &str| {
                Error::Invalid(format!(
                    "serial range '{text}': {why} (write it as OATH0001..OATH0500)"
                ))
            };
            let (Some((p1, n1)), Some((p2, n2))) = (split_number(first), split_number(last)) else {
                return Err(bad("both ends must end in a number"));
            };
            if p1 != p2 {
                return Err(bad("both ends must have the same prefix"));
            }
            if n1.len() != n2.len() {
                return Err(bad("both numbers must have the same number of digits"));
            }
            let parse = |n: &str| n.parse::<u64>().map_err(|_| bad("the number is too long"));
            let (from, to) = (parse(n1)?, parse(n2)?);
            if from > to {
                return Err(bad("the first serial comes after the last"));
            }
            return Ok(SerialSelector::Range {
                prefix: p1.to_owned(),
                width: n1.len(),
                from,
                to,
            });
        }
        if text.contains(['*', '?']) {
            return Ok(SerialSelector::Glob(text.to_owned()));
        }
        Ok(SerialSelector::Exact(text.to_owned()))
    }

    pub fn matches(&self, serial: &str) -> bool {
        match self {
            SerialSelector::Exact(wanted) => wanted == serial,
            SerialSelector::Glob(pattern) => glob(pattern.as_bytes(), serial.as_bytes()),
            SerialSelector::Range {
                prefix,
                width,
                from,
                to,
            } => split_number(serial).is_some_and(|(p, n)| {
                p == prefix
                    && n.len() == *width
                    && n.parse::<u64>().is_ok_and(|n| (*from..=*to).contains(&n))
            }),
        }
    }
}

/// `*` any run of characters, `?` one character, the rest itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// To whom a token's secret went (a signed record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyEntry {
    pub credential: String,
    pub serial: Option<String>,
    /// The profile of a multi-profile token (none in records from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    pub exported_on: u64,
    pub exported_by: String,
    /// The age recipient (`age1…`).
    pub recipient: String,
    pub format: String,
    /// SHA-256 of the encrypted file, hex.
    pub file_sha256: String,
    /// The secret's keyed fingerprint, hex (see `custody_match`): how the
    /// token is recognised in a file that is not this one. None in records
    /// from before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_fingerprint: Option<String>,
}

/// An encrypted export and its custody record.
pub struct CustodyExport {
    /// The age-encrypted seed file.
    pub file: Vec<u8>,
    pub file_sha256: String,
    pub entries: Vec<CustodyEntry>,
    /// Tokens the format could not carry (nothing recorded for them).
    pub skipped: Vec<String>,
}

/// SHA-256 of a file, hex.
pub fn file_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl<S: Store> Session<S> {
    /// The credentials whose device serial `selector` picks, by serial.
    pub fn tokens_by_serial(&mut self, selector: &SerialSelector) -> Result<Vec<TokenInfo>> {
        let mut tokens: Vec<TokenInfo> = self
            .tokens(&CredentialFilter::default())?
            .into_iter()
            .filter(|t| t.serial.as_deref().is_some_and(|s| selector.matches(s)))
            .collect();
        tokens.sort_by(|a, b| (&a.serial, a.slot).cmp(&(&b.serial, b.slot)));
        Ok(tokens)
    }

    /// Exports the held secrets of the tokens `selector` picks as `format`,
    /// encrypted to `recipient`, and records custody for each in the same
    /// transaction as one audit entry listing them.
    pub fn export_custody(
        &mut self,
        selector: &SerialSelector,
        recipient: &str,
        format: Format,
        now: u64,
    ) -> Result<CustodyExport> {
        self.require(Permission::Export)?;
        let age_recipient = crypto::parse_recipient(recipient)?;
        let chosen: Vec<(TokenInfo, Credential)> = self
            .reveal_all(&CredentialFilter::default())?
            .into_iter()
            .filter(|(t, _)| t.serial.as_deref().is_some_and(|s| selector.matches(s)))
            .collect();
        if chosen.is_empty() {
            return Err(Error::NotFound(
                "a token with a held secret whose serial matches".into(),
            ));
        }
        let records: Vec<oathdesk_formats::Record> = chosen
            .iter()
            .map(|(info, credential)| exchange::token_to_record(info, credential.clone()))
            .collect();
        let written = format::write(format, &records, &WriteOptions::default())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let plain = Zeroizing::new(written.bytes);
        let file = age::encrypt(&age_recipient, &plain)
            .map_err(|e| Error::Crypto(format!("age encryption: {e}")))?;
        let sha = file_sha256(&file);
        let skipped: Vec<String> = written
            .skipped
            .iter()
            .map(|s| chosen[s.index].0.reference())
            .collect();
        let operator = self.operator.clone();
        let fingerprint_key = super::custody_match::fingerprint_key(&self.audit_keys)?;
        let entries: Vec<CustodyEntry> = chosen
            .iter()
            .filter(|(info, _)| !skipped.contains(&info.reference()))
            .map(|(info, credential)| CustodyEntry {
                credential: info.reference(),
                serial: info.serial.clone(),
                slot: info.slot,
                exported_on: now,
                exported_by: operator.clone(),
                recipient: age_recipient.to_string(),
                format: format.name().to_owned(),
                file_sha256: sha.clone(),
                secret_fingerprint: Some(super::custody_match::fingerprint(
                    &fingerprint_key,
                    credential.secret.as_bytes(),
                )),
            })
            .collect();
        let ids: Vec<i64> = chosen
            .iter()
            .filter(|(info, _)| !skipped.contains(&info.reference()))
            .map(|(info, _)| info.id)
            .collect();
        self.change(now, |tx, keys| {
            let rows = entries
                .iter()
                .zip(&ids)
                .map(|(entry, id)| {
                    records::record(
                        kind::CUSTODY,
                        &format!("{id}:{sha}"),
                        "exported",
                        entry,
                        now,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            records::put(tx, keys, rows)?;
            let event = AuditEvent::ok("custody.export").detail(json!({
                "format": format.name(),
                "recipient": age_recipient.to_string(),
                "file_sha256": sha,
                "count": entries.len(),
                "credentials": entries.iter().map(|e| &e.credential).collect::<Vec<_>>(),
            }));
            Ok(((), event))
        })?;
        Ok(CustodyExport {
            file,
            file_sha256: sha,
            entries,
            skipped,
        })
    }

    /// The custody records of the file with this SHA-256 (its hex), each
    /// signature checked: which tokens it carries, to whom, since when.
    pub fn custody_of_file(&mut self, sha256: &str) -> Result<Vec<CustodyEntry>> {
        self.require(Permission::InventoryRead)?;
        let tx = self.store.read()?;
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        let wanted = sha256.trim().to_ascii_lowercase();
        let mut entries = Vec::new();
        for row in records::list(&tx, &keys, kind::CUSTODY, None)? {
            let entry: CustodyEntry = records::body(&row)?;
            if entry.file_sha256 == wanted {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_globs_and_serials() {
        let range = SerialSelector::parse("OATH0001..OATH0500").unwrap();
        assert!(range.matches("OATH0001") && range.matches("OATH0500"));
        assert!(!range.matches("OATH0501") && !range.matches("OATH000") && !range.matches("X0002"));
        assert!(
            !range.matches("OATH00002"),
            "another width is another series"
        );
        let glob = SerialSelector::parse("2100*").unwrap();
        assert!(glob.matches("2100123") && !glob.matches("3100123"));
        assert!(SerialSelector::parse("21?0").unwrap().matches("2150"));
        assert!(SerialSelector::parse("A*B*C").unwrap().matches("AxxBxC"));
        assert!(!SerialSelector::parse("A*B*C").unwrap().matches("AxxBx"));
        assert_eq!(
            SerialSelector::parse("2100001").unwrap(),
            SerialSelector::Exact("2100001".into())
        );
        for (bad, why) in [
            ("OATH0500..OATH0001", "comes after"),
            ("OATH01..OATH0500", "same number of digits"),
            ("OATH0001..TOKN0500", "same prefix"),
            ("OATH..OATH", "end in a number"),
            (" ", "empty"),
        ] {
            let err = SerialSelector::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
