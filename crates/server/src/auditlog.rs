//! The audit API: the log, filtered, and its chain verified.

use axum::Json;
use axum::extract::Query;
use oathdesk_vault::audit::hex;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Auth, need};
use crate::error::ApiResult;

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// An action, or its start (`token.`, `helpdesk.code`, `web.`).
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    /// `ok`, `granted`, `refused`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Entries about this user (UPN) or credential (serial).
    #[serde(default)]
    pub subject: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub since: Option<u64>,
    #[serde(default)]
    pub until: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Skips this many of the matching entries. Entries written meanwhile
    /// shift an offset: page with `before` instead.
    #[serde(default)]
    pub offset: Option<usize>,
    /// Only entries older than this one (its `seq`): the next page starts
    /// after the last entry of the one before, whatever was written since.
    #[serde(default)]
    pub before: Option<i64>,
    /// Only entries up to this one (`seq`, as `through` of the first page):
    /// keeps `total` the same from page to page.
    #[serde(default)]
    pub through: Option<i64>,
}

fn contains(field: &Option<String>, wanted: &str) -> bool {
    field
        .as_deref()
        .is_some_and(|f| f.to_lowercase().contains(wanted))
}

/// `GET /api/v1/audit`: newest first.
pub async fn list(
    auth: Auth<need::AuditRead>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let rows = auth.run(|session| Ok(session.audit_entries()?)).await?;
    let subject = query
        .subject
        .as_deref()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let action = query
        .action
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let operator = query
        .operator
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty());
    let outcome = query
        .outcome
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty());
    let chosen: Vec<_> = rows
        .iter()
        .rev()
        .filter(|r| action.is_none_or(|a| r.action.starts_with(a)))
        .filter(|r| operator.is_none_or(|o| r.operator.eq_ignore_ascii_case(o)))
        .filter(|r| outcome.is_none_or(|o| r.outcome == o))
        .filter(|r| {
            subject
                .as_deref()
                .is_none_or(|s| contains(&r.user, s) || contains(&r.credential, s))
        })
        .filter(|r| query.since.is_none_or(|t| r.at >= t))
        .filter(|r| query.until.is_none_or(|t| r.at < t))
        .filter(|r| query.through.is_none_or(|s| r.seq <= s))
        .collect();
    let total = chosen.len();
    // The newest entry this listing counts: later pages pass it back as
    // `through`, so entries written meanwhile change neither total nor pages.
    let through = query
        .through
        .or_else(|| rows.last().map(|r| r.seq))
        .unwrap_or(0);
    let limit = query.limit.unwrap_or(200).clamp(1, 2000);
    let offset = query.offset.unwrap_or(0);
    let older: Vec<_> = chosen
        .into_iter()
        .filter(|r| query.before.is_none_or(|b| r.seq < b))
        .skip(offset)
        .collect();
    let more = older.len() > limit;
    let page: Vec<_> = older.into_iter().take(limit).collect();
    // Where the next page starts: `before` the last entry shown.
    let next_before = if more {
        page.last().map(|r| r.seq)
    } else {
        None
    };
    let entries: Vec<Value> = page
        .into_iter()
        .map(oathdesk_vault::audit::entry_json)
        .collect();
    let actions: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.action.as_str()).collect();
    let operators: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.operator.as_str()).collect();
    Ok(Json(json!({
        "total": total, "offset": offset, "entries": entries,
        "through": through, "next_before": next_before,
        "actions": actions, "operators": operators,
    })))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// `SEQ:HASH` kept from an earlier check: also catches removed newest entries.
    #[serde(default)]
    pub expect_head: Option<String>,
}

/// `GET /api/v1/vault/verify`: every signed row and the audit chain, as
/// `oathdesk vault verify --json` prints them.
pub async fn verify_vault(
    auth: Auth<need::AuditRead>,
) -> ApiResult<Json<oathdesk_vault::VaultReport>> {
    Ok(Json(auth.run(|session| Ok(session.verify_vault()?)).await?))
}

/// `GET /api/v1/audit/verify`
pub async fn verify(
    auth: Auth<need::AuditRead>,
    Query(query): Query<VerifyQuery>,
) -> ApiResult<Json<Value>> {
    let (report, rows) = auth
        .run(|session| Ok((session.audit_verify()?, session.audit_entries()?)))
        .await?;
    let mut problem = report
        .first_bad
        .as_ref()
        .map(|(seq, why)| format!("entry {seq}: {why}"));
    if problem.is_none()
        && let Some(expected) = query
            .expect_head
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
    {
        // `SEQ:HEX`, or a head line as the console logs it.
        let found =
            oathdesk_vault::audit::AuditHead::parse_head(expected).and_then(|(seq, hash)| {
                rows.iter()
                    .find(|r| r.seq == seq)
                    .map(|r| hex(&r.hash) == hash)
            });
        problem = match found {
            Some(true) => None,
            Some(false) => Some(format!(
                "entry {} differs from the head you kept: the log was rewritten",
                expected.split(':').next().unwrap_or_default()
            )),
            None => Some(format!(
                "the head you kept ({expected}) is no longer in the log: newest entries were removed"
            )),
        };
    }
    Ok(Json(json!({
        "intact": problem.is_none(),
        "entries": report.entries,
        "head": report.head,
        "problem": problem,
    })))
}
