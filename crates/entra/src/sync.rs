//! Push, assign, activate, compare, unassign and delete — the vault on one
//! side, Entra on the other.
//!
//! Every step is recorded in the vault ([`EntraLink`]) together with its
//! audit entry, so a run that fails half-way (network, throttling, a killed
//! process) resumes where it stopped:
//!
//! 1. Before secrets leave the vault, each token to create gets a `pending`
//!    link naming its Entra serial, and the audit log says which secrets are
//!    sent where.
//! 2. Tokens are created in batches (`PATCH` with `#$delta`). A created token
//!    is linked with its device id.
//! 3. A re-run reads Entra's inventory first. A `pending` token Entra already
//!    has (the answer was lost) is linked, not created again; a serial Entra
//!    has that this vault did not create is refused unless `adopt` says it is
//!    the same token (activation then checks it, though not for certain:
//!    Entra's activation window spans 5,761 codes, so a wrong secret's code
//!    passes with a chance of about 1 in 170).
//! 4. Activation codes are computed at send time ([`crate::activation`]); the
//!    counter of each code sent is recorded before it is sent, so no code is
//!    ever sent twice.
//!
//! What Entra cannot take is refused before anything is sent, with the
//! reason: HOTP, periods other than 30/60 s, SHA-512, other than 6 digits,
//! secrets Entra's rules exclude, a serial two credentials would share, more
//! than five OATH methods for one user, a burn never confirmed, and a secret
//! purged before the token was ever in Entra.
//!
//! What is not meant to be pushed is left out, not refused
//! ([`PushReport::left_out`], with the reason): lost and retired tokens, and
//! tokens in Entra already whose secret was purged after delivery when an
//! activation code would be needed (they are still assigned if they are
//! not yet).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use oathdesk_formats::Record;
use oathdesk_formats::entra::{GraphDevice, entra_refusal, profile_serial};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep, Totp};
use oathdesk_vault::audit::AuditEvent;
use oathdesk_vault::model::{Custody, EntraLink, State, TokenRef};
use oathdesk_vault::store::{CredentialFilter, Store};
use oathdesk_vault::{Session, TokenInfo};
use serde::Serialize;
use serde_json::json;

use crate::activation::code_to_send;
use crate::error::{Error, Result};
use crate::graph::{Graph, unix_now};

/// The most OATH methods (hardware tokens and authenticator apps together)
/// Entra lets one user have.
pub const MAX_OATH_METHODS_PER_USER: usize = 5;

/// Up to this many tokens, a push looks each serial up instead of reading
/// the whole inventory.
pub const PER_SERIAL_LOOKUPS: usize = 20;

/// Tokens whose steps are recorded in one vault transaction (and one audit
/// entry): assignments and activations are sent one by one, but committing
/// each with its own disk sync would cost more than the request.
pub const RECORD_GROUP: usize = 50;

/// Time for the engine: tests pass their own.
pub struct Clock<'a> {
    /// Unix time with sub-second precision.
    pub now: &'a dyn Fn() -> Duration,
    pub sleep: &'a dyn Fn(Duration),
}

fn system_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

fn system_sleep(duration: Duration) {
    std::thread::sleep(duration);
}

impl Clock<'static> {
    /// The real clock.
    pub fn system() -> Clock<'static> {
        Clock {
            now: &system_now,
            sleep: &system_sleep,
        }
    }
}

impl Clock<'_> {
    fn seconds(&self) -> u64 {
        (self.now)().as_secs()
    }
}

/// What `push` should do.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Assign each token to its vault user in Entra.
    pub assign: bool,
    /// Activate each token with a code computed from the vault (assigns too).
    pub activate: bool,
    /// Tokens per bulk-create request.
    pub batch: usize,
    /// The serial of a multi-profile device's profile (`{serial}-{slot}`).
    pub profile_serial: String,
    /// Link tokens Entra already has under the same serial.
    pub adopt: bool,
    /// Plan and report; send nothing, record nothing.
    pub dry_run: bool,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            assign: false,
            activate: false,
            batch: 50,
            profile_serial: oathdesk_formats::entra::DEFAULT_PROFILE_SERIAL.into(),
            adopt: false,
            dry_run: false,
        }
    }
}

/// What happened to one credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    /// `SERIAL:SLOT`, `SERIAL` or `#ID`.
    pub credential: String,
    /// The serial Entra knows.
    pub serial: String,
    /// `created`, `adopted`, `present`, `assigned`, `activated`, `refused`
    /// or `failed`; `left out` (in [`PushReport::left_out`]); in a dry run,
    /// `to create`, `to assign` or `to activate` (the detail lists every
    /// step).
    pub result: String,
    /// Why, for refusals and failures; what else happened otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The outcome of a push.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PushReport {
    pub lines: Vec<Line>,
    /// Credentials the filters selected that are not meant to go to Entra
    /// (retired, lost, or linked already with their secret purged after
    /// delivery), each with the reason (`result` is `left out`). They are
    /// not refusals.
    pub left_out: Vec<Line>,
    /// Why the push stopped early, if it did (a re-run resumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    pub retries: u64,
}

impl PushReport {
    /// How many lines have this result.
    pub fn count(&self, result: &str) -> usize {
        self.lines.iter().filter(|l| l.result == result).count()
    }

    /// True if any credential failed (a re-run resumes).
    pub fn failed(&self) -> bool {
        self.count("failed") > 0
    }
}

