//! Seed provenance: for every seed oathdesk generates, which random number
//! generator made it, which operator, which command and when — recorded in
//! the token's `token.add` audit entry (hash-chained and MACed like every
//! entry), never the secret itself.

use super::tokens::{info, reference_of, resolve};
use super::*;

/// The generator behind `oathdesk_otp::seed::generate`.
pub const SEED_RNG: &str = "OsRng via getrandom (the operating system's CSPRNG)";

/// Where a generated seed came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SeedProvenance {
    /// The random number generator.
    pub rng: String,
    /// The operator whose session generated it.
    pub operator: String,
    /// The command or console action, e.g. `token add --generate`.
    pub command: String,
    /// Unix seconds.
    pub generated_at: u64,
}

impl<S: Store> Session<S> {
    /// The provenance of a seed this session's caller generated now with
    /// `oathdesk_otp::seed::generate`, for `command`: every path that
    /// records a generated seed (token add, burns, the REST generate)
    /// builds it here.
    pub(crate) fn provenance_of(&self, command: &str, now: u64) -> SeedProvenance {
        SeedProvenance {
            rng: SEED_RNG.to_owned(),
            operator: self.operator.clone(),
            command: command.to_owned(),
            generated_at: now,
        }
    }

    /// Adds a token whose seed this vault's caller just generated with
    /// [`defaults::generated_secret`]; `command` names the command or
    /// console action, for the audit entry's provenance.
    pub fn add_generated_token(
        &mut self,
        token: NewToken,
        command: &str,
        now: u64,
    ) -> Result<TokenInfo> {
        let provenance = self.provenance_of(command, now);
        let rows =
            self.add_tokens_audited(vec![token], now, "token.add", json!({"seed": provenance}))?;
        Ok(info(&rows[0]))
    }

    /// The provenance of a token's seed, when oathdesk generated it (none
    /// for imported or vendor seeds). Read from the audit entry that added
    /// this credential (the latest for its name since the row was created).
    pub fn seed_provenance(&mut self, token: &TokenRef) -> Result<Option<SeedProvenance>> {
        self.require(Permission::InventoryRead)?;
        let tx = self.store.read()?;
        let row = resolve(&tx, token)?;
        let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
        let found = tx
            .audit_all()?
            .into_iter()
            .rev()
            .filter(|entry| entry.at >= row.created_at && entry.outcome == "ok")
            .filter(|entry| entry.credential.as_deref() == Some(reference.as_str()))
            .find_map(|entry| {
                let detail: serde_json::Value = serde_json::from_str(&entry.detail).ok()?;
                // A burn names its credential: a slot burned again in the
                // same second keeps the earlier seed's provenance apart.
                if let Some(id) = detail.get("credential_id").and_then(|v| v.as_i64())
                    && id != row.id
                {
                    return None;
                }
                serde_json::from_value(detail.get("seed")?.clone()).ok()
            });
        Ok(found)
    }
}
