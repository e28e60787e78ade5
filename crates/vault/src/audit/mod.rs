//! The tamper-evident audit log.
//!
//! Each entry carries the previous entry's hash, and its own hash is an
//! HMAC-SHA256 over all its fields under a key derived from the vault key.
//! Someone who can write the database file but has no vault key cannot
//! edit, delete, reorder or forge an entry without `audit verify` naming
//! the first entry that no longer fits. Removing the newest entries leaves a
//! valid shorter chain: to catch that, every committed entry's head is
//! also handed to the process's [head sink](set_head_sink) — the console
//! logs it as one structured line, and either front-end can append it to a
//! file — so a copy of the newest head lives outside the database (a log
//! shipper takes it to a SIEM). `audit verify --expect-head` takes it back.
//! The whole committed entry also goes to the process's
//! [record sink](set_record_sink), as an [`AuditRecord`]: the stable,
//! versioned line a SIEM ingests (`docs/siem.md`).

mod record;

use std::sync::{Arc, RwLock};

pub use record::{AuditRecord, RECORD_SCHEMA, rfc3339, set_record_sink};

use hmac::{Hmac, Mac};
use serde::Serialize;

use crate::store::AuditRow;

type HmacSha256 = Hmac<sha2::Sha256>;

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The actions the vault's own rules write or count. The rate limit counts
/// [`Action::HelpdeskCode`] entries and row checking stays on after an
/// [`Action::SignRows`] entry: naming them once, here, means renaming one
/// cannot silently switch a rule off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A helpdesk code, granted or refused (the rate limit counts the granted).
    HelpdeskCode,
    /// A code shown at enrolment (its step is released).
    EnrollCode,
    /// A delivery checked by a code the token shows.
    TokenDeliver,
    /// The vault's rows were signed (a new vault, or an old one's first admin unlock).
    SignRows,
    /// An operation the role or token does not allow.
    Forbidden,
    /// A row found altered outside oathdesk.
    RowAltered,
    /// A console took the vault key into memory.
    ConsoleUnseal,
    /// The helpdesk's verification policy changed.
    HelpdeskPolicy,
    /// A verification step showed a user's data on file.
    VerificationView,
    /// Someone read a user's whole data on file.
    UserFactsView,
    /// One value on file shown whole inside a verification (to dial it).
    FactReveal,
    /// Users' data on file imported or synced.
    UserFactsUpdate,
    /// A release waits for a second operator.
    HelpdeskApprovalRequest,
    HelpdeskApprove,
    HelpdeskDeny,
    /// A Temporary Access Pass, asked of Entra after a verification.
    HelpdeskTap,
    /// A notice to the user was sent, or not.
    NoticeSent,
    NoticeFailed,
}

impl Action {
    /// The name in the audit log.
    pub const fn name(self) -> &'static str {
        match self {
            Action::HelpdeskCode => "helpdesk.code",
            Action::EnrollCode => "enroll.code",
            Action::TokenDeliver => "token.deliver",
            Action::SignRows => "vault.sign_rows",
            Action::Forbidden => "forbidden",
            Action::RowAltered => "row.altered",
            Action::ConsoleUnseal => "console.unseal",
            Action::HelpdeskPolicy => "helpdesk.policy",
            Action::VerificationView => "helpdesk.verification_view",
            Action::UserFactsView => "user.facts_view",
            Action::FactReveal => "helpdesk.reveal",
            Action::UserFactsUpdate => "user.facts_update",
            Action::HelpdeskApprovalRequest => "helpdesk.approval_request",
            Action::HelpdeskApprove => "helpdesk.approve",
            Action::HelpdeskDeny => "helpdesk.deny",
            Action::HelpdeskTap => "helpdesk.tap",
            Action::NoticeSent => "notice.sent",
            Action::NoticeFailed => "notice.failed",
        }
    }
}

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
    /// An event of one of the rules' actions, with outcome `ok`.
    pub fn of(action: Action) -> AuditEvent {
        AuditEvent::ok(action.name())
    }

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

/// An entry as the command line's `audit list --json` and the console's
/// audit API show it: the same view in both, its detail as JSON.
pub fn entry_json(row: &AuditRow) -> serde_json::Value {
    serde_json::json!({
        "seq": row.seq, "at": row.at, "operator": row.operator, "action": row.action,
        "outcome": row.outcome, "user": row.user, "credential": row.credential,
        "ticket": row.ticket,
        "detail": serde_json::from_str::<serde_json::Value>(&row.detail)
            .unwrap_or_else(|_| serde_json::Value::String(row.detail.clone())),
        "epoch": row.epoch, "hash": hex(&row.hash),
    })
}

