//! Seed provenance: for every seed oathdesk generates, which random number
//! generator made it, which operator, which command and when — never the
//! secret itself.
//!
//! It is kept twice, in the same transaction as the credential: in the
//! `token.add` or `device.burn.begin` audit entry (hash-chained and MACed
//! like every entry), and in a signed record keyed by the credential
//! ([`kind::SEED_PROVENANCE`]) that [`Session::seed_provenance`] reads with
//! one lookup. A vault from before the records keeps provenance in its
//! audit log only: the first seed it generates copies those into records,
//! once, and marks the records complete ([`COMPLETE`]); until then the
//! lookup falls back to reading the audit log.

use std::collections::HashMap;

use super::records;
use super::tokens::{info, reference_of, resolve};
use super::*;

/// The generator behind `oathdesk_otp::seed::generate`.
pub const SEED_RNG: &str = "OsRng via getrandom (the operating system's CSPRNG)";

/// The id of the record that says every generated seed has its record: a
/// credential without one has no provenance (imported or vendor seeds).
pub(crate) const COMPLETE: &str = "complete";

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

/// The body of the [`COMPLETE`] record.
#[derive(Serialize)]
struct Complete {
    /// Since when (the vault's creation, or its first seed generated after
    /// the records came in).
    since: u64,
}

/// The [`COMPLETE`] record, unsigned (the caller signs it).
pub(crate) fn complete_record(now: u64) -> Result<RecordRow> {
    records::record(
        kind::SEED_PROVENANCE,
        COMPLETE,
        "complete",
        &Complete { since: now },
        now,
    )
}

/// Records a generated seed's provenance for credential `credential_id`,
/// signed, in the caller's transaction. In a vault from before these
/// records, the first call also copies the older provenance out of the
/// audit log and marks the records complete.
pub(crate) fn record_provenance(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    credential_id: i64,
    provenance: &SeedProvenance,
    now: u64,
) -> Result<()> {
    let id = signed::row_id(credential_id);
    let mut rows = Vec::new();
    if records::read_one(tx, keys, kind::SEED_PROVENANCE, COMPLETE)?.is_none() {
        let audit = tx.audit_all()?;
        for row in tx.credentials(&CredentialFilter::default())? {
            if let Some(old) = provenance_in_audit(&audit, &row) {
                rows.push(provenance_record(row.id, &old, now)?);
            }
        }
        rows.push(complete_record(now)?);
    }
    rows.retain(|r| r.id != id);
    rows.push(provenance_record(credential_id, provenance, now)?);
    records::put(tx, keys, rows)
}

fn provenance_record(
    credential_id: i64,
    provenance: &SeedProvenance,
    now: u64,
) -> Result<RecordRow> {
    records::record(
        kind::SEED_PROVENANCE,
        &signed::row_id(credential_id),
        "generated",
        provenance,
        now,
    )
}

/// A credential's provenance as an audit log from before the records has
/// it: the latest entry for its reference since the row was created. A
/// burn names its credential id, which keeps a slot burned again in the
/// same second apart from the earlier seed.
fn provenance_in_audit(entries: &[AuditRow], row: &CredentialRow) -> Option<SeedProvenance> {
    let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
    entries
        .iter()
        .rev()
        .filter(|entry| entry.at >= row.created_at && entry.outcome == "ok")
        .filter(|entry| entry.credential.as_deref() == Some(reference.as_str()))
        .find_map(|entry| {
            let detail: serde_json::Value = serde_json::from_str(&entry.detail).ok()?;
            if let Some(id) = detail.get("credential_id").and_then(|v| v.as_i64())
                && id != row.id
            {
                return None;
            }
            serde_json::from_value(detail.get("seed")?.clone()).ok()
        })
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
    /// console action. Its provenance goes into the `token.add` audit
    /// entry and a signed record, in one transaction.
    pub fn add_generated_token(
        &mut self,
        token: NewToken,
        command: &str,
        now: u64,
    ) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        let provenance = self.provenance_of(command, now);
        let row = self.change(now, |tx, keys| {
            let row = insert_tokens(tx, keys, vec![token], now)?.remove(0);
            record_provenance(tx, keys, row.id, &provenance, now)?;
            let mut event = AuditEvent::ok("token.add")
                .credential(reference_of(row.serial.as_deref(), row.slot, row.id))
                .detail(json!({"seed": provenance}));
            event.user = row.upn.clone();
            Ok((row, event))
        })?;
        Ok(info(&row))
    }

    /// The provenance of a token's seed, when oathdesk generated it (none
    /// for imported or vendor seeds): its signed record, one lookup. Only a
    /// vault from before the records that has generated no seed since
    /// reads its audit log instead.
    pub fn seed_provenance(&mut self, token: &TokenRef) -> Result<Option<SeedProvenance>> {
        self.require(Permission::InventoryRead)?;
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        let tx = self.store.read()?;
        let row = resolve(&tx, token)?;
        let id = signed::row_id(row.id);
        let found = records::read(
            &tx,
            &keys,
            kind::SEED_PROVENANCE,
            &[id.clone(), COMPLETE.to_owned()],
        )?;
        let by_id: HashMap<&str, &RecordRow> = found.iter().map(|r| (r.id.as_str(), r)).collect();
        if let Some(record) = by_id.get(id.as_str()) {
            return Ok(Some(records::body(record)?));
        }
        if by_id.contains_key(COMPLETE) {
            return Ok(None);
        }
        Ok(provenance_in_audit(&tx.audit_all()?, &row))
    }
}
