//! Promise 4 in the session: data on file, the signed helpdesk policy,
//! verification steps shown (and audited), four eyes, and notices to the
//! user. The rules themselves are pure ([`crate::verification`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::records;
use super::*;
use crate::verification::{self as rules, Fact, Facts, Policy, fact};

/// The id of the helpdesk policy record.
pub(crate) const POLICY_ID: &str = "helpdesk";

/// The record id of a user's data on file.
fn facts_id(user_id: i64) -> String {
    signed::row_id(user_id)
}

/// New values for a user's data on file: `None` removes a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FactsUpdate {
    pub upn: String,
    pub display_name: Option<String>,
    pub values: BTreeMap<String, Option<String>>,
}

/// What an import or a directory sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FactsReport {
    /// Users whose data on file changed.
    pub updated: u64,
    pub unchanged: u64,
    /// Users created (only when asked).
    pub created: u64,
    /// UPNs not in the vault, skipped (none is dropped silently).
    pub not_in_vault: Vec<String>,
}

/// One step of a method, with the data on file it shows (masked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    pub number: usize,
    pub text: String,
    pub data: Vec<FactView>,
}

/// A value on file as an operator sees it inside a verification step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactView {
    pub name: String,
    pub shown: String,
    pub source: String,
    pub at: u64,
}

/// What an operator sees when they start a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationView {
    pub user: String,
    pub display_name: Option<String>,
    pub method: String,
    pub title: String,
    pub steps: Vec<StepView>,
    pub evidence_required: bool,
    pub sufficient: bool,
    /// Why the method cannot be used for this user (data missing), if so.
    pub unusable: Option<String>,
}

/// A release waiting for a second operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    /// `pending`, `approved`, `denied`, `used` or `expired`.
    pub state: String,
    pub requester: String,
    pub user: String,
    pub methods: Vec<String>,
    pub verifications: Vec<rules::Verification>,
    pub ticket: String,
    pub token: Option<String>,
    pub valid_for: Option<u64>,
    pub verifier: String,
    /// Why the policy asks for approval.
    pub reason: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub decided_by: Option<String>,
    pub decided_at: Option<u64>,
    pub note: Option<String>,
}

/// A notice for the user, waiting to be sent (nothing secret in it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub id: String,
    /// `code_released`, `code_refused`, `approval_requested`, `temporary_access_pass_issued`.
    pub event: String,
    pub at: u64,
    pub user: String,
    pub display_name: Option<String>,
    /// Where to send it: the mail on file, else the UPN.
    pub address: String,
    pub operator: String,
    pub approver: Option<String>,
    pub ticket: Option<String>,
    pub methods: Vec<String>,
    pub reason: Option<String>,
    /// `queued`, `sent` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// A random record id with a prefix: `A-3f9c2a10`.
fn new_id(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 5];
    crypto::random(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}-{hex}"))
}

/// `14:05 UTC` of a Unix time.
pub(crate) fn clock(at: u64) -> String {
    let minutes = (at % 86_400) / 60;
    format!("{:02}:{:02} UTC", minutes / 60, minutes % 60)
}

/// The signed policy, or the default when none was ever set.
pub(crate) fn read_policy(tx: &impl StoreTx, keys: &Keys<'_>) -> Result<Policy> {
    match records::read_one(tx, keys, kind::POLICY, POLICY_ID)? {
        Some(row) => records::body(&row),
        None => Ok(Policy::default()),
    }
}

/// A user's data on file, checked.
pub(crate) fn read_facts(tx: &impl StoreTx, keys: &Keys<'_>, user: &User) -> Result<Facts> {
    match records::read_one(tx, keys, kind::USER_FACTS, &facts_id(user.id))? {
        Some(row) => records::body(&row),
        None => Ok(Facts::new()),
    }
}

/// The vault's users among those of `updates`, by lower-case UPN.
pub(crate) fn users_of(
    tx: &impl StoreTx,
    updates: &[FactsUpdate],
) -> Result<BTreeMap<String, User>> {
    let upns: Vec<String> = updates.iter().map(|u| u.upn.clone()).collect();
    Ok(tx
        .users_by_upn(&upns)?
        .into_iter()
        .map(|u| (u.upn.to_lowercase(), u))
        .collect())
}

