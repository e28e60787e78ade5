//! The audit chain on PostgreSQL, in as few round trips as the rules allow.
//!
//! Every write transaction appends to the chain, and an entry's hash covers
//! the hash of the one before: the writer must know the tail. A writer's
//! `BEGIN` and `LOCK TABLE audit` already travel in one simple query; the
//! tail's `SELECT` rides along (its values come back as text), so the tail
//! costs no round trip of its own. With the tail known, a helpdesk code
//! counts the user's codes and, below the limit, appends its entry and
//! records the released step, in one statement ([`PgTx::append_if_below`]);
//! a server's queued codes go together, guarded (`postgres/combine.rs`).

use ::postgres::types::ToSql;
use ::postgres::{SimpleQueryMessage, SimpleQueryRow};

use super::release::Value;
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

/// The recount and, below the limit, the new entry and the released step,
/// in one statement: `$1`…`$26` as [`append_values`] gives them (their
/// types in [`APPEND_TYPES`]). The count and the inserts see one snapshot,
/// taken under the lock that keeps other writers out: the count is the true
/// count. The new step is never below the pruning bound, so the step's
/// parts touch different rows; a step released before is left as it was
/// (`StoreTx::released_record`): its MAC and the pruning read from the
/// step's insert, empty then.
pub(super) fn append_sql() -> String {
    append_sql_with("")
}

/// [`append_sql`] for a write made after others in one round trip
/// (`postgres/combine.rs`): it also appends nothing unless the chain ends
/// right before its entry, and answers the count, whether it was below the
/// limit and whether it appended. Right before means the last entry is the
/// one it was chained on, by seq *and* hash: an entry before it in the
/// batch that was not appended (at the limit) must not leave a gap, and a
/// batch chained on a tail that another process has since moved on (by as
/// many entries as the batch's refused ones) must not link to an entry
/// that is not its predecessor.
pub(super) fn append_sql_guarded() -> String {
    // The last entry, found with one probe of the index: none only for
    // the first entry.
    append_sql_with(
        " AND coalesce((SELECT seq = $6::bigint - 1 AND hash = $16::bytea \
             FROM audit ORDER BY seq DESC LIMIT 1), $6::bigint = 1)",
    )
}

fn append_sql_with(guard: &str) -> String {
    format!(
        "WITH c AS (SELECT count(*) AS found, count(*) < $5::bigint AS below FROM audit \
             WHERE action = $1 AND outcome = $2 AND lower(\"user\") = lower($3) AND at >= $4), \
         n AS (SELECT found, below, below{guard} AS ok FROM c), \
         entry AS (INSERT INTO audit ({AUDIT_COLUMNS}) \
             SELECT $6::bigint, $7::bigint, $8::text, $9::text, $10::text, $11::text, \
             $12::text, $13::text, $14::text, $15::bigint, $16::bytea, $17::bytea FROM n WHERE n.ok), \
         step AS (INSERT INTO released_steps (credential_id, counter, at) \
             SELECT $18::bigint, $19::bigint, $20::bigint FROM n WHERE n.ok \
             ON CONFLICT (credential_id, counter) DO NOTHING RETURNING 1), \
         signature AS (INSERT INTO row_macs (kind, id, mac) \
             SELECT $21::text, $22::text, $23::bytea FROM step \
             ON CONFLICT (kind, id) DO UPDATE SET mac = EXCLUDED.mac), \
         old AS (DELETE FROM released_steps USING step \
             WHERE credential_id = $18 AND counter < $24), \
         old_signatures AS (DELETE FROM row_macs USING step \
             WHERE kind = $21 AND id >= $25 AND id < $26) \
         SELECT found, ok, below FROM n"
    )
}

/// The types of [`append_sql`]'s parameters, for `PREPARE`.
pub(super) const APPEND_TYPES: &str = "text, text, text, bigint, bigint, \
     bigint, bigint, text, text, text, text, text, text, text, bigint, bytea, bytea, \
     bigint, bigint, bigint, text, text, bytea, bigint, text, text";

/// The values of [`append_sql`]'s parameters, in order.
pub(super) fn append_values<'a>(
    count: &AuditCount<'a>,
    limit: u64,
    entry: &'a AuditRow,
    released: &ReleasedStep<'a>,
) -> Result<Vec<Value<'a>>> {
    use Value::{Bytes, Int, Text};
    Ok(vec![
        Text(Some(count.action)),
        Text(Some(count.outcome)),
        Text(Some(count.user)),
        Int(big(count.since)?),
        Int(i64::try_from(limit).unwrap_or(i64::MAX)),
        Int(entry.seq),
        Int(big(entry.at)?),
        Text(Some(&entry.operator)),
        Text(Some(&entry.action)),
        Text(Some(&entry.outcome)),
        Text(entry.user.as_deref()),
        Text(entry.credential.as_deref()),
        Text(entry.ticket.as_deref()),
        Text(Some(&entry.detail)),
        Int(entry.epoch),
        Bytes(&entry.prev_hash),
        Bytes(&entry.hash),
        Int(released.credential_id),
        Int(big(released.counter)?),
        Int(big(released.at)?),
        Text(Some(released.mac_kind)),
        Text(Some(released.mac_id)),
        Bytes(released.mac),
        Int(i64::try_from(released.below).unwrap_or(i64::MAX)),
        Text(Some(released.mac_range.0)),
        Text(Some(released.mac_range.1)),
    ])
}

impl PgTx<'_> {
    /// See [`crate::store::StoreTx::audit_append_if_below`]: one statement.
    /// (The helpdesk's releases of a server go together instead, guarded:
    /// `postgres/combine.rs`.)
    pub(super) fn append_if_below(
        &self,
        count: &AuditCount<'_>,
        limit: u64,
        entry: &AuditRow,
        released: &ReleasedStep<'_>,
    ) -> Result<u64> {
        let values = append_values(count, limit, entry, released)?;
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(Value::param).collect();
        let row = self.query_one(&append_sql(), &params)?;
        let c = Columns(&row);
        let (found, ok) = (c.unsigned(0)?, c.get::<bool>(1)?);
        if ok {
            self.set_tail(entry);
        }
        Ok(found)
    }
}
