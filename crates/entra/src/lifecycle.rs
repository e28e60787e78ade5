//! Lost and retired tokens in Entra: a token the vault marks lost or
//! retired may still sign its finder in, because Entra knows nothing of the
//! vault's states. The vault's signed `entra.on_lost` policy says what to do
//! ([`OnLost`]: `report`, `unassign` or `delete`).
//!
//! The queue of work is the tokens' own state: a token lost or retired in
//! the vault whose Entra link says it is still assigned or activated
//! ([`Session::entra_lost_live`]). `token lost` works it off at once when
//! Graph is configured; otherwise the next `entra sync` or `entra push`
//! does. Nothing can fall out of such a queue, and it empties by itself
//! once Entra no longer has the token assigned. `entra sync` reports every
//! lost or retired token Entra still has assigned or activated (`lost`),
//! whatever the policy, until someone acts.

use oathdesk_formats::entra::GraphDevice;
use oathdesk_vault::audit::AuditEvent;
use oathdesk_vault::model::{State, TokenRef};
use oathdesk_vault::store::Store;
use oathdesk_vault::{LostInEntra, OnLost, Session, TokenInfo};
use serde::Serialize;
use serde_json::json;

use crate::error::Result;
use crate::graph::Graph;
use crate::sync::{self, Line, SyncReport};

/// Why a device Entra holds is a danger: the vault says its token is lost
/// or retired, and Entra still has it assigned or activated.
pub fn lost_detail(token: &TokenInfo, device: &GraphDevice) -> Option<String> {
    if !matches!(token.state, State::Lost | State::Retired) {
        return None;
    }
    let status = device.status.as_deref().unwrap_or_default();
    let user = device.assigned_to.as_ref().map(|a| {
        a.display_name
            .clone()
            .or_else(|| a.id.clone())
            .unwrap_or_else(|| "a user".into())
    });
    if user.is_none() && status != "activated" {
        return None;
    }
    let reference = token.reference();
    Some(format!(
        "{} in the vault, but Entra still has it {}{}: whoever holds it can sign in with it \
         (run 'oathdesk entra unassign {reference}' or 'oathdesk entra delete --unassign \
         {reference}', or let the policy do it: 'oathdesk vault set entra.on_lost unassign')",
        token.state,
        if status.is_empty() {
            "assigned"
        } else {
            status
        },
        user.map(|u| format!(" (assigned to {u})"))
            .unwrap_or_default(),
    ))
}

/// What the `entra.on_lost` policy did.
#[derive(Clone, Debug, Serialize)]
pub struct OnLostOutcome {
    pub policy: OnLost,
    /// One line per token acted on: `unassigned`, `deleted` or `failed`
    /// (a failed one stays queued for the next run).
    pub lines: Vec<Line>,
}

/// Works off the `entra.on_lost` queue in `tenant` (`only`: one
/// credential). Under `report` nothing is sent.
pub fn apply_on_lost<S: Store>(
    session: &mut Session<S>,
    graph: &Graph<'_>,
    tenant: &str,
    only: Option<i64>,
    now: u64,
) -> Result<OnLostOutcome> {
    let policy = session.entra_on_lost()?;
    let mut lines = Vec::new();
    if policy == OnLost::Report {
        return Ok(OnLostOutcome { policy, lines });
    }
    for LostInEntra { token, .. } in session.entra_lost_live(tenant, only)? {
        let reference = TokenRef::Id(token.id);
        let done = match policy {
            OnLost::Delete => sync::delete(session, graph, tenant, &reference, true, now),
            _ => sync::unassign(session, graph, tenant, &reference, now),
        };
        lines.push(match done {
            Ok(mut line) => {
                line.credential = token.reference();
                line.detail = Some(format!(
                    "{} in the vault, entra.on_lost = {policy}: {}",
                    token.state,
                    line.detail.unwrap_or_default()
                ));
                line
            }
            Err(error) => Line {
                credential: token.reference(),
                serial: String::new(),
                result: "failed".into(),
                detail: Some(format!(
                    "entra.on_lost = {policy}: {error} (it stays queued: the next 'oathdesk entra \
                     sync' tries again)"
                )),
            },
        });
    }
    Ok(OnLostOutcome { policy, lines })
}

/// Records in the audit log that the policy's work for `lost` waits for
/// Graph (no connection configured where the token was marked lost).
pub fn record_queued<S: Store>(
    session: &mut Session<S>,
    lost: &[LostInEntra],
    policy: OnLost,
    now: u64,
) -> Result<()> {
    for item in lost {
        session.entra_record(
            &[],
            &[],
            AuditEvent::ok("entra.on_lost.queued")
                .credential(item.token.reference())
                .detail(json!({"tenant": item.link.tenant, "policy": policy.name(),
                               "serial": item.link.serial})),
            now,
        )?;
    }
    Ok(())
}

/// `entra sync` with the policy: compares, then works off the queue on the
/// links the comparison just refreshed. A token the policy dealt with is no
/// longer a difference; one it could not is still reported.
pub fn sync_with_policy<S: Store>(
    session: &mut Session<S>,
    graph: &Graph<'_>,
    tenant: &str,
    template: &str,
    now: u64,
) -> Result<(SyncReport, OnLostOutcome)> {
    let mut report = sync::sync(session, graph, tenant, template, now)?;
    let outcome = apply_on_lost(session, graph, tenant, None, now)?;
    for line in outcome.lines.iter().filter(|l| l.result != "failed") {
        report
            .differences
            .retain(|d| !(d.kind == "lost" && d.credential.as_deref() == Some(&line.credential)));
    }
    Ok((report, outcome))
}

/// The serials this vault wrote to Entra CSV exports, with their
/// credentials: a token Entra has under one of them was uploaded from this
/// vault's file, so a push links it without `--adopt`.
pub fn csv_exported<S: Store>(
    session: &mut Session<S>,
) -> Result<std::collections::HashMap<String, i64>> {
    Ok(session
        .entra_links(oathdesk_vault::CSV_EXPORT_TENANT)?
        .into_iter()
        .map(|link| (link.serial, link.credential_id))
        .collect())
}