/// The credential's parameters as a seed-file record, so Entra's limits are
/// checked by the one rule the file writers use too.
fn record_of(token: &TokenInfo, secret: Secret) -> std::result::Result<Record, String> {
    let algorithm: Algorithm = token
        .algorithm
        .parse()
        .map_err(|_| format!("unknown algorithm '{}'", token.algorithm))?;
    let digits = Digits::new(u64::from(token.digits)).map_err(|e| e.to_string())?;
    let kind = match token.r#type.as_str() {
        "hotp" => Kind::Hotp {
            counter: token.counter.unwrap_or(0),
        },
        _ => Kind::Totp {
            step: TimeStep::new(token.period.unwrap_or(30), token.t0.unwrap_or(0))
                .map_err(|e| e.to_string())?,
        },
    };
    let mut credential = Credential::totp(secret);
    credential.algorithm = algorithm;
    credential.digits = digits;
    credential.kind = kind;
    let mut record = Record::new(credential);
    record.serial = token.serial.clone();
    record.slot = token.slot;
    record.manufacturer = token.manufacturer.clone();
    record.model = token.model.clone();
    Ok(record)
}

/// Why Entra cannot take this credential, judged by its parameters alone.
pub fn parameter_refusal(token: &TokenInfo) -> Option<String> {
    match record_of(token, Secret::from_bytes(Vec::new())) {
        Ok(record) => entra_refusal(&record, true),
        Err(reason) => Some(reason),
    }
}

/// Why a credential in `state` is not meant to go to Entra at all (it is
/// left out, not refused).
fn state_left_out(state: State, reference: &str) -> Option<String> {
    matches!(state, State::Lost | State::Retired).then(|| {
        format!(
            "the token is {state} in the vault: it is not pushed (if Entra still has it, remove it \
             there with 'oathdesk entra delete {reference}')"
        )
    })
}

/// The reason a token whose secret was purged after delivery, linked in
/// Entra already, is not activated by this push.
pub const PURGED_NOT_ACTIVATED: &str = "not activated by oathdesk: its secret was purged after \
     delivery, so the vault cannot compute an activation code (the user activates it in Security \
     info)";

/// Why a credential in `state` does not go to Entra, and what to do.
fn state_refusal(state: State, reference: &str) -> String {
    match state {
        State::Burning => format!(
            "its burn was never confirmed (the vault marks it burning), so the token may not hold this \
             secret: finish the burn first (run the same 'oathdesk device burn' or 'provision' for \
             {reference} again)"
        ),
        _ => format!(
            "the token is {state} in the vault: it does not go to Entra (remove it there with \
             'oathdesk entra delete {reference}')"
        ),
    }
}

fn new_link(tenant: &str, token: &TokenInfo, serial: &str, now: u64) -> EntraLink {
    EntraLink {
        tenant: tenant.to_owned(),
        credential_id: token.id,
        serial: serial.to_owned(),
        device_id: None,
        user_id: None,
        user_upn: None,
        method_id: None,
        status: "pending".into(),
        last_counter: None,
        last_sync: None,
        last_error: None,
        updated_at: now,
    }
}

/// True for Graph's answer to a serial number that exists already.
fn is_duplicate_serial(error: &Error) -> bool {
    error
        .graph()
        .is_some_and(|g| g.status == 400 && g.message.contains("already exists"))
}

/// One token on its way.
struct Work {
    token: TokenInfo,
    link: EntraLink,
    /// The link was in the vault before this run.
    recorded: bool,
    line: Line,
}

