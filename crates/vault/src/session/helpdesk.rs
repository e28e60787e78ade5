//! Helpdesk codes: which credential a request may get a code for is
//! decided by a pure function; a thin transactional shell reads the rows,
//! audits, and enforces the rate limit where writers are serialised.

use super::*;

/// A helpdesk code request.
#[derive(Clone, Debug)]
pub struct HelpdeskRequest {
    pub user: String,
    /// How the caller's identity was verified (call-back number, manager...).
    pub verified_by: String,
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
}

pub(crate) fn rate_limit_reason(upn: &str, granted: u64, limit: u64) -> String {
    format!(
        "rate limit: {upn} already had {granted} helpdesk code(s) in the last hour (limit {limit}); \
         wait, or raise '{}' with 'oathdesk vault set'",
        settings::RATE_LIMIT.0
    )
}

/// The user a helpdesk code is asked for, their credentials and the codes
/// granted for them in the last hour; the rows that decide are checked.
#[allow(clippy::type_complexity)]
pub(crate) fn helpdesk_candidates(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    upn: &str,
    now: u64,
) -> Result<(u64, Option<User>, Vec<CredentialRow>, u64)> {
    let (setting, default) = settings::RATE_LIMIT;
    let limit_text = tx.meta_get(&format!("setting.{setting}"))?;
    let user = tx.user_by_upn(upn)?;
    let candidates = match &user {
        Some(user) => tx.credentials(&CredentialFilter {
            user_upn: Some(user.upn.clone()),
            ..CredentialFilter::default()
        })?,
        None => Vec::new(),
    };
    // Every row that decides — the limit, the user, the candidates — is
    // checked in one round trip. A deleted limit must carry no signature.
    let signer = keys.signer;
    let mut expected: Vec<signed::Expected> = vec![(
        kind::SETTING,
        setting.to_owned(),
        format!("setting {setting}"),
        limit_text.as_deref().map(|v| signer.setting(setting, v).1),
    )];
    if let Some(user) = &user {
        let (id, mac) = signer.user(user);
        expected.push((
            kind::USER,
            id,
            format!("user {} ({})", user.id, user.upn),
            Some(mac),
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
    signed::check_all(tx, keys.enforced, &expected)?;
    let limit = match limit_text {
        Some(text) => text.parse().map_err(|_| Error::Altered {
            row: format!("setting {setting}"),
        })?,
        None => default,
    };
    let since = now.saturating_sub(3600);
    let granted = tx.audit_count(Action::HelpdeskCode.name(), "granted", upn, since)?;
    Ok((limit, user, candidates, granted))
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

impl<S: Store> Session<S> {
    /// A code for a user who cannot read their own token yet (it is in the
    /// post): granted only with identity verification and a ticket, for a
    /// held credential that is neither lost nor retired, within the
    /// per-user rate limit. Every request is audited, granted or refused.
    pub fn helpdesk_code(&mut self, request: &HelpdeskRequest, now: u64) -> Result<HelpdeskGrant> {
        self.require(Permission::HelpdeskCode)?;
        let mut event = AuditEvent {
            action: Action::HelpdeskCode.name().into(),
            outcome: "granted".into(),
            user: Some(request.user.clone()),
            credential: request.token.as_ref().map(ToString::to_string),
            ticket: Some(request.ticket.clone()).filter(|t| !t.trim().is_empty()),
            detail: json!({"verified_by": request.verified_by}),
        };
        if request.verified_by.trim().is_empty() || request.ticket.trim().is_empty() {
            return self.refuse(
                now,
                event,
                "identity verification is required: say how the caller was verified (--verified-by) \
                 and give the ticket (--ticket)"
                    .into(),
            );
        }
        let read = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            let tx = self.store.read()?;
            helpdesk_candidates(&tx, &keys, &request.user, now)
        };
        let (limit, user, candidates, granted_last_hour) = self.audited(now, read)?;
        let Some(user) = user else {
            let reason = format!("no user '{}' in the vault", request.user);
            return self.refuse(now, event, reason);
        };
        let row = match decide(&user.upn, &candidates, request.token.as_ref()) {
            Ok(row) => row.clone(),
            Err(reason) => return self.refuse(now, event, reason),
        };
        let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
        event.credential = Some(reference.clone());
        if granted_last_hour >= limit {
            let reason = rate_limit_reason(&user.upn, granted_last_hour, limit);
            return self.refuse_with(
                now,
                event,
                Error::RateLimited {
                    reason,
                    retry_at: now.saturating_add(3600),
                },
            );
        }
        let secret = held_secret(&self.key, &row)?;
        let (algorithm, digits, kind) = otp_parts(&row)?;
        let Kind::Totp { step } = kind else {
            return self.refuse(
                now,
                event,
                format!(
                    "{reference} is an HOTP (event) token: helpdesk codes are for time-based tokens"
                ),
            );
        };
        let totp = Totp::new(&secret, algorithm, digits, step);
        let window = request
            .verifier
            .window(step.period())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let LastingCode { code, accepted } = totp
            .code_valid_for(now, request.valid_for.unwrap_or(0), window)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let grant = HelpdeskGrant {
            user: user.upn.clone(),
            serial: row.serial.clone(),
            slot: row.slot,
            credential_id: row.id,
            code: code.code.to_string(),
            counter: code.counter,
            offset: code.offset,
            valid_from: code.current.from,
            valid_until: code.current.until,
            accepted_until: accepted.until,
            verifier: request.verifier.to_string(),
            remaining_this_hour: limit - granted_last_hour - 1,
        };
        event.user = Some(user.upn.clone());
        event.detail = json!({
            "verified_by": request.verified_by,
            "counter": grant.counter,
            "accepted_until": grant.accepted_until,
            "verifier": grant.verifier,
        });
        // The count above was read outside the write transaction; another
        // process may have granted codes since. Count again where writers
        // are serialised, so concurrent requests cannot pass the limit.
        let since = now.saturating_sub(3600);
        let refused = self.change(now, |tx, keys| {
            let granted =
                tx.audit_count(Action::HelpdeskCode.name(), "granted", &request.user, since)?;
            if granted >= limit {
                let reason = rate_limit_reason(&user.upn, granted, limit);
                let mut refusal = event;
                refusal.outcome = "refused".into();
                refusal.detail = json!({"verified_by": request.verified_by, "reason": reason});
                return Ok((Some(reason), refusal));
            }
            // The step whose code is shown can never prove a delivery.
            release_step(tx, keys, grant.credential_id, step, grant.counter, now)?;
            Ok((None, event))
        })?;
        match refused {
            Some(reason) => Err(Error::RateLimited {
                reason,
                retry_at: now.saturating_add(3600),
            }),
            None => Ok(grant),
        }
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
