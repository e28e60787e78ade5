//! `oathdesk enroll`: the remote-enrolment flow, with its checks — whose
//! QR code it is, whether the vault knows the secret already, and a code
//! with time left to type it.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use oathdesk_devices::params::{DisplayTimeout, Family};
use oathdesk_devices::programmer::BurnRequest;
use oathdesk_devices::{enrolment, recorded};
use oathdesk_otp::{Credential, Verifier};
use oathdesk_vault::model::TokenRef;

use super::device::{ConnectionArgs, authenticate, burn_job, period_of, refuse_known_secret};
use crate::input::{self, EncodingArgs, rfc3339};
use crate::unlock::VaultOptions;

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The user whose account is being set up.
    #[arg(long, value_name = "UPN")]
    pub user: String,
    /// A screenshot of the QR code on the user's setup page (PNG or JPEG).
    #[arg(long, value_name = "IMAGE", group = "source")]
    pub qr: Option<PathBuf>,
    /// The otpauth:// URI ('-' or @FILE keep it out of the process list).
    #[arg(long, value_name = "URI", group = "source")]
    pub uri: Option<String>,
    /// The secret ('-', @FILE or the value).
    #[arg(long, value_name = "SECRET", group = "source")]
    pub secret: Option<String>,
    #[command(flatten)]
    pub encoding: EncodingArgs,
    /// Molto-2 slot [default: the first free one].
    #[arg(long, value_name = "N")]
    pub slot: Option<u8>,
    /// Molto-2 title, 1 to 12 bytes [default: from --title-template].
    #[arg(long, conflicts_with = "title_template")]
    pub title: Option<String>,
    /// Molto-2 title from {org} (the QR label's organisation), {upn} and {upn-local}, fitted
    /// into 12 bytes.
    #[arg(long, value_name = "TEMPLATE", default_value = enrolment::DEFAULT_TITLE_TEMPLATE)]
    pub title_template: String,
    #[arg(long, value_name = "S", default_value = "30")]
    pub display_timeout: DisplayTimeout,
    /// Replace what the slot holds.
    #[arg(long)]
    pub overwrite: bool,
    /// Enrol even when the QR code's account differs from --user, or the vault holds this
    /// secret on another credential already.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[arg(long)]
    pub json: bool,
}

/// `oathdesk enroll`: the remote-enrolment flow. The user opens Microsoft's
/// (or another provider's) setup page and shares the screen; the admin
/// captures the QR code, oathdesk stores the secret, burns it, and prints
/// the code the user types to finish the setup.
pub fn enroll(args: EnrollArgs, vault: &VaultOptions) -> Result<()> {
    let mut credential = enrollment_credential(&args)?;
    // Microsoft's QR codes name the account (the UPN) in their label: one
    // for somebody else is refused before anything is touched.
    if let Err(mismatch) = enrolment::check_account(&credential, &args.user) {
        if !args.force {
            return Err(mismatch.into());
        }
        eprintln!(
            "oathdesk: warning: --force: the QR code is for {}, enrolled for {} as asked",
            mismatch.qr_account, mismatch.user
        );
    }
    // The vault keeps the QR code's issuer and label as they were.
    let label = enrolment::qr_label(&credential);
    if credential.account.is_empty() {
        credential.account = args.user.clone();
    }
    let connection = &args.connection;
    let mut token = connection.connect()?;
    let title = match (&args.title, token.family()) {
        (Some(title), _) => Some(title.clone()),
        (None, Family::Molto2) => Some(enrolment::title(
            &args.title_template,
            &enrolment::organisation(&credential, &args.user),
            &args.user,
        )?),
        (None, Family::SingleProfile) => None,
    };
    BurnRequest::new(
        token.family(),
        &credential,
        title.as_deref(),
        args.display_timeout,
    )?;
    let mut session = vault.unlock()?;
    authenticate(&mut token, connection)?;
    let slot = match (token.family(), args.slot) {
        (Family::SingleProfile, None | Some(0)) => 0,
        (Family::SingleProfile, Some(slot)) => {
            bail!("a single-profile token has one profile: drop --slot {slot}")
        }
        (Family::Molto2, Some(slot)) => slot,
        (Family::Molto2, None) => recorded::first_free_slot(&mut token, &mut session)?,
    };
    refuse_known_secret(&mut session, &credential, &token, slot, args.force)?;
    let now = input::now();
    let job = recorded::Burn {
        credential: credential.clone(),
        slot,
        title,
        display_timeout: args.display_timeout,
        user: Some(args.user.clone()),
        label,
        overwrite: args.overwrite,
        seed_only: false,
        // Enrolment burns the seed the identity provider's QR code carries.
        generated_by: None,
    };
    let (_, info) = burn_job(&mut token, Some(&mut session), job, now)?;
    let info = info.expect("enroll records in the vault");
    // A code with under 10 s left is gone before the user has typed it:
    // wait for the next step (the vault's rule).
    let wait = oathdesk_vault::enrolment_wait(period_of(&credential), input::now());
    if wait > 0 {
        eprintln!(
            "oathdesk: the current code has only {wait} s left: waiting {wait} s for the next one, so the user has \
             time to type it"
        );
        std::thread::sleep(std::time::Duration::from_secs(wait));
    }
    // The code comes from the vault's copy (what the provider will check);
    // the vault records its time step as released, so it never proves a
    // delivery, and audits the showing.
    let now = input::now();
    let code = session.enrolment_code(&TokenRef::Id(info.id), Verifier::Entra, now)?;
    let seconds_left = code.valid_until.saturating_sub(now);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "token": info.reference(),
                "user": args.user,
                "code": code.code,
                "valid_until": code.valid_until,
                "seconds_left": seconds_left,
                "accepted_until": code.accepted_until,
            })
        );
    } else {
        println!("burned {} for {}", info.reference(), args.user);
        println!(
            "code {}  — the user types this into the setup page now: the token shows it for {seconds_left} more \
             second(s), and Entra accepts it until {}",
            code.code,
            rfc3339(code.accepted_until)
        );
    }
    Ok(())
}

fn enrollment_credential(args: &EnrollArgs) -> Result<Credential> {
    if let Some(path) = &args.qr {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let texts = oathdesk_formats::qr::decode_image(&bytes)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let mut found = Vec::new();
        for text in &texts {
            let lower = text.to_ascii_lowercase();
            if lower.starts_with("otpauth://") || lower.starts_with("otpauth-migration://") {
                found.push(input::credential_from_text(text, &EncodingArgs::default())?);
            } else if lower.starts_with("phonefactor://") {
                bail!(
                    "{}: this QR code is for the Microsoft Authenticator app (phonefactor://), not for a hardware \
                     token: on the setup page choose 'I want to use a different authenticator app' and capture \
                     that QR code",
                    path.display()
                );
            }
        }
        return match found.len() {
            1 => Ok(found.remove(0)),
            0 if texts.is_empty() => bail!(
                "{}: no QR code found (crop the screenshot to the code or take it at a larger size)",
                path.display()
            ),
            0 => bail!("{}: the QR code holds no otpauth:// URI", path.display()),
            n => bail!(
                "{}: {n} accounts found; crop the screenshot to the one QR code to enrol",
                path.display()
            ),
        };
    }
    let text = match (&args.uri, &args.secret) {
        (Some(uri), _) => input::secret_text(Some(uri))?,
        (None, secret) => input::secret_text(secret.as_deref())?,
    };
    input::credential_from_text(&text, &args.encoding)
}
