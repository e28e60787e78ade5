//! The caller-verification protocol, as data and pure functions.
//!
//! A helpdesk that reads a sign-in code to a caller is the target of every
//! social engineer (threat model, actor A1, promise 4). What makes a
//! verification mean something is decided here, once, for every front-end:
//!
//! - **Methods** an admin defines: the steps the operator must confirm
//!   ("call the mobile number on file — not a number the caller gives"),
//!   which of the user's data on file each step shows, whether evidence
//!   text is required, and whether the method suffices alone.
//! - **Data on file** ([`Facts`]): phone numbers, manager, employee id…,
//!   each with where it came from and when; shown partly masked.
//! - **Policy** ([`Policy`]): the accepted methods, the ticket pattern,
//!   four eyes (a second operator's approval), telling the user, and the
//!   Temporary Access Pass. The policy is one signed record of the vault.
//!
//! Nothing here touches a database; `crate::session::verification` reads
//! the signed rows, applies these functions and audits the outcome.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The names of the data on file that oathdesk knows how to fill (from a
/// CSV file or from Entra) and how to mask. Admins may add other names.
pub mod fact {
    pub const MOBILE_PHONE: &str = "mobile_phone";
    pub const OFFICE_PHONE: &str = "office_phone";
    pub const MAIL: &str = "mail";
    /// The manager's UPN.
    pub const MANAGER: &str = "manager";
    pub const EMPLOYEE_ID: &str = "employee_id";
    pub const DEPARTMENT: &str = "department";
    pub const LOCATION: &str = "location";
    /// Groups the user belongs to, separated by commas (four-eyes lists).
    pub const GROUPS: &str = "groups";
    pub const KNOWN: [&str; 8] = [
        MOBILE_PHONE,
        OFFICE_PHONE,
        MAIL,
        MANAGER,
        EMPLOYEE_ID,
        DEPARTMENT,
        LOCATION,
        GROUPS,
    ];
}

/// One value on file and its provenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub value: String,
    /// `entra`, `csv:users.csv`, `admin:alice`…
    pub source: String,
    /// When it was recorded (Unix seconds).
    pub at: u64,
}

/// A user's data on file, by name.
pub type Facts = BTreeMap<String, Fact>;

/// Checks a fact's name: lowercase words joined by `_` (so it is one CSV
/// column and one JSON key everywhere).
pub fn check_fact_name(name: &str) -> Result<(), String> {
    let fine = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if fine {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a name for data on file: use lowercase letters, digits and '_' \
             (e.g. mobile_phone, cost_centre)"
        ))
    }
}

/// How a value is shown inside a verification step: enough to check it
/// against what the operator dials or hears, not enough to harvest the
/// directory. Phone numbers and ids keep their last four characters,
/// mail addresses their domain; names (manager, department, location,
/// groups) are shown whole, since the operator must say them.
pub fn masked(name: &str, value: &str) -> String {
    let tail = |keep: usize| {
        let chars: Vec<char> = value.chars().filter(|c| !c.is_whitespace()).collect();
        if chars.len() <= keep {
            "•".repeat(chars.len())
        } else {
            let shown: String = chars[chars.len() - keep..].iter().collect();
            format!("{}{shown}", "•".repeat(chars.len() - keep))
        }
    };
    match name {
        fact::MANAGER | fact::DEPARTMENT | fact::LOCATION | fact::GROUPS => value.to_owned(),
        fact::MAIL => match value.split_once('@') {
            Some((_, domain)) => format!("•••@{domain}"),
            None => tail(4),
        },
        _ => tail(4),
    }
}

/// One thing the operator does and confirms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub text: String,
    /// Data on file shown with this step; at least one of them must be on
    /// file for the method to be usable ("call-back" needs a number).
    #[serde(default)]
    pub shows: Vec<String>,
}

/// A way of verifying a caller, defined by an admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Method {
    /// Short name used on the command line and in the audit log.
    pub name: String,
    pub title: String,
    pub steps: Vec<Step>,
    /// The operator must write what they saw or heard.
    #[serde(default = "yes")]
    pub evidence_required: bool,
    /// Enough on its own; otherwise another method must be used with it.
    #[serde(default = "yes")]
    pub sufficient: bool,
}

