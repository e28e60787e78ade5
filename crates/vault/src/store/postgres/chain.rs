//! The audit chain on PostgreSQL, in as few round trips as the rules allow.
//!
//! Every write transaction appends to the chain, and an entry's hash covers
//! the hash of the one before: the writer must know the tail. A writer's
//! `BEGIN` and `LOCK TABLE audit` already travel in one simple query; the
//! tail's `SELECT` rides along (its values come back as text), so the tail
//! costs no round trip of its own. With the tail known, a helpdesk code
//! counts the user's codes and, below the limit, appends its entry and
//! records the released step, in one statement ([`PgTx::append_if_below`]).

use ::postgres::{SimpleQueryMessage, SimpleQueryRow};

use super::{AUDIT_COLUMNS, Columns, PgTx, big};
use crate::error::{Error, Result};
use crate::store::{AuditCount, AuditRow, ReleasedStep};

/// The chain's tail, with the hashes as hex (a simple query answers in text).
pub(super) const TAIL_SQL: &str = "SELECT seq, at, operator, action, outcome, \"user\", credential, \
     ticket, detail, epoch, encode(prev_hash, 'hex'), encode(hash, 'hex') \
     FROM audit ORDER BY seq DESC LIMIT 1";

/// The tail in the answer of a simple query that ran [`TAIL_SQL`] last:
/// `None` for an empty chain.
pub(super) fn tail_of(messages: &[SimpleQueryMessage]) -> Result<Option<AuditRow>> {
    messages
        .iter()
        .rev()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .map(audit_from_text)
        .transpose()
}

fn audit_from_text(row: &SimpleQueryRow) -> Result<AuditRow> {
    let text = |index: usize| -> Result<Option<&str>> {
        row.try_get(index)
            .map_err(|e| Error::Database(format!("the audit chain's tail: {e}")))
    };
    let required = |index: usize| -> Result<&str> {
        text(index)?
            .ok_or_else(|| Error::Database("the audit chain's tail has an empty column".into()))
    };
    let number = |index: usize| -> Result<i64> {
        required(index)?
            .parse()
            .map_err(|_| Error::Database("the audit chain's tail has a column out of range".into()))
    };
    let bytes = |index: usize| -> Result<Vec<u8>> {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(required(index)?.as_bytes())
            .map_err(|_| {
                Error::Database("the audit chain's tail has a hash that is not hex".into())
            })
    };
    let owned = |index: usize| -> Result<Option<String>> { Ok(text(index)?.map(str::to_owned)) };
    Ok(AuditRow {
        seq: number(0)?,
        at: u64::try_from(number(1)?)
            .map_err(|_| Error::Database("the audit chain's tail has a negative time".into()))?,
        operator: required(2)?.to_owned(),
        action: required(3)?.to_owned(),
        outcome: required(4)?.to_owned(),
        user: owned(5)?,
        credential: owned(6)?,
        ticket: owned(7)?,
        detail: required(8)?.to_owned(),
        epoch: number(9)?,
        prev_hash: bytes(10)?,
        hash: bytes(11)?,
    })
}

impl PgTx<'_> {
    /// See [`crate::store::StoreTx::audit_append_if_below`]: one statement.
    pub(super) fn append_if_below(
        &self,
        count: &AuditCount<'_>,
        limit: u64,
        entry: &AuditRow,
        released: &ReleasedStep<'_>,
    ) -> Result<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let below = i64::try_from(released.below).unwrap_or(i64::MAX);
        // The count and the inserts see one snapshot, taken under the lock
        // that keeps other writers out: the count is the true count. The
        // new step is never below the pruning bound, so the step's parts
        // touch different rows.
        let row = self.query_one(
            &format!(
                "WITH n AS (SELECT count(*) AS found, count(*) < $5::bigint AS ok FROM audit \
                     WHERE action = $1 AND outcome = $2 AND lower(\"user\") = lower($3) AND at >= $4), \
                 entry AS (INSERT INTO audit ({AUDIT_COLUMNS}) \
                     SELECT $6::bigint, $7::bigint, $8::text, $9::text, $10::text, $11::text, \
                     $12::text, $13::text, $14::text, $15::bigint, $16::bytea, $17::bytea FROM n WHERE n.ok), \
                 step AS (INSERT INTO released_steps (credential_id, counter, at) \
                     SELECT $18::bigint, $19::bigint, $20::bigint FROM n WHERE n.ok \
                     ON CONFLICT (credential_id, counter) DO UPDATE SET at = EXCLUDED.at), \
                 signature AS (INSERT INTO row_macs (kind, id, mac) SELECT $21::text, $22::text, $23::bytea FROM n WHERE n.ok \
                     ON CONFLICT (kind, id) DO UPDATE SET mac = EXCLUDED.mac), \
                 old AS (DELETE FROM released_steps USING n \
                     WHERE n.ok AND credential_id = $18 AND counter < $24), \
                 old_signatures AS (DELETE FROM row_macs USING n \
                     WHERE n.ok AND kind = $21 AND id >= $25 AND id < $26) \
                 SELECT found, ok FROM n"
            ),
            &[
                &count.action,
                &count.outcome,
                &count.user,
                &big(count.since)?,
                &limit,
                &entry.seq,
                &big(entry.at)?,
                &entry.operator,
                &entry.action,
                &entry.outcome,
                &entry.user,
                &entry.credential,
                &entry.ticket,
                &entry.detail,
                &entry.epoch,
                &entry.prev_hash,
                &entry.hash,
                &released.credential_id,
                &big(released.counter)?,
                &big(released.at)?,
                &released.mac_kind,
                &released.mac_id,
                &released.mac,
                &below,
                &released.mac_range.0,
                &released.mac_range.1,
            ],
        )?;
        let c = Columns(&row);
        if c.get::<bool>(1)? {
            self.set_tail(entry);
        }
        c.unsigned(0)
    }
}
