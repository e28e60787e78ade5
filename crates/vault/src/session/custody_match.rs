//! Custody by content: which tokens of a file the vault exported, and to
//! whom — recognised by each token's secret (a keyed fingerprint) or its
//! serial, so that a file re-encrypted, re-formatted or only partly
//! imported elsewhere still matches, where its SHA-256 no longer does.
//!
//! The fingerprint is HMAC-SHA256 of the secret under a key derived from
//! the vault's keys: it is stored in the custody record at export (the
//! secret itself never is, and is purged later), and only this vault can
//! compute it again from a file's secret, so the record tells nothing to
//! someone who reads the database without the key. The key is derived from
//! the vault's first audit key, which came from the first vault key and
//! outlives a rekey (sealed again under each new key): a fingerprint
//! recorded before a rekey still matches after it.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use oathdesk_formats::Record;

use super::custody::CustodyEntry;
use super::records;
use super::*;
use crate::audit::hex;

/// The key of custody fingerprints, from the vault's first audit key (the
/// lowest epoch: every later one is kept).
pub(crate) fn fingerprint_key(
    audit_keys: &HashMap<i64, Zeroizing<[u8; 32]>>,
) -> Result<Zeroizing<[u8; 32]>> {
    let (_, first) = audit_keys
        .iter()
        .min_by_key(|(epoch, _)| **epoch)
        .ok_or_else(|| Error::Crypto("the vault has no audit key to derive from".into()))?;
    Ok(crypto::derive_key(
        first.as_ref(),
        b"oathdesk custody secret fingerprint v1",
    ))
}

/// The fingerprint of a secret under the custody fingerprint key, hex.
pub(crate) fn fingerprint(key: &[u8; 32], secret: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(secret);
    hex(&mac.finalize().into_bytes())
}

/// One token of a file, as the check sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// How the file names it (`SERIAL:SLOT`, an account, `line 4`).
    pub name: String,
    pub serial: Option<String>,
    pub slot: Option<u32>,
    pub fingerprint: Option<String>,
}

/// How a token of the file was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchedBy {
    /// Its secret is the one exported (whatever its serial now says).
    Secret,
    /// Its serial (and slot) is one exported, and no fingerprint could be
    /// compared (an export from before fingerprints).
    Serial,
}

/// A token of the file that the vault exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustodyFound {
    /// How the file names it.
    pub token: String,
    pub matched_by: MatchedBy,
    /// The latest export of it.
    pub custody: CustodyEntry,
}

/// One export that tokens of the file came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustodyBatch {
    pub exported_on: u64,
    pub recipient: String,
    pub exported_by: String,
    pub file_sha256: String,
    /// Tokens of the file from this export.
    pub tokens: usize,
}

/// What the vault's custody records say of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustodyCheck {
    /// The file's SHA-256 (hex) as given.
    pub file_sha256: String,
    /// Custody records of the file itself: it was handed over unchanged.
    pub by_file: Vec<CustodyEntry>,
    /// Tokens in the file.
    pub total: usize,
    /// Its tokens the vault exported, in file order.
    pub found: Vec<CustodyFound>,
    /// Its tokens the vault has no custody record of.
    pub not_found: Vec<String>,
    /// Tokens whose serial was exported with another secret: the same
    /// token burned again, or a secret that is not the one handed over.
    pub other_secret: Vec<String>,
}

impl CustodyCheck {
    /// The exports the found tokens came from, earliest first: "N of M
    /// tokens were exported on DATE to RECIPIENT".
    pub fn batches(&self) -> Vec<CustodyBatch> {
        let mut batches: BTreeMap<(u64, &str, &str), CustodyBatch> = BTreeMap::new();
        for found in &self.found {
            let c = &found.custody;
            batches
                .entry((c.exported_on, &c.recipient, &c.file_sha256))
                .or_insert_with(|| CustodyBatch {
                    exported_on: c.exported_on,
                    recipient: c.recipient.clone(),
                    exported_by: c.exported_by.clone(),
                    file_sha256: c.file_sha256.clone(),
                    tokens: 0,
                })
                .tokens += 1;
        }
        batches.into_values().collect()
    }
}

fn slots_agree(a: Option<u32>, b: Option<u32>) -> bool {
    a.is_none() || b.is_none() || a == b
}

/// Matches each probe against the custody entries: by fingerprint first,
/// else by serial and slot where either side has no fingerprint. A probe
/// whose serial was exported only under other fingerprints is neither
/// found nor unknown: it is reported apart.
pub(crate) fn match_probes(entries: &[CustodyEntry], probes: &[Probe]) -> MatchOutcome {
    let latest = |candidates: Vec<&CustodyEntry>| {
        candidates
            .into_iter()
            .max_by_key(|e| e.exported_on)
            .cloned()
    };
    let mut outcome = MatchOutcome::default();
    for probe in probes {
        let by_secret = probe.fingerprint.as_ref().and_then(|fp| {
            latest(
                entries
                    .iter()
                    .filter(|e| e.secret_fingerprint.as_ref() == Some(fp))
                    .collect(),
            )
        });
        if let Some(custody) = by_secret {
            outcome.found.push(CustodyFound {
                token: probe.name.clone(),
                matched_by: MatchedBy::Secret,
                custody,
            });
            continue;
        }
        let same_serial: Vec<&CustodyEntry> = entries
            .iter()
            .filter(|e| {
                probe.serial.is_some()
                    && e.serial.as_deref().map(str::trim) == probe.serial.as_deref().map(str::trim)
                    && slots_agree(e.slot, probe.slot)
            })
            .collect();
        if same_serial.is_empty() {
            outcome.not_found.push(probe.name.clone());
            continue;
        }
        let comparable =
            |e: &&CustodyEntry| probe.fingerprint.is_some() && e.secret_fingerprint.is_some();
        match latest(
            same_serial
                .iter()
                .copied()
                .filter(|e| !comparable(e))
                .collect(),
        ) {
            Some(custody) => outcome.found.push(CustodyFound {
                token: probe.name.clone(),
                matched_by: MatchedBy::Serial,
                custody,
            }),
            None => outcome.other_secret.push(probe.name.clone()),
        }
    }
    outcome
}

