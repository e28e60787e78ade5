//! The rows a console request is opened with, read together (see
//! `Vault::open_grant`): its grant, the grant's account and operator slot,
//! the audit keys, and the MACs the session checks as it opens (the
//! signed-rows marker's and the operator's). Every request the console
//! serves reads them first: on SQLite a handful of library calls, on
//! PostgreSQL one statement, where each would otherwise be a round trip
//! (and a read transaction two more).

use crate::error::Result;
use crate::signed::{SIGNED_MARKER, kind};
use crate::store::{GrantRow, OperatorRow, StoreTx, WebAccountRow};

/// What a grant opens the vault with, from one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantRows {
    /// The grant; `None` (and nothing else) if there is none with the id.
    pub grant: Option<GrantRow>,
    /// The grant's account and its operator slot (both named by the
    /// grant's `account`).
    pub account: Option<WebAccountRow>,
    pub operator: Option<OperatorRow>,
    /// The sealed audit keys by epoch, in epoch order.
    pub audit_keys: Vec<(i64, Vec<u8>)>,
    /// The stored MACs of the signed-rows marker and of the grant's
    /// operator, as (kind, id, MAC), those that are there.
    pub macs: Vec<(String, String, Vec<u8>)>,
}

/// [`StoreTx::grant_rows`] as a sequence of the store's own reads (in one
/// transaction, so one snapshot): what a store whose calls cost no round
/// trip uses.
pub fn read_one_by_one(tx: &impl StoreTx, id: &[u8]) -> Result<GrantRows> {
    let Some(grant) = tx.web_grant(id)? else {
        return Ok(GrantRows::default());
    };
    let (marker_kind, marker_id) = SIGNED_MARKER;
    Ok(GrantRows {
        account: tx.web_account(&grant.account)?,
        operator: tx.operator(&grant.account)?,
        audit_keys: tx.audit_keys()?,
        macs: tx.row_macs_of(&[
            (marker_kind, marker_id.to_owned()),
            (kind::OPERATOR, grant.account.clone()),
        ])?,
        grant: Some(grant),
    })
}
