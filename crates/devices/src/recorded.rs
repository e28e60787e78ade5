//! Burns recorded in the vault (feature `vault`): the one code path behind
//! `device burn`, `enroll` and `device provision`, and the web console's
//! equivalents.
//!
//! The vault learns of a burn before the token does: [`burn`] checks what
//! it can without writing ([`Token::prepare_burn`]), records the credential
//! as `burning` with the device serial and slot, writes, verifies, and marks
//! it `burned` (and `assigned` when it has a user). Whatever stops a burn
//! half-way leaves the slot visibly `burning`; the next burn of that slot
//! rewrites it, because what the token holds is then unknown.

use std::collections::HashSet;

use oathdesk_otp::{Credential, seed};
use oathdesk_vault::model::{DeviceKind, State, TokenRef};
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{NewToken, Session, TokenInfo};

use crate::params::{DisplayTimeout, Family, check_title, truncate_utf8};
use crate::programmer::{BurnReport, BurnRequest, DeviceError, Token};

/// Why a recorded burn failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordedError {
    /// Refused or failed before anything was recorded or written.
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Vault(#[from] oathdesk_vault::Error),
    /// Failed after the vault recorded the burn: the slot is marked.
    #[error(
        "{cause}\nthe vault marks {reference} as burning: the token may hold the new seed, the old one or none; \
         run the same command again to finish the burn"
    )]
    Unfinished {
        reference: String,
        /// Not a `source`: the message already says it, once.
        cause: DeviceError,
    },
}

/// One burn to record and carry out.
#[derive(Clone, Debug)]
pub struct Burn {
    pub credential: Credential,
    /// The Molto-2 slot (0 on single-profile tokens).
    pub slot: u8,
    pub title: Option<String>,
    pub display_timeout: DisplayTimeout,
    /// Assigned once the burn is verified.
    pub user: Option<String>,
    pub label: Option<String>,
    /// Delete a seed in the slot first, and retire the vault's credential there.
    pub overwrite: bool,
    /// Single-profile tokens: write the seed only, leaving the token's
    /// clock and settings as they are ([`BurnRequest::seed_only`]).
    pub seed_only: bool,
    /// The command that just generated the seed (`None`: it came from
    /// elsewhere): the vault records the seed's provenance with the burn.
    pub generated_by: Option<String>,
}

/// A finished burn.
#[derive(Clone, Debug)]
pub struct Burned {
    pub report: BurnReport,
    pub info: TokenInfo,
}

/// `SERIAL:SLOT` on a Molto-2, `SERIAL` on a single-profile token.
pub fn slot_reference(token: &Token<'_>, slot: u8) -> String {
    match token.family() {
        Family::Molto2 => format!("{}:{slot}", token.serial()),
        Family::SingleProfile => token.serial().to_owned(),
    }
}

fn vault_slot(token: &Token<'_>, slot: u8) -> Option<u32> {
    (token.family() == Family::Molto2).then_some(u32::from(slot))
}

/// Whether the vault marks this slot `burning` (a burn cut short).
pub fn interrupted(
    session: &mut Session,
    token: &Token<'_>,
    slot: u8,
) -> Result<bool, RecordedError> {
    Ok(!session
        .tokens(&CredentialFilter {
            device_serial: Some(token.serial().to_owned()),
            slot: vault_slot(token, slot),
            state: Some(State::Burning),
            ..CredentialFilter::default()
        })?
        .is_empty())
}

/// Records, burns, verifies and finishes one burn. The token must be
/// authenticated.
pub fn burn(
    token: &mut Token<'_>,
    session: &mut Session,
    job: &Burn,
    now: u64,
) -> Result<Burned, RecordedError> {
    let mut request = BurnRequest::new(
        token.family(),
        &job.credential,
        job.title.as_deref(),
        job.display_timeout,
    )
    .map_err(DeviceError::from)?;
    if job.seed_only {
        request = request
            .seed_only(token.family())
            .map_err(DeviceError::from)?;
    }
    // A slot marked burning holds something unknown: it is rewritten.
    let resume = interrupted(session, token, job.slot)?;
    let prepared = token.prepare_burn(job.slot, &request, job.overwrite || resume)?;
    let reference = slot_reference(token, job.slot);
    let new = NewToken {
        serial: Some(token.serial().to_owned()),
        slot: vault_slot(token, job.slot),
        device_kind: match token.family() {
            Family::Molto2 => DeviceKind::MultiProfile,
            Family::SingleProfile => DeviceKind::SingleProfile,
        },
        manufacturer: Some("Token2".into()),
        model: Some(token.model_name().to_owned()),
        device_slots: u32::from(token.profiles()),
        credential: job.credential.clone(),
        label: job.label.clone(),
        user: job.user.clone(),
        state: State::Burning,
    };
    let begun = match &job.generated_by {
        Some(command) => session.begin_generated_burn(new, job.overwrite, command, now)?,
        None => session.begin_burn(new, job.overwrite, now)?,
    };
    let report = token
        .burn_prepared(prepared, &request, now)
        .map_err(|cause| RecordedError::Unfinished { reference, cause })?;
    let note = match (&report.read_back, job.seed_only) {
        (Some(_), _) => "burned; the slot reads back as written",
        (None, false) => "burned (single-profile tokens cannot be read back)",
        (None, true) => "seed written alone; the token's clock and settings were left as they were",
    };
    // A seed-only write leaves settings the vault may not know.
    let display_timeout = (!job.seed_only).then(|| u64::from(job.display_timeout.seconds()));
    let info = session.finish_burn_with(begun.id, note, display_timeout, now)?;
    Ok(Burned { report, info })
}

