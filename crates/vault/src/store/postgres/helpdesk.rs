//! What a helpdesk code request is decided on, in one statement: the
//! rate-limit setting, the policy, the user, their data on file, their
//! credentials, the stored MACs of all of these and the count of the user's
//! codes — a row per credential (at least one), the rest repeated in each.
//! Seven reads that were a round trip each.
//!
//! The console's helpdesk code also opens its session in the same
//! statement: the grant's read (`postgres/grant.rs`) joins the row, its
//! columns after the helpdesk's ([`PgTx::grant_and_helpdesk`]). Each
//! statement on PostgreSQL is a round trip, an implicit transaction and an
//! executor's start-up on the server: per code, the server's CPU more than
//! its own work.

use std::sync::LazyLock;

use ::postgres::Row;
use ::postgres::types::ToSql;

use super::read_together::{self, ReadJob};
use super::{CREDENTIAL_COLUMNS, Columns, PgTx, big, credential_at, grant};
use crate::error::{Error, Result};
use crate::model::{CredentialRow, User};
use crate::signed::{SIGNED_MARKER, kind};
use crate::store::{GrantRows, HelpdeskQuery, HelpdeskRows, RecordRow, row_key};

/// Where the credential's columns start in a row of [`snapshot_sql`].
const CREDENTIAL_AT: usize = 17;

/// Where the grant's columns start in a row of [`GRANT_AND_HELPDESK`]:
/// after the credential's 23 and its MAC.
const GRANT_AT: usize = CREDENTIAL_AT + 24;

/// The helpdesk's parameters: `$1`…`$7`.
const PARAMS: usize = 7;

