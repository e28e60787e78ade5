//! `device provision`: a list of users onto a pile of tokens, one after another.

use super::*;

pub(super) fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} {{msg}} ({{elapsed}})"
        ))
        .expect("a valid template"),
    );
    bar
}

// ----------------------------------------------------------------- provision

pub(super) fn read_users(path: &std::path::Path) -> Result<Vec<recorded::ProvisionUser>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the users file {}", path.display()))?;
    let name = path.display();
    let users = recorded::parse_users(&text).map_err(|problems| {
        for problem in &problems {
            eprintln!("oathdesk: {name}: {problem}");
        }
        anyhow!(
            "{} bad line(s) in {name}; nothing was burned",
            problems.len()
        )
    })?;
    if users.is_empty() {
        bail!("{name} lists no users (one UPN per line)");
    }
    Ok(users)
}

/// Set by Ctrl-C during a provisioning run: the run stops after the burn in
/// progress instead of in the middle of it.
pub(super) static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(super) fn provision(
    args: ProvisionArgs,
    connection: &ConnectionArgs,
    vault: &VaultOptions,
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let users = read_users(&args.users)?;
    let started = Instant::now();
    let mut token = connection.connect()?;
    if token.family() != Family::Molto2 {
        bail!(
            "provision fills the profiles of one Molto-2; a single-profile token holds one user: use \
             'oathdesk enroll' or 'oathdesk device burn' for each"
        );
    }
    // Check the parameters once, before the key or the vault is touched.
    // Only its parameters are used: each user gets a fresh secret.
    let mut template = Credential::totp(Secret::from_bytes(vec![
        0x5A;
        seed::default_len(args.algorithm)
    ]));
    input::apply_params(
        &mut template,
        &ParamArgs {
            algorithm: Some(args.algorithm),
            digits: Some(args.digits),
            period: Some(args.period),
            ..ParamArgs::default()
        },
    )?;
    BurnRequest::new(Family::Molto2, &template, None, args.display_timeout)?;
    if args.first_slot >= token.profiles() {
        bail!(
            "--first-slot {} does not exist: slots are 0-{}",
            args.first_slot,
            token.profiles() - 1
        );
    }
    let mut session = vault.unlock()?;
    authenticate(&mut token, connection)?;
    let serial = token.serial().to_owned();
    let request = recorded::Provision {
        users,
        first_slot: args.first_slot,
        template,
        display_timeout: args.display_timeout,
        issuer: args.issuer.clone(),
    };
    // A second Ctrl-C ends the process at once (the slot in progress stays
    // marked burning in the vault).
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\noathdesk: stopping after the burn in progress (Ctrl-C again to stop at once)");
    });
    let bar = progress(0, "provisioning");
    let mut rows = Vec::new();
    let mut on_event = |event: recorded::ProvisionEvent<'_>| match event {
        recorded::ProvisionEvent::Planned { burns } => bar.set_length(burns as u64),
        recorded::ProvisionEvent::AlreadyDone { user, reference } => bar.suspend(|| {
            eprintln!("oathdesk: {user} already has {reference} on this token; skipped")
        }),
        recorded::ProvisionEvent::UnknownSeed { slot } => bar.suspend(|| {
            eprintln!("oathdesk: slot {slot} holds a seed the vault does not know; left alone")
        }),
        recorded::ProvisionEvent::Burning { user, slot } => {
            bar.set_message(format!("slot {slot} {user}"))
        }
        recorded::ProvisionEvent::Burned {
            user,
            burned,
            resumed,
        } => {
            bar.inc(1);
            for warning in &burned.report.warnings {
                bar.suspend(|| eprintln!("oathdesk: warning: {warning}"));
            }
            rows.push(serde_json::json!({
                "user": user,
                "slot": burned.report.slot,
                "credential": burned.info.reference(),
                "state": burned.info.state,
                "resumed": resumed,
                "apdus": burned.report.apdus,
            }));
        }
    };
    let outcome = recorded::provision(
        &mut token,
        &mut session,
        &request,
        &input::now,
        &mut on_event,
        &|| STOP.load(Ordering::SeqCst),
    );
    let summary = match outcome {
        Ok(summary) => summary,
        Err(error) => {
            bar.abandon();
            return Err(error.into());
        }
    };
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for row in &rows {
            println!(
                "{:<40} {}",
                row["user"].as_str().unwrap_or_default(),
                row["credential"].as_str().unwrap_or_default()
            );
        }
    }
    eprintln!(
        "oathdesk: provisioned {} user(s) on {serial} ({} resumed, {} already done) with {} APDUs in {:.1} s",
        summary.burned.len(),
        summary.resumed,
        summary.already_done,
        token.apdus(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

// ----------------------------------------------------------------- simulators
