//! The rows a helpdesk code request is decided on, read together (see
//! `crate::session::helpdesk`): on SQLite a handful of library calls, on
//! PostgreSQL one statement, where each would otherwise be a round trip.

use crate::error::Result;
use crate::model::{CredentialRow, User};
use crate::signed::kind;
use crate::store::{CredentialFilter, RecordRow, StoreTx, row_key};

/// What to read for a helpdesk code request.
#[derive(Clone, Copy, Debug)]
pub struct HelpdeskQuery<'a> {
    /// The user the code is asked for (compared without case).
    pub upn: &'a str,
    /// The name of the rate-limit setting (kept in `meta` as `setting.NAME`).
    pub setting: &'a str,
    /// The id of the helpdesk policy record.
    pub policy_id: &'a str,
    /// The audit entries that count against the limit: action and outcome,
    /// about `upn`, at or after `since` (the last hour) and `since_day`.
    pub action: &'a str,
    pub outcome: &'a str,
    pub since: u64,
    pub since_day: u64,
}

/// What a helpdesk code request is decided on, from one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelpdeskRows {
    /// The rate-limit setting's text, if set.
    pub limit_text: Option<String>,
    pub user: Option<User>,
    /// The user's credentials, in the order of [`StoreTx::credentials`].
    pub candidates: Vec<CredentialRow>,
    pub policy: Option<RecordRow>,
    /// The user's data on file.
    pub facts: Option<RecordRow>,
    /// The stored MACs of those rows (the setting, the policy, the user,
    /// the data on file, each candidate), as (kind, id, MAC), whether or not
    /// the row itself is there: a deleted row's MAC left behind is an
    /// alteration too.
    pub macs: Vec<(String, String, Vec<u8>)>,
    /// Matching audit entries since `since`, and since `since_day`.
    pub granted_last_hour: u64,
    pub granted_last_day: u64,
}

/// [`StoreTx::helpdesk_rows`] as a sequence of the store's own reads (in one
/// transaction, so one snapshot): what a store whose calls cost no round
/// trip uses.
pub fn read_one_by_one(tx: &impl StoreTx, query: &HelpdeskQuery<'_>) -> Result<HelpdeskRows> {
    let limit_text = tx.meta_get(&format!("setting.{}", query.setting))?;
    let user = tx.user_by_upn(query.upn)?;
    let candidates = match &user {
        Some(user) => tx.credentials(&CredentialFilter {
            user_upn: Some(user.upn.clone()),
            ..CredentialFilter::default()
        })?,
        None => Vec::new(),
    };
    let policy = tx
        .records_of(kind::POLICY, &[query.policy_id.to_owned()])?
        .pop();
    let facts = match &user {
        Some(user) => tx.records_of(kind::USER_FACTS, &[row_key(user.id)])?.pop(),
        None => None,
    };
    let mut keys: Vec<(&str, String)> = vec![
        (kind::SETTING, query.setting.to_owned()),
        (kind::POLICY, query.policy_id.to_owned()),
    ];
    if let Some(user) = &user {
        keys.push((kind::USER, row_key(user.id)));
        keys.push((kind::USER_FACTS, row_key(user.id)));
    }
    keys.extend(candidates.iter().map(|c| (kind::CREDENTIAL, row_key(c.id))));
    let macs = tx.row_macs_of(&keys)?;
    let count = |since| tx.audit_count(query.action, query.outcome, query.upn, since);
    Ok(HelpdeskRows {
        limit_text,
        user,
        candidates,
        policy,
        facts,
        macs,
        granted_last_hour: count(query.since)?,
        granted_last_day: count(query.since_day)?,
    })
}
