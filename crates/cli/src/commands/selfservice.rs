//! `oathdesk token delivery-link`: a one-time link with which a user
//! confirms that their token arrived (the vault decides and records it:
//! `oathdesk_vault::selfservice`). The link is printed for the helpdesk to
//! read out, or mailed to the user through Microsoft Graph; it is never
//! written to the audit log, which names only its handle.

use anyhow::{Result, anyhow, bail};
use clap::Args;
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::{DeliveryLink, Session};
use serde_json::json;

#[derive(Args, Debug)]
pub struct DeliveryLinkArgs {
    /// SERIAL, SERIAL:SLOT or #ID of a shipped (or assigned) token.
    pub token: TokenRef,
    /// The console's address as users reach it (https://otp.example.com); through
    /// --server, that console's address unless given.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Mail the link to the user (their UPN) through Microsoft Graph, from the helpdesk
    /// policy's notify.mail_from; the link is then not printed.
    #[arg(long)]
    pub send_mail: bool,
    /// (With --send-mail: how to reach Entra; the app needs Mail.Send. Its --json prints JSON.)
    #[command(flatten)]
    pub entra: crate::commands::entra::EntraOptions,
}

/// The link's full address.
pub fn link_url(base: &str, path: &str) -> Result<String> {
    let base = base.trim().trim_end_matches('/');
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        bail!(
            "--base-url must start with https:// (the console's address as users reach it), not '{base}'"
        );
    }
    Ok(format!("{base}{path}"))
}

/// The mail a user gets.
pub fn mail_text(
    first_name: Option<&str>,
    credential: &str,
    url: &str,
    expires: &str,
) -> (String, String) {
    let greeting = first_name.map_or_else(|| "Hello,".to_owned(), |n| format!("Hello {n},"));
    (
        format!("Your token {credential}: confirm that it arrived"),
        format!(
            "{greeting}\n\nyour hardware token {credential} is on its way to you. When it has \
             arrived, open this link and type the code the token shows (press its button):\n\n\
             {url}\n\nThe link works once, until {expires}. If you did not expect a token, tell \
             the helpdesk.\n"
        ),
    )
}

/// A time as people read it (UTC).
pub fn utc(at: u64) -> String {
    expiry(at)
}

fn expiry(at: u64) -> String {
    jiff::Timestamp::from_second(at as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| at.to_string())
}

/// Prints (or mails) a link made here or by a console.
pub fn hand_over(
    session: Option<&mut Session>,
    link: &DeliveryLink,
    base: &str,
    args: &DeliveryLinkArgs,
    now: u64,
) -> Result<()> {
    let url = link_url(base, &format!("/d/{}", link.secret))?;
    if args.send_mail {
        let session = session.ok_or_else(|| {
            anyhow!("--send-mail works on the vault itself; through a console, read the link out")
        })?;
        let from = session
            .helpdesk_policy()?
            .notify
            .mail_from
            .ok_or_else(|| anyhow!("the helpdesk policy's notify.mail_from is not set: set it, or leave out --send-mail and read the link out"))?;
        let (subject, text) = mail_text(
            link.first_name.as_deref(),
            &link.credential,
            &url,
            &expiry(link.expires_at),
        );
        let outcome =
            crate::commands::entra::send_mail(&args.entra, &from, &link.user, &subject, &text);
        let event = oathdesk_vault::audit::AuditEvent {
            outcome: if outcome.is_ok() { "ok" } else { "failed" }.into(),
            ..oathdesk_vault::audit::AuditEvent::ok("delivery_link.mail")
        }
        .credential(link.credential.clone())
        .user(link.user.clone())
        .detail(json!({"link": link.handle, "from": from}));
        session.record(event, now)?;
        outcome.map_err(|e| anyhow!("the link was made but not mailed ({e:#}); make a new one"))?;
        if args.entra.json {
            println!(
                "{}",
                json!({"mailed_to": link.user, "handle": link.handle, "credential": link.credential, "expires_at": link.expires_at})
            );
        } else {
            eprintln!(
                "oathdesk: mailed a delivery link for {} to {} (valid until {})",
                link.credential,
                link.user,
                expiry(link.expires_at)
            );
        }
        return Ok(());
    }
    if args.entra.json {
        println!(
            "{}",
            json!({"url": url, "handle": link.handle, "credential": link.credential, "user": link.user, "expires_at": link.expires_at})
        );
    } else {
        println!("{url}");
        eprintln!(
            "oathdesk: a one-time link for {} ({}), valid until {}: give it to the user only",
            link.credential,
            link.user,
            expiry(link.expires_at)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_mail() {
        assert_eq!(
            link_url("https://otp.example.com/", "/d/abc").unwrap(),
            "https://otp.example.com/d/abc"
        );
        assert!(link_url("otp.example.com", "/d/abc").is_err());
        let (subject, text) = mail_text(
            Some("Ada"),
            "2100001",
            "https://x/d/abc",
            "2026-12-18 10:00 UTC",
        );
        assert!(subject.contains("2100001"));
        assert!(text.starts_with("Hello Ada,") && text.contains("https://x/d/abc"));
    }
}
