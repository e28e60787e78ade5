//! Helpdesk codes: which credential a request may get a code for is
//! decided by a pure function; a thin transactional shell reads the rows,
//! audits, and enforces the rate limit where writers are serialised.

use super::delivery::StepRecord;
use super::helpdesk_issue::{Issue, issue};
use super::records;
use super::verification::{self as on_file, Approval};
use super::*;
use crate::store::{AuditCount, HelpdeskQuery, HelpdeskRows, Release, Released};
use crate::verification::{Facts, Policy, Verification};

/// A helpdesk code request.
#[derive(Clone, Debug)]
pub struct HelpdeskRequest {
    pub user: String,
    /// How the caller was verified: one or more of the policy's methods,
    /// each with its steps confirmed and its evidence.
    pub verifications: Vec<Verification>,
    /// The ticket id (it must match the policy's pattern).
    pub ticket: String,
    pub token: Option<TokenRef>,
    /// Hand out a code that stays accepted this long.
    pub valid_for: Option<u64>,
    pub verifier: Verifier,
}

/// A code handed to the helpdesk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HelpdeskGrant {
    pub user: String,
    pub serial: Option<String>,
    pub slot: Option<u32>,
    pub credential_id: i64,
    pub code: String,
    pub counter: u64,
    pub offset: i64,
    /// When the code is current.
    pub valid_from: u64,
    pub valid_until: u64,
    /// Until when the verifier accepts it.
    pub accepted_until: u64,
    pub verifier: String,
    /// Codes this user may still get this hour.
    pub remaining_this_hour: u64,
    /// An HOTP (event) code: accepted until a later code of the token is
    /// used, not until a time (`valid_until` and `accepted_until` are then
    /// `u64::MAX`).
    #[serde(default)]
    pub event_based: bool,
}

/// What the rate limit says, without advice: the error adds where to raise
/// [`settings::RATE_LIMIT`] in the words of the front-end that shows it.
pub(crate) fn rate_limit_reason(upn: &str, granted: u64, limit: u64) -> String {
    format!(
        "rate limit: {upn} already had {granted} helpdesk code(s) in the last hour (limit {limit})"
    )
}

/// What a helpdesk request decides on, read in one snapshot and checked.
pub(crate) struct Candidates {
    pub limit: u64,
    pub user: Option<User>,
    pub candidates: Vec<CredentialRow>,
    pub granted_last_hour: u64,
    pub granted_last_day: u64,
    pub policy: Policy,
    pub facts: Facts,
}

/// The user a helpdesk code is asked for, their credentials, their data on
/// file, the policy and the codes granted for them in the last hour and
/// day, read together ([`StoreTx::helpdesk_rows`]: one statement on
/// PostgreSQL); every row that decides is checked against its stored MAC.
pub(crate) fn helpdesk_candidates(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    upn: &str,
    now: u64,
) -> Result<Candidates> {
    candidates_of(tx.helpdesk_rows(&helpdesk_query(upn, now))?, keys)
}

/// What a helpdesk request for `upn` at `now` reads.
pub(crate) fn helpdesk_query(upn: &str, now: u64) -> HelpdeskQuery<'_> {
    HelpdeskQuery {
        upn,
        setting: settings::RATE_LIMIT.0,
        policy_id: on_file::POLICY_ID,
        action: Action::HelpdeskCode.name(),
        outcome: "granted",
        since: now.saturating_sub(3600),
        since_day: now.saturating_sub(86_400),
    }
}

/// A helpdesk request's rows read ahead, with the grant that opened the
/// session: for this user at this time only.
pub(crate) struct Ahead {
    pub upn: String,
    pub now: u64,
    pub rows: HelpdeskRows,
}