/// Puts the credentials `filter` selects into Entra; with `assign` or
/// `activate`, assigns them to their vault users and activates them.
pub fn push<S: Store>(
    session: &mut Session<S>,
    graph: &Graph<'_>,
    tenant: &str,
    filter: &CredentialFilter,
    options: &PushOptions,
    clock: &Clock<'_>,
) -> Result<PushReport> {
    let tokens = session.tokens(filter)?;
    if tokens.is_empty() {
        return Err(Error::Refused(
            "no credential in the vault matches the filters (list them with 'oathdesk token list')"
                .into(),
        ));
    }
    let now = clock.seconds();
    let links: HashMap<i64, EntraLink> = session
        .entra_links(tenant)?
        .into_iter()
        .map(|l| (l.credential_id, l))
        .collect();
    let serial_owner: HashMap<String, i64> = links
        .values()
        .map(|l| (l.serial.clone(), l.credential_id))
        .collect();
    let mut report = PushReport::default();
    let mut work: Vec<Work> = Vec::new();
    let mut planned_serials: HashMap<String, String> = HashMap::new();
    for token in tokens {
        let reference = token.reference();
        let linked = links.get(&token.id).cloned();
        let serial = match (&linked, &token.serial) {
            (Some(link), _) => link.serial.clone(),
            (None, Some(serial)) => profile_serial(serial, token.slot, &options.profile_serial),
            (None, None) => String::new(),
        };
        let refuse = |reason: String| Line {
            credential: reference.clone(),
            serial: serial.clone(),
            result: "refused".into(),
            detail: Some(reason),
        };
        // Not meant to be pushed: left out, with the true reason, before
        // any parameter is judged.
        if let Some(reason) = state_left_out(token.state, &reference) {
            report.left_out.push(Line {
                result: "left out".into(),
                ..refuse(reason)
            });
            continue;
        }
        // A token in Entra already needs its secret only to be activated;
        // one whose secret was purged after delivery is left as Entra has
        // it (see the second phase). Creating one needs the secret.
        let in_entra = linked.as_ref().is_some_and(|l| l.device_id.is_some());
        let needs_secret = !in_entra;
        let reason = parameter_refusal(&token)
            .or_else(|| {
                (!token.state.vouches_for_codes()).then(|| state_refusal(token.state, &reference))
            })
            .or_else(|| {
                (needs_secret && token.custody == Custody::Purged).then(|| {
                    "the vault no longer holds its secret (purged after delivery): Entra needs it \
                     to create and activate the token"
                        .to_owned()
                })
            })
            .or_else(|| {
                planned_serials.get(&serial).map(|other| {
                    format!(
                        "{other} has the same Entra serial {serial}; serials must be unique \
                         (change --profile-serial)"
                    )
                })
            })
            .or_else(|| {
                serial_owner
                    .get(&serial)
                    .filter(|owner| **owner != token.id)
                    .map(|owner| {
                        format!(
                            "the Entra serial {serial} is already linked to credential #{owner}"
                        )
                    })
            });
        if let Some(reason) = reason {
            report.lines.push(refuse(reason));
            continue;
        }
        planned_serials.insert(serial.clone(), reference.clone());
        let recorded = linked.is_some();
        let link = linked.unwrap_or_else(|| new_link(tenant, &token, &serial, now));
        work.push(Work {
            recorded,
            line: Line {
                credential: reference,
                serial,
                result: "present".into(),
                detail: None,
            },
            token,
            link,
        });
    }

    // Entra's inventory: what exists, under which serial, for whom. A few
    // tokens are looked up by serial; more than that, the whole inventory is
    // read once (a page holds many tokens).
    let whole = work.len() > PER_SERIAL_LOOKUPS;
    let inventory = if whole {
        graph.devices()?
    } else {
        let mut found = Vec::new();
        for item in &work {
            found.extend(graph.devices_by_serial(&item.link.serial)?);
        }
        found
    };
    let by_id: HashMap<String, GraphDevice> = inventory
        .iter()
        .filter_map(|d| d.id.clone().map(|id| (id, d.clone())))
        .collect();
    let mut by_serial: HashMap<String, Vec<GraphDevice>> = HashMap::new();
    for device in &inventory {
        if let Some(serial) = &device.serial_number {
            by_serial
                .entry(serial.clone())
                .or_default()
                .push(device.clone());
        }
    }

    let mut to_create: Vec<usize> = Vec::new();
    let mut adopted: Vec<EntraLink> = Vec::new();
    let exported = crate::lifecycle::csv_exported(session)?;
    for (index, item) in work.iter_mut().enumerate() {
        if let Some(id) = &item.link.device_id
            && let Some(device) = by_id.get(id)
        {
            item.link.status = device.status.clone().unwrap_or_default();
            continue;
        }
        // Not (or no longer) in Entra under its id: look for the serial.
        match by_serial.get(&item.link.serial).map(Vec::as_slice) {
            Some([device]) => {
                // A pending link means this vault sent the create and never
                // saw the answer: the token is its own.
                // So is one uploaded from this vault's own Entra CSV export.
                let uploaded = exported.get(&item.link.serial) == Some(&item.token.id);
                if (item.recorded && item.link.status == "pending") || options.adopt || uploaded {
                    if uploaded {
                        item.line.detail =
                            Some("uploaded from this vault's Entra CSV export".into());
                    }
                    item.link.device_id = device.id.clone();
                    item.link.status = device.status.clone().unwrap_or_default();
                    item.link.last_error = None;
                    item.line.result = "adopted".into();
                    adopted.push(item.link.clone());
                } else {
                    item.line.result = "refused".into();
                    item.line.detail = Some(format!(
                        "Entra already has a token with serial {} that this vault did not create \
                         (device {}, {}); pass --adopt if it is this token, or delete it in Entra",
                        item.link.serial,
                        device.id.as_deref().unwrap_or("?"),
                        device.status.as_deref().unwrap_or("?")
                    ));
                }
            }
            Some(several) => {
                item.line.result = "refused".into();
                item.line.detail = Some(format!(
                    "Entra has {} tokens with serial {}: remove the extra ones in Entra first",
                    several.len(),
                    item.link.serial
                ));
            }
            None if item.token.custody == Custody::Purged => {
                item.line.result = "refused".into();
                item.line.detail = Some(
                    "Entra no longer has it, and the vault no longer holds its secret (purged \
                     after delivery): it cannot be created again"
                        .into(),
                );
            }
            None => {
                item.link.device_id = None;
                item.link.status = "pending".into();
                to_create.push(index);
            }
        }
    }
    if options.dry_run {
        // What a run would do, token by token: create, assign, activate.
        for item in &mut work {
            if item.line.result == "present" && item.link.device_id.is_none() {
                item.line.result = "to create".into();
                item.line.detail = Some("create".into());
            }
        }
        if options.assign || options.activate {
            let counts = whole.then_some(&inventory);
            let targets = plan_second_phase(graph, &mut work, &by_id, counts, options, true)?;
            for target in targets {
                describe_plan(&mut work[target.index], &target);
            }
        }
        settle(&mut report, work);
        return Ok(finish(report, graph));
    }
    if !adopted.is_empty() {
        let references: Vec<&str> = work
            .iter()
            .filter(|w| w.line.result == "adopted")
            .map(|w| w.line.credential.as_str())
            .collect();
        session.entra_record(
            &adopted,
            &[],
            AuditEvent::ok("entra.adopt")
                .detail(json!({"tenant": tenant, "credentials": references})),
            now,
        )?;
    }

    // Create, batch by batch. Secrets leave the vault only here, after the
    // audit entry and the pending links are committed.
    let mut stopped: Option<String> = None;
    for chunk in to_create.chunks(options.batch.max(1)) {
        let mut devices = Vec::with_capacity(chunk.len());
        let mut sendable = Vec::with_capacity(chunk.len());
        for &index in chunk {
            let item = &mut work[index];
            let credential = match session.reveal(&TokenRef::Id(item.token.id)) {
                Ok((_, credential)) => credential,
                Err(error) => {
                    item.line.result = "refused".into();
                    item.line.detail = Some(error.to_string());
                    continue;
                }
            };
            let record = match record_of(&item.token, credential.secret.clone()) {
                Ok(record) => record,
                Err(reason) => {
                    item.line.result = "refused".into();
                    item.line.detail = Some(reason);
                    continue;
                }
            };
            match GraphDevice::from_record(&record, &options.profile_serial) {
                Ok(mut device) => {
                    device.serial_number = Some(item.link.serial.clone());
                    devices.push(device);
                    sendable.push(index);
                }
                Err(reason) => {
                    item.line.result = "refused".into();
                    item.line.detail = Some(reason);
                }
            }
        }
        if sendable.is_empty() {
            continue;
        }
        let pending: Vec<EntraLink> = sendable.iter().map(|&i| work[i].link.clone()).collect();
        let references: Vec<&str> = sendable
            .iter()
            .map(|&i| work[i].line.credential.as_str())
            .collect();
        session.entra_record(
            &pending,
            &[],
            AuditEvent::ok("entra.push")
                .detail(json!({"tenant": tenant, "secrets_sent": references})),
            clock.seconds(),
        )?;
        let created = match graph.create_devices(&devices) {
            Ok(created) => Ok(created),
            // A serial Entra has already: an earlier answer was lost, or
            // someone was quicker. Settle token by token below.
            Err(error) if is_duplicate_serial(&error) => Ok(Vec::new()),
            Err(error) => Err(error),
        };
        let created = match created {
            Ok(created) => created,
            Err(error) => {
                let reason = error.to_string();
                let mut failed = Vec::new();
                for &index in &sendable {
                    let item = &mut work[index];
                    item.link.last_error = Some(reason.clone());
                    item.line.result = "failed".into();
                    item.line.detail = Some(reason.clone());
                    failed.push(item.link.clone());
                }
                session.entra_record(
                    &failed,
                    &[],
                    AuditEvent {
                        outcome: "failed".into(),
                        ..AuditEvent::ok("entra.push")
                    }
                    .detail(json!({"tenant": tenant, "error": reason})),
                    clock.seconds(),
                )?;
                stopped = Some(reason);
                break;
            }
        };
        let by_serial: HashMap<String, GraphDevice> = created
            .into_iter()
            .filter_map(|d| d.serial_number.clone().map(|s| (s, d)))
            .collect();
        let mut settled = Vec::new();
        for &index in &sendable {
            let item = &mut work[index];
            let device = match by_serial.get(&item.link.serial) {
                Some(device) => Some(device.clone()),
                None => graph
                    .devices_by_serial(&item.link.serial)?
                    .into_iter()
                    .next(),
            };
            match device {
                Some(device) => {
                    item.link.device_id = device.id.clone();
                    item.link.status = device.status.unwrap_or_else(|| "available".into());
                    item.link.last_error = None;
                    item.line.result = "created".into();
                }
                None => {
                    item.line.result = "failed".into();
                    item.line.detail =
                        Some("Entra accepted the batch but does not list this token".into());
                }
            }
            item.link.updated_at = clock.seconds();
            settled.push(item.link.clone());
        }
        let created: Vec<&str> = sendable
            .iter()
            .filter(|&&i| work[i].line.result == "created")
            .map(|&i| work[i].line.credential.as_str())
            .collect();
        session.entra_record(
            &settled,
            &[],
            AuditEvent::ok("entra.created")
                .detail(json!({"tenant": tenant, "credentials": created})),
            clock.seconds(),
        )?;
    }

    report.stopped = stopped.clone();
    if stopped.is_some() {
        for item in &mut work {
            if item.link.device_id.is_none() && item.line.result == "present" {
                item.line.result = "failed".into();
                item.line.detail = Some(
                    "not sent: the push stopped at an earlier error; run it again to resume".into(),
                );
            }
        }
    }
    if stopped.is_none() && (options.assign || options.activate) {
        let counts = whole.then_some(&inventory);
        assign_and_activate(
            session, graph, tenant, &mut work, &by_id, counts, options, clock,
        )?;
    }
    settle(&mut report, work);
    Ok(finish(report, graph))
}

