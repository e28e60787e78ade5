//! Burning a credential into a slot, with the vault's record before the first write and after the check.

use super::*;

pub(super) fn credential_for_burn(args: &BurnArgs) -> Result<Credential> {
    let mut credential = if args.generate {
        let algorithm = args.algorithm.unwrap_or_default();
        Credential::totp(seed::generate(seed::default_len(algorithm)).map_err(|e| anyhow!("{e}"))?)
    } else {
        let text = input::secret_text(args.secret.as_deref())?;
        input::credential_from_text(&text, &args.encoding)?
    };
    input::apply_params(
        &mut credential,
        &ParamArgs {
            algorithm: args.algorithm,
            digits: args.digits,
            period: args.period,
            ..ParamArgs::default()
        },
    )?;
    Ok(credential)
}

pub(super) fn burn(
    args: BurnArgs,
    connection: &ConnectionArgs,
    vault: &VaultOptions,
) -> Result<()> {
    let credential = credential_for_burn(&args)?;
    let mut token = connection.connect()?;
    let slot = slot_for(&token, args.slot)?;
    // Refuse what the token cannot take before asking for any key.
    let request = BurnRequest::new(
        token.family(),
        &credential,
        args.title.as_deref(),
        args.display_timeout,
    )?;
    if args.seed_only {
        request.seed_only(token.family())?;
    }
    let mut session = if args.no_vault {
        eprintln!(
            "oathdesk: warning: --no-vault: nothing records this secret; the token is the only place it will be"
        );
        None
    } else {
        Some(vault.unlock()?)
    };
    if token.family() == Family::SingleProfile && token.model().is_none() {
        // Said first: nothing else matters for a token that is never written.
        return Err(DeviceError::UnknownModel {
            serial: token.serial().to_owned(),
            known: oathdesk_devices::single::known_prefixes(),
        }
        .into());
    }
    if let Some(session) = session.as_mut() {
        refuse_known_secret(session, &credential, &token, slot, args.force)?;
    }
    authenticate(&mut token, connection)?;
    let now = input::now();
    let job = recorded::Burn {
        credential: credential.clone(),
        slot,
        title: args.title.clone(),
        display_timeout: args.display_timeout,
        user: args.user.clone(),
        label: args.label.clone(),
        overwrite: args.overwrite,
        seed_only: args.seed_only,
        generated_by: args
            .generate
            .then(|| "oathdesk device burn --generate".to_owned()),
    };
    let (report, info) = burn_job(&mut token, session.as_mut(), job, now)?;
    let reference = recorded::slot_reference(&token, slot);
    let code = current_code(&credential, now);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "token": reference,
                "credential_id": info.as_ref().map(|i| i.id),
                "state": info.as_ref().map(|i| i.state),
                "replaced": report.replaced,
                "apdus": report.apdus,
                "code": code,
            })
        );
    } else {
        let state = info
            .as_ref()
            .map(|i| format!("; vault: {}", i.state))
            .unwrap_or_default();
        println!(
            "burned {reference} ({}, {} digits, {} s){state}",
            credential.algorithm,
            credential.digits,
            period_of(&credential)
        );
        if let Some(code) = code {
            println!("the token should show {code} now");
        }
    }
    Ok(())
}

pub(in crate::commands) fn period_of(credential: &Credential) -> u64 {
    match credential.kind {
        Kind::Totp { step } => step.period(),
        Kind::Hotp { .. } => 0,
    }
}

pub(super) fn current_code(credential: &Credential, now: u64) -> Option<String> {
    let Kind::Totp { step } = credential.kind else {
        return None;
    };
    Totp::new(
        &credential.secret,
        credential.algorithm,
        credential.digits,
        step,
    )
    .generate_at(now)
    .ok()
    .map(|c| c.to_string())
}