/// The candidates from the rows a helpdesk request read, each row that
/// decides checked against its stored MAC.
fn candidates_of(rows: HelpdeskRows, keys: &Keys<'_>) -> Result<Candidates> {
    let (setting, default) = settings::RATE_LIMIT;
    let policy_id = on_file::POLICY_ID;
    let HelpdeskRows {
        limit_text,
        user,
        candidates,
        policy: policy_row,
        facts: facts_row,
        macs,
        granted_last_hour,
        granted_last_day,
    } = rows;
    // Every row that decides — the limit, the policy, the user, their data
    // on file, the candidates — is checked. A deleted limit, policy or data
    // on file must carry no signature.
    let signer = keys.signer;
    let mut expected: Vec<signed::Expected> = vec![
        (
            kind::SETTING,
            setting.to_owned(),
            format!("setting {setting}"),
            limit_text.as_deref().map(|v| signer.setting(setting, v).1),
        ),
        (
            kind::POLICY,
            policy_id.to_owned(),
            signed::record_name(kind::POLICY, policy_id),
            policy_row.as_ref().map(|row| signer.record(row)),
        ),
    ];
    if let Some(user) = &user {
        let id = signed::row_id(user.id);
        let (user_id, mac) = signer.user(user);
        expected.push((
            kind::USER,
            user_id,
            format!("user {} ({})", user.id, user.upn),
            Some(mac),
        ));
        expected.push((
            kind::USER_FACTS,
            id.clone(),
            signed::record_name(kind::USER_FACTS, &id),
            facts_row.as_ref().map(|row| signer.record(row)),
        ));
    }
    for row in &candidates {
        let (id, mac) = signer.credential(row);
        expected.push((
            kind::CREDENTIAL,
            id,
            signed::credential_name(row),
            Some(mac),
        ));
    }
    signed::check_stored(keys.enforced, &expected, macs)?;
    let limit = match limit_text {
        Some(text) => text.parse().map_err(|_| Error::Altered {
            row: format!("setting {setting}"),
        })?,
        None => default,
    };
    let policy = match &policy_row {
        Some(row) => records::body(row)?,
        None => Policy::default(),
    };
    let facts = match &facts_row {
        Some(row) => records::body(row)?,
        None => Facts::new(),
    };
    Ok(Candidates {
        limit,
        user,
        candidates,
        granted_last_hour,
        granted_last_day,
        policy,
        facts,
    })
}

/// Which of a user's credentials a helpdesk code may come from — the rule,
/// as a pure function of the (checked) rows: the one chosen (all of them,
/// or the one `token` names) that is held and vouches for codes (not lost,
/// retired or still burning). The refusal says why in the words the
/// operator reads.
pub(crate) fn decide<'a>(
    upn: &str,
    candidates: &'a [CredentialRow],
    token: Option<&TokenRef>,
) -> std::result::Result<&'a CredentialRow, String> {
    let chosen: Vec<&CredentialRow> = candidates
        .iter()
        .filter(|row| match token {
            None => true,
            Some(TokenRef::Id(id)) => row.id == *id,
            Some(TokenRef::Serial { serial, slot }) => {
                row.serial.as_deref() == Some(serial.as_str())
                    && (slot.is_none() || row.slot == *slot)
            }
        })
        .collect();
    let usable: Vec<&CredentialRow> = chosen
        .iter()
        .copied()
        .filter(|r| r.custody == Custody::Held && r.state.vouches_for_codes())
        .collect();
    let name = |row: &CredentialRow| reference_of(row.serial.as_deref(), row.slot, row.id);
    match usable.as_slice() {
        [one] => Ok(one),
        [] => Err(match (chosen.first(), token) {
            (None, Some(token)) => format!("{token} is not assigned to {upn}"),
            (None, None) => format!("{upn} has no token assigned"),
            (Some(row), _) if row.state == State::Lost => format!(
                "{} is reported lost: no codes are given for a lost token",
                name(row)
            ),
            (Some(row), _) if row.state == State::Retired => format!("{} is retired", name(row)),
            // The token may not hold this secret: its burn was not confirmed.
            (Some(row), _) if row.state == State::Burning => format!(
                "{} is still being burned (its burn was cut short): finish the burn before giving codes",
                name(row)
            ),
            (Some(row), _) => format!(
                "the secret of {} was purged after delivery: the user reads the code off their own token",
                name(row)
            ),
        }),
        many => {
            let list: Vec<String> = many.iter().map(|r| name(r)).collect();
            Err(format!(
                "{upn} has {} usable tokens ({}): choose one with --serial",
                many.len(),
                list.join(", ")
            ))
        }
    }
}