/// The lines of a run into the report: what was left out apart.
fn settle(report: &mut PushReport, work: Vec<Work>) {
    for item in work {
        if item.line.result == "left out" {
            report.left_out.push(item.line);
        } else {
            report.lines.push(item.line);
        }
    }
}

/// A dry run's line for a token the second phase would handle.
fn describe_plan(item: &mut Work, target: &Target) {
    let creating = item.line.result == "to create";
    let mut steps: Vec<String> = Vec::new();
    if creating {
        steps.push("create".into());
    }
    let result = match target.step {
        Step::Assign => {
            steps.push(format!("assign to {}", target.upn));
            "to assign"
        }
        Step::Activate { assigned } => {
            if !assigned {
                steps.push(format!("assign to {}", target.upn));
            }
            steps.push("activate".into());
            "to activate"
        }
        Step::Note => return,
    };
    if !creating {
        item.line.result = result.into();
    }
    let mut detail = steps.join(", then ");
    if let Some(note) = item
        .line
        .detail
        .as_deref()
        .filter(|d| *d == PURGED_NOT_ACTIVATED)
    {
        detail = format!("{detail} ({note})");
    }
    item.line.detail = Some(detail);
}

fn finish(mut report: PushReport, graph: &Graph<'_>) -> PushReport {
    let stats = graph.http().stats();
    report.requests = stats.requests;
    report.retries = stats.retries;
    report
}

/// What the second phase does with a token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Assign,
    Activate {
        assigned: bool,
    },
    /// Assigned to the right user already: only the link learns who.
    Note,
}

struct Target {
    index: usize,
    user_id: String,
    upn: String,
    step: Step,
}