/// The records an update of data on file writes (each user's whole, as it
/// is after the update), counted in `report`: against the data on file
/// `tx` sees, for the `users` found.
pub(crate) fn plan_facts(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    updates: &[FactsUpdate],
    source: &str,
    users: &BTreeMap<String, User>,
    report: &mut FactsReport,
    now: u64,
) -> Result<Vec<RecordRow>> {
    let known: Vec<&User> = updates
        .iter()
        .filter_map(|u| users.get(&u.upn.to_lowercase()))
        .collect();
    let ids: Vec<String> = known.iter().map(|u| facts_id(u.id)).collect();
    let mut current: BTreeMap<String, Facts> = BTreeMap::new();
    for row in records::read(tx, keys, kind::USER_FACTS, &ids)? {
        let facts: Facts = records::body(&row)?;
        current.insert(row.id, facts);
    }
    let mut rows: Vec<RecordRow> = Vec::new();
    // A user named twice: the later update applies to the earlier's
    // result, and one record (the last) is written.
    let mut row_of: BTreeMap<String, usize> = BTreeMap::new();
    for update in updates {
        let Some(user) = users.get(&update.upn.to_lowercase()) else {
            report.not_in_vault.push(update.upn.clone());
            continue;
        };
        let id = facts_id(user.id);
        let before = current.get(&id).cloned().unwrap_or_default();
        let mut after = before.clone();
        for (name, value) in &update.values {
            match value.as_deref().map(str::trim) {
                Some(value) if !value.is_empty() => {
                    if after.get(name).map(|f| f.value.as_str()) != Some(value) {
                        after.insert(
                            name.clone(),
                            Fact {
                                value: value.to_owned(),
                                source: source.to_owned(),
                                at: now,
                            },
                        );
                    }
                }
                _ => {
                    after.remove(name);
                }
            }
        }
        if after == before {
            report.unchanged += 1;
            continue;
        }
        report.updated += 1;
        let row = records::record(kind::USER_FACTS, &id, "active", &after, now)?;
        match row_of.get(&id) {
            Some(&index) => rows[index] = row,
            None => {
                row_of.insert(id.clone(), rows.len());
                rows.push(row);
            }
        }
        current.insert(id, after);
    }
    Ok(rows)
}

