//! A token's settings, titles and slots, its customer key, and the factory reset.

use super::*;

pub(super) fn configure(
    args: ConfigureArgs,
    connection: &ConnectionArgs,
    vault: &VaultOptions,
) -> Result<()> {
    let mut token = connection.connect()?;
    let slot = slot_for(&token, args.slot)?;
    let mut session = vault.unlock()?;
    let current = recorded::credential_in(&mut session, &token, slot)?;
    // Unset values keep the vault's: a template credential with them
    // (its secret is never written: config only).
    let mut template = Credential::totp(Secret::from_bytes(vec![0x5A; 20]));
    input::apply_params(
        &mut template,
        &ParamArgs {
            algorithm: Some(match args.algorithm {
                Some(algorithm) => algorithm,
                None => current.algorithm.parse().map_err(|_| {
                    anyhow!(
                        "{} has algorithm {} in the vault",
                        current.reference(),
                        current.algorithm
                    )
                })?,
            }),
            digits: Some(args.digits.unwrap_or(u64::from(current.digits))),
            period: Some(args.period.or(current.period).unwrap_or(30)),
            ..ParamArgs::default()
        },
    )?;
    let display_timeout = match args.display_timeout {
        Some(timeout) => timeout,
        None => session
            .recorded_display_timeout(current.id)?
            .and_then(DisplayTimeout::from_seconds)
            .unwrap_or_default(),
    };
    let config = BurnRequest::new(token.family(), &template, None, display_timeout)?.config;
    authenticate(&mut token, connection)?;
    let info = recorded::configure(&mut token, &mut session, slot, &config, input::now())?;
    println!(
        "configured {}: {}, {} digits, {} s, display {} s (seed kept; clock set to now); vault: {}",
        info.reference(),
        info.algorithm,
        info.digits,
        info.period.unwrap_or(30),
        display_timeout.seconds(),
        info.state
    );
    Ok(())
}

pub(super) fn retitle(
    connection: &ConnectionArgs,
    vault: &VaultOptions,
    slot: u8,
    title: &str,
) -> Result<()> {
    let mut token = connection.connect()?;
    if token.family() != Family::Molto2 {
        bail!("single-profile tokens have no title");
    }
    oathdesk_devices::params::check_title(title)?;
    let mut session = vault.unlock()?;
    authenticate(&mut token, connection)?;
    let info = recorded::retitle(&mut token, &mut session, slot, title, input::now())?;
    println!(
        "{} is titled '{}'",
        info.reference(),
        input::printable(title)
    );
    Ok(())
}

/// The slot a command works on: `--slot N` on a Molto-2, none on a
/// single-profile token.
pub(super) fn slot_for(token: &Token<'_>, slot: Option<u8>) -> Result<u8> {
    match (token.family(), slot) {
        (Family::Molto2, Some(slot)) if slot >= token.profiles() => bail!(
            "slot {slot} does not exist: this token has slots 0 to {}",
            token.profiles() - 1
        ),
        (Family::Molto2, Some(slot)) => Ok(slot),
        (Family::Molto2, None) => bail!(
            "which slot? pass --slot N (0-{}); 'oathdesk device slots --all' shows them",
            token.profiles() - 1
        ),
        (Family::SingleProfile, None | Some(0)) => Ok(0),
        (Family::SingleProfile, Some(slot)) => {
            bail!("a single-profile token has one profile: drop --slot {slot}")
        }
    }
}

pub(super) fn delete(connection: &ConnectionArgs, slot: u8) -> Result<()> {
    let mut token = connection.connect()?;
    match token.delete(slot) {
        Err(DeviceError::NeedsAuth { .. }) => {
            authenticate(&mut token, connection)?;
            token.delete(slot)?;
        }
        other => other?,
    }
    println!(
        "deleted the seed of {} (its title stays until the slot is burned again)",
        recorded::slot_reference(&token, slot)
    );
    eprintln!(
        "oathdesk: if the vault records a credential there, retire it: oathdesk token retire {}",
        recorded::slot_reference(&token, slot)
    );
    Ok(())
}

pub(super) fn set_key(connection: &ConnectionArgs, new_key_file: Option<PathBuf>) -> Result<()> {
    let mut token = connection.connect()?;
    if token.family() != Family::Molto2 {
        bail!("single-profile tokens have a fixed key that cannot be changed");
    }
    let new_text = read_passphrase(new_key_file.as_ref(), NEW_KEY_ENV, "New customer key: ")?;
    if new_key_file.is_none() && std::env::var(NEW_KEY_ENV).map_or(true, |v| v.is_empty()) {
        let again = rpassword::prompt_password("New customer key again: ")
            .map_err(|_| anyhow!("cannot read the key again"))?;
        if *new_text != again {
            bail!("the two new keys differ; nothing was changed");
        }
    }
    if new_text.is_empty() {
        bail!("the new customer key is empty");
    }
    let new_key = key_from_text(&new_text, connection.key_hex)?;
    if new_key.is_molto2_factory() {
        bail!("that is the factory key, which is public: choose another");
    }
    if new_text.len() != 16 {
        eprintln!(
            "oathdesk: note: the key has {} bytes; any length works (the token keeps SHA-1 of it), but Token2's own \
             tools expect 16",
            new_text.len()
        );
    }
    authenticate_quietly(&mut token, connection)?;
    token.set_key(&new_key)?;
    println!(
        "press ▲ on the token to confirm the new customer key; until then the old key stays in force. Keep the key \
         safe: a lost key costs a factory reset, which wipes every slot"
    );
    Ok(())
}

pub(super) fn reset(connection: &ConnectionArgs) -> Result<()> {
    let mut token = connection.connect()?;
    let confirmation = token.factory_reset()?;
    println!(
        "press ▲ on the token to confirm the factory reset: every slot is wiped and the customer key returns to \
         the factory default{}",
        if confirmation == Confirmation::Accepted {
            " (the token answered 9000; if it shows no prompt, the reset is done)"
        } else {
            ""
        }
    );
    Ok(())
}