/// What the second phase would do with each token in Entra (with
/// `planning`, also with each token a run would create): refusals and
/// what is left out go on their lines. Reads Entra, changes nothing.
/// `inventory` is the whole tenant's, when it was read, for counting
/// users' tokens.
fn plan_second_phase(
    graph: &Graph<'_>,
    work: &mut [Work],
    by_id: &HashMap<String, GraphDevice>,
    inventory: Option<&Vec<GraphDevice>>,
    options: &PushOptions,
    planning: bool,
) -> Result<Vec<Target>> {
    let mut users: HashMap<String, std::result::Result<String, String>> = HashMap::new();
    // OATH methods each user holds, counted when first needed.
    let mut held: HashMap<String, usize> = HashMap::new();
    let mut targets = Vec::new();
    for (index, item) in work.iter_mut().enumerate() {
        // A dry run plans for the tokens it would create too.
        let device_id = match item.link.device_id.clone() {
            Some(id) => id,
            None if planning && item.line.result == "to create" => String::new(),
            None => continue,
        };
        if matches!(item.line.result.as_str(), "refused" | "failed") {
            continue;
        }
        let Some(upn) = item.token.user.clone() else {
            item.line.detail =
                Some("not assigned: the vault has no user for it ('oathdesk token assign')".into());
            continue;
        };
        let entra_user = by_id
            .get(&device_id)
            .and_then(|d| d.assigned_to.as_ref())
            .and_then(|a| a.id.clone());
        let status = item.link.status.clone();
        let mut activate = options.activate;
        // Its secret was purged after delivery: no activation code can be
        // computed. Assigned already, it is left as Entra has it; else it
        // is assigned only.
        if activate && status != "activated" && item.token.custody == Custody::Purged {
            activate = false;
            if entra_user.is_some() {
                item.line.result = "left out".into();
                item.line.detail = Some(format!("{PURGED_NOT_ACTIVATED}; Entra has it {status}"));
                continue;
            }
            item.line.detail = Some(PURGED_NOT_ACTIVATED.into());
        }
        let done = status == "activated" || !activate;
        // Nothing to do, and known to be so without asking Entra who the user is.
        if done
            && entra_user.is_some()
            && entra_user == item.link.user_id
            && item
                .link
                .user_upn
                .as_ref()
                .is_some_and(|known| known.eq_ignore_ascii_case(&upn))
        {
            continue;
        }
        let user_id = match users
            .entry(upn.to_lowercase())
            .or_insert_with(|| match graph.user(&upn) {
                Ok(user) => Ok(user.id),
                Err(Error::NotFound { .. }) => Err(format!("{upn} is not a user in Entra")),
                Err(error) => Err(error.to_string()),
            })
            .clone()
        {
            Ok(id) => id,
            Err(reason) => {
                item.line.result = "refused".into();
                item.line.detail = Some(reason);
                continue;
            }
        };
        if let Some(other) = &entra_user
            && *other != user_id
        {
            item.line.result = "refused".into();
            item.line.detail = Some(format!(
                "Entra has it assigned to another user ({other}); unassign it there first \
                 ('oathdesk entra unassign {}')",
                item.line.credential
            ));
            continue;
        }
        let assigned = entra_user.is_some();
        if !assigned {
            let count = match held.get(&user_id) {
                Some(count) => *count,
                None => {
                    let tokens = match inventory {
                        Some(all) => all
                            .iter()
                            .filter(|d| {
                                d.assigned_to.as_ref().and_then(|a| a.id.as_deref())
                                    == Some(user_id.as_str())
                            })
                            .count(),
                        None => graph.methods(&user_id)?.len(),
                    };
                    // Authenticator apps count towards the same limit.
                    tokens + graph.software_oath_methods(&user_id)?
                }
            };
            if count >= MAX_OATH_METHODS_PER_USER {
                held.insert(user_id.clone(), count);
                item.line.result = "refused".into();
                item.line.detail = Some(format!(
                    "{upn} already has {count} OATH methods in Entra (hardware tokens and \
                     authenticator apps); Entra allows at most {MAX_OATH_METHODS_PER_USER} per user"
                ));
                continue;
            }
            held.insert(user_id.clone(), count + 1);
        }
        let step = if activate && status != "activated" {
            Step::Activate { assigned }
        } else if !assigned {
            Step::Assign
        } else {
            Step::Note
        };
        targets.push(Target {
            index,
            user_id,
            upn,
            step,
        });
    }
    Ok(targets)
}