/// What [`match_probes`] found.
#[derive(Debug, Default)]
pub(crate) struct MatchOutcome {
    pub found: Vec<CustodyFound>,
    pub not_found: Vec<String>,
    pub other_secret: Vec<String>,
}

impl<S: Store> Session<S> {
    /// Checks a file against the custody records: by its SHA-256 (`sha256`,
    /// hex: a file handed over unchanged) and by the content of its tokens
    /// (`tokens`, as read from it): which of them the vault exported, when,
    /// to whom and in which file, and which not. The secrets are used only
    /// to compute their fingerprints; nothing is written.
    pub fn custody_check(&mut self, sha256: &str, tokens: &[Record]) -> Result<CustodyCheck> {
        self.require(Permission::InventoryRead)?;
        let fingerprint_key = fingerprint_key(&self.audit_keys)?;
        let probes: Vec<Probe> = tokens
            .iter()
            .enumerate()
            .map(|(index, record)| Probe {
                name: record.reference(index),
                serial: record.serial.clone(),
                slot: record.slot,
                fingerprint: (!record.credential.secret.is_empty())
                    .then(|| fingerprint(&fingerprint_key, record.credential.secret.as_bytes())),
            })
            .collect();
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        let tx = self.store.read()?;
        let entries: Vec<CustodyEntry> = records::list(&tx, &keys, kind::CUSTODY, None)?
            .iter()
            .map(records::body)
            .collect::<Result<_>>()?;
        let wanted = sha256.trim().to_ascii_lowercase();
        let outcome = match_probes(&entries, &probes);
        Ok(CustodyCheck {
            by_file: entries
                .iter()
                .filter(|e| e.file_sha256 == wanted)
                .cloned()
                .collect(),
            file_sha256: wanted,
            total: tokens.len(),
            found: outcome.found,
            not_found: outcome.not_found,
            other_secret: outcome.other_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(serial: &str, slot: Option<u32>, fp: Option<&str>, on: u64) -> CustodyEntry {
        CustodyEntry {
            credential: serial.to_owned(),
            serial: Some(serial.to_owned()),
            slot,
            exported_on: on,
            exported_by: "alice".into(),
            recipient: format!("age1recipient{on}"),
            format: "oath-csv".into(),
            file_sha256: format!("sha{on}"),
            secret_fingerprint: fp.map(str::to_owned),
        }
    }

    fn probe(name: &str, serial: Option<&str>, slot: Option<u32>, fp: Option<&str>) -> Probe {
        Probe {
            name: name.into(),
            serial: serial.map(str::to_owned),
            slot,
            fingerprint: fp.map(str::to_owned),
        }
    }

    #[test]
    fn secrets_first_then_serials_and_another_secret_apart() {
        let entries = vec![
            entry("A1", None, Some("fa"), 10),
            entry("A1", None, Some("fa"), 20),
            entry("B2", Some(3), None, 10),
            entry("C3", None, Some("fc"), 10),
        ];
        let probes = vec![
            // Renamed in the file: found by its secret, the latest export.
            probe("X", Some("ZZ"), None, Some("fa")),
            // An export from before fingerprints: by serial and slot.
            probe("B2:3", Some("B2"), Some(3), Some("fb")),
            probe("B2:4", Some("B2"), Some(4), Some("fb")),
            // C3's serial with another secret.
            probe("C3", Some("C3"), None, Some("other")),
            // A file without secrets to compare: by serial.
            probe("C3 again", Some("C3"), None, None),
            probe("D4", Some("D4"), None, Some("fd")),
        ];
        let outcome = match_probes(&entries, &probes);
        let found: Vec<(&str, MatchedBy, u64)> = outcome
            .found
            .iter()
            .map(|f| (f.token.as_str(), f.matched_by, f.custody.exported_on))
            .collect();
        assert_eq!(
            found,
            [
                ("X", MatchedBy::Secret, 20),
                ("B2:3", MatchedBy::Serial, 10),
                ("C3 again", MatchedBy::Serial, 10),
            ]
        );
        assert_eq!(outcome.not_found, ["B2:4", "D4"]);
        assert_eq!(outcome.other_secret, ["C3"]);
    }

    #[test]
    fn fingerprints_are_keyed_by_the_first_audit_key() {
        let keys = |pairs: &[(i64, u8)]| -> HashMap<i64, Zeroizing<[u8; 32]>> {
            pairs
                .iter()
                .map(|(epoch, byte)| (*epoch, Zeroizing::new([*byte; 32])))
                .collect()
        };
        let a = fingerprint_key(&keys(&[(1, 7)])).unwrap();
        // After a rekey (epoch 2 added) the key is the same.
        let rekeyed = fingerprint_key(&keys(&[(2, 9), (1, 7)])).unwrap();
        let b = fingerprint_key(&keys(&[(1, 8)])).unwrap();
        let secret = b"12345678901234567890";
        assert_eq!(fingerprint(&a, secret), fingerprint(&rekeyed, secret));
        assert_ne!(fingerprint(&a, secret), fingerprint(&b, secret));
        assert_ne!(
            fingerprint(&a, secret),
            fingerprint(&a, b"12345678901234567891")
        );
        assert_eq!(fingerprint(&a, secret).len(), 64);
        assert!(fingerprint_key(&HashMap::new()).is_err());
    }
}
