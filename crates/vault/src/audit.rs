//! The tamper-evident audit log.
//!
//! Each entry carries the previous entry's hash, and its own hash is an
//! HMAC-SHA256 over all its fields under a key derived from the vault key.
//! Someone who can write the database file but has no vault key cannot
//! edit, delete, reorder or forge an entry without `audit verify` naming
//! the first entry that no longer fits. Removing the newest entries leaves a
//! valid shorter chain: to catch that, record the head that `audit verify`
//! prints somewhere else and pass it back with `--expect-head`.

use hmac::{Hmac, Mac};
use serde::Serialize;

use crate::store::AuditRow;

type HmacSha256 = Hmac<sha2::Sha256>;

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// What an entry says, before it is chained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub action: String,
    /// `ok`, `granted` or `refused`.
    pub outcome: String,
    pub user: Option<String>,
    pub credential: Option<String>,
    pub ticket: Option<String>,
    /// JSON with the particulars (reason of a refusal, drift, counts...).
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event with outcome `ok`.
    pub fn ok(action: &str) -> AuditEvent {
        AuditEvent {
            action: action.to_owned(),
            outcome: "ok".to_owned(),
            detail: serde_json::Value::Object(Default::default()),
            ..AuditEvent::default()
        }
    }

    /// Sets the user.
    pub fn user(mut self, user: impl Into<String>) -> AuditEvent {
        self.user = Some(user.into());
        self
    }

    /// Sets the credential reference.
    pub fn credential(mut self, credential: impl Into<String>) -> AuditEvent {
        self.credential = Some(credential.into());
        self
    }

    /// Sets the detail object.
    pub fn detail(mut self, detail: serde_json::Value) -> AuditEvent {
        self.detail = detail;
        self
    }
}

/// The MAC of an entry: every field, length-prefixed so that no two
/// different entries encode the same.
pub fn entry_hash(key: &[u8; 32], row: &AuditRow) -> Vec<u8> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    let mut field = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    let optional = |value: &Option<String>| match value {
        Some(text) => [b"1".as_slice(), text.as_bytes()].concat(),
        None => b"0".to_vec(),
    };
    field(b"oathdesk audit v1");
    field(&row.seq.to_be_bytes());
    field(&row.at.to_be_bytes());
    field(row.operator.as_bytes());
    field(row.action.as_bytes());
    field(row.outcome.as_bytes());
    field(&optional(&row.user));
    field(&optional(&row.credential));
    field(&optional(&row.ticket));
    field(row.detail.as_bytes());
    field(&row.epoch.to_be_bytes());
    field(&row.prev_hash);
    mac.finalize().into_bytes().to_vec()
}

/// The result of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub entries: u64,
    /// `SEQ:HEX` of the newest entry, to keep elsewhere.
    pub head: Option<String>,
    /// The first entry that fails, and why.
    pub first_bad: Option<(i64, String)>,
}

/// Walks the chain. `keys` gives the audit key of each epoch.
pub fn verify_chain(rows: &[AuditRow], keys: &dyn Fn(i64) -> Option<[u8; 32]>) -> ChainReport {
    let mut previous_hash = GENESIS.to_vec();
    let mut previous_seq = 0i64;
    let mut previous_epoch = 0i64;
    for row in rows {
        let bad = |why: &str| ChainReport {
            entries: rows.len() as u64,
            head: None,
            first_bad: Some((row.seq, why.to_owned())),
        };
        if row.seq != previous_seq + 1 {
            return bad(&format!(
                "entry {} follows entry {previous_seq}: entries are missing or reordered",
                row.seq
            ));
        }
        if row.prev_hash != previous_hash {
            return bad(
                "it does not chain to the entry before it (that entry was changed or removed)",
            );
        }
        if row.epoch < previous_epoch {
            return bad("its key epoch goes backwards");
        }
        let Some(key) = keys(row.epoch) else {
            return bad("its key epoch is unknown to this vault");
        };
        if entry_hash(&key, row) != row.hash {
            return bad("its content does not match its MAC (the entry was edited or forged)");
        }
        previous_hash = row.hash.clone();
        previous_seq = row.seq;
        previous_epoch = row.epoch;
    }
    ChainReport {
        entries: rows.len() as u64,
        head: rows.last().map(|r| format!("{}:{}", r.seq, hex(&r.hash))),
        first_bad: None,
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