/// Assigns (and activates) every token that is in Entra now. `inventory`
/// is the whole tenant's, when it was read, for counting users' tokens.
#[allow(clippy::too_many_arguments)]
fn assign_and_activate<S: Store>(
    session: &mut Session<S>,
    graph: &Graph<'_>,
    tenant: &str,
    work: &mut [Work],
    by_id: &HashMap<String, GraphDevice>,
    inventory: Option<&Vec<GraphDevice>>,
    options: &PushOptions,
    clock: &Clock<'_>,
) -> Result<()> {
    let targets = plan_second_phase(graph, work, by_id, inventory, options, false)?;
    let (activations, others): (Vec<Target>, Vec<Target>) = targets
        .into_iter()
        .partition(|t| matches!(t.step, Step::Activate { .. }));
    for group in others.chunks(RECORD_GROUP) {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for target in group {
            let item = &mut work[target.index];
            if target.step == Step::Assign {
                let device_id = item.link.device_id.clone().unwrap_or_default();
                match graph.assign(&target.user_id, &device_id) {
                    Ok(method) => {
                        item.link.method_id = Some(method.id);
                        item.link.status = "assigned".into();
                        item.line.result = "assigned".into();
                    }
                    Err(error) => {
                        fail(item, &error.to_string(), &mut failed);
                        continue;
                    }
                }
            }
            item.link.user_id = Some(target.user_id.clone());
            item.link.user_upn = Some(target.upn.clone());
            item.link.last_error = None;
            done.push(item.line.credential.clone());
        }
        record_group(
            session,
            tenant,
            work,
            group,
            "entra.assign",
            &done,
            &failed,
            clock,
        )?;
    }

    for group in activations.chunks(RECORD_GROUP) {
        // Compute every code of the group, record their counters, then send.
        let mut codes = Vec::with_capacity(group.len());
        let mut failed = Vec::new();
        for target in group {
            let item = &mut work[target.index];
            match code_for(session, item, clock) {
                Ok((code, counter)) => {
                    item.link.last_counter = Some(counter);
                    item.link.updated_at = clock.seconds();
                    codes.push(Some(code));
                }
                Err(error) => {
                    fail(item, &error.to_string(), &mut failed);
                    codes.push(None);
                }
            }
        }
        let counters: Vec<serde_json::Value> = group
            .iter()
            .zip(&codes)
            .filter(|(_, code)| code.is_some())
            .map(|(t, _)| {
                let item = &work[t.index];
                json!({"credential": item.line.credential, "counter": item.link.last_counter})
            })
            .collect();
        // The counters are on record before the codes leave: a crash after
        // sending can never make a later run send the same code again.
        let links: Vec<EntraLink> = group.iter().map(|t| work[t.index].link.clone()).collect();
        session.entra_record(
            &links,
            &[],
            AuditEvent::ok("entra.activate")
                .detail(json!({"tenant": tenant, "codes_computed": counters})),
            clock.seconds(),
        )?;
        let mut done = Vec::new();
        for (target, code) in group.iter().zip(codes) {
            let Some(code) = code else { continue };
            let item = &mut work[target.index];
            let Step::Activate { assigned } = target.step else {
                continue;
            };
            match send_activation(graph, item, &target.user_id, assigned, &code) {
                Ok(()) => {
                    item.link.status = "activated".into();
                    item.link.user_id = Some(target.user_id.clone());
                    item.link.user_upn = Some(target.upn.clone());
                    item.link.last_error = None;
                    item.line.result = "activated".into();
                    done.push(item.line.credential.clone());
                }
                Err(error) => {
                    if let Some(device) = item
                        .link
                        .device_id
                        .as_deref()
                        .and_then(|id| graph.device(id).ok())
                    {
                        item.link.status = device.status.unwrap_or_default();
                    }
                    fail(item, &error.to_string(), &mut failed);
                }
            }
        }
        record_group(
            session,
            tenant,
            work,
            group,
            "entra.activated",
            &done,
            &failed,
            clock,
        )?;
    }
    Ok(())
}

/// Marks a token failed, keeping the reason for the link and the audit.
fn fail(item: &mut Work, reason: &str, failed: &mut Vec<serde_json::Value>) {
    item.line.result = "failed".into();
    item.line.detail = Some(reason.to_owned());
    item.link.last_error = Some(reason.to_owned());
    failed.push(json!({"credential": item.line.credential, "error": reason}));
}

/// Records a group's links with one audit entry.
#[allow(clippy::too_many_arguments)]
fn record_group<S: Store>(
    session: &mut Session<S>,
    tenant: &str,
    work: &mut [Work],
    group: &[Target],
    action: &str,
    done: &[String],
    failed: &[serde_json::Value],
    clock: &Clock<'_>,
) -> Result<()> {
    let now = clock.seconds();
    let links: Vec<EntraLink> = group
        .iter()
        .map(|t| {
            let link = &mut work[t.index].link;
            link.updated_at = now;
            link.clone()
        })
        .collect();
    let mut event = AuditEvent::ok(action)
        .detail(json!({"tenant": tenant, "credentials": done, "failed": failed}));
    if done.is_empty() {
        event.outcome = "failed".into();
    }
    session.entra_record(&links, &[], event, now)?;
    Ok(())
}

/// The activation code of a token, computed now from the vault's secret.
fn code_for<S: Store>(
    session: &mut Session<S>,
    item: &Work,
    clock: &Clock<'_>,
) -> Result<(crate::graph::VerificationCode, u64)> {
    let (_, credential) = session.reveal(&TokenRef::Id(item.token.id))?;
    let Kind::Totp { step } = credential.kind else {
        return Err(Error::Refused("Entra activates TOTP tokens only".into()));
    };
    let totp = Totp::new(
        &credential.secret,
        credential.algorithm,
        credential.digits,
        step,
    );
    code_to_send(&totp, item.link.last_counter, clock.now, clock.sleep)
}

