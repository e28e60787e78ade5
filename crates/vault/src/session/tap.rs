//! Entra's Temporary Access Pass, offered beside the helpdesk code: the
//! same verification decides it, in the vault; the front-end asks Entra
//! for the pass and reports back, so both the request and Entra's answer
//! are in the audit log. The pass itself is never stored or audited.

use super::helpdesk::HelpdeskRequest;
use super::verification::{self as on_file};
use super::*;

/// What the vault allows: a pass for this user, with the policy's lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapPermit {
    pub user: String,
    pub lifetime_minutes: u32,
    pub usable_once: bool,
    pub ticket: String,
    pub methods: Vec<String>,
}

impl<S: Store> Session<S> {
    /// Decides a Temporary Access Pass for a verified caller, by the same
    /// rules as a code (methods, steps, evidence, data on file, ticket);
    /// the policy must allow passes (`tap.enabled`). Audited either way.
    pub fn helpdesk_tap(&mut self, request: &HelpdeskRequest, now: u64) -> Result<TapPermit> {
        self.require(Permission::HelpdeskCode)?;
        let mut event = AuditEvent::of(Action::HelpdeskTap);
        event.user = Some(request.user.clone());
        event.ticket = Some(request.ticket.clone()).filter(|t| !t.trim().is_empty());
        let (policy, user, today) = self.checked_read(now, |tx, keys| {
            (|| {
                let policy = on_file::read_policy(tx, keys)?;
                let user = match tx.user_by_upn(&request.user)? {
                    Some(user) => {
                        let (id, mac) = keys.signer.user(&user);
                        signed::check(
                            tx,
                            keys.enforced,
                            kind::USER,
                            &[(id, format!("user {} ({})", user.id, user.upn), mac)],
                        )?;
                        let facts = on_file::read_facts(tx, keys, &user)?;
                        Some((user, facts))
                    }
                    None => None,
                };
                let today = tx.audit_count(
                    Action::HelpdeskCode.name(),
                    "granted",
                    &request.user,
                    now.saturating_sub(86_400),
                )?;
                Ok((policy, user, today))
            })()
        })?;
        if !policy.tap.enabled {
            return self.refuse(
                now,
                event,
                "Temporary Access Passes are off in the helpdesk policy (tap.enabled)".into(),
            );
        }
        if let Err(reason) = policy.check_ticket(&request.ticket) {
            return self.refuse(now, event, reason);
        }
        let facts = user.as_ref().map(|(_, f)| f.clone()).unwrap_or_default();
        let methods = match policy.check_verification(&request.user, &request.verifications, &facts)
        {
            Ok(methods) => methods,
            Err(reason) => return self.refuse(now, event, reason),
        };
        let Some((user, facts)) = user else {
            return self.refuse(
                now,
                event,
                format!("no user '{}' in the vault", request.user),
            );
        };
        event.user = Some(user.upn.clone());
        event.detail = json!({"methods": methods});
        let lifetime = policy.tap.lifetime_minutes;
        if let Some(reason) =
            policy.approval_needed(&user.upn, &facts, u64::from(lifetime) * 60, today)
        {
            return self.refuse(
                now,
                event,
                format!(
                    "{reason}; a Temporary Access Pass is not given under four eyes: ask for a code instead"
                ),
            );
        }
        event.outcome = "requested".into();
        event.detail = json!({"methods": methods, "lifetime_minutes": lifetime,
                              "usable_once": policy.tap.usable_once});
        self.change(now, |_, _| Ok(((), event)))?;
        Ok(TapPermit {
            user: user.upn,
            lifetime_minutes: lifetime,
            usable_once: policy.tap.usable_once,
            ticket: request.ticket.trim().to_owned(),
            methods,
        })
    }

    /// Records Entra's answer to a permitted pass: its method id, or
    /// Entra's reason for refusing; the user is told of an issued pass when
    /// the policy says so. The pass itself never reaches the vault.
    pub fn helpdesk_tap_outcome(
        &mut self,
        permit: &TapPermit,
        outcome: std::result::Result<&str, &str>,
        now: u64,
    ) -> Result<()> {
        self.require(Permission::HelpdeskCode)?;
        let operator = self.operator().to_owned();
        let mut event = AuditEvent::of(Action::HelpdeskTap);
        event.user = Some(permit.user.clone());
        event.ticket = Some(permit.ticket.clone());
        let issued = outcome.is_ok();
        match outcome {
            Ok(method_id) => {
                event.outcome = "granted".into();
                event.detail = json!({"methods": permit.methods, "entra_method": method_id,
                                      "lifetime_minutes": permit.lifetime_minutes});
            }
            Err(reason) => {
                event.outcome = "refused".into();
                event.detail = json!({"methods": permit.methods, "reason": format!("Entra refused: {reason}")});
            }
        }
        let mut queued = false;
        self.change(now, |tx, keys| {
            if issued {
                let policy = on_file::read_policy(tx, keys)?;
                if let Some(user) = tx.user_by_upn(&permit.user)? {
                    let facts = on_file::read_facts(tx, keys, &user)?;
                    let notice = on_file::notice(
                        "temporary_access_pass_issued",
                        &user,
                        &facts,
                        &operator,
                        None,
                        &permit.ticket,
                        &permit.methods,
                        None,
                        now,
                    )?;
                    queued |= on_file::queue_notice(tx, keys, &policy, notice)?.is_some();
                }
            }
            Ok(((), event))
        })?;
        self.notices_queued |= queued;
        Ok(())
    }
}
