//! `oathdesk notify`: telling users what the helpdesk did in their name.
//!
//! The vault queues a notice in the same transaction as the release (or
//! the refusal, or the approval request) when the policy asks for one, so
//! no release goes untold because a webhook was down; this command sends
//! what is queued and records each outcome in the audit log.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use oathdesk_notify::{Event, Notice, Webhook};
use oathdesk_vault::Session;
use oathdesk_vault::verification::Policy;
use zeroize::Zeroizing;

use crate::input;
use crate::unlock::VaultOptions;

/// Attempts (across runs) after which a notice is given up and marked failed.
const GIVE_UP_AFTER: u32 = 10;

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send the queued notices through the policy's channel.
    #[command(after_help = "\
The webhook's signing secret comes from OATHDESK_WEBHOOK_SECRET or --secret-file (at least 16 \
bytes), never from an argument. Mail goes through Microsoft Graph from the policy's \
notify.mail_from mailbox to the user's mail on file (else their UPN), with the app's \
credential as for 'oathdesk entra' (Mail.Send). A notice that cannot be sent stays queued for the next run and \
is marked failed after 10 attempts; every outcome is audited. Run it from cron or a systemd \
timer, or after each helpdesk session.

Example:
  OATHDESK_WEBHOOK_SECRET=… oathdesk notify send")]
    Send {
        /// Read the webhook's signing secret from FILE.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// (For the mail channel: how to reach Entra; the app needs Mail.Send.)
        #[command(flatten)]
        entra: crate::commands::entra::EntraOptions,
    },
    /// List notices (queued, sent, failed).
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: NotifyCommand, options: &VaultOptions) -> Result<()> {
    let mut session = options.unlock()?;
    match command {
        NotifyCommand::List { state, json } => {
            let notices = session.notices(state.as_deref())?;
            if json {
                println!("{}", serde_json::to_string(&notices)?);
            } else {
                for n in notices {
                    println!(
                        "{:<14} {:<8} {:<20} {:<28} {} attempt(s){}",
                        n.id,
                        n.state,
                        n.event,
                        n.user,
                        n.attempts,
                        n.last_error
                            .map(|e| format!(", last: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        NotifyCommand::Send { secret_file, entra } => {
            let (sent, failed) = send_by_policy(&mut session, secret_file.as_deref(), &entra)?;
            println!("{sent} notice(s) sent, {failed} not sent (still queued or given up)");
            if failed > 0 {
                bail!("{failed} notice(s) could not be sent: see 'oathdesk notify list'");
            }
        }
    }
    Ok(())
}

/// The notice document of a queued notice.
pub fn notice_of(queued: &oathdesk_vault::Notice, policy: &Policy) -> Result<Notice> {
    let event: Event = serde_json::from_value(serde_json::json!(queued.event)).map_err(|_| {
        anyhow!(
            "notice {} has an unknown event '{}'",
            queued.id,
            queued.event
        )
    })?;
    let mut notice = Notice::new(&queued.id, event, queued.at, &queued.user, &queued.operator);
    notice.user_display_name = queued.display_name.clone();
    notice.approver = queued.approver.clone();
    notice.ticket = queued.ticket.clone();
    notice.method = Some(queued.methods.join(" + ")).filter(|m| !m.is_empty());
    notice.reason = queued.reason.clone();
    notice.organisation = policy.notify.organisation.clone();
    notice.report_to = policy.notify.report_to.clone();
    Ok(notice)
}

/// Sends the queued notices through the policy's channel (mail through
/// Graph, or the webhook); returns (sent, not sent).
pub fn send_by_policy(
    session: &mut Session,
    secret_file: Option<&std::path::Path>,
    entra: &crate::commands::entra::EntraOptions,
) -> Result<(u64, u64)> {
    if session.helpdesk_policy()?.notify.channel.as_deref() == Some("mail") {
        crate::commands::entra::send_notices_by_mail(session, entra)
    } else {
        send_queued(session, secret_file)
    }
}

/// Sends every queued notice by webhook; returns (sent, not sent).
pub fn send_queued(
    session: &mut Session,
    secret_file: Option<&std::path::Path>,
) -> Result<(u64, u64)> {
    let policy = session.helpdesk_policy()?;
    let queued = session.notices(Some("queued"))?;
    if queued.is_empty() {
        return Ok((0, 0));
    }
    let webhook = match policy.notify.channel.as_deref() {
        Some("webhook") => {
            let url = policy
                .notify
                .webhook_url
                .as_deref()
                .ok_or_else(|| anyhow!("the policy's notify.webhook_url is not set"))?;
            let secret = match secret_file {
                Some(path) => Zeroizing::new(
                    std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?
                        .trim_ascii()
                        .to_vec(),
                ),
                None => Zeroizing::new(
                    std::env::var("OATHDESK_WEBHOOK_SECRET")
                        .map_err(|_| {
                            anyhow!(
                                "give the webhook's signing secret in OATHDESK_WEBHOOK_SECRET or --secret-file"
                            )
                        })?
                        .into_bytes(),
                ),
            };
            Webhook::new(url, secret)?
        }
        _ => bail!("the policy names no channel for notices (notify.channel)"),
    };
    let (mut sent, mut failed) = (0, 0);
    for queued in queued {
        let notice = notice_of(&queued, &policy)?;
        let outcome = webhook
            .send(&notice, input::now())
            .map(|delivered| delivered.attempts)
            .map_err(|e| e.to_string());
        record_outcome(session, &queued, outcome, &mut sent, &mut failed)?;
    }
    Ok((sent, failed))
}

/// Records one notice's outcome (audited) and counts it.
pub fn record_outcome(
    session: &mut Session,
    queued: &oathdesk_vault::Notice,
    outcome: std::result::Result<u32, String>,
    sent: &mut u64,
    failed: &mut u64,
) -> Result<()> {
    let give_up = queued.attempts + 1 >= GIVE_UP_AFTER;
    if let Err(error) = &outcome {
        eprintln!("oathdesk: notice {} to {}: {error}", queued.id, queued.user);
        *failed += 1;
    } else {
        *sent += 1;
    }
    session.notice_outcome(&queued.id, outcome, give_up, input::now())?;
    Ok(())
}
