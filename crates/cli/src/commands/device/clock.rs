//! Setting a token's clock (`device sync-time`) and recording each slot's clock in the vault.

use super::*;

/// The clock to set: `--at` as given, else the host's now at each write.
pub(super) fn clock_at(at: Option<u64>) -> impl Fn() -> u64 {
    move || at.unwrap_or_else(input::now)
}

/// Tells the vault which Molto-2 slots' clocks were set: the drift report
/// starts their history again. A slot the vault has no credential in is
/// counted, not an error (a token programmed elsewhere).
pub(super) fn record_slot_clocks(
    session: &mut Session,
    token: &Token<'_>,
    outcomes: &[oathdesk_devices::programmer::SlotOutcome],
    at: Option<u64>,
) -> Result<()> {
    let mut unknown = 0;
    for outcome in outcomes.iter().filter(|o| o.result.is_ok()) {
        let info = match recorded::credential_in(session, token, outcome.slot) {
            Ok(info) => info,
            Err(recorded::RecordedError::Vault(oathdesk_vault::Error::NotFound(_))) => {
                unknown += 1;
                continue;
            }
            Err(e) => {
                eprintln!(
                    "oathdesk: slot {}: its clock is set, but not recorded in the vault: {e}",
                    outcome.slot
                );
                continue;
            }
        };
        let now = input::now();
        session
            .record_device_write(
                &TokenRef::Id(info.id),
                &oathdesk_vault::DeviceWrite::Clock {
                    time: at.unwrap_or(now),
                },
                now,
            )
            .with_context(|| {
                format!(
                    "the clock of {} is set, but the vault could not record it (run the command again)",
                    info.reference()
                )
            })?;
    }
    if unknown > 0 {
        eprintln!(
            "oathdesk: the vault has no credential in {unknown} of the slot(s) set: nothing recorded for them"
        );
    }
    Ok(())
}

/// `vault` is `None` with `--no-vault`.
pub(super) fn sync_time(
    connection: &ConnectionArgs,
    vault: Option<&VaultOptions>,
    slot: Option<u8>,
    all: bool,
    at: Option<u64>,
    display_timeout: Option<DisplayTimeout>,
) -> Result<()> {
    let mut token = connection.connect()?;
    let before = token.drift(input::now());
    let clock = clock_at(at);
    let target = match at {
        Some(at) => format!(" to {}", rfc3339(at)),
        None => String::new(),
    };
    match token.family() {
        Family::Molto2 => {
            let slots: Vec<u8> = match (slot, all) {
                (Some(slot), _) => vec![slot],
                (None, true) => (0..token.profiles()).collect(),
                (None, false) => bail!("which slot? pass --slot N, or --all for every slot"),
            };
            // Unlocked first: a wrong passphrase stops before any write.
            let mut session = match vault {
                Some(vault) => Some(vault.unlock()?),
                None => {
                    eprintln!(
                        "oathdesk: warning: --no-vault: the vault does not learn of this; its drift report \
                         keeps counting the codes seen before"
                    );
                    None
                }
            };
            authenticate(&mut token, connection)?;
            let bar = progress(slots.len() as u64, "syncing");
            let outcomes = bar.suspend(|| token.sync_time_slots(&slots, &clock));
            bar.finish_and_clear();
            let mut failed = 0;
            for outcome in &outcomes {
                if let Err(e) = &outcome.result {
                    failed += 1;
                    eprintln!("oathdesk: slot {}: {e}", outcome.slot);
                }
            }
            let untried = slots.len() - outcomes.len();
            let set = outcomes.len() - failed;
            println!(
                "set the clock of {set} of {} slot(s) of {}{target} (it was {})",
                slots.len(),
                token.serial(),
                drift_text(before)
            );
            if let Some(session) = session.as_mut() {
                record_slot_clocks(session, &token, &outcomes, at)?;
            }
            if failed > 0 || untried > 0 {
                bail!(
                    "{failed} slot(s) refused{}; the others are set — run the command again for the slots named above",
                    if untried > 0 {
                        format!(", {untried} not tried after the connection was lost")
                    } else {
                        String::new()
                    }
                );
            }
        }
        Family::SingleProfile => {
            if slot.is_some_and(|s| s != 0) {
                bail!("a single-profile token has one profile: drop --slot");
            }
            // Its clock comes with the whole configuration, and restricted
            // models lose the seed: the vault's credential supplies both.
            let Some(vault) = vault else {
                bail!(
                    "a single-profile token's clock is written with its whole configuration, which \
                     oathdesk reads from the vault: drop --no-vault"
                );
            };
            let mut session = vault.unlock()?;
            let reference: TokenRef = token.serial().parse()?;
            let (info, credential) = session.reveal(&reference).map_err(|e| {
                anyhow!(
                    "{e}: setting a single-profile token's clock rewrites its configuration{}, so oathdesk needs \
                     the credential; burn the token again with 'oathdesk device burn' instead",
                    if token.model().is_some_and(|m| m.restricted_sync) {
                        " and its seed"
                    } else {
                        ""
                    }
                )
            })?;
            // The write carries the display time-out: keep the one the
            // token has, as the vault recorded it.
            let display_timeout = match display_timeout {
                Some(timeout) => timeout,
                None => session
                    .recorded_display_timeout(info.id)?
                    .and_then(DisplayTimeout::from_seconds)
                    .ok_or_else(|| {
                        anyhow!(
                            "the vault has no record of {}'s display time-out, which this write sets too: pass \
                             --display-timeout S (15, 30, 60 or 120) with the one the token has",
                            info.reference()
                        )
                    })?,
            };
            let request =
                BurnRequest::new(Family::SingleProfile, &credential, None, display_timeout)?;
            let restricted = token.model().is_some_and(|m| m.restricted_sync);
            let time = clock();
            authenticate(&mut token, connection)?;
            token.sync_time_single(&request.config, restricted.then_some(&request), time)?;
            session.record_device_write(
                &TokenRef::Id(info.id),
                &oathdesk_vault::DeviceWrite::Clock { time },
                input::now(),
            )?;
            println!(
                "set the clock of {}{target} (it was {}; display time-out {} s kept){}",
                token.serial(),
                drift_text(before),
                display_timeout.seconds(),
                if restricted {
                    "; its seed was written again from the vault"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
