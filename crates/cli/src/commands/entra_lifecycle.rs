//! Lost and retired tokens reaching Entra (`entra.on_lost`): what `token
//! lost`/`retire`, `entra sync` and `entra push` print and do. The policy
//! and its queue live in the vault; the Graph calls in
//! `oathdesk_entra::lifecycle`; this module connects and prints.

use anyhow::Result;
use clap::Parser;
use oathdesk_entra::graph::Graph;
use oathdesk_entra::lifecycle::{self, OnLostOutcome};
use oathdesk_vault::{CSV_EXPORT_TENANT, OnLost, Session, TokenInfo, link_is_live};

use crate::commands::entra::{EntraOptions, print_lines, with_graph};
use crate::input::printable;

/// The Entra connection as the environment configures it (a `token`
/// command has no Entra options of its own).
#[derive(Parser, Debug)]
struct FromEnvironment {
    #[command(flatten)]
    options: EntraOptions,
}

fn environment_options() -> Option<EntraOptions> {
    FromEnvironment::try_parse_from(["oathdesk"])
        .ok()
        .map(|parsed| parsed.options)
}

/// After `token lost`/`retire`: if Entra still has the token assigned or
/// activated, apply `entra.on_lost` now when Graph is configured, else say
/// it is queued (and audit that); under `report`, warn.
pub fn after_lost(session: &mut Session, info: &TokenInfo, now: u64) -> Result<()> {
    let mut tenants: Vec<String> = session
        .entra_links_of(info.id)?
        .into_iter()
        .filter(|link| link.tenant != CSV_EXPORT_TENANT && link_is_live(link))
        .map(|link| link.tenant)
        .collect();
    tenants.dedup();
    if tenants.is_empty() {
        return Ok(());
    }
    let policy = session.entra_on_lost()?;
    let reference = info.reference();
    if policy == OnLost::Report {
        for tenant in &tenants {
            eprintln!(
                "oathdesk: warning: {reference} is still assigned in Entra ({}): it can still sign \
                 in there. entra.on_lost is 'report', so oathdesk changed nothing; run 'oathdesk \
                 entra unassign {reference}' (or 'entra delete --unassign'), or 'oathdesk vault set \
                 entra.on_lost unassign' to have it done for every lost token",
                printable(tenant)
            );
        }
        return Ok(());
    }
    let configured = environment_options().filter(EntraOptions::app_configured);
    for tenant in &tenants {
        let mut why_queued = "Graph is not configured here (OATHDESK_ENTRA_TENANT, \
                              OATHDESK_ENTRA_CLIENT_ID and a client secret or certificate)"
            .to_owned();
        if let Some(options) = &configured {
            if options.tenant.as_deref() == Some(tenant.as_str()) {
                let done = with_graph(options, false, |auth, http, tenant| {
                    let graph = Graph::new(http, auth);
                    Ok(lifecycle::apply_on_lost(
                        session,
                        &graph,
                        tenant,
                        Some(info.id),
                        now,
                    )?)
                });
                match done {
                    Ok(outcome) if outcome.lines.iter().all(|l| l.result != "failed") => {
                        print_lines(&outcome.lines, false)?;
                        continue;
                    }
                    Ok(outcome) => {
                        print_lines(&outcome.lines, false)?;
                        why_queued = "Entra did not take the change".into();
                    }
                    Err(error) => why_queued = format!("Graph could not be reached: {error:#}"),
                }
            } else {
                why_queued = "the configured tenant is another one".into();
            }
        }
        let queued = session.entra_lost_live(tenant, Some(info.id))?;
        lifecycle::record_queued(session, &queued, policy, now)?;
        eprintln!(
            "oathdesk: {reference} is still assigned in Entra ({}); entra.on_lost = {policy} is \
             queued because {}: the next 'oathdesk entra sync' or 'oathdesk entra push' for that \
             tenant does it",
            printable(tenant),
            printable(&why_queued)
        );
    }
    Ok(())
}

/// Prints what the policy did during `entra sync` or `entra push`.
pub fn print_outcome(outcome: &OnLostOutcome, as_json: bool) -> Result<()> {
    if outcome.lines.is_empty() || as_json {
        return Ok(());
    }
    print_lines(&outcome.lines, false)?;
    let failed = outcome
        .lines
        .iter()
        .filter(|l| l.result == "failed")
        .count();
    eprintln!(
        "oathdesk: entra.on_lost = {}: {} lost or retired token(s) dealt with in Entra{}",
        outcome.policy,
        outcome.lines.len() - failed,
        if failed > 0 {
            format!(", {failed} failed (still queued)")
        } else {
            String::new()
        }
    );
    Ok(())
}