/// Refuses an update of data on file with a UPN, name or value that
/// cannot be stored.
pub(crate) fn check_updates(updates: &[FactsUpdate]) -> Result<()> {
    for update in updates {
        check_text("UPN", &update.upn)?;
        for (name, value) in &update.values {
            rules::check_fact_name(name).map_err(Error::Invalid)?;
            if let Some(value) = value {
                check_text(name, value)?;
                if value.len() > 1024 {
                    return Err(Error::Invalid(format!(
                        "{}: the {name} is longer than 1024 characters",
                        update.upn
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Writes an update of data on file in `tx`: the users it names that are
/// not in the vault are added with `create`, then each user's record.
pub(crate) fn write_facts(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    updates: &[FactsUpdate],
    source: &str,
    create: bool,
    now: u64,
) -> Result<FactsReport> {
    let mut users = users_of(tx, updates)?;
    let mut report = FactsReport::default();
    if create {
        let mut fresh: Vec<User> = Vec::new();
        for update in updates {
            let lower = update.upn.to_lowercase();
            if !users.contains_key(&lower) && !fresh.iter().any(|u| u.upn.to_lowercase() == lower) {
                fresh.push(User {
                    id: 0,
                    upn: update.upn.clone(),
                    display_name: update.display_name.clone(),
                    created_at: now,
                });
            }
        }
        let ids = tx.user_ids(fresh.len())?;
        let mut macs = Vec::with_capacity(fresh.len());
        for (user, id) in fresh.iter_mut().zip(ids) {
            user.id = id;
            macs.push(keys.signer.user(user).1);
        }
        tx.users_insert(&fresh, &macs)?;
        for user in fresh {
            users.insert(user.upn.to_lowercase(), user);
            report.created += 1;
        }
    }
    let rows = plan_facts(tx, keys, updates, source, &users, &mut report, now)?;
    records::put(tx, keys, rows)?;
    Ok(report)
}

/// The audit entry of an update of data on file.
pub(crate) fn facts_event(source: &str, report: &FactsReport) -> AuditEvent {
    AuditEvent::of(Action::UserFactsUpdate).detail(json!({
        "source": source,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "created": report.created,
        "not_in_vault": report.not_in_vault.len(),
    }))
}

/// Whether the policy has a notice of `event` sent to the user.
pub(crate) fn notice_wanted(policy: &Policy, event: &str) -> bool {
    let wanted = match event {
        "code_refused" => policy.notify.on_refusal,
        _ => policy.notify.on_release,
    };
    wanted && policy.notify.channel.is_some()
}

/// Queues a notice in the transaction that releases (or refuses), when the
/// policy asks for one; returns its id.
pub(crate) fn queue_notice(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    policy: &Policy,
    notice: Notice,
) -> Result<Option<String>> {
    if !notice_wanted(policy, &notice.event) {
        return Ok(None);
    }
    let id = notice.id.clone();
    let row = records::record(kind::NOTICE, &id, "queued", &notice, notice.at)?;
    records::put(tx, keys, vec![row])?;
    Ok(Some(id))
}

impl<S: Store> Session<S> {
    /// Whether a notice to a user was queued through this session since it
    /// was opened: a front-end that sends notices itself (the console) need
    /// not look for queued ones after a request that queued none.
    pub fn queued_notices(&self) -> bool {
        self.notices_queued
    }

    /// The helpdesk's verification policy (the default until an admin sets one).
    pub fn helpdesk_policy(&mut self) -> Result<Policy> {
        // Not secret: whoever may ask for codes (an API token scoped to
        // helpdesk.code included) or use the toolset may read it.
        if !self.may(Permission::HelpdeskCode) {
            self.require(Permission::Toolset)?;
        }
        self.checked_read(wall_clock(), |tx, keys| read_policy(tx, keys))
    }

    /// Replaces the helpdesk's verification policy (admins), signed.
    pub fn set_helpdesk_policy(&mut self, policy: &Policy, now: u64) -> Result<()> {
        self.require(Permission::Admin)?;
        policy.check().map_err(Error::Invalid)?;
        self.change(now, |tx, keys| {
            let row = records::record(kind::POLICY, POLICY_ID, "active", policy, now)?;
            records::put(tx, keys, vec![row])?;
            Ok((
                (),
                AuditEvent::of(Action::HelpdeskPolicy).detail(json!({
                    "accepted": policy.accepted_names(),
                    "ticket_pattern": policy.ticket_pattern,
                    "four_eyes": policy.four_eyes,
                    "notify": policy.notify.channel,
                    "tap": policy.tap.enabled,
                })),
            ))
        })
    }

    /// A user's data on file, whole (provisioners and admins; audited).
    pub fn user_facts(&mut self, upn: &str, now: u64) -> Result<Facts> {
        self.require(Permission::InventoryWrite)?;
        let (user, facts) = self.checked_read(now, |tx, keys| match tx.user_by_upn(upn)? {
            Some(user) => read_facts(tx, keys, &user).map(|facts| (user, facts)),
            None => Err(Error::NotFound(format!("user '{upn}'"))),
        })?;
        let mut event = AuditEvent::of(Action::UserFactsView)
            .detail(json!({"names": facts.keys().collect::<Vec<_>>()}));
        event.user = Some(user.upn);
        self.write_audit(now, event)?;
        Ok(facts)
    }

    /// Writes users' data on file from an import or a directory sync,
    /// recording where each value came from. Users not in the vault are
    /// created with `create`, else listed in the report.
    pub fn update_user_facts(
        &mut self,
        updates: Vec<FactsUpdate>,
        source: &str,
        create: bool,
        now: u64,
    ) -> Result<FactsReport> {
        let mut go_on = |_: usize| true;
        let mut staging = Staging::new(&mut go_on);
        self.update_user_facts_with(updates, source, create, now, &mut staging)
    }

    /// For tests: [`Session::update_user_facts`] staged (if the store
    /// stages) in parts of `rows` records, each its own transaction with
    /// `always_let_in` (as if a writer waited after each), else sharing
    /// one unless a writer waits; `go_on` is asked before each part after
    /// the first, before the publishing transaction, and before the
    /// records are moved into their table (the last two numbers): `false`
    /// stops there as a crash would. Returns the report and the
    /// transactions the parts took (0: not staged).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn update_user_facts_staged_for_tests(
        &mut self,
        updates: Vec<FactsUpdate>,
        source: &str,
        now: u64,
        rows: usize,
        always_let_in: bool,
        mut go_on: impl FnMut(usize) -> bool,
    ) -> Result<(FactsReport, usize)> {
        let mut staging = Staging::new(&mut go_on);
        staging.rows = rows;
        staging.always_let_in = always_let_in;
        let report = self.update_user_facts_with(updates, source, false, now, &mut staging)?;
        Ok((report, staging.transactions))
    }

    fn update_user_facts_with(
        &mut self,
        updates: Vec<FactsUpdate>,
        source: &str,
        create: bool,
        now: u64,
        staging: &mut Staging<'_>,
    ) -> Result<FactsReport> {
        self.require(Permission::InventoryWrite)?;
        check_updates(&updates)?;
        // A large one is staged where the store can (SQLite): written in
        // parts no read sees until one short publishing transaction.
        if updates.len() > staging.rows
            && let Some(report) =
                self.update_user_facts_staged(&updates, source, create, now, staging)?
        {
            return Ok(report);
        }
        // On PostgreSQL, written before the writers' lock.
        if let Some(report) =
            self.update_user_facts_late_locked(&updates, source, create, now, None::<fn()>)?
        {
            return Ok(report);
        }
        self.change(now, |tx, keys| {
            let report = write_facts(tx, keys, &updates, source, create, now)?;
            let event = facts_event(source, &report);
            Ok((report, event))
        })
    }

    /// Starts a verification: the method's steps with the user's data on
    /// file, partly masked. Each view is audited (who looked at whose data).
    pub fn verification_view(
        &mut self,
        upn: &str,
        method: &str,
        now: u64,
    ) -> Result<VerificationView> {
        self.require(Permission::HelpdeskCode)?;
        let (policy, user, facts) = self.checked_read(now, |tx, keys| {
            (|| {
                let policy = read_policy(tx, keys)?;
                let user = tx
                    .user_by_upn(upn)?
                    .ok_or_else(|| Error::NotFound(format!("user '{upn}'")))?;
                let (id, mac) = keys.signer.user(&user);
                signed::check(
                    tx,
                    keys.enforced,
                    kind::USER,
                    &[(id, format!("user {} ({})", user.id, user.upn), mac)],
                )?;
                let facts = read_facts(tx, keys, &user)?;
                Ok((policy, user, facts))
            })()
        })?;
        let method = policy.method(method).map_err(Error::Invalid)?.clone();
        let mut unusable = None;
        let steps = method
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let data: Vec<FactView> = step
                    .shows
                    .iter()
                    .filter_map(|name| {
                        facts.get(name).map(|f| FactView {
                            name: name.clone(),
                            shown: rules::masked(name, &f.value),
                            source: f.source.clone(),
                            at: f.at,
                        })
                    })
                    .collect();
                if !step.shows.is_empty() && data.is_empty() && unusable.is_none() {
                    unusable = Some(format!(
                        "{} has no {} on file",
                        user.upn,
                        step.shows.join(" or ").replace('_', " ")
                    ));
                }
                StepView {
                    number: index + 1,
                    text: step.text.clone(),
                    data,
                }
            })
            .collect();
        let view = VerificationView {
            user: user.upn.clone(),
            display_name: user.display_name.clone(),
            method: method.name.clone(),
            title: method.title.clone(),
            steps,
            evidence_required: method.evidence_required,
            sufficient: method.sufficient,
            unusable,
        };
        let shown: Vec<&str> = view
            .steps
            .iter()
            .flat_map(|s| s.data.iter().map(|d| d.name.as_str()))
            .collect();
        let mut event = AuditEvent::of(Action::VerificationView)
            .detail(json!({"method": view.method, "shown": shown}));
        event.user = Some(user.upn);
        self.write_audit(now, event)?;
        Ok(view)
    }

    /// One value on file, whole, for the operator to dial or say — only one
    /// that a step of `method` shows, and audited as its own entry (who saw
    /// whose number, for which method), so the masked view stays the
    /// default and every full view is accounted for.
    pub fn reveal_fact(&mut self, upn: &str, method: &str, name: &str, now: u64) -> Result<String> {
        self.require(Permission::HelpdeskCode)?;
        let (policy, user, facts) = self.checked_read(now, |tx, keys| {
            (|| {
                let policy = read_policy(tx, keys)?;
                let user = tx
                    .user_by_upn(upn)?
                    .ok_or_else(|| Error::NotFound(format!("user '{upn}'")))?;
                let facts = read_facts(tx, keys, &user)?;
                Ok((policy, user, facts))
            })()
        })?;
        let method = policy.method(method).map_err(Error::Invalid)?.clone();
        if !method
            .steps
            .iter()
            .any(|s| s.shows.iter().any(|n| n == name))
        {
            return Err(Error::Refused(format!(
                "'{}' shows no {}: only the data a step of the method uses is revealed",
                method.name,
                name.replace('_', " ")
            )));
        }
        let value = facts.get(name).map(|f| f.value.clone()).ok_or_else(|| {
            Error::NotFound(format!("{} of {}", name.replace('_', " "), user.upn))
        })?;
        let mut event =
            AuditEvent::of(Action::FactReveal).detail(json!({"method": method.name, "name": name}));
        event.user = Some(user.upn);
        self.write_audit(now, event)?;
        Ok(value)
    }

    /// Approval requests (all, or in one state), newest first.
    pub fn approvals(&mut self, state: Option<&str>, now: u64) -> Result<Vec<Approval>> {
        self.require(Permission::HelpdeskCode)?;
        let mut all = self.checked_read(now, |tx, keys| {
            records::list(tx, keys, kind::APPROVAL, None).and_then(|rows| {
                rows.iter()
                    .map(records::body::<Approval>)
                    .collect::<Result<Vec<_>>>()
            })
        })?;
        for approval in &mut all {
            if approval.state == "pending" && approval.expires_at <= now {
                approval.state = "expired".into();
            }
        }
        all.retain(|a| state.is_none_or(|s| a.state == s));
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Approves or denies another operator's request. Nobody decides their
    /// own; an expired request cannot be approved. Audited either way.
    pub fn decide_approval(
        &mut self,
        id: &str,
        approve: bool,
        note: Option<&str>,
        now: u64,
    ) -> Result<Approval> {
        self.require(Permission::HelpdeskCode)?;
        let operator = self.operator().to_owned();
        let action = if approve {
            Action::HelpdeskApprove
        } else {
            Action::HelpdeskDeny
        };
        let read = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            let tx = self.store.read()?;
            records::read_one(&tx, &keys, kind::APPROVAL, id)
        };
        let row = self
            .audited(now, read)?
            .ok_or_else(|| Error::NotFound(format!("approval request {id}")))?;
        let approval: Approval = records::body(&row)?;
        let mut event = AuditEvent::of(action).detail(json!({
            "request": id,
            "requester": approval.requester,
            "methods": approval.methods,
            "note": note,
        }));
        event.user = Some(approval.user.clone());
        event.ticket = Some(approval.ticket.clone());
        let refusal = if approval.requester == operator {
            Some(format!(
                "you asked for {id} yourself: another operator must decide it"
            ))
        } else if row.state != "pending" {
            Some(format!("{id} is {} already", row.state))
        } else if approval.expires_at <= now {
            Some(format!(
                "{id} expired at {}: the operator asks again",
                clock(approval.expires_at)
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            return self.refuse(now, event, reason);
        }
        self.change(now, |tx, keys| {
            // Decided in the write transaction: two approvers cannot both win.
            let current = records::read_one(tx, keys, kind::APPROVAL, id)?
                .ok_or_else(|| Error::NotFound(format!("approval request {id}")))?;
            if current.state != "pending" {
                return Err(Error::Refused(format!("{id} is {} already", current.state)));
            }
            let mut decided = approval;
            decided.state = if approve { "approved" } else { "denied" }.into();
            decided.decided_by = Some(operator.clone());
            decided.decided_at = Some(now);
            decided.note = note.map(str::to_owned);
            let row = records::record(kind::APPROVAL, id, &decided.state, &decided, now)?;
            records::put(tx, keys, vec![row])?;
            Ok((decided, event))
        })
    }

    /// Notices waiting to be sent.
    pub fn notices(&mut self, state: Option<&str>) -> Result<Vec<Notice>> {
        self.require(Permission::HelpdeskCode)?;
        self.checked_read(wall_clock(), |tx, keys| {
            records::list(tx, keys, kind::NOTICE, state).and_then(|rows| {
                rows.iter()
                    .map(records::body::<Notice>)
                    .collect::<Result<Vec<_>>>()
            })
        })
    }

    /// Records the outcome of sending a notice (audited): `Ok(attempts)` or
    /// the reason it failed; a failed notice stays queued for the next try
    /// until `give_up`.
    pub fn notice_outcome(
        &mut self,
        id: &str,
        outcome: std::result::Result<u32, String>,
        give_up: bool,
        now: u64,
    ) -> Result<()> {
        self.require(Permission::HelpdeskCode)?;
        self.change(now, |tx, keys| {
            let row = records::read_one(tx, keys, kind::NOTICE, id)?
                .ok_or_else(|| Error::NotFound(format!("notice {id}")))?;
            let mut notice: Notice = records::body(&row)?;
            let (action, detail) = match &outcome {
                Ok(attempts) => {
                    notice.state = "sent".into();
                    notice.attempts += attempts;
                    notice.last_error = None;
                    (Action::NoticeSent, json!({"notice": id, "event": notice.event}))
                }
                Err(reason) => {
                    notice.attempts += 1;
                    notice.last_error = Some(reason.clone());
                    notice.state = if give_up { "failed" } else { "queued" }.into();
                    (
                        Action::NoticeFailed,
                        json!({"notice": id, "event": notice.event, "reason": reason, "gave_up": give_up}),
                    )
                }
            };
            let mut event = AuditEvent::of(action).detail(detail);
            if outcome.is_err() {
                event.outcome = "failed".into();
            }
            event.user = Some(notice.user.clone());
            let row = records::record(kind::NOTICE, id, &notice.state, &notice, now)?;
            records::put(tx, keys, vec![row])?;
            Ok(((), event))
        })
    }
}

/// The notice of a release, a refusal or a request.
#[allow(clippy::too_many_arguments)]
pub(crate) fn notice(
    event: &str,
    user: &User,
    facts: &Facts,
    operator: &str,
    approver: Option<&str>,
    ticket: &str,
    methods: &[String],
    reason: Option<String>,
    now: u64,
) -> Result<Notice> {
    Ok(Notice {
        id: new_id("N")?,
        event: event.to_owned(),
        at: now,
        user: user.upn.clone(),
        display_name: user.display_name.clone(),
        address: facts
            .get(fact::MAIL)
            .map_or_else(|| user.upn.clone(), |f| f.value.clone()),
        operator: operator.to_owned(),
        approver: approver.map(str::to_owned),
        ticket: Some(ticket.to_owned()).filter(|t| !t.is_empty()),
        methods: methods.to_vec(),
        reason,
        state: "queued".into(),
        attempts: 0,
        last_error: None,
    })
}

pub(crate) fn new_approval_id() -> Result<String> {
    new_id("A")
}