/// The helpdesk's read; `grant`, if given, is a statement of one row or
/// none whose columns are added to every row (its parameters after ours).
fn snapshot_sql(grant: Option<&str>) -> String {
    let (setting, policy, facts) = (kind::SETTING, kind::POLICY, kind::USER_FACTS);
    // The credentials' user is `who`: no join of `users` again for its UPN.
    let credential_columns = CREDENTIAL_COLUMNS.replace("u.upn", "who.upn");
    let (grant_columns, grant_join) = match grant {
        Some(sql) => (
            ", gr.*".to_owned(),
            format!("LEFT JOIN ({sql}) gr ON true "),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "WITH who AS (SELECT id, upn, display_name, created_at, mac, lpad(id::text, 20, '0') AS key \
             FROM users WHERE lower(upn) = lower($1)), \
         counts AS (SELECT count(*) FILTER (WHERE at >= $6) AS hour, \
             count(*) FILTER (WHERE at >= $7) AS day FROM audit \
             WHERE action = $4 AND outcome = $5 AND lower(\"user\") = lower($1) \
             AND at >= least($6::bigint, $7::bigint)) \
         SELECT (SELECT value FROM meta WHERE key = 'setting.' || $2), \
             (SELECT mac FROM row_macs WHERE kind = '{setting}' AND id = $2), \
             n.hour, n.day, \
             p.state, p.body, p.updated_at, \
             (SELECT mac FROM row_macs WHERE kind = '{policy}' AND id = $3), \
             who.id, who.upn, who.display_name, who.created_at, who.mac, \
             f.state, f.body, f.updated_at, \
             (SELECT m.mac FROM row_macs m WHERE m.kind = '{facts}' AND m.id = who.key), \
             {credential_columns}, c.mac{grant_columns} \
         FROM counts n \
         {grant_join}\
         LEFT JOIN records p ON p.kind = '{policy}' AND p.id = $3 \
         LEFT JOIN who ON true \
         LEFT JOIN records f ON f.kind = '{facts}' AND f.id = who.key \
         LEFT JOIN (credentials c LEFT JOIN devices d ON d.id = c.device_id) \
             ON c.user_id = who.id"
    )
}

static HELPDESK: LazyLock<String> = LazyLock::new(|| snapshot_sql(None));

/// The helpdesk's read with the grant's joined in (its `$1`… renumbered
/// after the helpdesk's).
static GRANT_AND_HELPDESK: LazyLock<String> =
    LazyLock::new(|| snapshot_sql(Some(&after_params(grant::SNAPSHOT.as_str(), PARAMS))));

/// `sql` with each parameter `$n` as `$(n + by)`.
fn after_params(sql: &str, by: usize) -> String {
    with_params(sql, |n| format!("${}", n + by))
}

/// `sql` with each parameter `$n` as `param(n)`. Our statements hold no
/// `$` but their parameters' (no dollar quoting, no such identifiers).
fn with_params(sql: &str, param: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&param(n)),
            Err(_) => out.push('$'),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The reads of `k` requests in one statement (`postgres/read_together.rs`):
/// the requests' users, times and grants as rows of a `VALUES` list (`$1`…
/// `$4k`, four each), each request's read as the statement of one in a
/// lateral subquery over them, the rest shared (`$4k+1`…`$4k+7`). Each row
/// ends with its request's place in the list, from 1.
///
/// One statement for each `k`, not one over arrays: the planner knows how
/// many rows a `VALUES` list has, so after its first runs a prepared
/// statement keeps one generic plan. Over an array parameter it guesses
/// ten rows whatever the array holds, finds its generic plan dearer than
/// one made for the values at hand, and plans anew at every run (0.6 ms,
/// more than the read).
fn together_sql(k: usize) -> String {
    let shared = |n: usize| format!("${}", 4 * k + n);
    let helpdesk = with_params(&snapshot_sql(None), |n| match n {
        1 => "q.upn".to_owned(),
        6 => "q.since".to_owned(),
        7 => "q.since_day".to_owned(),
        n => shared(n - 1),
    });
    let grant = with_params(grant::SNAPSHOT.as_str(), |n| match n {
        1 => "q.grant_id".to_owned(),
        n => shared(n + 3),
    });
    let requests: Vec<String> = (0..k)
        .map(|j| {
            let at = 4 * j;
            format!(
                "(${}::text, ${}::bigint, ${}::bigint, ${}::bytea, {})",
                at + 1,
                at + 2,
                at + 3,
                at + 4,
                j + 1
            )
        })
        .collect();
    format!(
        "SELECT r.*, gr.*, q.i \
         FROM (VALUES {}) AS q(upn, since, since_day, grant_id, i) \
         CROSS JOIN LATERAL ({helpdesk}) r \
         LEFT JOIN LATERAL ({grant}) gr ON true",
        requests.join(", ")
    )
}

/// [`together_sql`] for each `k` up to a turn's most.
static TOGETHER: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..=read_together::MAX_BATCH).map(together_sql).collect());

fn helpdesk_params<'a>(
    query: &'a HelpdeskQuery<'a>,
    since: &'a i64,
    since_day: &'a i64,
) -> [&'a (dyn ToSql + Sync); PARAMS] {
    [
        &query.upn,
        &query.setting,
        &query.policy_id,
        &query.action,
        &query.outcome,
        since,
        since_day,
    ]
}

impl PgTx<'_> {
    pub(super) fn helpdesk_snapshot(&self, query: &HelpdeskQuery<'_>) -> Result<HelpdeskRows> {
        let (since, since_day) = (big(query.since)?, big(query.since_day)?);
        let rows = self.query(&HELPDESK, &helpdesk_params(query, &since, &since_day))?;
        helpdesk_rows_of(query, &rows)
    }

    /// See [`crate::store::StoreTx::grant_and_helpdesk_rows`]: one statement.
    pub(super) fn grant_and_helpdesk(
        &self,
        id: &[u8],
        query: &HelpdeskQuery<'_>,
    ) -> Result<(GrantRows, HelpdeskRows)> {
        let (since, since_day) = (big(query.since)?, big(query.since_day)?);
        let (marker_kind, marker_id) = SIGNED_MARKER;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(PARAMS + grant::PARAMS);
        params.extend_from_slice(&helpdesk_params(query, &since, &since_day));
        params.extend_from_slice(&[&id, &marker_kind, &marker_id, &kind::OPERATOR]);
        let rows = self.query(&GRANT_AND_HELPDESK, &params)?;
        let grant = match rows.first() {
            Some(row) => grant::grant_rows_at(row, GRANT_AT)?,
            None => GrantRows::default(),
        };
        Ok((grant, helpdesk_rows_of(query, &rows)?))
    }
}

