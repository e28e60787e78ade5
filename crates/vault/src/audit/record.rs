//! The audit entry as it leaves the process for a SIEM.
//!
//! An [`AuditRecord`] is a committed [`AuditRow`] in a stable, versioned
//! JSON shape (`"schema":"oathdesk.audit/1"`): the field names are a
//! contract with whoever parses them (Sentinel tables, Splunk searches), so
//! a rename is a new schema version, never a silent change. Every field is
//! already in the database and none is secret: the row holds who did what
//! to which user and credential reference, and a detail object the vault
//! writes itself (reasons, counts, names), never a seed, code or passphrase
//! (the sink tests grep for them). The chain head (`audit_head`) rides
//! along, so the SIEM also anchors the newest head outside the database.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::hex;
use crate::store::AuditRow;

/// The `schema` of every record; a new version if a field changes meaning.
pub const RECORD_SCHEMA: &str = "oathdesk.audit/1";

/// One committed audit entry, as a SIEM ingests it (`docs/siem.md` lists
/// the fields). Serialises to one JSON object, field order as declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Always [`RECORD_SCHEMA`].
    pub schema: String,
    /// When the entry was written, RFC 3339 in UTC (`2026-12-04T10:15:11Z`):
    /// Splunk's and Sentinel's time field.
    pub time: String,
    /// The same moment in Unix seconds.
    pub at: u64,
    /// The entry's place in the chain, from 1, without gaps.
    pub seq: i64,
    /// The operator (or web account) who acted.
    pub operator: String,
    /// What was done (`helpdesk.code`, `token.deliver`, …).
    pub action: String,
    /// `ok`, `granted` or `refused`.
    pub outcome: String,
    pub user: Option<String>,
    /// The credential's reference (`#12` or a serial), never its secret.
    pub credential: Option<String>,
    pub ticket: Option<String>,
    /// The particulars the vault recorded (reason of a refusal, counts…).
    pub detail: serde_json::Value,
    /// The audit key epoch that made `hash`.
    pub epoch: i64,
    /// Hex of the previous entry's MAC.
    pub prev_hash: String,
    /// Hex of this entry's MAC.
    pub hash: String,
    /// `SEQ:HASH`: the chain's head after this entry, as `audit verify`
    /// prints it and `--expect-head` takes it.
    pub audit_head: String,
}

impl AuditRecord {
    /// The record of a committed row.
    pub fn of(row: &AuditRow) -> AuditRecord {
        let hash = hex(&row.hash);
        AuditRecord {
            schema: RECORD_SCHEMA.to_owned(),
            time: rfc3339(row.at),
            at: row.at,
            seq: row.seq,
            operator: row.operator.clone(),
            action: row.action.clone(),
            outcome: row.outcome.clone(),
            user: row.user.clone(),
            credential: row.credential.clone(),
            ticket: row.ticket.clone(),
            // The vault writes detail as JSON; an old row that is not stays a string.
            detail: serde_json::from_str(&row.detail)
                .unwrap_or_else(|_| serde_json::Value::String(row.detail.clone())),
            epoch: row.epoch,
            prev_hash: hex(&row.prev_hash),
            audit_head: format!("{}:{hash}", row.seq),
            hash,
        }
    }

    /// One JSON line, without the newline.
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }
}

/// Unix seconds as RFC 3339 in UTC, whole seconds (`2026-12-04T10:15:11Z`).
pub fn rfc3339(at: u64) -> String {
    i64::try_from(at)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_owned())
}

type RecordSink = Arc<dyn Fn(&AuditRecord) + Send + Sync>;

static RECORD_SINK: RwLock<Option<RecordSink>> = RwLock::new(None);

/// Where this process sends every committed entry (the front-end's choice,
/// usually an `oathdesk_auditsink::Shipper`). It runs on the thread that
/// committed, right after the commit: it must only queue, never wait on a
/// network. Replaces any earlier sink.
pub fn set_record_sink(sink: impl Fn(&AuditRecord) + Send + Sync + 'static) {
    *RECORD_SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(sink));
}

/// Hands a committed row to the record sink, if there is one.
pub(super) fn deliver(row: &AuditRow) {
    let sink = RECORD_SINK
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(sink) = sink {
        sink(&AuditRecord::of(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_has_the_documented_shape() {
        let row = AuditRow {
            seq: 7,
            at: 1_796_379_311,
            operator: "alice".into(),
            action: "helpdesk.code".into(),
            outcome: "granted".into(),
            user: Some("bob@example.org".into()),
            credential: Some("#3".into()),
            ticket: None,
            detail: r#"{"drift":0}"#.into(),
            epoch: 1,
            prev_hash: vec![0xab; 32],
            hash: vec![0x01; 32],
        };
        let line: serde_json::Value = serde_json::from_str(&AuditRecord::of(&row).line()).unwrap();
        assert_eq!(line["schema"], "oathdesk.audit/1");
        assert_eq!(line["time"], "2026-12-04T10:15:11Z");
        assert_eq!(line["seq"], 7);
        assert_eq!(line["detail"]["drift"], 0);
        assert_eq!(line["ticket"], serde_json::Value::Null);
        assert_eq!(line["prev_hash"], "ab".repeat(32));
        assert_eq!(line["audit_head"], format!("7:{}", "01".repeat(32)));
        let head = super::super::AuditHead::parse_head(&AuditRecord::of(&row).line());
        assert_eq!(head, Some((7, "01".repeat(32))));
    }
}