/// The vault's live credential on this token's `slot` (Molto-2) or on the
/// token (single-profile): what a partial write changes.
pub fn credential_in(
    session: &mut Session,
    token: &Token<'_>,
    slot: u8,
) -> Result<TokenInfo, RecordedError> {
    let reference = slot_reference(token, slot);
    let live: Vec<TokenInfo> = session
        .tokens(&CredentialFilter {
            device_serial: Some(token.serial().to_owned()),
            slot: vault_slot(token, slot),
            ..CredentialFilter::default()
        })?
        .into_iter()
        .filter(|t| t.state != State::Retired && t.slot == vault_slot(token, slot))
        .collect();
    match live.as_slice() {
        [one] if one.state == State::Burning => Err(RecordedError::Vault(
            oathdesk_vault::Error::Refused(format!(
                "the vault marks {reference} as burning (a burn cut short): finish it by burning again"
            )),
        )),
        [one] => Ok(one.clone()),
        [] => Err(RecordedError::Vault(oathdesk_vault::Error::NotFound(
            format!(
                "a credential of {reference} in the vault (burn it with 'oathdesk device burn', or pass --no-vault)"
            ),
        ))),
        _ => Err(RecordedError::Vault(oathdesk_vault::Error::Refused(
            format!(
                "the vault records {} live credentials in {reference}: retire the stale one first",
                live.len()
            ),
        ))),
    }
}

/// Config only, recorded: writes a profile's algorithm, digits, period and
/// display time-out without a new seed (the clock is set to `now` with
/// them), then records it on the vault's credential there, whose codes
/// follow. The token is written only after the vault's checks (the
/// credential exists, its row verifies) and recorded after the token
/// confirmed; if recording fails, the error says so.
pub fn configure(
    token: &mut Token<'_>,
    session: &mut Session,
    slot: u8,
    config: &crate::params::ProfileConfig,
    now: u64,
) -> Result<TokenInfo, RecordedError> {
    let info = credential_in(session, token, slot)?;
    token.write_config(slot, config, now)?;
    let write = oathdesk_vault::DeviceWrite::Config {
        algorithm: config.hmac.algorithm(),
        digits: config.digits,
        period: config.period.seconds(),
        display_timeout: u64::from(config.display_timeout.seconds()),
    };
    Ok(session.record_device_write(&TokenRef::Id(info.id), &write, now)?)
}

/// Title only, recorded: writes a Molto-2 slot's title, reads it back and
/// records it on the vault's credential there.
pub fn retitle(
    token: &mut Token<'_>,
    session: &mut Session,
    slot: u8,
    title: &str,
    now: u64,
) -> Result<TokenInfo, RecordedError> {
    let info = credential_in(session, token, slot)?;
    token.write_title(slot, title)?;
    let write = oathdesk_vault::DeviceWrite::Title {
        title: title.to_owned(),
    };
    Ok(session.record_device_write(&TokenRef::Id(info.id), &write, now)?)
}

/// The first Molto-2 slot that is free in the vault and on the token.
pub fn first_free_slot(token: &mut Token<'_>, session: &mut Session) -> Result<u8, RecordedError> {
    let live = live_slots(token, session)?;
    for slot in 0..token.profiles() {
        if !live.contains(&u32::from(slot)) && !token.slot(slot)?.seed_present {
            return Ok(slot);
        }
    }
    Err(RecordedError::Device(DeviceError::NoFreeSlot {
        serial: token.serial().to_owned(),
    }))
}

fn live_slots(token: &Token<'_>, session: &mut Session) -> Result<HashSet<u32>, RecordedError> {
    Ok(session
        .tokens(&CredentialFilter {
            device_serial: Some(token.serial().to_owned()),
            ..CredentialFilter::default()
        })?
        .iter()
        .filter(|t| t.state != State::Retired)
        .filter_map(|t| t.slot)
        .collect())
}