fn yes() -> bool {
    true
}

/// When a second operator must approve a release.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct FourEyes {
    /// Every release.
    pub always: bool,
    /// Codes that stay accepted longer than this many minutes.
    pub valid_longer_than_minutes: Option<u64>,
    /// These users (UPNs, any case): admins' own accounts, executives.
    pub users: Vec<String>,
    /// Users whose department or `groups` on file names one of these.
    pub groups: Vec<String>,
    /// After this many codes for the user in the last 24 hours.
    pub after_codes_per_day: Option<u64>,
}

/// Telling the user after a release or a refusal that names them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Notify {
    pub on_release: bool,
    pub on_refusal: bool,
    /// `mail` (through Graph, from `mail_from`) or `webhook`.
    pub channel: Option<String>,
    pub mail_from: Option<String>,
    pub webhook_url: Option<String>,
    /// Said in the notice: how to report a call the user did not make.
    pub report_to: Option<String>,
    pub organisation: Option<String>,
}

/// Entra's Temporary Access Pass, offered beside the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct TapPolicy {
    pub enabled: bool,
    pub lifetime_minutes: u32,
    pub usable_once: bool,
}

impl Default for TapPolicy {
    fn default() -> TapPolicy {
        TapPolicy {
            enabled: false,
            lifetime_minutes: 60,
            usable_once: true,
        }
    }
}

/// The helpdesk's verification policy: one signed record of the vault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Policy {
    pub methods: Vec<Method>,
    /// Names of the accepted methods; empty accepts every defined method.
    pub accepted: Vec<String>,
    /// A regular expression every ticket id must match, whole.
    pub ticket_pattern: String,
    /// The shortest evidence text, in characters.
    pub evidence_min_chars: usize,
    pub four_eyes: FourEyes,
    /// Minutes an approval request waits before it expires.
    pub approval_expires_minutes: u64,
    pub notify: Notify,
    pub tap: TapPolicy,
}

/// The default ticket pattern: an optional prefix of letters, an optional
/// separator, then at least three digits (`INC0012345`, `SR-2024-0042`,
/// `#4711`). "x", "n/a" and "-" do not match.
pub const DEFAULT_TICKET_PATTERN: &str = r"^[A-Za-z]{0,12}[-_#]?[0-9][0-9-]{2,}$";

impl Default for Policy {
    fn default() -> Policy {
        let step = |text: &str, shows: &[&str]| Step {
            text: text.to_owned(),
            shows: shows.iter().map(|s| (*s).to_owned()).collect(),
        };
        Policy {
            methods: vec![
                Method {
                    name: "call-back".into(),
                    title: "Call back the number on file".into(),
                    steps: vec![
                        step(
                            "End the call. Dial the number on file — never a number the caller gives",
                            &[fact::MOBILE_PHONE, fact::OFFICE_PHONE],
                        ),
                        step("The person who answers confirms they asked for a code", &[]),
                    ],
                    evidence_required: true,
                    sufficient: true,
                },
                Method {
                    name: "manager".into(),
                    title: "The caller's manager confirms".into(),
                    steps: vec![
                        step(
                            "Call the manager on file, using the directory's number for them",
                            &[fact::MANAGER],
                        ),
                        step(
                            "The manager confirms the caller is who they say and needs a code now",
                            &[],
                        ),
                    ],
                    evidence_required: true,
                    sufficient: true,
                },
                Method {
                    name: "video-id".into(),
                    title: "Video call with photo ID".into(),
                    steps: vec![
                        step("Start a video call through the company's meeting tool", &[]),
                        step(
                            "The caller shows an official photo ID; the name matches the user and the face the caller",
                            &[fact::EMPLOYEE_ID, fact::DEPARTMENT],
                        ),
                    ],
                    evidence_required: true,
                    sufficient: true,
                },
                Method {
                    name: "in-person".into(),
                    title: "In person, with the company badge".into(),
                    steps: vec![step(
                        "The user stands at the desk and shows their badge; its photo and name match",
                        &[fact::EMPLOYEE_ID, fact::LOCATION],
                    )],
                    evidence_required: false,
                    sufficient: true,
                },
            ],
            accepted: Vec::new(),
            ticket_pattern: DEFAULT_TICKET_PATTERN.into(),
            evidence_min_chars: 12,
            four_eyes: FourEyes::default(),
            approval_expires_minutes: 30,
            notify: Notify::default(),
            tap: TapPolicy::default(),
        }
    }
}