/// The name of a token in the user's sign-in methods: model and the
/// serial Entra knows (which, on a Molto-2, names the profile).
pub fn display_name(token: &TokenInfo, serial: &str) -> String {
    let model = [token.manufacturer.as_deref(), token.model.as_deref()]
        .into_iter()
        .flatten()
        .filter(|part| !part.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if model.is_empty() {
        format!("Hardware token {serial}")
    } else {
        format!("{model} {serial}")
    }
}

/// Sends one activation; a lost answer whose activation went through is
/// success.
fn send_activation(
    graph: &Graph<'_>,
    item: &mut Work,
    user_id: &str,
    assigned: bool,
    code: &crate::graph::VerificationCode,
) -> Result<()> {
    let device_id = item.link.device_id.clone().unwrap_or_default();
    // What the user sees in Security info: which token, which profile.
    let name = display_name(&item.token, &item.link.serial);
    let name = Some(name.as_str());
    let sent = if assigned {
        let method_id = match &item.link.method_id {
            Some(id) => Some(id.clone()),
            None => find_method(graph, user_id, &device_id)?,
        };
        match method_id {
            Some(method_id) => {
                item.link.method_id = Some(method_id.clone());
                graph.activate(user_id, &method_id, code, name)
            }
            None => graph.assign_and_activate(user_id, &device_id, code, name),
        }
    } else {
        graph.assign_and_activate(user_id, &device_id, code, name)
    };
    let Err(error) = sent else {
        return Ok(());
    };
    if let Ok(device) = graph.device(&device_id)
        && device.status.as_deref() == Some("activated")
        && device.assigned_to.as_ref().and_then(|a| a.id.as_deref()) == Some(user_id)
    {
        return Ok(());
    }
    let hint = if error.graph().is_some_and(|g| g.message.contains("invalid")) {
        " — Entra did not accept the code computed from the vault: the token in Entra may hold \
         another secret than the vault's (check the serial), or this computer's clock is off"
    } else {
        ""
    };
    Err(Error::Refused(format!("{error}{hint}")))
}

/// The user's method id for a device.
fn find_method(graph: &Graph<'_>, user_id: &str, device_id: &str) -> Result<Option<String>> {
    Ok(graph
        .methods(user_id)?
        .into_iter()
        .find(|m| {
            m.device.as_ref().and_then(|d| d.id.as_deref()) == Some(device_id) || m.id == device_id
        })
        .map(|m| m.id))
}

/// One difference between the vault and Entra.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `missing` (linked, gone from Entra), `pending` (create never
    /// confirmed), `status` (Entra's state changed), `user` (assigned to
    /// someone else than the vault says), `unlinked` (Entra has a vault
    /// credential's serial, not linked), `extra` (not in this vault), `lost`
    /// (lost or retired in the vault, still assigned or activated in Entra).
    pub kind: String,
    pub credential: Option<String>,
    pub serial: String,
    pub detail: String,
}

/// The outcome of a comparison.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    /// Links that match Entra.
    pub in_sync: usize,
    pub differences: Vec<Difference>,
    /// Tokens in Entra's inventory.
    pub in_entra: usize,
}

/// Compares the vault's links with Entra's inventory, records what Entra
/// says now (statuses, lost creates found), and reports every difference.
pub fn sync<S: Store>(
    session: &mut Session<S>,
    graph: &Graph<'_>,
    tenant: &str,
    template: &str,
    now: u64,
) -> Result<SyncReport> {
    let inventory = graph.devices()?;
    let links = session.entra_links(tenant)?;
    let tokens: HashMap<i64, TokenInfo> = session
        .tokens(&CredentialFilter::default())?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let mut report = SyncReport {
        in_entra: inventory.len(),
        ..SyncReport::default()
    };
    let mut seen_ids = std::collections::HashSet::new();
    let mut updates = Vec::new();
    for mut link in links {
        let reference = tokens
            .get(&link.credential_id)
            .map_or_else(|| format!("#{}", link.credential_id), TokenInfo::reference);
        let device = match &link.device_id {
            Some(id) => inventory.iter().find(|d| d.id.as_deref() == Some(id)),
            None => inventory
                .iter()
                .find(|d| d.serial_number.as_deref() == Some(link.serial.as_str())),
        };
        let mut difference = |kind: &str, detail: String| {
            report.differences.push(Difference {
                kind: kind.into(),
                credential: Some(reference.clone()),
                serial: link.serial.clone(),
                detail,
            });
        };
        let Some(device) = device else {
            if link.device_id.is_none() {
                difference(
                    "pending",
                    "a create was sent but Entra does not have it: run 'oathdesk entra push' again"
                        .into(),
                );
            } else if link.status != "missing" {
                difference(
                    "missing",
                    "linked, but no longer in Entra (deleted there?): 'oathdesk entra push' creates it again".into(),
                );
                link.status = "missing".into();
                link.method_id = None;
            } else {
                difference("missing", "still not in Entra".into());
            }
            link.last_sync = Some(now);
            updates.push(link);
            continue;
        };
        if let Some(id) = &device.id {
            seen_ids.insert(id.clone());
        }
        let mut changed = false;
        if link.device_id.is_none() {
            difference(
                "pending",
                "found in Entra: the lost create is linked now".into(),
            );
            link.device_id = device.id.clone();
            changed = true;
        }
        let entra_status = device.status.clone().unwrap_or_default();
        if entra_status != link.status {
            difference(
                "status",
                format!("the vault had {}, Entra says {entra_status}", link.status),
            );
            link.status = entra_status;
            changed = true;
        }
        let entra_user = device.assigned_to.as_ref().and_then(|a| a.id.clone());
        if entra_user != link.user_id {
            difference(
                "user",
                format!(
                    "Entra has it assigned to {}, the vault recorded {}",
                    entra_user.as_deref().unwrap_or("nobody"),
                    link.user_upn
                        .as_deref()
                        .or(link.user_id.as_deref())
                        .unwrap_or("nobody")
                ),
            );
            link.user_id = entra_user;
            link.user_upn = None;
            link.method_id = None;
            changed = true;
        }
        if let Some(detail) = tokens
            .get(&link.credential_id)
            .and_then(|token| crate::lifecycle::lost_detail(token, device))
        {
            difference("lost", detail);
            changed = true;
        }
        let vault_user = tokens.get(&link.credential_id).and_then(|t| t.user.clone());
        if let (Some(vault), Some(recorded)) = (&vault_user, &link.user_upn)
            && !vault.eq_ignore_ascii_case(recorded)
        {
            difference(
                "user",
                format!("the vault assigns it to {vault}, Entra to {recorded}"),
            );
            changed = true;
        }
        if !changed {
            report.in_sync += 1;
        }
        link.last_sync = Some(now);
        updates.push(link);
    }
    // What Entra has that no link names.
    let exported = crate::lifecycle::csv_exported(session)?;
    let candidates: HashMap<String, String> = tokens
        .values()
        .filter_map(|t| {
            t.serial
                .as_ref()
                .map(|s| (profile_serial(s, t.slot, template), t.reference()))
        })
        .collect();
    for device in &inventory {
        if device.id.as_ref().is_some_and(|id| seen_ids.contains(id)) {
            continue;
        }
        let serial = device.serial_number.clone().unwrap_or_default();
        let (kind, credential, detail) = match candidates.get(&serial) {
            Some(reference) if exported.contains_key(&serial) => (
                "unlinked",
                Some(reference.clone()),
                "uploaded from this vault's Entra CSV export: 'oathdesk entra push' links it"
                    .to_owned(),
            ),
            Some(reference) => (
                "unlinked",
                Some(reference.clone()),
                "Entra has this vault credential's serial, but this vault did not create it: \
                 'oathdesk entra push --adopt' links it"
                    .to_owned(),
            ),
            None => (
                "extra",
                None,
                format!(
                    "in Entra ({}), not in this vault",
                    device.status.as_deref().unwrap_or("?")
                ),
            ),
        };
        report.differences.push(Difference {
            kind: kind.into(),
            credential,
            serial,
            detail,
        });
    }
    let summary: BTreeMap<&str, usize> =
        report
            .differences
            .iter()
            .fold(BTreeMap::new(), |mut counts, d| {
                *counts.entry(d.kind.as_str()).or_default() += 1;
                counts
            });
    session.entra_record(
        &updates,
        &[],
        AuditEvent::ok("entra.sync").detail(json!({
            "tenant": tenant,
            "in_sync": report.in_sync,
            "in_entra": report.in_entra,
            "differences": summary,
        })),
        now,
    )?;
    Ok(report)
}