impl PgTx<'_> {
    /// The grant's and the helpdesk's rows of each job, in one statement
    /// ([`together_sql`]); the jobs share all but their user, grant and
    /// times.
    pub(super) fn grant_and_helpdesk_together(
        &self,
        jobs: &[std::sync::Arc<ReadJob>],
    ) -> Result<Vec<(GrantRows, HelpdeskRows)>> {
        let Some(first) = jobs.first() else {
            return Ok(Vec::new());
        };
        let shared = first.query();
        let Some(sql) = TOGETHER.get(jobs.len()) else {
            return Err(Error::Database(format!(
                "{} helpdesk reads in one statement: at most {} go together",
                jobs.len(),
                read_together::MAX_BATCH
            )));
        };
        let queries: Vec<HelpdeskQuery<'_>> = jobs.iter().map(|job| job.query()).collect();
        let times = queries
            .iter()
            .map(|query| Ok((big(query.since)?, big(query.since_day)?)))
            .collect::<Result<Vec<(i64, i64)>>>()?;
        let (marker_kind, marker_id) = SIGNED_MARKER;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(4 * jobs.len() + 7);
        for ((job, query), (since, since_day)) in jobs.iter().zip(&queries).zip(&times) {
            params.extend_from_slice(&[&query.upn, since, since_day, &job.grant]);
        }
        params.extend_from_slice(&[
            &shared.setting,
            &shared.policy_id,
            &shared.action,
            &shared.outcome,
            &marker_kind,
            &marker_id,
            &kind::OPERATOR,
        ]);
        let rows = self.query(sql, &params)?;
        let mut each: Vec<Vec<Row>> = jobs.iter().map(|_| Vec::new()).collect();
        for row in rows {
            let place: i32 = Columns(&row).get(row.len() - 1)?;
            let rows = usize::try_from(place - 1)
                .ok()
                .and_then(|index| each.get_mut(index))
                .ok_or_else(|| Error::Database("the helpdesk reads answered a stray row".into()))?;
            rows.push(row);
        }
        queries
            .iter()
            .zip(each)
            .map(|(query, rows)| {
                // Every request has a row (its counts), with or without a grant.
                let first = rows.first().ok_or_else(|| {
                    Error::Database("the helpdesk reads answered no row for a request".into())
                })?;
                let grant = grant::grant_rows_at(first, GRANT_AT)?;
                Ok((grant, helpdesk_rows_of(query, &rows)?))
            })
            .collect()
    }
}

/// The helpdesk's rows from the columns of [`snapshot_sql`] (the first
/// [`GRANT_AT`] of each row).
fn helpdesk_rows_of(query: &HelpdeskQuery<'_>, rows: &[Row]) -> Result<HelpdeskRows> {
    {
        // The counts always give one row.
        let Some(first) = rows.first() else {
            return Ok(HelpdeskRows::default());
        };
        let c = Columns(first);
        let mut macs: Vec<(String, String, Vec<u8>)> = Vec::new();
        let mut mac = |kind: &str, id: &str, value: Option<Vec<u8>>| {
            if let Some(value) = value {
                macs.push((kind.to_owned(), id.to_owned(), value));
            }
        };
        mac(kind::SETTING, query.setting, c.get(1)?);
        mac(kind::POLICY, query.policy_id, c.get(7)?);
        let policy_state: Option<String> = c.get(4)?;
        let policy = match policy_state {
            Some(state) => Some(RecordRow {
                kind: kind::POLICY.to_owned(),
                id: query.policy_id.to_owned(),
                state,
                body: c.get(5)?,
                updated_at: c.unsigned(6)?,
            }),
            None => None,
        };
        let user_id: Option<i64> = c.get(8)?;
        let (user, facts) = match user_id {
            Some(id) => {
                let key = row_key(id);
                mac(kind::USER, &key, c.get(12)?);
                mac(kind::USER_FACTS, &key, c.get(16)?);
                let facts_state: Option<String> = c.get(13)?;
                let facts = match facts_state {
                    Some(state) => Some(RecordRow {
                        kind: kind::USER_FACTS.to_owned(),
                        id: key,
                        state,
                        body: c.get(14)?,
                        updated_at: c.unsigned(15)?,
                    }),
                    None => None,
                };
                let user = User {
                    id,
                    upn: c.get(9)?,
                    display_name: c.get(10)?,
                    created_at: c.unsigned(11)?,
                };
                (Some(user), facts)
            }
            None => (None, None),
        };
        let mut candidates = Vec::new();
        for row in rows {
            let credential: Option<i64> = Columns(row).get(CREDENTIAL_AT)?;
            if credential.is_none() {
                continue;
            }
            let found = credential_at(row, CREDENTIAL_AT)?;
            mac(
                kind::CREDENTIAL,
                &row_key(found.id),
                Columns(row).get(CREDENTIAL_AT + 23)?,
            );
            candidates.push(found);
        }
        in_credential_order(&mut candidates);
        Ok(HelpdeskRows {
            limit_text: c.get(0)?,
            user,
            candidates,
            policy,
            facts,
            macs,
            granted_last_hour: c.unsigned(2)?,
            granted_last_day: c.unsigned(3)?,
        })
    }
}

