//! Finding, opening and unlocking the vault from the command line.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use oathdesk_vault::{Location, Session, Unlock, Vault};
use zeroize::Zeroizing;

/// Where the vault is and who opens it. Also read from the environment:
/// OATHDESK_DATABASE_URL, OATHDESK_VAULT, OATHDESK_OPERATOR, OATHDESK_PASSPHRASE.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Vault access")]
pub struct VaultOptions {
    /// The vault file [env: OATHDESK_VAULT; default: $XDG_DATA_HOME/oathdesk/vault.db,
    /// i.e. ~/.local/share/oathdesk/vault.db].
    #[arg(long, value_name = "FILE", global = true)]
    pub vault: Option<PathBuf>,
    // The help is an attribute, not a doc comment: rustdoc reads `[:PORT]` as a link.
    #[arg(
        long,
        value_name = "URL",
        global = true,
        conflicts_with = "vault",
        help = "The vault's database instead of a file: postgres://USER@HOST[:PORT]/DB[?schema=NAME] \
                (shared by several machines), sqlite://PATH or a path [env: OATHDESK_DATABASE_URL]. \
                Give a password through PGPASSWORD rather than in the URL"
    )]
    pub database: Option<String>,
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

// By hand, not derived: a database URL may carry a password, so Debug shows
// the URL as `Location` displays it (password masked).
impl std::fmt::Debug for VaultOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let database = self
            .database
            .as_deref()
            .map(|url| match Location::parse(url) {
                Ok(location) => location.to_string(),
                Err(_) => "(unreadable URL)".to_string(),
            });
        f.debug_struct("VaultOptions")
            .field("vault", &self.vault)
            .field("database", &database)
            .field("operator", &self.operator)
            .field("passphrase_file", &self.passphrase_file)
            .field("identity", &self.identity)
            .finish()
    }
}

/// The environment variable of the passphrase.
pub const PASSPHRASE_ENV: &str = "OATHDESK_PASSPHRASE";

/// The environment variable of the database URL.
pub const DATABASE_ENV: &str = "OATHDESK_DATABASE_URL";

impl VaultOptions {
    /// Where the vault is: `--database`, `--vault`, then
    /// OATHDESK_DATABASE_URL or OATHDESK_VAULT, then the default file.
    pub fn location(&self) -> Result<Location> {
        if let Some(url) = &self.database {
            return Ok(Location::parse(url)?);
        }
        if let Some(path) = &self.vault {
            return Ok(Location::Sqlite(path.clone()));
        }
        let url = std::env::var(DATABASE_ENV).ok().filter(|u| !u.is_empty());
        let file = std::env::var_os("OATHDESK_VAULT").filter(|p| !p.is_empty());
        match (url, file) {
            (Some(_), Some(_)) => bail!(
                "both {DATABASE_ENV} and OATHDESK_VAULT are set: unset one, or say which with \
                 --database URL or --vault FILE"
            ),
            (Some(url), None) => Ok(Location::parse(&url)?),
            (None, Some(file)) => Ok(Location::Sqlite(PathBuf::from(file))),
            (None, None) => Ok(Location::Sqlite(VaultOptions::default_path()?)),
        }
    }

    /// `$XDG_DATA_HOME/oathdesk/vault.db`.
    fn default_path() -> Result<PathBuf> {
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

    /// Opens the vault (migrating an older schema) without unlocking it.
    pub fn open(&self) -> Result<Vault> {
        Ok(Vault::open_at(&self.location()?)?)
    }

    /// Opens and unlocks the vault.
    pub fn unlock(&self) -> Result<Session> {
        self.unlock_at(&self.location()?)
    }

    /// Opens and unlocks the vault at `location` as the operator these
    /// options name.
    pub fn unlock_at(&self, location: &Location) -> Result<Session> {
        let operator = self.operator()?;
        let vault = Vault::open_at(location)?;
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

#[cfg(test)]
mod tests {
    use super::VaultOptions;

    #[test]
    fn debug_masks_a_database_password() {
        let options = VaultOptions {
            database: Some("postgres://alice:hunter2-secret@db.example/vault".into()),
            ..VaultOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("db.example"), "{shown}");
    }
}