/// What the operator says they did for one method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub method: String,
    /// One flag per step of the method, in order: each must be confirmed.
    pub confirmed: Vec<bool>,
    /// What the operator saw or heard ("called +44 … 1234, Alice answered
    /// and confirmed INC0012345").
    #[serde(default)]
    pub evidence: String,
}

impl Policy {
    /// Checks the policy itself, before it is stored: a bad pattern or a
    /// method nobody can use is refused with what to fix.
    pub fn check(&self) -> Result<(), String> {
        regex::Regex::new(&self.ticket_pattern)
            .map_err(|e| format!("ticket_pattern does not compile: {e}"))?;
        if self.methods.is_empty() {
            return Err("the policy defines no verification method".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for method in &self.methods {
            if method.name.is_empty()
                || !method
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "method name '{}' must be letters, digits, '-' or '_'",
                    method.name
                ));
            }
            if !names.insert(method.name.as_str()) {
                return Err(format!("method '{}' is defined twice", method.name));
            }
            if method.steps.is_empty() {
                return Err(format!("method '{}' has no steps", method.name));
            }
            for step in &method.steps {
                for shown in &step.shows {
                    check_fact_name(shown)?;
                }
            }
        }
        for name in &self.accepted {
            if !names.contains(name.as_str()) {
                return Err(format!("accepted method '{name}' is not defined"));
            }
        }
        if !self
            .methods
            .iter()
            .any(|m| self.accepts(&m.name) && m.sufficient)
        {
            return Err("no accepted method suffices alone: mark one 'sufficient'".into());
        }
        if self.approval_expires_minutes == 0 {
            return Err("approval_expires_minutes must be at least 1".into());
        }
        if let Some(channel) = &self.notify.channel {
            match channel.as_str() {
                "mail" if self.notify.mail_from.is_none() => {
                    return Err("notify.channel is mail: set notify.mail_from".into());
                }
                "webhook" if self.notify.webhook_url.is_none() => {
                    return Err("notify.channel is webhook: set notify.webhook_url".into());
                }
                "mail" | "webhook" => {}
                other => {
                    return Err(format!(
                        "notify.channel '{other}' is neither 'mail' nor 'webhook'"
                    ));
                }
            }
        }
        Ok(())
    }

    fn accepts(&self, name: &str) -> bool {
        self.accepted.is_empty() || self.accepted.iter().any(|a| a == name)
    }

    /// The accepted method called `name`.
    pub fn method(&self, name: &str) -> Result<&Method, String> {
        let method = self.methods.iter().find(|m| m.name == name);
        match method {
            Some(method) if self.accepts(name) => Ok(method),
            Some(_) => Err(format!(
                "the policy does not accept verification by '{name}'; accepted: {}",
                self.accepted_names().join(", ")
            )),
            None => Err(format!(
                "no verification method '{name}'; the policy accepts: {}",
                self.accepted_names().join(", ")
            )),
        }
    }

    pub fn accepted_names(&self) -> Vec<&str> {
        self.methods
            .iter()
            .filter(|m| self.accepts(&m.name))
            .map(|m| m.name.as_str())
            .collect()
    }

    /// Checks a ticket id against the pattern.
    pub fn check_ticket(&self, ticket: &str) -> Result<(), String> {
        let ticket = ticket.trim();
        if ticket.is_empty() {
            return Err("give the ticket id of this call (--ticket)".into());
        }
        let pattern = compiled(&self.ticket_pattern)
            .map_err(|e| format!("the policy's ticket_pattern does not compile: {e}"))?;
        let whole = pattern
            .find(ticket)
            .is_some_and(|m| m.start() == 0 && m.end() == ticket.len());
        if whole {
            Ok(())
        } else {
            Err(format!(
                "'{ticket}' is not a ticket id: it must match {} (the policy's ticket_pattern)",
                self.ticket_pattern
            ))
        }
    }

    /// Checks what the operator did against the methods and the user's
    /// data on file. `Ok` names the methods used, in order.
    pub fn check_verification(
        &self,
        user: &str,
        verifications: &[Verification],
        facts: &Facts,
    ) -> Result<Vec<String>, String> {
        if verifications.is_empty() {
            return Err(format!(
                "say how the caller was verified: choose a method ({})",
                self.accepted_names().join(", ")
            ));
        }
        let mut used: Vec<String> = Vec::new();
        let mut sufficient = false;
        let mut evidences: Vec<String> = Vec::new();
        for given in verifications {
            let method = self.method(&given.method)?;
            if used.contains(&method.name) {
                return Err(format!("method '{}' is given twice", method.name));
            }
            for (index, step) in method.steps.iter().enumerate() {
                if !step.shows.is_empty() && !step.shows.iter().any(|name| facts.contains_key(name))
                {
                    return Err(format!(
                        "{user} has no {} on file, which '{}' needs: import their data \
                         ('oathdesk user import' or 'oathdesk entra users sync') or use another method",
                        step.shows.join(" or ").replace('_', " "),
                        method.name
                    ));
                }
                if !given.confirmed.get(index).copied().unwrap_or(false) {
                    return Err(format!(
                        "step {} of '{}' is not confirmed: {}",
                        index + 1,
                        method.name,
                        step.text
                    ));
                }
            }
            if given.confirmed.len() > method.steps.len() {
                return Err(format!(
                    "'{}' has {} step(s), and {} were confirmed",
                    method.name,
                    method.steps.len(),
                    given.confirmed.len()
                ));
            }
            if method.evidence_required {
                check_evidence(&given.evidence, self.evidence_min_chars)
                    .map_err(|e| format!("{}: {e}", method.name))?;
                let normal = normalised(&given.evidence);
                if evidences.contains(&normal) {
                    return Err("each method needs its own evidence".into());
                }
                evidences.push(normal);
            }
            sufficient |= method.sufficient;
            used.push(method.name.clone());
        }
        if !sufficient && used.len() < 2 {
            return Err(format!(
                "'{}' does not suffice alone: add another method",
                used[0]
            ));
        }
        Ok(used)
    }

    /// Why this release needs a second operator's approval, if it does.
    pub fn approval_needed(
        &self,
        upn: &str,
        facts: &Facts,
        valid_for_seconds: u64,
        codes_last_day: u64,
    ) -> Option<String> {
        let rule = &self.four_eyes;
        if rule.always {
            return Some("the policy asks a second operator to approve every release".into());
        }
        if let Some(minutes) = rule.valid_longer_than_minutes
            && valid_for_seconds > minutes.saturating_mul(60)
        {
            return Some(format!(
                "a code that stays accepted longer than {minutes} minute(s) needs a second operator's approval"
            ));
        }
        if rule.users.iter().any(|u| u.eq_ignore_ascii_case(upn)) {
            return Some(format!(
                "{upn} is on the policy's list: their codes need a second operator's approval"
            ));
        }
        let mut groups: Vec<&str> = Vec::new();
        if let Some(department) = facts.get(fact::DEPARTMENT) {
            groups.push(department.value.trim());
        }
        if let Some(listed) = facts.get(fact::GROUPS) {
            groups.extend(listed.value.split(',').map(str::trim));
        }
        if let Some(group) = rule
            .groups
            .iter()
            .find(|g| groups.iter().any(|h| h.eq_ignore_ascii_case(g.trim())))
        {
            return Some(format!(
                "{upn} is in '{group}': their codes need a second operator's approval"
            ));
        }
        if let Some(limit) = rule.after_codes_per_day
            && codes_last_day >= limit
        {
            return Some(format!(
                "{upn} already had {codes_last_day} code(s) in the last 24 hours: \
                 more need a second operator's approval"
            ));
        }
        None
    }
}