/// The link of a credential, or why there is none.
fn linked<S: Store>(
    session: &mut Session<S>,
    tenant: &str,
    token: &TokenRef,
) -> Result<(TokenInfo, EntraLink)> {
    let (info, _) = session.token(token)?;
    let link = session.entra_link(tenant, info.id)?.ok_or_else(|| {
        Error::Refused(format!(
            "{} is not in Entra as far as this vault knows (push it first, or run 'oathdesk entra sync')",
            info.reference()
        ))
    })?;
    Ok((info, link))
}

/// Unassigns a credential's token from its user in Entra. Already
/// unassigned is success.
pub fn unassign<S: Store>(
    session: &mut Session<S>,
    graph: &Graph<'_>,
    tenant: &str,
    token: &TokenRef,
    now: u64,
) -> Result<Line> {
    let (info, mut link) = linked(session, tenant, token)?;
    let device_id = link.device_id.clone().ok_or_else(|| {
        Error::Refused(format!(
            "{}: its create was never confirmed; run 'oathdesk entra sync'",
            info.reference()
        ))
    })?;
    let device = match graph.device(&device_id) {
        Ok(device) => Some(device),
        Err(Error::NotFound { .. }) => None,
        Err(error) => return Err(error),
    };
    let user_id = device
        .as_ref()
        .and_then(|d| d.assigned_to.as_ref())
        .and_then(|a| a.id.clone());
    let detail = match user_id {
        Some(user_id) => {
            let method_id = match find_method(graph, &user_id, &device_id)? {
                Some(id) => id,
                None => link.method_id.clone().unwrap_or_else(|| device_id.clone()),
            };
            match graph.unassign(&user_id, &method_id) {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
            format!(
                "unassigned from {}",
                link.user_upn.as_deref().unwrap_or(&user_id)
            )
        }
        None => "was not assigned".into(),
    };
    link.user_id = None;
    link.user_upn = None;
    link.method_id = None;
    link.status = if device.is_some() {
        "available".into()
    } else {
        "missing".into()
    };
    link.updated_at = now;
    session.entra_record(
        std::slice::from_ref(&link),
        &[],
        AuditEvent::ok("entra.unassign")
            .credential(info.reference())
            .detail(json!({"tenant": tenant, "device": device_id})),
        now,
    )?;
    Ok(Line {
        credential: info.reference(),
        serial: link.serial,
        result: "unassigned".into(),
        detail: Some(detail),
    })
}

/// Deletes a credential's token from Entra (unassigning it first when
/// `unassign_first`), and forgets the link. Already gone is success.
pub fn delete<S: Store>(
    session: &mut Session<S>,
    graph: &Graph<'_>,
    tenant: &str,
    token: &TokenRef,
    unassign_first: bool,
    now: u64,
) -> Result<Line> {
    let (info, link) = linked(session, tenant, token)?;
    let device = match &link.device_id {
        Some(id) => match graph.device(id) {
            Ok(device) => Some(device),
            Err(Error::NotFound { .. }) => None,
            Err(error) => return Err(error),
        },
        None => graph.devices_by_serial(&link.serial)?.into_iter().next(),
    };
    let detail = match device {
        Some(device) => {
            let id = device.id.clone().unwrap_or_default();
            if device.assigned_to.is_some() {
                if !unassign_first {
                    return Err(Error::Refused(format!(
                        "{} is assigned in Entra: unassign it first, or pass --unassign",
                        info.reference()
                    )));
                }
                unassign(session, graph, tenant, token, now)?;
            }
            match graph.delete_device(&id) {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
            format!("deleted device {id}")
        }
        None => "was not in Entra".into(),
    };
    session.entra_record(
        &[],
        &[(tenant.to_owned(), info.id)],
        AuditEvent::ok("entra.delete")
            .credential(info.reference())
            .detail(json!({"tenant": tenant, "serial": link.serial})),
        now,
    )?;
    Ok(Line {
        credential: info.reference(),
        serial: link.serial,
        result: "deleted".into(),
        detail: Some(detail),
    })
}

/// The current Unix time (seconds), for callers without a [`Clock`].
pub fn now() -> u64 {
    unix_now()
}