/// The order of the store's credential lists (`CREDENTIAL_ORDER`: by
/// device serial in byte order, no device first, then slot, then id),
/// here rather than in the statement: a Sort node costs the server its
/// start-up on every code, for the one or two credentials a user has.
fn in_credential_order(candidates: &mut [CredentialRow]) {
    candidates.sort_by(|a, b| {
        (a.serial.as_deref(), a.slot, a.id).cmp(&(b.serial.as_deref(), b.slot, b.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_in_the_lists_order() {
        let credential = |id: i64, serial: Option<&str>, slot: Option<u32>| CredentialRow {
            id,
            device_id: serial.map(|_| 1),
            slot,
            serial: serial.map(str::to_owned),
            ..crate::store::postgres::writer::tests::credential_row(id)
        };
        let mut candidates = vec![
            credential(1, Some("b"), Some(2)),
            credential(2, Some("b"), None),
            credential(3, Some("B"), Some(1)),
            credential(4, None, Some(5)),
            credential(5, Some("é"), None),
            credential(6, None, None),
            credential(7, Some("b"), Some(2)),
        ];
        in_credential_order(&mut candidates);
        let ids: Vec<i64> = candidates.iter().map(|c| c.id).collect();
        // No device first; serials in byte order ("B" < "b" < "é"), no slot
        // first; ties by id.
        assert_eq!(ids, [6, 4, 3, 2, 1, 7, 5]);
    }

    #[test]
    fn parameters_are_renumbered_after_the_first_statement() {
        assert_eq!(
            after_params("a = $1 AND b = $12, $3", 7),
            "a = $8 AND b = $19, $10"
        );
        assert_eq!(after_params("no parameters", 7), "no parameters");
        assert_eq!(after_params("ends in $", 7), "ends in $");
        let joined = &*GRANT_AND_HELPDESK;
        for n in 1..=PARAMS + grant::PARAMS {
            assert!(joined.contains(&format!("${n}")), "${n} is missing");
        }
        assert!(!joined.contains(&format!("${}", PARAMS + grant::PARAMS + 1)));
    }

    #[test]
    fn the_reads_together_take_four_parameters_a_request_and_seven_shared() {
        for k in [1, 3, read_together::MAX_BATCH] {
            let sql = &TOGETHER[k];
            for n in 1..=4 * k + 7 {
                assert!(sql.contains(&format!("${n}")), "${n} is missing for {k}");
            }
            assert!(!sql.contains(&format!("${}", 4 * k + 8)), "{k}");
            assert!(sql.contains(&format!(", {k})) AS q(")), "{k}");
        }
        assert_eq!(with_params("$1 $ $2x", |n| format!("p{n}")), "p1 $ p2x");
    }
}
