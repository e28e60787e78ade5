//! `oathdesk oidc`: which groups of the identity provider give which role
//! at the console, and `serve`'s OpenID Connect flags.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use oathdesk_entra::assertion::CertificateCredential;
use oathdesk_entra::auth::ClientCredential;
use oathdesk_server::oidc::{OidcClient, OidcConfig};
use zeroize::Zeroizing;

use crate::input;
use crate::unlock::VaultOptions;

/// Map the identity provider's groups or app roles to console roles.
#[derive(Subcommand, Debug)]
#[command(after_help = "\
Staff sign in at the console with their organisation's account ('oathdesk serve \
--oidc-issuer'). A group object id (the 'groups' claim) or an app-role value (the 'roles' \
claim) mapped here gives its members a role; no mapping, no access. Only helpdesk and \
auditor: admins and provisioners hold a key of the vault and sign in with their own passphrase.

Examples:
  oathdesk oidc map 5c3e1f7a-0000-4000-8000-000000000001 helpdesk
  oathdesk oidc map Auditors auditor
  oathdesk oidc list
  oathdesk oidc unmap Auditors")]
pub enum OidcCommand {
    /// Give the members of a group (or holders of an app role) a role.
    Map {
        /// The group's object id or the app role's value, as the ID token carries it.
        claim: String,
        /// helpdesk or auditor.
        role: String,
    },
    /// Remove a mapping (its accounts' sessions end now).
    Unmap { claim: String },
    /// The mappings.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: OidcCommand, options: &VaultOptions) -> Result<()> {
    let mut session = options.unlock()?;
    match command {
        OidcCommand::Map { claim, role } => {
            let mapping = session.oidc_map(&claim, &role, input::now())?;
            println!(
                "members of '{}' sign in as {} (their account is made at their first sign-in)",
                mapping.claim, mapping.role
            );
        }
        OidcCommand::Unmap { claim } => {
            session.oidc_unmap(&claim, input::now())?;
            println!("'{}' no longer gives a role", claim.trim());
        }
        OidcCommand::List { json } => {
            let mappings = session.oidc_mappings()?;
            if json {
                println!("{}", serde_json::to_string(&mappings)?);
            } else if mappings.is_empty() {
                println!(
                    "no mappings: nobody signs in through the identity provider \
                     (add one with 'oathdesk oidc map GROUP ROLE')"
                );
            } else {
                for m in mappings {
                    println!("{}\t{}\t(by {})", m.claim, m.role, m.created_by);
                }
            }
        }
    }
    Ok(())
}

/// `serve`'s sign-in through an identity provider.
#[derive(Args, Debug, Default)]
pub struct OidcServeOptions {
    /// Let helpdesk and auditor staff sign in through this OpenID Connect provider (its
    /// issuer, e.g. https://login.microsoftonline.com/TENANT/v2.0); groups map to roles
    /// with 'oathdesk oidc map'.
    #[arg(long, value_name = "URL", requires_all = ["oidc_client_id", "oidc_redirect_url"])]
    pub oidc_issuer: Option<String>,
    /// The app registration's client (application) id.
    #[arg(long, value_name = "ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// The console's callback as registered at the provider:
    /// https://HOST/oidc/callback.
    #[arg(long, value_name = "URL", requires = "oidc_issuer")]
    pub oidc_redirect_url: Option<String>,
    /// A file holding the app's client secret.
    #[arg(
        long,
        value_name = "FILE",
        requires = "oidc_issuer",
        conflicts_with = "oidc_certificate_file"
    )]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// A PEM file with the app's certificate and its RSA private key (private_key_jwt).
    #[arg(long, value_name = "FILE", requires = "oidc_issuer")]
    pub oidc_certificate_file: Option<PathBuf>,
}

fn read_private(path: &PathBuf, flag: &str) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("{flag}: cannot read {}", path.display()))?,
    );
    Ok(text)
}

fn check_url(url: &str, flag: &str) -> Result<()> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    if !url.starts_with("https://") && !loopback {
        bail!("{flag}: '{url}' must be an https:// URL (plain http only on loopback, for tests)");
    }
    Ok(())
}

impl OidcServeOptions {
    /// The console's OpenID Connect client, if configured.
    pub fn client(&self) -> Result<Option<Arc<OidcClient>>> {
        let Some(issuer) = &self.oidc_issuer else {
            return Ok(None);
        };
        let client_id = self
            .oidc_client_id
            .clone()
            .ok_or_else(|| anyhow!("--oidc-issuer needs --oidc-client-id"))?;
        let redirect_url = self
            .oidc_redirect_url
            .clone()
            .ok_or_else(|| anyhow!("--oidc-issuer needs --oidc-redirect-url"))?;
        check_url(issuer, "--oidc-issuer")?;
        check_url(&redirect_url, "--oidc-redirect-url")?;
        if !redirect_url.ends_with("/oidc/callback") {
            bail!(
                "--oidc-redirect-url: '{redirect_url}' must end with /oidc/callback (the console's \
                 callback; register the same URL at the provider)"
            );
        }
        let credential = match (&self.oidc_client_secret_file, &self.oidc_certificate_file) {
            (Some(path), _) => {
                let secret = read_private(path, "--oidc-client-secret-file")?;
                let secret = secret.trim();
                if secret.is_empty() {
                    bail!("--oidc-client-secret-file: {} is empty", path.display());
                }
                Some(ClientCredential::Secret(Zeroizing::new(secret.to_owned())))
            }
            (None, Some(path)) => {
                let pem = read_private(path, "--oidc-certificate-file")?;
                Some(ClientCredential::Certificate(
                    CertificateCredential::from_pem(&pem)
                        .map_err(|e| anyhow!("--oidc-certificate-file {}: {e}", path.display()))?,
                ))
            }
            (None, None) => None,
        };
        Ok(Some(Arc::new(OidcClient::new(OidcConfig {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id,
            credential,
            redirect_url,
        }))))
    }
}