// ----------------------------------------------------------------- provision

/// A user to provision, from a users file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionUser {
    /// The line in the file (for messages).
    pub line: usize,
    pub upn: String,
    pub title: Option<String>,
}

/// Reads a users file: `UPN[,TITLE]` per line, `#` comments, blank lines,
/// and an optional header `upn,…`. Every bad line is reported (by line),
/// and none is dropped silently.
pub fn parse_users(text: &str) -> Result<Vec<ProvisionUser>, Vec<String>> {
    let mut users = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let mut fields = content.splitn(2, ',').map(str::trim);
        let upn = fields.next().unwrap_or_default();
        let title = fields.next().filter(|t| !t.is_empty());
        if users.is_empty() && problems.is_empty() && upn.eq_ignore_ascii_case("upn") {
            continue;
        }
        if upn.is_empty() || upn.chars().any(|c| c.is_control() || c.is_whitespace()) {
            problems.push(format!(
                "line {line}: '{}' is not a UPN",
                upn.escape_default()
            ));
            continue;
        }
        if let Some(title) = title
            && let Err(e) = check_title(title)
        {
            problems.push(format!("line {line}, title: {e}"));
            continue;
        }
        if !seen.insert(upn.to_lowercase()) {
            problems.push(format!("line {line}: {upn} is listed twice"));
            continue;
        }
        users.push(ProvisionUser {
            line,
            upn: upn.to_owned(),
            title: title.map(str::to_owned),
        });
    }
    if problems.is_empty() {
        Ok(users)
    } else {
        Err(problems)
    }
}

/// A display title from a UPN: the part before `@`, cut to 12 bytes.
pub fn title_for(upn: &str) -> String {
    let local = upn.split('@').next().unwrap_or(upn);
    truncate_utf8(local, 12).to_owned()
}

/// What a provisioning run is asked to do.
#[derive(Clone, Debug)]
pub struct Provision {
    pub users: Vec<ProvisionUser>,
    pub first_slot: u8,
    /// Algorithm, digits and period of every new credential (its secret is
    /// replaced by a fresh one per user).
    pub template: Credential,
    pub display_timeout: DisplayTimeout,
    pub issuer: Option<String>,
}

/// What happens during a provisioning run, as it happens.
#[derive(Clone, Debug)]
pub enum ProvisionEvent<'a> {
    /// The run will burn this many profiles.
    Planned { burns: usize },
    /// The user has a finished credential on this token already.
    AlreadyDone { user: &'a str, reference: String },
    /// A slot holds a seed the vault does not know: left alone.
    UnknownSeed { slot: u8 },
    /// A burn starts.
    Burning { user: &'a str, slot: u8 },
    /// A burn finished.
    Burned {
        user: &'a str,
        burned: &'a Burned,
        resumed: bool,
    },
}

/// The outcome of a provisioning run.
#[derive(Clone, Debug, Default)]
pub struct ProvisionSummary {
    pub burned: Vec<Burned>,
    pub resumed: usize,
    pub already_done: usize,
}

/// A provisioning run that stopped: what was done before, and why.
#[derive(Debug, thiserror::Error)]
#[error(
    "{error}\n{done} of {planned} user(s) provisioned before this; run the same command again to resume"
)]
pub struct ProvisionError {
    pub error: RecordedError,
    pub done: usize,
    pub planned: usize,
    /// What was burned before the stop.
    pub summary: ProvisionSummary,
}