/// The ticket pattern, compiled once per process (not once per request)
/// and shared, not cloned: a clone of a `Regex` starts with empty search
/// caches, which cost more than the match itself.
fn compiled(pattern: &str) -> Result<Arc<regex::Regex>, regex::Error> {
    static LAST: Mutex<Option<(String, Arc<regex::Regex>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((text, regex)) = last.as_ref()
        && text == pattern
    {
        return Ok(regex.clone());
    }
    let regex = Arc::new(regex::Regex::new(pattern)?);
    *last = Some((pattern.to_owned(), regex.clone()));
    Ok(regex)
}

fn normalised(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Evidence is a sentence about what happened, not a token: long enough,
/// more than one word, and not one character repeated. Placeholder words
/// ("ok", "verified", "done", "n/a") alone do not count.
pub fn check_evidence(evidence: &str, min_chars: usize) -> Result<(), String> {
    let text = normalised(evidence);
    let words: Vec<&str> = text
        .split(' ')
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    let distinct: std::collections::BTreeSet<char> =
        text.chars().filter(|c| c.is_alphanumeric()).collect();
    const EMPTY_WORDS: [&str; 10] = [
        "ok",
        "okay",
        "verified",
        "done",
        "yes",
        "n/a",
        "na",
        "checked",
        "confirmed",
        "fine",
    ];
    let only_empty_words = words
        .iter()
        .all(|w| EMPTY_WORDS.contains(&w.trim_matches(|c: char| !c.is_alphanumeric() && c != '/')));
    if text.chars().count() < min_chars || words.len() < 2 || distinct.len() < 4 || only_empty_words
    {
        return Err(format!(
            "write what you saw or heard (at least {min_chars} characters and two words, \
             e.g. 'called the mobile on file, Alice answered and confirmed the ticket')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    (*name).to_owned(),
                    Fact {
                        value: (*value).to_owned(),
                        source: "test".into(),
                        at: 1,
                    },
                )
            })
            .collect()
    }

    fn call_back(evidence: &str) -> Verification {
        Verification {
            method: "call-back".into(),
            confirmed: vec![true, true],
            evidence: evidence.into(),
        }
    }

    const GOOD: &str = "called the mobile on file, Alice answered and confirmed";

    #[test]
    fn the_default_policy_is_valid() {
        Policy::default().check().unwrap();
        assert_eq!(
            Policy::default().accepted_names(),
            ["call-back", "manager", "video-id", "in-person"]
        );
    }

    #[test]
    fn x_and_x_is_not_a_verification() {
        let policy = Policy::default();
        for ticket in ["x", "n/a", "-", "INC", "12", "INC 0012345"] {
            assert!(policy.check_ticket(ticket).is_err(), "{ticket}");
        }
        for ticket in ["INC0012345", "SR-2024-0042", "#4711", "123"] {
            policy.check_ticket(ticket).unwrap();
        }
        let on_file = facts(&[("mobile_phone", "+44 7700 900123")]);
        for evidence in ["x", "ok", "verified ok", "aaaaaaaaaaaaaaaa", "called"] {
            let err = policy
                .check_verification("alice", &[call_back(evidence)], &on_file)
                .unwrap_err();
            assert!(err.contains("write what you saw"), "{evidence}: {err}");
        }
        assert_eq!(
            policy
                .check_verification("alice", &[call_back(GOOD)], &on_file)
                .unwrap(),
            ["call-back"]
        );
        let err = policy
            .check_verification(
                "alice",
                &[Verification {
                    method: "x".into(),
                    ..Verification::default()
                }],
                &on_file,
            )
            .unwrap_err();
        assert!(err.starts_with("no verification method 'x'"), "{err}");
        assert!(
            policy
                .check_verification("alice", &[], &on_file)
                .unwrap_err()
                .contains("choose a method")
        );
    }

    #[test]
    fn every_step_must_be_confirmed_and_its_data_on_file() {
        let policy = Policy::default();
        let on_file = facts(&[("office_phone", "+44 20 7946 0000")]);
        let mut half = call_back(GOOD);
        half.confirmed = vec![true, false];
        let err = policy
            .check_verification("alice", &[half], &on_file)
            .unwrap_err();
        assert!(
            err.starts_with("step 2 of 'call-back' is not confirmed"),
            "{err}"
        );
        let err = policy
            .check_verification("alice", &[call_back(GOOD)], &Facts::new())
            .unwrap_err();
        assert!(
            err.contains("has no mobile phone or office phone on file"),
            "{err}"
        );
        // In person shows data but needs no evidence text.
        let in_person = Verification {
            method: "in-person".into(),
            confirmed: vec![true],
            evidence: String::new(),
        };
        let badge = facts(&[("employee_id", "E123")]);
        assert_eq!(
            policy
                .check_verification("alice", &[in_person], &badge)
                .unwrap(),
            ["in-person"]
        );
    }

    #[test]
    fn a_method_that_does_not_suffice_needs_another() {
        let mut policy = Policy::default();
        policy.methods.push(Method {
            name: "question".into(),
            title: "A question only the user can answer".into(),
            steps: vec![Step {
                text: "Ask for the cost centre".into(),
                shows: vec!["cost_centre".into()],
            }],
            evidence_required: true,
            sufficient: false,
        });
        policy.check().unwrap();
        let on_file = facts(&[("cost_centre", "4711"), ("mobile_phone", "0123456789")]);
        let question = Verification {
            method: "question".into(),
            confirmed: vec![true],
            evidence: "answered 4711 without hesitation".into(),
        };
        let err = policy
            .check_verification("alice", std::slice::from_ref(&question), &on_file)
            .unwrap_err();
        assert!(err.contains("does not suffice alone"), "{err}");
        assert_eq!(
            policy
                .check_verification("alice", &[question, call_back(GOOD)], &on_file)
                .unwrap(),
            ["question", "call-back"]
        );
        // Only accepted methods count.
        policy.accepted = vec!["question".into()];
        assert!(
            policy
                .check()
                .unwrap_err()
                .contains("no accepted method suffices")
        );
    }

    #[test]
    fn four_eyes_rules() {
        let mut policy = Policy::default();
        let on_file = facts(&[
            ("department", "Executive Board"),
            ("groups", "vip, finance"),
        ]);
        assert_eq!(policy.approval_needed("ceo@x", &on_file, 3600, 9), None);
        policy.four_eyes.valid_longer_than_minutes = Some(15);
        assert!(policy.approval_needed("a@x", &on_file, 900, 0).is_none());
        assert!(
            policy
                .approval_needed("a@x", &on_file, 901, 0)
                .unwrap()
                .contains("longer than 15 minute")
        );
        policy.four_eyes.users = vec!["CEO@x".into()];
        assert!(policy.approval_needed("ceo@X", &on_file, 0, 0).is_some());
        policy.four_eyes.groups = vec!["VIP".into()];
        assert!(
            policy
                .approval_needed("b@x", &on_file, 0, 0)
                .unwrap()
                .contains("is in 'VIP'")
        );
        assert!(policy.approval_needed("b@x", &Facts::new(), 0, 0).is_none());
        policy.four_eyes.after_codes_per_day = Some(3);
        assert!(policy.approval_needed("b@x", &Facts::new(), 0, 2).is_none());
        assert!(policy.approval_needed("b@x", &Facts::new(), 0, 3).is_some());
        policy.four_eyes.always = true;
        assert!(policy.approval_needed("b@x", &Facts::new(), 0, 0).is_some());
    }

    #[test]
    fn masking_keeps_what_the_operator_checks() {
        assert_eq!(masked("mobile_phone", "+44 7700 900123"), "•••••••••0123");
        assert_eq!(masked("employee_id", "E12"), "•••");
        assert_eq!(masked("mail", "alice@contoso.com"), "•••@contoso.com");
        assert_eq!(masked("manager", "bob@contoso.com"), "bob@contoso.com");
        assert_eq!(masked("cost_centre", "CC-4711-99"), "••••••1-99");
    }

    #[test]
    fn bad_policies_are_refused_with_what_to_fix() {
        let policy = Policy {
            ticket_pattern: "^(INC".into(),
            ..Policy::default()
        };
        assert!(policy.check().unwrap_err().starts_with("ticket_pattern"));
        let policy = Policy {
            accepted: vec!["carrier-pigeon".into()],
            ..Policy::default()
        };
        assert!(policy.check().unwrap_err().contains("not defined"));
        let mut policy = Policy::default();
        policy.notify.channel = Some("webhook".into());
        assert!(policy.check().unwrap_err().contains("webhook_url"));
        assert!(check_fact_name("Mobile Phone").is_err());
        check_fact_name("cost_centre").unwrap();
    }
}
