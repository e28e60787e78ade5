//! Signed records: small JSON documents the library interprets — a user's
//! data on file, the helpdesk policy, approval requests, notices to send.
//!
//! They live in one table (`records`: kind, id, state, body) and are signed
//! like every row that decides something ([`crate::signed`]): written with
//! their MAC in the same transaction, checked before they are read. A
//! record that was signed and is gone counts as altered, so deleting the
//! policy cannot bring back a laxer default.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::store::RecordRow;

/// A record's body, read from JSON that the vault signed.
pub(crate) fn body<T: DeserializeOwned>(row: &RecordRow) -> Result<T> {
    serde_json::from_str(&row.body).map_err(|_| Error::Altered {
        row: signed::record_name(&row.kind, &row.id),
    })
}

/// A record ready to write.
pub(crate) fn record<T: Serialize>(
    kind: &str,
    id: &str,
    state: &str,
    value: &T,
    now: u64,
) -> Result<RecordRow> {
    Ok(RecordRow {
        kind: kind.to_owned(),
        id: id.to_owned(),
        state: state.to_owned(),
        body: serde_json::to_string(value)
            .map_err(|e| Error::Invalid(format!("cannot encode the {kind} record: {e}")))?,
        updated_at: now,
    })
}

/// Writes records with their signatures.
pub(crate) fn put(tx: &impl StoreTx, keys: &Keys<'_>, rows: Vec<RecordRow>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    tx.records_put(&rows)?;
    let mut by_kind: std::collections::BTreeMap<String, Vec<(String, Vec<u8>)>> =
        Default::default();
    for row in &rows {
        by_kind
            .entry(row.kind.clone())
            .or_default()
            .push((row.id.clone(), keys.signer.record(row)));
    }
    for (kind, macs) in by_kind {
        tx.row_macs_put(&kind, &macs)?;
    }
    Ok(())
}

/// What `rows` of `kind` must be signed with, and that each of `absent`
/// (ids without a record) carries no signature either: a deleted record is
/// altered.
fn expected(
    keys: &Keys<'_>,
    kind: &'static str,
    rows: &[RecordRow],
    absent: &[&String],
) -> Vec<signed::Expected> {
    let name = |id: &str| signed::record_name(kind, id);
    let mut expected: Vec<signed::Expected> = rows
        .iter()
        .map(|row| {
            (
                kind,
                row.id.clone(),
                name(&row.id),
                Some(keys.signer.record(row)),
            )
        })
        .collect();
    expected.extend(
        absent
            .iter()
            .map(|id| (kind, (*id).clone(), name(id), None)),
    );
    expected
}

/// The records of `kind` with these ids, each checked against the MAC
/// read with it.
pub(crate) fn read(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    kind: &'static str,
    ids: &[String],
) -> Result<Vec<RecordRow>> {
    let (rows, stored) = tx.records_signed_of(kind, ids)?;
    let absent: Vec<&String> = ids
        .iter()
        .filter(|id| !rows.iter().any(|row| &row.id == *id))
        .collect();
    signed::check_stored(keys.enforced, &expected(keys, kind, &rows, &absent), stored)?;
    Ok(rows)
}

/// One record, checked.
pub(crate) fn read_one(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    kind: &'static str,
    id: &str,
) -> Result<Option<RecordRow>> {
    Ok(read(tx, keys, kind, &[id.to_owned()])?.pop())
}

/// The records of `kind` (in `state`, if given), each checked.
pub(crate) fn list(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    kind: &'static str,
    state: Option<&str>,
) -> Result<Vec<RecordRow>> {
    let rows = tx.records(kind, state)?;
    signed::check_all(tx, keys.enforced, &expected(keys, kind, &rows, &[]))?;
    Ok(rows)
}
