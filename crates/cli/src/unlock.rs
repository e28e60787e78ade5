//! Finding, opening and unlocking the vault from the command line.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use oathdesk_vault::{Session, Unlock, Vault};
use zeroize::Zeroizing;

/// Where the vault is and who opens it. Also read from the environment:
/// OATHDESK_VAULT, OATHDESK_OPERATOR, OATHDESK_PASSPHRASE.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Vault access")]
pub struct VaultOptions {
    /// The vault file [env: OATHDESK_VAULT; default: $XDG_DATA_HOME/oathdesk/vault.db,
    /// i.e. ~/.local/share/oathdesk/vault.db].
    #[arg(long, value_name = "FILE", global = true)]
    pub vault: Option<PathBuf>,
    /// Who is working [env: OATHDESK_OPERATOR; default: the login name].
    #[arg(long, value_name = "NAME", global = true)]
    pub operator: Option<String>,
    /// Read the passphrase from the first line of FILE (else OATHDESK_PASSPHRASE, else a prompt).
    #[arg(long, value_name = "FILE", global = true)]
    pub passphrase_file: Option<PathBuf>,
    /// Unlock with this age identity file instead of a passphrase.
    #[arg(long, value_name = "FILE", global = true)]
    pub identity: Option<PathBuf>,
}

/// The environment variable of the passphrase.
pub const PASSPHRASE_ENV: &str = "OATHDESK_PASSPHRASE";

impl VaultOptions {
    /// The vault file to use.
    pub fn path(&self) -> Result<PathBuf> {
        if let Some(path) = &self.vault {
            return Ok(path.clone());
        }
        if let Some(path) = std::env::var_os("OATHDESK_VAULT").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
            })
            .or_else(|| std::env::var_os("APPDATA").map(PathBuf::from))
            .ok_or_else(|| {
                anyhow!("cannot tell where the vault is: pass --vault FILE or set OATHDESK_VAULT")
            })?;
        Ok(data.join("oathdesk").join("vault.db"))
    }

    /// The operator's name.
    pub fn operator(&self) -> Result<String> {
        self.operator
            .clone()
            .or_else(|| std::env::var("OATHDESK_OPERATOR").ok())
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("USERNAME").ok())
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| anyhow!("who is working? pass --operator NAME or set OATHDESK_OPERATOR"))
    }

    /// The passphrase, from a file, the environment or a prompt.
    pub fn passphrase(&self, prompt: &str) -> Result<Zeroizing<String>> {
        read_passphrase(self.passphrase_file.as_ref(), PASSPHRASE_ENV, prompt)
    }

    /// Opens and unlocks the vault.
    pub fn unlock(&self) -> Result<Session> {
        let path = self.path()?;
        let operator = self.operator()?;
        let vault = Vault::open(&path)?;
        let session = if let Some(identity_path) = &self.identity {
            let text =
                Zeroizing::new(std::fs::read_to_string(identity_path).with_context(|| {
                    format!("cannot read the identity file {}", identity_path.display())
                })?);
            vault.unlock(&operator, Unlock::Identity(&text))?
        } else {
            let passphrase = self.passphrase(&format!("Passphrase for {operator}: "))?;
            vault.unlock(&operator, Unlock::Passphrase(passphrase.as_bytes()))?
        };
        Ok(session)
    }
}

/// Reads a passphrase: file, then environment variable, then terminal prompt.
pub fn read_passphrase(
    file: Option<&PathBuf>,
    env: &str,
    prompt: &str,
) -> Result<Zeroizing<String>> {
    if let Some(path) = file {
        let content = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the passphrase file {}", path.display()))?,
        );
        let line = content.lines().next().unwrap_or_default();
        if line.is_empty() {
            bail!("the passphrase file {} is empty", path.display());
        }
        return Ok(Zeroizing::new(line.to_owned()));
    }
    if let Ok(value) = std::env::var(env)
        && !value.is_empty()
    {
        return Ok(Zeroizing::new(value));
    }
    let value = rpassword::prompt_password(prompt).map_err(|_| {
        anyhow!(
            "no passphrase: set {env}, pass a passphrase file, or run in a terminal to be asked"
        )
    })?;
    Ok(Zeroizing::new(value))
}