/// `row` put on the chain after `tail` (its last entry; none: the chain is
/// empty): its sequence number, the hash it follows and its own hash.
pub fn chained(mut row: AuditRow, tail: Option<&AuditRow>, key: &[u8; 32]) -> AuditRow {
    (row.seq, row.prev_hash) = match tail {
        Some(last) => (last.seq + 1, last.hash.clone()),
        None => (1, GENESIS.to_vec()),
    };
    row.hash = entry_hash(key, &row);
    row
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
    // By table: a `format!` per byte was 4 % of a helpdesk code's work.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The head of the chain after an entry was committed: nothing secret,
/// only where the chain ends and what was done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditHead {
    pub seq: i64,
    /// Hex of the entry's MAC.
    pub hash: String,
    pub at: u64,
    pub action: String,
}

impl AuditHead {
    pub(crate) fn of(row: &AuditRow) -> AuditHead {
        AuditHead {
            seq: row.seq,
            hash: hex(&row.hash),
            at: row.at,
            action: row.action.clone(),
        }
    }

    /// `SEQ:HEX`, as `audit verify` prints and `--expect-head` takes.
    pub fn head(&self) -> String {
        format!("{}:{}", self.seq, self.hash)
    }

    /// One JSON line: `{"audit_head":"SEQ:HEX","seq":…,"at":…,"action":…}`.
    pub fn line(&self) -> String {
        serde_json::json!({
            "audit_head": self.head(),
            "seq": self.seq,
            "at": self.at,
            "action": self.action,
        })
        .to_string()
    }

    /// Reads a head back: `SEQ:HEX`, a line written by [`AuditHead::line`],
    /// or the console's log line (`… audit head audit_head=SEQ:HEX …`).
    pub fn parse_head(text: &str) -> Option<(i64, String)> {
        let text = text.trim();
        if !text.starts_with('{')
            && let Some(at) = text.find("audit_head=")
        {
            // A log line; colour codes, if a terminal got them, end at 'm'.
            let rest = &text[at + "audit_head=".len()..];
            let rest = rest.strip_prefix("\u{1b}[0m").unwrap_or(rest);
            let head: String = rest
                .chars()
                .take_while(|c| c.is_ascii_hexdigit() || *c == ':' || c.is_ascii_digit())
                .collect();
            return AuditHead::parse_head(&head);
        }
        let head = if text.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()?
                .get("audit_head")?
                .as_str()?
                .to_owned()
        } else {
            text.to_owned()
        };
        let (seq, hash) = head.split_once(':')?;
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some((seq.trim().parse().ok()?, hash))
    }
}

/// Appends a head's line to a file (created if missing), as a head sink
/// does for `OATHDESK_AUDIT_HEAD_FILE`: one line per entry, so the file's
/// last line is the newest head and its history shows any gap.
pub fn append_head_line(path: &std::path::Path, head: &AuditHead) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per line: concurrent appenders never interleave inside it.
    file.write_all(format!("{}\n", head.line()).as_bytes())
}

type HeadSink = Arc<dyn Fn(&AuditHead) + Send + Sync>;

static HEAD_SINK: RwLock<Option<HeadSink>> = RwLock::new(None);

/// Where this process sends the head after each committed audit entry (the
/// front-end's choice: a log line, a file). Replaces any earlier sink.
pub fn set_head_sink(sink: impl Fn(&AuditHead) + Send + Sync + 'static) {
    *HEAD_SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(sink));
}

/// Hands a committed entry to the sinks: its head to the head sink, the
/// whole entry to the record sink. Called after the commit, on the
/// committing thread: sinks must return at once (the record sinks of
/// `oathdesk-auditsink` only queue).
pub(crate) fn anchor(row: &AuditRow) {
    let sink = HEAD_SINK.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(sink) = sink {
        sink(&AuditHead::of(row));
    }
    record::deliver(row);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_back_from_either_form() {
        let head = AuditHead {
            seq: 42,
            hash: "ab".repeat(32),
            at: 7,
            action: "helpdesk.code".into(),
        };
        assert_eq!(
            AuditHead::parse_head(&head.head()),
            Some((42, "ab".repeat(32)))
        );
        assert_eq!(
            AuditHead::parse_head(&head.line()),
            Some((42, "ab".repeat(32)))
        );
        assert_eq!(
            AuditHead::parse_head(&format!(
                "2026-12-03T19:37:05Z  INFO audit head audit_head={} action=user.add at=7",
                head.head()
            )),
            Some((42, "ab".repeat(32)))
        );
        assert_eq!(AuditHead::parse_head("42:abc"), None);
        assert_eq!(AuditHead::parse_head("{\"audit_head\": 3}"), None);
        assert_eq!(
            AuditHead::parse_head(&format!("x:{}", "ab".repeat(32))),
            None
        );
    }
}