/// Everything a release decides on, read in one snapshot and checked.
struct Reading {
    policy: Policy,
    limit: u64,
    user: Option<User>,
    facts: Facts,
    candidates: Vec<CredentialRow>,
    granted_last_hour: u64,
    granted_last_day: u64,
    /// The grants of the last hour, oldest first (when the limit lifts).
    granted_times: Vec<u64>,
}

impl Reading {
    fn of(candidates: Candidates, granted_times: Vec<u64>) -> Reading {
        let Candidates {
            limit,
            user,
            candidates,
            granted_last_hour,
            granted_last_day,
            policy,
            facts,
        } = candidates;
        Reading {
            policy,
            limit,
            user,
            facts,
            candidates,
            granted_last_hour,
            granted_last_day,
            granted_times,
        }
    }
}

impl<S: Store> Session<S> {
    /// A code for a user who cannot read their own token yet (it is in the
    /// post): granted only after a verification by the policy's methods
    /// (steps confirmed, evidence, data on file) and with a ticket id that
    /// matches its pattern, for a held credential that is neither lost nor
    /// retired, within the per-user rate limit — and, where the policy asks
    /// for four eyes, only once another operator approved it
    /// ([`Error::ApprovalRequired`]; then [`Session::helpdesk_collect`]).
    /// Every request is audited, granted or refused.
    pub fn helpdesk_code(&mut self, request: &HelpdeskRequest, now: u64) -> Result<HelpdeskGrant> {
        self.require(Permission::HelpdeskCode)?;
        self.release(request, None, now)
    }

