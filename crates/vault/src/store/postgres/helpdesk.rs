//! What a helpdesk code request is decided on, in one statement: the
//! rate-limit setting, the policy, the user, their data on file, their
//! credentials, the stored MACs of all of these and the count of the user's
//! codes — a row per credential (at least one), the rest repeated in each.
//! Seven reads that were a round trip each.

use super::{CREDENTIAL_COLUMNS, CREDENTIAL_ORDER, Columns, PgTx, big, credential_at};
use crate::error::Result;
use crate::model::User;
use crate::signed::kind;
use crate::store::{HelpdeskQuery, HelpdeskRows, RecordRow, row_key};

/// Where the credential's columns start in a row of [`snapshot_sql`].
const CREDENTIAL_AT: usize = 17;

fn snapshot_sql() -> String {
    let (setting, policy, facts) = (kind::SETTING, kind::POLICY, kind::USER_FACTS);
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
             {CREDENTIAL_COLUMNS}, c.mac \
         FROM counts n \
         LEFT JOIN records p ON p.kind = '{policy}' AND p.id = $3 \
         LEFT JOIN who ON true \
         LEFT JOIN records f ON f.kind = '{facts}' AND f.id = who.key \
         LEFT JOIN (credentials c LEFT JOIN devices d ON d.id = c.device_id \
             LEFT JOIN users u ON u.id = c.user_id) ON c.user_id = who.id \
         {CREDENTIAL_ORDER}"
    )
}

impl PgTx<'_> {
    pub(super) fn helpdesk_snapshot(&self, query: &HelpdeskQuery<'_>) -> Result<HelpdeskRows> {
        let rows = self.query(
            &snapshot_sql(),
            &[
                &query.upn,
                &query.setting,
                &query.policy_id,
                &query.action,
                &query.outcome,
                &big(query.since)?,
                &big(query.since_day)?,
            ],
        )?;
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
        for row in &rows {
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