/// Gives every user a new seed in the next free Molto-2 slot: recorded,
/// burned, verified, assigned. Users finished on this token before are
/// skipped; one whose burn was cut short is resumed in its slot with its
/// secret. `stop` is asked between users (Ctrl-C); a stopped run is
/// resumed by running it again.
pub fn provision(
    token: &mut Token<'_>,
    session: &mut Session,
    request: &Provision,
    now: &dyn Fn() -> u64,
    on_event: &mut dyn FnMut(ProvisionEvent<'_>),
    stop: &dyn Fn() -> bool,
) -> Result<ProvisionSummary, Box<ProvisionError>> {
    let fail = |error: RecordedError, summary: ProvisionSummary, planned: usize| {
        Box::new(ProvisionError {
            done: summary.burned.len(),
            planned,
            summary,
            error,
        })
    };
    let mut summary = ProvisionSummary::default();
    if token.family() != Family::Molto2 {
        return Err(fail(
            DeviceError::NotSupported {
                what: "provisioning of several users",
                family: "single-profile tokens (one user each: enrol or burn them one by one)",
            }
            .into(),
            summary,
            0,
        ));
    }
    let recorded = session
        .tokens(&CredentialFilter {
            device_serial: Some(token.serial().to_owned()),
            ..CredentialFilter::default()
        })
        .map_err(|e| fail(e.into(), ProvisionSummary::default(), 0))?;
    let live: Vec<&TokenInfo> = recorded
        .iter()
        .filter(|t| t.state != State::Retired && t.slot.is_some())
        .collect();
    let mut taken: HashSet<u32> = live.iter().filter_map(|t| t.slot).collect();
    // (user, interrupted credential and its slot)
    let mut plan: Vec<(&ProvisionUser, Option<(i64, u8)>)> = Vec::new();
    for user in &request.users {
        let mine: Vec<&&TokenInfo> = live
            .iter()
            .filter(|t| {
                t.user
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&user.upn))
            })
            .collect();
        match mine.iter().find(|t| t.state == State::Burning) {
            Some(cut) => plan.push((user, cut.slot.map(|slot| (cut.id, slot as u8)))),
            None if !mine.is_empty() => {
                summary.already_done += 1;
                on_event(ProvisionEvent::AlreadyDone {
                    user: &user.upn,
                    reference: mine[0].reference(),
                });
            }
            None => plan.push((user, None)),
        }
    }
    let planned = plan.len();
    on_event(ProvisionEvent::Planned { burns: planned });
    let mut next_slot = request.first_slot;
    for (user, cut) in plan {
        if stop() {
            return Err(fail(
                RecordedError::Device(DeviceError::Stopped),
                summary,
                planned,
            ));
        }
        let (credential, candidates): (Credential, Vec<u8>) = match cut {
            Some((id, slot)) => match session.reveal(&TokenRef::Id(id)) {
                Ok((_, credential)) => (credential, vec![slot]),
                Err(e) => return Err(fail(e.into(), summary, planned)),
            },
            None => {
                let mut credential = request.template.clone();
                credential.secret = match seed::generate(request.template.secret.len()) {
                    Ok(secret) => secret,
                    Err(e) => {
                        return Err(fail(
                            RecordedError::Vault(oathdesk_vault::Error::Crypto(e.to_string())),
                            summary,
                            planned,
                        ));
                    }
                };
                credential.issuer = request.issuer.clone();
                credential.account = user.upn.clone();
                let free = (next_slot..token.profiles())
                    .filter(|slot| !taken.contains(&u32::from(*slot)))
                    .collect();
                (credential, free)
            }
        };
        let title = user.title.clone().unwrap_or_else(|| title_for(&user.upn));
        let mut done = None;
        for slot in candidates {
            if cut.is_none() {
                next_slot = slot + 1;
            }
            taken.insert(u32::from(slot));
            on_event(ProvisionEvent::Burning {
                user: &user.upn,
                slot,
            });
            let job = Burn {
                credential: credential.clone(),
                slot,
                title: Some(title.clone()),
                display_timeout: request.display_timeout,
                user: Some(user.upn.clone()),
                label: None,
                overwrite: false,
                seed_only: false,
                generated_by: None,
            };
            // The burn's own occupancy read finds seeds the vault does not
            // know: such a slot is left alone and the next one tried.
            match burn(token, session, &job, now()) {
                Ok(burned) => {
                    done = Some(burned);
                    break;
                }
                Err(RecordedError::Device(DeviceError::SlotOccupied { slot })) => {
                    on_event(ProvisionEvent::UnknownSeed { slot });
                }
                Err(error) => return Err(fail(error, summary, planned)),
            }
        }
        let Some(burned) = done else {
            return Err(fail(
                DeviceError::NoFreeSlot {
                    serial: token.serial().to_owned(),
                }
                .into(),
                summary,
                planned,
            ));
        };
        if cut.is_some() {
            summary.resumed += 1;
        }
        on_event(ProvisionEvent::Burned {
            user: &user.upn,
            burned: &burned,
            resumed: cut.is_some(),
        });
        summary.burned.push(burned);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_files() {
        let users =
            parse_users("upn,title\n# pilot\nann@contoso.com\n\nben@contoso.com , Ben B # x\n")
                .unwrap();
        assert_eq!(
            users,
            vec![
                ProvisionUser {
                    line: 3,
                    upn: "ann@contoso.com".into(),
                    title: None
                },
                ProvisionUser {
                    line: 5,
                    upn: "ben@contoso.com".into(),
                    title: Some("Ben B".into())
                },
            ]
        );
        let problems = parse_users("a@b\nbad user\nA@B\nc@d,a title far too long\n").unwrap_err();
        assert_eq!(
            problems,
            [
                "line 2: 'bad user' is not a UPN",
                "line 3: A@B is listed twice",
                "line 4, title: a Molto-2 title is 1 to 12 bytes of UTF-8; 'a title far too long' has 20",
            ]
        );
        assert_eq!(title_for("bérénice.dupont@contoso.com"), "bérénice.d");
    }
}