    /// The code of a request another operator approved: only for the
    /// operator who asked, once, before the request expires.
    pub fn helpdesk_collect(&mut self, id: &str, now: u64) -> Result<HelpdeskGrant> {
        self.require(Permission::HelpdeskCode)?;
        let row = self
            .checked_read(now, |tx, keys| {
                records::read_one(tx, keys, kind::APPROVAL, id)
            })?
            .ok_or_else(|| Error::NotFound(format!("approval request {id}")))?;
        let approval: Approval = records::body(&row)?;
        let mut event = AuditEvent::of(Action::HelpdeskCode)
            .detail(json!({"approval": id, "methods": approval.methods}));
        event.user = Some(approval.user.clone());
        event.ticket = Some(approval.ticket.clone());
        let refusal = if approval.requester != self.operator() {
            Some(format!(
                "{id} was asked for by {}: only they collect its code",
                approval.requester
            ))
        } else if row.state == "pending" && approval.expires_at > now {
            Some(format!(
                "{id} waits for another operator's approval (until {})",
                on_file::clock(approval.expires_at)
            ))
        } else if row.state != "approved" {
            Some(format!("{id} is {}: no code comes from it", row.state))
        } else if approval.expires_at <= now {
            Some(format!(
                "{id} expired at {}: ask again",
                on_file::clock(approval.expires_at)
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            return self.refuse(now, event, reason);
        }
        let request = HelpdeskRequest {
            user: approval.user.clone(),
            verifications: approval.verifications.clone(),
            ticket: approval.ticket.clone(),
            token: approval.token.as_deref().map(str::parse).transpose()?,
            valid_for: approval.valid_for,
            verifier: approval
                .verifier
                .parse()
                .map_err(|e: oathdesk_otp::VerifierError| Error::Invalid(e.to_string()))?,
        };
        self.release(&request, Some(approval), now)
    }

    /// Reads what a release decides on: one statement (on PostgreSQL no
    /// transaction around it), unless the limit is reached, when the
    /// snapshot also gives the times of the last hour's grants (when the
    /// limit lifts).
    fn read_for_release(&mut self, upn: &str, now: u64) -> Result<Reading> {
        // Read with the grant that opened the session, if it was opened for
        // this request (the console's helpdesk code): one statement less.
        let ahead = self
            .helpdesk_ahead
            .take()
            .filter(|ahead| ahead.upn == upn && ahead.now == now);
        let reading = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            match ahead {
                Some(ahead) => candidates_of(ahead.rows, &keys),
                None => self
                    .store
                    .read_single()
                    .and_then(|tx| helpdesk_candidates(&tx, &keys, upn, now)),
            }
        };
        let candidates = self.audited(now, reading)?;
        if candidates.granted_last_hour < candidates.limit {
            return Ok(Reading::of(candidates, Vec::new()));
        }
        self.checked_read(now, |tx, keys| {
            let candidates = helpdesk_candidates(tx, keys, upn, now)?;
            let granted_times = if candidates.granted_last_hour >= candidates.limit {
                tx.audit_times(
                    Action::HelpdeskCode.name(),
                    "granted",
                    upn,
                    now.saturating_sub(3600),
                )?
            } else {
                Vec::new()
            };
            Ok(Reading::of(candidates, granted_times))
        })
    }

    /// A refusal that names a user: audited, and the user told when the
    /// policy says so.
    fn refuse_release<T>(
        &mut self,
        now: u64,
        event: AuditEvent,
        error: Error,
        told: Option<(&Policy, &User, &Facts, &[String])>,
    ) -> Result<T> {
        let mut event = event;
        event.outcome = "refused".into();
        if let serde_json::Value::Object(map) = &mut event.detail {
            map.insert("reason".into(), json!(error.to_string()));
        }
        let operator = self.operator().to_owned();
        let ticket = event.ticket.clone().unwrap_or_default();
        let mut queued = false;
        self.change(now, |tx, keys| {
            if let Some((policy, user, facts, methods)) = told {
                let notice = on_file::notice(
                    "code_refused",
                    user,
                    facts,
                    &operator,
                    None,
                    &ticket,
                    methods,
                    Some(error.to_string()),
                    now,
                )?;
                queued |= on_file::queue_notice(tx, keys, policy, notice)?.is_some();
            }
            Ok(((), event))
        })?;
        self.notices_queued |= queued;
        Err(error)
    }

    fn release(
        &mut self,
        request: &HelpdeskRequest,
        approval: Option<Approval>,
        now: u64,
    ) -> Result<HelpdeskGrant> {
        let asked: Vec<&str> = request
            .verifications
            .iter()
            .map(|v| v.method.as_str())
            .collect();
        let mut event = AuditEvent {
            action: Action::HelpdeskCode.name().into(),
            outcome: "granted".into(),
            user: Some(request.user.clone()),
            credential: request.token.as_ref().map(ToString::to_string),
            ticket: Some(request.ticket.clone()).filter(|t| !t.trim().is_empty()),
            detail: json!({"methods": asked}),
        };
        if let Some(approval) = &approval {
            event.detail = json!({
                "methods": asked,
                "approval": approval.id,
                "approved_by": approval.decided_by,
            });
        }
        let reading = self.read_for_release(&request.user, now)?;
        let Reading {
            policy,
            limit,
            user,
            facts,
            candidates,
            granted_last_hour,
            granted_last_day,
            granted_times,
        } = reading;
        if let Err(reason) = policy.check_ticket(&request.ticket) {
            return self.refuse(now, event, reason);
        }
        let methods = match policy.check_verification(&request.user, &request.verifications, &facts)
        {
            Ok(methods) => methods,
            Err(reason) => {
                let told = user
                    .as_ref()
                    .map(|u| (&policy, u, &facts, &[] as &[String]));
                return self.refuse_release(now, event, Error::Refused(reason), told);
            }
        };
        let evidence: Vec<&str> = request
            .verifications
            .iter()
            .map(|v| v.evidence.as_str())
            .collect();
        event.detail["methods"] = json!(methods);
        event.detail["evidence"] = json!(evidence);
        let Some(user) = user else {
            let reason = format!("no user '{}' in the vault", request.user);
            return self.refuse(now, event, reason);
        };
        event.user = Some(user.upn.clone());
        let told = Some((&policy, &user, &facts, methods.as_slice()));
        let row = match decide(&user.upn, &candidates, request.token.as_ref()) {
            Ok(row) => row.clone(),
            Err(reason) => return self.refuse_release(now, event, Error::Refused(reason), told),
        };
        let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
        event.credential = Some(reference.clone());
        if granted_last_hour >= limit {
            // The limit lifts when enough of the last hour's grants age out.
            let index = (granted_last_hour - limit) as usize;
            let retry_at = granted_times
                .get(index)
                .map_or(now + 3600, |at| at + 3600)
                .max(now + 1);
            let reason = format!(
                "{}; next code allowed at {}",
                rate_limit_reason(&user.upn, granted_last_hour, limit),
                on_file::clock(retry_at)
            );
            let raise = Some(settings::RATE_LIMIT.0);
            return self.refuse_release(
                now,
                event,
                Error::RateLimited {
                    reason,
                    retry_at,
                    raise,
                },
                told,
            );
        }
        let secret = held_secret(&self.key, &row)?;
        let issued = match issue(&secret, &row, request, now) {
            Ok(issued) => issued,
            // Asking for longer than the verifier accepts any code is
            // refused with the limit, and audited like every refusal.
            Err(Issue::Refused(reason)) => return self.refuse(now, event, reason),
            Err(Issue::Invalid(error)) => return Err(error),
        };
        let operator = self.operator().to_owned();
        if approval.is_none()
            && let Some(reason) = policy.approval_needed(
                &user.upn,
                &facts,
                issued.accepted_until.saturating_sub(now),
                granted_last_day,
            )
        {
            let id = on_file::new_approval_id()?;
            let expires_at = now + policy.approval_expires_minutes * 60;
            let waiting = Approval {
                id: id.clone(),
                state: "pending".into(),
                requester: operator.clone(),
                user: user.upn.clone(),
                methods: methods.clone(),
                verifications: request.verifications.clone(),
                ticket: request.ticket.trim().to_owned(),
                token: request.token.as_ref().map(ToString::to_string),
                valid_for: request.valid_for,
                verifier: request.verifier.to_string(),
                reason: reason.clone(),
                created_at: now,
                expires_at,
                decided_by: None,
                decided_at: None,
                note: None,
            };
            let mut asked = event.clone();
            asked.action = Action::HelpdeskApprovalRequest.name().into();
            asked.outcome = "requested".into();
            asked.detail["approval"] = json!(id);
            asked.detail["reason"] = json!(reason);
            let mut queued = false;
            self.change(now, |tx, keys| {
                let row = records::record(kind::APPROVAL, &id, "pending", &waiting, now)?;
                records::put(tx, keys, vec![row])?;
                let notice = on_file::notice(
                    "approval_requested",
                    &user,
                    &facts,
                    &operator,
                    None,
                    &waiting.ticket,
                    &methods,
                    None,
                    now,
                )?;
                queued |= on_file::queue_notice(tx, keys, &policy, notice)?.is_some();
                Ok(((), asked))
            })?;
            self.notices_queued |= queued;
            return Err(Error::ApprovalRequired {
                id,
                reason,
                expires_at,
                until: on_file::clock(expires_at),
            });
        }
        let mut grant = HelpdeskGrant {
            user: user.upn.clone(),
            serial: row.serial.clone(),
            slot: row.slot,
            credential_id: row.id,
            code: issued.code,
            counter: issued.counter,
            offset: issued.offset,
            valid_from: issued.valid_from,
            valid_until: issued.valid_until,
            accepted_until: issued.accepted_until,
            verifier: request.verifier.to_string(),
            remaining_this_hour: limit - granted_last_hour - 1,
            event_based: issued.hotp.is_some(),
        };
        event.detail["counter"] = json!(grant.counter);
        event.detail["accepted_until"] = json!(grant.accepted_until);
        event.detail["verifier"] = json!(grant.verifier);
        // The count above was read outside the write transaction; another
        // process may have granted codes since. Count again where writers
        // are serialised, so concurrent requests cannot pass the limit.
        let since = now.saturating_sub(3600);
        if approval.is_none()
            && issued.hotp.is_none()
            && !on_file::notice_wanted(&policy, "code_released")
        {
            let count = AuditCount {
                action: Action::HelpdeskCode.name(),
                outcome: "granted",
                user: &request.user,
                since,
            };
            let step = StepRecord::new(
                &self.signer,
                grant.credential_id,
                issued.current,
                grant.counter,
                now,
            );
            return match self.release_plain(now, &count, limit, event, &step, &user.upn)? {
                Some(reason) => Err(Error::RateLimited {
                    reason,
                    retry_at: now.saturating_add(3600),
                    raise: Some(settings::RATE_LIMIT.0),
                }),
                None => Ok(grant),
            };
        }
        let mut queued = false;
        let refused = self.change(now, |tx, keys| {
            let granted =
                tx.audit_count(Action::HelpdeskCode.name(), "granted", &request.user, since)?;
            if granted >= limit {
                let reason = rate_limit_reason(&user.upn, granted, limit);
                let mut refusal = event;
                refusal.outcome = "refused".into();
                refusal.detail["reason"] = json!(reason);
                return Ok((Some(reason), refusal));
            }
            if let Some(approval) = &approval {
                // Used once: collected in the transaction that releases.
                let current = records::read_one(tx, keys, kind::APPROVAL, &approval.id)?;
                if current.as_ref().map(|r| r.state.as_str()) != Some("approved") {
                    return Err(Error::Refused(format!(
                        "{} was collected already",
                        approval.id
                    )));
                }
                let mut used = approval.clone();
                used.state = "used".into();
                let row = records::record(kind::APPROVAL, &used.id, "used", &used, now)?;
                records::put(tx, keys, vec![row])?;
            }
            let mut event = event;
            let current = match &issued.hotp {
                Some(hotp) => {
                    // Read the counter again where writers are serialised:
                    // two requests at once get two codes, never the same.
                    let mut row = resolve_checked(tx, keys, &TokenRef::Id(grant.credential_id))?;
                    let Kind::Hotp { counter } = otp_parts(&row)?.2 else {
                        return Err(Error::Refused(format!(
                            "{} changed kind during the request: ask again",
                            reference_of(row.serial.as_deref(), row.slot, row.id)
                        )));
                    };
                    grant.counter = counter;
                    grant.code = hotp.generate(counter).to_string();
                    event.detail["counter"] = json!(counter);
                    // Past the code shown: the verifier never accepts it
                    // again once a later one is used.
                    row.counter =
                        Some(counter.checked_add(1).ok_or_else(|| {
                            Error::Invalid("the HOTP counter is at its end".into())
                        })?);
                    update_credential(tx, keys, &row)?;
                    counter + 1
                }
                None => issued.current,
            };
            // The step whose code is shown can never prove a delivery.
            release_step(tx, keys, grant.credential_id, current, grant.counter, now)?;
            let notice = on_file::notice(
                "code_released",
                &user,
                &facts,
                &operator,
                approval.as_ref().and_then(|a| a.decided_by.as_deref()),
                request.ticket.trim(),
                &methods,
                None,
                now,
            )?;
            queued |= on_file::queue_notice(tx, keys, &policy, notice)?.is_some();
            Ok((None, event))
        })?;
        self.notices_queued |= queued;
        match refused {
            Some(reason) => Err(Error::RateLimited {
                reason,
                retry_at: now.saturating_add(3600),
                raise: Some(settings::RATE_LIMIT.0),
            }),
            None => Ok(grant),
        }
    }

    /// The write of a plain release — a time-based code, no approval to use
    /// up, no notice to queue: the recount where writers are serialised,
    /// the granted entry and the released step in one call of the store
    /// (one statement on PostgreSQL). A recount at the limit appends the
    /// refusal instead, and its reason is returned.
    fn release_plain(
        &mut self,
        now: u64,
        count: &AuditCount<'_>,
        limit: u64,
        event: AuditEvent,
        step: &StepRecord,
        upn: &str,
    ) -> Result<Option<String>> {
        let audit_key = self.audit_keys[&self.epoch].clone();
        let entry = unchained_entry(self.epoch, &self.operator, now, &event);
        let released = self.store.release(&Release {
            count: *count,
            limit,
            entry: &entry,
            key: &audit_key,
            step: step.step(),
        });
        let outcome = match released {
            Ok(Released {
                entry: Some(head), ..
            }) => {
                audit::anchor(&head);
                Ok(None)
            }
            // Nothing was written: the refusal is appended on its own.
            Ok(Released { found, entry: None }) => {
                let reason = rate_limit_reason(upn, found, limit);
                let mut refusal = event;
                refusal.outcome = "refused".into();
                refusal.detail["reason"] = json!(reason);
                self.store.write().and_then(|tx| {
                    let head =
                        append_audit(&tx, &audit_key, self.epoch, &self.operator, now, &refusal)?;
                    tx.commit()?;
                    audit::anchor(&head);
                    Ok(Some(reason))
                })
            }
            Err(error) => Err(error),
        };
        self.audited(now, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, serial: &str, state: State, custody: Custody) -> CredentialRow {
        CredentialRow {
            id,
            device_id: Some(id),
            slot: None,
            kind: "totp".into(),
            algorithm: "sha1".into(),
            digits: 6,
            period: Some(30),
            t0: Some(0),
            counter: None,
            issuer: None,
            label: None,
            state,
            custody,
            sealed_secret: Some(vec![0]),
            user_id: Some(1),
            drift_steps: None,
            purge_after: None,
            created_at: 0,
            updated_at: 0,
            serial: Some(serial.into()),
            upn: Some("bob@contoso.com".into()),
            manufacturer: None,
            model: None,
        }
    }

    #[test]
    fn the_rule_of_which_credential_gets_a_code() {
        let upn = "bob@contoso.com";
        let shipped = row(1, "A", State::Shipped, Custody::Held);
        let lost = row(2, "B", State::Lost, Custody::Held);
        let purged = row(3, "C", State::Delivered, Custody::Purged);
        let burning = row(4, "D", State::Burning, Custody::Held);
        let all = [
            shipped.clone(),
            lost.clone(),
            purged.clone(),
            burning.clone(),
        ];
        assert_eq!(decide(upn, &all, None).unwrap().id, 1, "the one usable");
        assert_eq!(
            decide(upn, &[], None).unwrap_err(),
            "bob@contoso.com has no token assigned"
        );
        let by = |serial: &str| serial.parse::<TokenRef>().unwrap();
        assert!(
            decide(upn, &all, Some(&by("B")))
                .unwrap_err()
                .contains("reported lost")
        );
        assert!(
            decide(upn, &all, Some(&by("C")))
                .unwrap_err()
                .contains("was purged")
        );
        assert!(
            decide(upn, &all, Some(&by("D")))
                .unwrap_err()
                .contains("still being burned")
        );
        assert_eq!(
            decide(upn, &all, Some(&by("Z"))).unwrap_err(),
            "Z is not assigned to bob@contoso.com"
        );
        let two = [shipped.clone(), row(5, "E", State::Assigned, Custody::Held)];
        assert!(
            decide(upn, &two, None)
                .unwrap_err()
                .contains("2 usable tokens (A, E)")
        );
        assert_eq!(decide(upn, &two, Some(&by("E"))).unwrap().id, 5);
        assert_eq!(decide(upn, &two, Some(&TokenRef::Id(1))).unwrap().id, 1);
    }
}
