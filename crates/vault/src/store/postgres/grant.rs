//! What a console request is opened with, in one statement: the grant, its
//! account and operator slot, the audit keys, and the MACs the session
//! checks (the signed-rows marker's and the operator's). Six reads and a
//! read transaction's `BEGIN` and `ROLLBACK`, then the session's own read
//! transaction of three more, were nine round trips per request.
//!
//! Also the rows' conversions from a result's columns (at any offset, so
//! that one row can hold several).

use std::sync::LazyLock;

use ::postgres::Row;

use super::{Columns, OPERATOR_COLUMNS, PgTx};
use crate::error::Result;
use crate::signed::{SIGNED_MARKER, kind};
use crate::store::{GrantRow, GrantRows, OperatorRow, WebAccountRow};

pub(super) const GRANT_COLUMNS: &str =
    "id, kind, account, label, scopes, wrapped_key, created_at, expires_at, last_used_at";

pub(super) const WEB_ACCOUNT_COLUMNS: &str =
    "name, role, disabled, must_change_password, created_at, created_by, mac";

/// Where the account's, the operator's and the rest's columns start in a
/// row of [`SNAPSHOT`].
const ACCOUNT_AT: usize = 9;
const OPERATOR_AT: usize = 16;
const REST_AT: usize = 25;

fn prefixed(prefix: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|column| format!("{prefix}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The parameters of [`SNAPSHOT`]: `$1`…`$4`.
pub(super) const PARAMS: usize = 4;

/// The grant's read, built once (every console request runs it).
pub(super) static SNAPSHOT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {}, {}, \
             k.epochs, k.sealed, \
             (SELECT mac FROM row_macs WHERE kind = $2 AND id = $3), \
             (SELECT mac FROM row_macs WHERE kind = $4 AND id = g.account) \
         FROM web_grants g \
         CROSS JOIN (SELECT coalesce(array_agg(epoch ORDER BY epoch), '{{}}') AS epochs, \
             coalesce(array_agg(sealed_key ORDER BY epoch), '{{}}') AS sealed FROM audit_keys) k \
         LEFT JOIN web_accounts a ON a.name = g.account \
         LEFT JOIN operators o ON o.name = g.account \
         WHERE g.id = $1",
        prefixed("g", GRANT_COLUMNS),
        prefixed("a", WEB_ACCOUNT_COLUMNS),
        prefixed("o", OPERATOR_COLUMNS),
    )
});

impl PgTx<'_> {
    pub(super) fn grant_snapshot(&self, id: &[u8]) -> Result<GrantRows> {
        let (marker_kind, marker_id) = SIGNED_MARKER;
        match self.query_opt(
            SNAPSHOT.as_str(),
            &[&id, &marker_kind, &marker_id, &kind::OPERATOR],
        )? {
            Some(row) => grant_rows_at(&row, 0),
            None => Ok(GrantRows::default()),
        }
    }
}

/// The rows of [`SNAPSHOT`] from its columns at `at` on: none if the
/// grant's id is empty (no such grant, in a row that joined it).
pub(super) fn grant_rows_at(row: &Row, at: usize) -> Result<GrantRows> {
    let c = Columns(row);
    if c.get::<Option<Vec<u8>>>(at)?.is_none() {
        return Ok(GrantRows::default());
    }
    let (marker_kind, marker_id) = SIGNED_MARKER;
    let grant = grant_at(row, at)?;
    let account = match c.get::<Option<String>>(at + ACCOUNT_AT)? {
        Some(_) => Some(web_account_at(row, at + ACCOUNT_AT)?),
        None => None,
    };
    let operator = match c.get::<Option<String>>(at + OPERATOR_AT)? {
        Some(_) => Some(operator_at(row, at + OPERATOR_AT)?),
        None => None,
    };
    let rest = at + REST_AT;
    let epochs: Vec<i64> = c.get(rest)?;
    let sealed: Vec<Vec<u8>> = c.get(rest + 1)?;
    let mut macs = Vec::new();
    if let Some(mac) = c.get::<Option<Vec<u8>>>(rest + 2)? {
        macs.push((marker_kind.to_owned(), marker_id.to_owned(), mac));
    }
    if let Some(mac) = c.get::<Option<Vec<u8>>>(rest + 3)? {
        macs.push((kind::OPERATOR.to_owned(), grant.account.clone(), mac));
    }
    Ok(GrantRows {
        account,
        operator,
        audit_keys: epochs.into_iter().zip(sealed).collect(),
        macs,
        grant: Some(grant),
    })
}

pub(super) fn operator_from_row(row: &Row) -> Result<OperatorRow> {
    operator_at(row, 0)
}

fn operator_at(row: &Row, at: usize) -> Result<OperatorRow> {
    let c = Columns(row);
    Ok(OperatorRow {
        name: c.get(at)?,
        recipient: c.get(at + 1)?,
        kdf: c.get(at + 2)?,
        salt: c.get(at + 3)?,
        sealed_identity: c.get(at + 4)?,
        wrapped_vault_key: c.get(at + 5)?,
        created_at: c.unsigned(at + 6)?,
        created_by: c.get(at + 7)?,
        role: c.get(at + 8)?,
    })
}

pub(super) fn web_account_from_row(row: &Row) -> Result<WebAccountRow> {
    web_account_at(row, 0)
}

fn web_account_at(row: &Row, at: usize) -> Result<WebAccountRow> {
    let c = Columns(row);
    Ok(WebAccountRow {
        name: c.get(at)?,
        role: c.get(at + 1)?,
        disabled: c.get(at + 2)?,
        must_change_password: c.get(at + 3)?,
        created_at: c.unsigned(at + 4)?,
        created_by: c.get(at + 5)?,
        mac: c.get(at + 6)?,
    })
}

pub(super) fn grant_from_row(row: &Row) -> Result<GrantRow> {
    grant_at(row, 0)
}

fn grant_at(row: &Row, at: usize) -> Result<GrantRow> {
    let c = Columns(row);
    Ok(GrantRow {
        id: c.get(at)?,
        kind: c.get(at + 1)?,
        account: c.get(at + 2)?,
        label: c.get(at + 3)?,
        scopes: c.get(at + 4)?,
        wrapped_key: c.get(at + 5)?,
        created_at: c.unsigned(at + 6)?,
        expires_at: c.unsigned(at + 7)?,
        last_used_at: c.unsigned(at + 8)?,
    })
}
