//! `oathdesk entra users sync`: the data a helpdesk verifies callers
//! against, taken from Entra ID (the directory every other system trusts)
//! rather than typed in. Each page of users is one transaction of the
//! vault, so 10,000 users never sit in memory at once and a sync that
//! stops half-way keeps what it wrote; running it again finishes it.

use std::collections::BTreeMap;

use oathdesk_vault::verification::fact;
use oathdesk_vault::{FactsReport, FactsUpdate, Session};
use serde::Serialize;

use crate::graph::{DirectoryProfile, Graph};

/// Where Entra's values are recorded as coming from.
pub const SOURCE: &str = "entra";

/// A directory user's data on file, as oathdesk names it. A value Entra
/// does not hold (a user with no manager, no mobile) is removed from file,
/// so the vault never keeps a number the directory dropped.
pub fn facts_of(profile: &DirectoryProfile) -> Option<FactsUpdate> {
    let upn = profile.user_principal_name.clone()?;
    let some = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let values: BTreeMap<String, Option<String>> = [
        (fact::MOBILE_PHONE, some(&profile.mobile_phone)),
        (
            fact::OFFICE_PHONE,
            profile
                .business_phones
                .iter()
                .find(|p| !p.trim().is_empty())
                .cloned(),
        ),
        (fact::MAIL, some(&profile.mail)),
        (fact::EMPLOYEE_ID, some(&profile.employee_id)),
        (fact::DEPARTMENT, some(&profile.department)),
        (fact::LOCATION, some(&profile.office_location)),
        (
            fact::MANAGER,
            profile.manager.as_ref().and_then(|m| m.upn.clone()),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    Some(FactsUpdate {
        upn,
        display_name: profile.display_name.clone(),
        values,
    })
}

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsersSync {
    pub pages: u64,
    pub directory_users: u64,
    pub facts: FactsReport,
    /// Users without a UPN in Entra (skipped; named by their object id).
    pub without_upn: Vec<String>,
    /// Users with no manager in Entra.
    pub without_manager: u64,
}

/// Reads every directory user, page by page, into the vault's data on file.
pub fn sync_users(
    session: &mut Session,
    graph: &Graph<'_>,
    create: bool,
    page_size: Option<u32>,
    now: &dyn Fn() -> u64,
) -> Result<UsersSync, SyncError> {
    let mut report = UsersSync::default();
    for page in graph.user_profile_pages(page_size)? {
        let page = page?;
        report.pages += 1;
        report.directory_users += page.len() as u64;
        let mut updates = Vec::with_capacity(page.len());
        for profile in &page {
            if profile.manager.is_none() {
                report.without_manager += 1;
            }
            match facts_of(profile) {
                Some(update) => updates.push(update),
                None => report.without_upn.push(profile.id.clone()),
            }
        }
        let done = session.update_user_facts(updates, SOURCE, create, now())?;
        report.facts.updated += done.updated;
        report.facts.unchanged += done.unchanged;
        report.facts.created += done.created;
        report.facts.not_in_vault.extend(done.not_in_vault);
    }
    Ok(report)
}

/// Why a sync stopped: Graph's error or the vault's, each as it is.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Graph(#[from] crate::Error),
    #[error(transparent)]
    Vault(#[from] oathdesk_vault::Error),
}
