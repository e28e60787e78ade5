//! Opening, unlocking and working with a vault.
//!
//! [`Vault`] is a store that has not been unlocked: it can list operators
//! and nothing else. [`Vault::unlock`] turns it into a [`Session`], which
//! holds the vault key for one operator; every change a session makes is
//! one transaction with its audit entry, so a change without its audit
//! entry (or the reverse) never reaches the database.

use std::collections::HashMap;
use std::path::Path;

use oathdesk_otp::{
    Algorithm, Credential, Digits, Hotp, Kind, LastingCode, Secret, TimeStep, Totp, Verifier,
    Window,
};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::audit::{self, Action, AuditEvent, ChainReport};
use crate::crypto::{self, KdfParams, SecretBinding, VaultKey};
use crate::error::{Error, Result};
use crate::identify::{IdentifyIndex, IdentifyMatch};
use crate::location::Location;
use crate::model::{
    CredentialRow, Custody, Device, DeviceKind, EntraLink, Event, State, TokenRef, User,
};
use crate::policy::{Permission, Role};
use crate::signed::{self, Signer, kind};
use crate::store::any::AnyStore;
use crate::store::copy;
use crate::store::{
    AuditRow, CredentialFilter, HeldSecret, OperatorRow, RecordRow, Store, StoreTx,
};
pub(crate) use roles::Principal;

mod backup;
mod batch;
mod burns;
mod copying;
mod counters;
pub mod custody;
mod custody_match;
mod delivery;
mod device_writes;
mod entra;
pub mod exchange;
mod facts_staging;
mod fleet;
mod helpdesk;
mod helpdesk_issue;
mod identify;
mod keys;
mod late_lock;
pub mod oidc;
mod provenance;
mod records;
pub mod recovery;
mod roles;
mod secrets;
pub mod selfservice;
mod signin;
mod staging;
mod tap;
mod tokens;
pub mod verification;
pub mod web;

#[allow(unused_imports)]
pub(crate) use self::{
    batch::*, delivery::*, entra::*, helpdesk::*, keys::*, secrets::*, staging::*, tokens::*,
};
pub use backup::{BackupReport, RestoreReport, restore};
pub use copying::CopyReport;
// (VaultReport is defined below.)
pub use counters::RESYNC_LOOK_AHEAD;
pub use custody::{CustodyEntry, CustodyExport, SerialSelector};
pub use custody_match::{CustodyBatch, CustodyCheck, CustodyFound, MatchedBy};
pub use delivery::{Delivery, EnrolmentCode};
pub use device_writes::{DeviceWrite, ENROLMENT_MIN_SECONDS_LEFT, enrolment_wait};
pub use entra::{CSV_EXPORT_TENANT, LostInEntra, OnLost, link_is_live};
pub use fleet::{FORENSIC_QUIET_S, ForensicHit, ForensicReport, ForensicTarget, TokenCheck};
pub(crate) use fleet::{record_sighting, source as sighting_source};
pub use helpdesk::{HelpdeskGrant, HelpdeskRequest};
pub use identify::{IdentifyHit, code_position};
pub use provenance::{SEED_RNG, SeedProvenance};
pub use selfservice::{DeliveryLink, LinkPage, LinkProblem};
pub use tap::TapPermit;
pub use tokens::{NewToken, TokenInfo, defaults};

/// Settings kept in the vault, with their defaults.
pub mod settings {
    /// Helpdesk codes per user per hour.
    pub const RATE_LIMIT: (&str, u64) = ("helpdesk.codes_per_hour", 5);
    /// Seconds between delivery and the purge of a secret (0: at delivery).
    pub const PURGE_GRACE: (&str, u64) = ("purge.grace_seconds", 0);
    /// Steps either side searched when a delivered token's code is checked.
    pub const DELIVERY_WINDOW: (&str, u64) = ("deliver.window_steps", 10);
    /// The widest delivery window: released steps are remembered this far
    /// back, so a wider one could take a code the helpdesk gave out for proof.
    pub const DELIVERY_WINDOW_MAX: u64 = 100;
    /// What `token lost`/`retire` do in Entra ([`super::entra::OnLost`]:
    /// 0 report, 1 unassign, 2 delete).
    pub const ENTRA_ON_LOST: (&str, u64) = ("entra.on_lost", 0);
    /// Seconds a self-service delivery link stays valid (14 days).
    pub const DELIVERY_LINK_LIFETIME: (&str, u64) =
        ("selfservice.link_lifetime_seconds", 14 * 86_400);
    /// Wrong codes a self-service delivery link takes before it is locked.
    pub const DELIVERY_LINK_ATTEMPTS: (&str, u64) = ("selfservice.max_wrong_codes", 5);
    /// All settings.
    pub const ALL: [(&str, u64); 6] = [
        RATE_LIMIT,
        PURGE_GRACE,
        DELIVERY_WINDOW,
        ENTRA_ON_LOST,
        DELIVERY_LINK_LIFETIME,
        DELIVERY_LINK_ATTEMPTS,
    ];

    /// Settings read and shown by name where they have names.
    pub use super::entra::{describe, parse_value};
}

/// A vault that is not unlocked.
///
/// The store defaults to [`AnyStore`] (SQLite or PostgreSQL, chosen at run
/// time), so `Vault` and [`Session`] need no type parameter in code that
/// works with either.
pub struct Vault<S: Store = AnyStore> {
    pub(crate) store: S,
}

/// How an operator proves who they are.
pub enum Unlock<'a> {
    /// The operator's passphrase.
    Passphrase(&'a [u8]),
    /// The text of the operator's age identity file.
    Identity(&'a str),
}

/// A new operator's means of unlocking.
pub enum NewOperator<'a> {
    /// A passphrase, stretched with these Argon2id parameters.
    Passphrase(&'a [u8], KdfParams),
    /// An age X25519 public key (`age1…`); the operator keeps the identity.
    Recipient(&'a str),
}

/// An operator, as listed without unlocking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperatorInfo {
    pub name: String,
    /// `passphrase` or `age-identity`.
    pub unlock: &'static str,
    pub kdf: Option<String>,
    pub recipient: String,
    pub created_at: u64,
    pub created_by: String,
    /// `admin`, `provisioner`, `helpdesk` or `auditor`.
    pub role: String,
    /// Whether the slot opens the vault key (admins and provisioners);
    /// helpdesk and auditor operators work only through an unsealed console.
    pub key_slot: bool,
}

impl Vault<AnyStore> {
    /// Creates a vault file with its first operator.
    pub fn create(
        path: &Path,
        operator: &str,
        passphrase: &[u8],
        kdf: KdfParams,
        now: u64,
    ) -> Result<Vault> {
        Vault::create_at(&Location::from(path), operator, passphrase, kdf, now)
    }

    /// Opens a vault file.
    pub fn open(path: &Path) -> Result<Vault> {
        Vault::open_at(&Location::from(path))
    }

    /// Creates a vault with its first operator in a new file or an empty
    /// PostgreSQL database or schema.
    pub fn create_at(
        location: &Location,
        operator: &str,
        passphrase: &[u8],
        kdf: KdfParams,
        now: u64,
    ) -> Result<Vault> {
        // Check what needs no database before creating one.
        check_operator_name(operator)?;
        if passphrase.is_empty() {
            return Err(Error::Invalid("the passphrase is empty".into()));
        }
        Vault::init(AnyStore::create(location)?, operator, passphrase, kdf, now)
    }

    /// Opens a vault file or database, migrating its schema if it is older.
    pub fn open_at(location: &Location) -> Result<Vault> {
        Ok(Vault {
            store: AnyStore::open(location)?,
        })
    }
}

/// Names and labels end up in terminals, web pages and CSV files: no
/// control characters (they could rewrite a screen or split a row).
pub(crate) fn check_text(field: &str, value: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "the {field} contains a control character (a tab, line break or escape); remove it"
        )));
    }
    Ok(())
}

pub(crate) fn check_operator_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "an operator name is 1 to 128 printable characters".into(),
        ));
    }
    Ok(())
}

impl<S: Store> Vault<S> {
    /// Writes a new vault into an empty store.
    pub fn init(
        mut store: S,
        operator: &str,
        passphrase: &[u8],
        kdf: KdfParams,
        now: u64,
    ) -> Result<Vault<S>> {
        check_operator_name(operator)?;
        if passphrase.is_empty() {
            return Err(Error::Invalid("the passphrase is empty".into()));
        }
        let key = VaultKey::generate()?;
        {
            let tx = store.write()?;
            if tx.meta_get("format")?.is_some() {
                return Err(Error::Exists("a vault in this database".into()));
            }
            tx.meta_set("format", "oathdesk-vault-1")?;
            tx.meta_set("created_at", &now.to_string())?;
            // The first operator of a vault is its admin.
            let signer = Signer::new(&key);
            let keys = Keys {
                key: &key,
                signer: &signer,
                enforced: true,
            };
            put_operator(
                &tx,
                &keys,
                passphrase_slot(operator, passphrase, kdf, &key, operator, Role::Admin, now)?,
            )?;
            let audit_key = key.audit_key();
            tx.audit_key_put(1, &key.seal_data(audit_key.as_ref(), "audit key 1")?)?;
            let first = append_audit(
                &tx,
                &audit_key,
                1,
                operator,
                now,
                &AuditEvent::ok("vault.init")
                    .detail(json!({"kdf": kdf.to_string(), "role": "admin"})),
            )?;
            // A new vault's seed provenance is in records from the start.
            tx.records_put(&[provenance::complete_record(now)?])?;
            // No sightings yet: every drift series there is, is built.
            signer.put(&tx, kind::DRIFT_SERIES, vec![signer.series_complete()])?;
            // Signed from the start: the audit entry keeps row checking on
            // even if someone deletes the marker.
            signed::sign_all(&tx, &signer, &setting_names())?;
            let second = append_audit(
                &tx,
                &audit_key,
                1,
                operator,
                now,
                &AuditEvent::ok(signed::SIGN_ACTION).detail(json!({"new_vault": true})),
            )?;
            tx.commit()?;
            audit::anchor(&first);
            audit::anchor(&second);
        }
        Ok(Vault { store })
    }

    /// The operators and how each unlocks (no key needed).
    pub fn operators(&mut self) -> Result<Vec<OperatorInfo>> {
        let tx = self.store.read()?;
        Ok(tx.operators()?.into_iter().map(operator_info).collect())
    }

    /// Unlocks the vault as `operator`, who acts with the role of their
    /// (signed) operator row. The first admin to unlock a vault from before
    /// signed rows signs them (audited); otherwise this writes nothing.
    pub fn unlock(mut self, operator: &str, unlock: Unlock<'_>) -> Result<Session<S>> {
        let (key, audit_keys, row) = {
            let tx = self.store.read()?;
            let row = tx
                .operator(operator)?
                .ok_or_else(|| Error::UnknownOperator(operator.to_owned()))?;
            let identity = open_slot_identity(&row, &unlock)?;
            if row.wrapped_vault_key.is_empty() {
                return Err(Error::NoKeySlot {
                    operator: row.name.clone(),
                    role: Role::parse(&row.role).unwrap_or(Role::Helpdesk),
                });
            }
            let key = crypto::unwrap_vault_key(&identity, &row.wrapped_vault_key)
                .ok_or_else(|| Error::WrongIdentity(operator.to_owned()))?;
            let audit_keys = open_audit_keys(&tx, &key)?;
            (key, audit_keys, row)
        };
        Session::open(self.store, &row, None, key, audit_keys)
    }

    /// For a console that holds the vault key (unsealed): checks the
    /// operator's passphrase against their slot and opens a session for
    /// them with `console_key`, in their role. This is how helpdesk and
    /// auditor operators, who hold no key, sign in.
    pub fn unlock_with(
        mut self,
        operator: &str,
        unlock: Unlock<'_>,
        console_key: &VaultKey,
    ) -> Result<Session<S>> {
        let (audit_keys, row) = {
            let tx = self.store.read()?;
            let row = tx
                .operator(operator)?
                .ok_or_else(|| Error::UnknownOperator(operator.to_owned()))?;
            open_slot_identity(&row, &unlock)?;
            // A console whose key no longer opens the vault (rekeyed since
            // it was unsealed) is as good as sealed.
            let audit_keys = open_audit_keys(&tx, console_key).map_err(|_| Error::Sealed)?;
            (audit_keys, row)
        };
        Session::open(self.store, &row, None, console_key.clone(), audit_keys)
    }

    /// Checks an operator's passphrase or identity against their slot,
    /// without opening the vault (a password change asks for the current one).
    pub fn check_unlock(&mut self, operator: &str, unlock: Unlock<'_>) -> Result<()> {
        let tx = self.store.read()?;
        let row = tx
            .operator(operator)?
            .ok_or_else(|| Error::UnknownOperator(operator.to_owned()))?;
        open_slot_identity(&row, &unlock).map(drop)
    }

    /// Unlocks as the operator whose age identity this is (found by its
    /// public key): a console's `--unseal-key-file`.
    pub fn unlock_by_identity(mut self, identity_text: &str) -> Result<Session<S>> {
        let identity = crypto::parse_identity(identity_text)?;
        let recipient = identity.to_public().to_string();
        let name = {
            let tx = self.store.read()?;
            tx.operators()?
                .into_iter()
                .find(|o| o.recipient == recipient)
                .map(|o| o.name)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "no operator of this vault has the key {recipient}: add one with \
                         'oathdesk operator add NAME --role admin --recipient {recipient}'"
                    ))
                })?
        };
        self.unlock(&name, Unlock::Identity(identity_text))
    }
}

/// The names of the vault's settings.
pub(crate) fn setting_names() -> Vec<&'static str> {
    settings::ALL.iter().map(|(name, _)| *name).collect()
}

impl<S: Store> Session<S> {
    /// A session for the operator of `row`, whose slot opened `key`: their
    /// role is checked against its signature (an old vault's rows are
    /// signed here if they are an admin); `scopes` narrow it for an API token.
    pub(crate) fn open(
        store: S,
        row: &OperatorRow,
        scopes: Option<Vec<Permission>>,
        key: VaultKey,
        audit_keys: HashMap<i64, Zeroizing<[u8; 32]>>,
    ) -> Result<Session<S>> {
        Session::open_with(store, row, scopes, key, audit_keys, None)
    }

    /// [`Session::open`], with the stored MACs of the signed-rows marker
    /// and of the operator already read (`found`, as `StoreTx::row_macs_of`
    /// gives them: [`crate::store::GrantRows::macs`]): then, when the
    /// marker is among them, the session reads nothing as it opens.
    pub(crate) fn open_with(
        mut store: S,
        row: &OperatorRow,
        scopes: Option<Vec<Permission>>,
        key: VaultKey,
        audit_keys: HashMap<i64, Zeroizing<[u8; 32]>>,
        found: Option<Vec<(String, String, Vec<u8>)>>,
    ) -> Result<Session<S>> {
        let signer = Signer::new(&key);
        let role = Role::parse(&row.role);
        let (marker_kind, marker_id) = signed::SIGNED_MARKER;
        let marked = |found: &[(String, String, Vec<u8>)]| {
            found
                .iter()
                .any(|(k, i, _)| k == marker_kind && i == marker_id)
        };
        let enforced = {
            let (id, mac) = signer.operator(row);
            let name = format!("operator {} (role {})", row.name, row.role);
            let (found, enforced) = match found {
                Some(found) if marked(&found) => (found, true),
                _ => {
                    let tx = store.read()?;
                    // The marker and the operator's signature in one round
                    // trip (every request a console serves opens a session).
                    let found = tx.row_macs_of(&[
                        (marker_kind, marker_id.to_owned()),
                        (kind::OPERATOR, id.clone()),
                    ])?;
                    // Without the marker, the audit log still says whether
                    // the rows were signed.
                    let enforced =
                        marked(&found) || tx.audit_count_action(signed::SIGN_ACTION)? > 0;
                    (found, enforced)
                }
            };
            let signature = found
                .iter()
                .find(|(k, i, _)| k == kind::OPERATOR && *i == id);
            if enforced && signature.is_none_or(|(_, _, stored)| !signed::same(stored, &mac)) {
                return Err(Error::Altered { row: name });
            }
            if role.is_none() {
                return Err(Error::Altered { row: name });
            }
            enforced
        };
        let role = role.expect("checked above");
        let epoch = audit_keys.keys().copied().max().unwrap_or(1);
        let mut session = Session {
            store,
            operator: row.name.clone(),
            key,
            signer,
            signed: enforced,
            principal: Principal {
                role,
                scopes,
                password_change_pending: false,
            },
            audit_keys,
            epoch,
            notices_queued: false,
            helpdesk_ahead: None,
        };
        if !enforced && role == Role::Admin {
            session.sign_old_rows(wall_clock())?;
        }
        Ok(session)
    }

    /// Signs the rows of a vault from before signed rows, once, as its
    /// first admin unlocks it; the audit entry says what the migration did.
    pub(crate) fn sign_old_rows(&mut self, now: u64) -> Result<()> {
        let operators: Vec<serde_json::Value> = self
            .store
            .read()?
            .operators()?
            .iter()
            .map(|o| json!({"name": o.name, "role": o.role}))
            .collect();
        self.change(now, |tx, keys| {
            // Another process may have signed them meanwhile.
            if signed::enforced(tx)? {
                return Ok(((), AuditEvent::ok("vault.open")));
            }
            // Helpdesk and auditor operators lose the key slot they had;
            // their sessions and tokens, which wrapped the key, end.
            let mut slots_removed = Vec::new();
            for row in tx.operators()? {
                let holds = !row.wrapped_vault_key.is_empty();
                if holds && Role::parse(&row.role).is_some_and(|r| !r.may_hold_key()) {
                    tx.web_grants_delete_account(Some(&row.name))?;
                    slots_removed.push(row.name.clone());
                    put_operator(tx, keys, row)?;
                }
            }
            let rows = signed::sign_all(tx, keys.signer, &setting_names())?;
            let event = AuditEvent::ok(signed::SIGN_ACTION).detail(json!({
                "rows": rows,
                "operators": operators,
                "key_slots_removed": slots_removed,
                "note": "operators from before roles could do everything: each became admin, \
                         except those with a web account, who kept its role; helpdesk and auditor \
                         operators no longer hold a key of the vault",
            }));
            Ok(((), event))
        })?;
        self.signed = true;
        Ok(())
    }
}

/// Seconds since the Unix epoch, for audit entries of refusals that have
/// no caller-given time.
pub(crate) fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a change works with: the vault key (a `Keys` is used where a key
/// is), the row signer, and whether rows must carry signatures.
pub(crate) struct Keys<'a> {
    pub key: &'a VaultKey,
    pub signer: &'a Signer,
    pub enforced: bool,
}

impl std::ops::Deref for Keys<'_> {
    type Target = VaultKey;
    fn deref(&self) -> &VaultKey {
        self.key
    }
}

/// Appends an entry to the audit chain inside `tx`; the caller hands the
/// row to [`audit::anchor`] once the transaction is committed.
pub(crate) fn append_audit(
    tx: &impl StoreTx,
    key: &[u8; 32],
    epoch: i64,
    operator: &str,
    at: u64,
    event: &AuditEvent,
) -> Result<AuditRow> {
    let row = audit_entry(tx, key, epoch, operator, at, event)?;
    tx.audit_insert(&row)?;
    Ok(row)
}

/// The entry that would append `event` to the chain's tail, hashed, not
/// yet written.
pub(crate) fn audit_entry(
    tx: &impl StoreTx,
    key: &[u8; 32],
    epoch: i64,
    operator: &str,
    at: u64,
    event: &AuditEvent,
) -> Result<AuditRow> {
    let tail = tx.audit_last()?;
    Ok(audit::chained(
        unchained_entry(epoch, operator, at, event),
        tail.as_ref(),
        key,
    ))
}

/// `event` as an entry not yet on the chain ([`audit::chained`] puts it
/// there, where the tail is known).
pub(crate) fn unchained_entry(epoch: i64, operator: &str, at: u64, event: &AuditEvent) -> AuditRow {
    AuditRow {
        seq: 0,
        at,
        operator: operator.to_owned(),
        action: event.action.clone(),
        outcome: event.outcome.clone(),
        user: event.user.clone(),
        credential: event.credential.clone(),
        ticket: event.ticket.clone(),
        detail: event.detail.to_string(),
        epoch,
        prev_hash: Vec::new(),
        hash: Vec::new(),
    }
}

/// A device serial the serial rule would refuse today.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SerialFinding {
    pub serial: String,
    pub rule: &'static str,
    /// How its credentials are addressed instead (`#ID`).
    pub references: Vec<String>,
}

/// What `vault verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VaultReport {
    /// No row altered, unsigned or deleted, and the audit chain intact.
    pub intact: bool,
    pub rows: signed::RowReport,
    pub audit: ChainReport,
    /// Device serials from before the serial rule
    /// ([`crate::model::serial_problem`]): their credentials are addressed
    /// by `#ID`. Not an alteration; worth renaming on the device's label.
    pub serials: Vec<SerialFinding>,
}

/// An unlocked vault.
pub struct Session<S: Store = AnyStore> {
    pub(crate) store: S,
    operator: String,
    pub(crate) key: VaultKey,
    /// Signs and checks rows (derived from `key`).
    pub(crate) signer: Signer,
    /// Whether rows must carry signatures (false only for a vault from
    /// before signed rows that no admin has unlocked yet).
    pub(crate) signed: bool,
    pub(crate) principal: Principal,
    audit_keys: HashMap<i64, Zeroizing<[u8; 32]>>,
    epoch: i64,
    /// A notice to a user was queued through this session (see
    /// [`Session::queued_notices`]).
    pub(crate) notices_queued: bool,
    /// A helpdesk request's rows, read with the grant that opened this
    /// session ([`Vault::open_grant_for_helpdesk`]): the first release for
    /// that user at that time decides on them; any change drops them.
    pub(crate) helpdesk_ahead: Option<helpdesk::Ahead>,
}

/// A setting's value from its signed row. A setting that was signed and is
/// gone counts as altered: deleting a limit must not lift it to the default.
pub(crate) fn read_setting(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    name: &str,
    default: u64,
) -> Result<u64> {
    let row = || format!("setting {name}");
    match tx.meta_get(&format!("setting.{name}"))? {
        Some(value) => {
            let (id, mac) = keys.signer.setting(name, &value);
            signed::check(tx, keys.enforced, kind::SETTING, &[(id, row(), mac)])?;
            value.parse().map_err(|_| Error::Altered { row: row() })
        }
        None => {
            // A limit that was signed and is gone must not fall back to
            // the default: its signature is left behind.
            let gone = (kind::SETTING, name.to_owned(), row(), None);
            signed::check_all(tx, keys.enforced, &[gone])?;
            Ok(default)
        }
    }
}

impl<S: Store> Session<S> {
    /// Who is working.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// The operator's role.
    pub fn role(&self) -> Role {
        self.principal.role
    }

    /// Whether this session may do what `permission` allows (its role, and
    /// an API token's scopes): for front-ends that show or hide an action.
    pub fn may(&self, permission: Permission) -> bool {
        self.principal.may(permission)
    }

    /// The check a front-end makes before it starts on a request (the
    /// console's route needs `permission`): the same table and the same
    /// audited refusal as every operation's own check.
    pub fn authorize(&mut self, permission: Permission) -> Result<()> {
        self.require(permission)
    }

    /// Whether this session acts with `key` (a console checks that the key
    /// it holds is still the vault's after a rekey elsewhere).
    pub fn acts_with(&self, key: &VaultKey) -> bool {
        self.key.same_as(key)
    }

    /// The permission check every operation starts with: a refusal is
    /// audited (like any other refusal) and returned as
    /// [`Error::Forbidden`].
    pub(crate) fn require(&mut self, permission: Permission) -> Result<()> {
        let Err(refusal) = self.principal.check(permission) else {
            return Ok(());
        };
        self.refused(permission, refusal)
    }

    /// Whether this session's account must first replace the password an
    /// admin set (then only [`Session::authorize_password_change`] passes).
    pub fn password_change_pending(&self) -> bool {
        self.principal.password_change_pending
    }

    /// The check of a request that is part of changing one's own password
    /// (who am I, the change itself, signing out, the pages that lead there):
    /// what a session whose password an admin set may still do.
    pub fn authorize_password_change(&mut self) -> Result<()> {
        self.require_during_password_change(Permission::Account)
    }

    /// [`Session::require`] for the operations a pending password change
    /// allows.
    pub(crate) fn require_during_password_change(&mut self, permission: Permission) -> Result<()> {
        let Err(refusal) = self.principal.check_during_password_change(permission) else {
            return Ok(());
        };
        self.refused(permission, refusal)
    }

    /// Audits a refusal and returns it. A pending password change is not
    /// audited: it is the account's state, not an attempt beyond its role.
    fn refused(&mut self, permission: Permission, refusal: Error) -> Result<()> {
        if matches!(refusal, Error::PasswordChangeRequired) {
            return Err(refusal);
        }
        let event = AuditEvent {
            outcome: "refused".into(),
            ..AuditEvent::of(Action::Forbidden)
        }
        .detail(json!({
            "permission": permission.name(),
            "role": self.principal.role.name(),
            "reason": refusal.to_string(),
        }));
        self.write_audit(wall_clock(), event)?;
        Err(refusal)
    }

    /// Runs `change` in one write transaction and appends `event` (returned
    /// by `change`) to the audit chain in the same transaction. A row found
    /// altered on the way is audited after the rollback.
    pub(crate) fn change<T>(
        &mut self,
        now: u64,
        change: impl FnOnce(&S::Tx<'_>, &Keys<'_>) -> Result<(T, AuditEvent)>,
    ) -> Result<T> {
        // Rows read before this change may not be what it leaves.
        self.helpdesk_ahead = None;
        let audit_key = self.audit_keys[&self.epoch].clone();
        let outcome = {
            let tx = self.store.write()?;
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            match change(&tx, &keys) {
                Ok((value, event)) => {
                    let head =
                        append_audit(&tx, &audit_key, self.epoch, &self.operator, now, &event)?;
                    tx.commit()?;
                    audit::anchor(&head);
                    Ok(value)
                }
                Err(error) => Err(error),
            }
        };
        self.audited(now, outcome)
    }

    /// Appends one entry on its own.
    pub(crate) fn write_audit(&mut self, now: u64, event: AuditEvent) -> Result<()> {
        let audit_key = self.audit_keys[&self.epoch].clone();
        let tx = self.store.write()?;
        let head = append_audit(&tx, &audit_key, self.epoch, &self.operator, now, &event)?;
        tx.commit()?;
        audit::anchor(&head);
        Ok(())
    }

    /// Runs `read` on a snapshot with the keys that check signatures; an
    /// altered row met on the way is audited, as [`Session::change`] does
    /// for writes.
    pub(crate) fn checked_read<T>(
        &mut self,
        now: u64,
        read: impl FnOnce(&S::Tx<'_>, &Keys<'_>) -> Result<T>,
    ) -> Result<T> {
        let outcome = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            self.store.read().and_then(|tx| read(&tx, &keys))
        };
        self.audited(now, outcome)
    }

    /// Passes `outcome` through; an altered row is recorded in the audit
    /// log first (what was refused, and which row).
    pub(crate) fn audited<T>(&mut self, now: u64, outcome: Result<T>) -> Result<T> {
        if let Err(Error::Altered { row }) = &outcome {
            let event = AuditEvent {
                outcome: "refused".into(),
                ..AuditEvent::of(Action::RowAltered)
            }
            .detail(json!({"row": row}));
            self.write_audit(now, event)?;
        }
        outcome
    }

    /// Records a refused request in the audit log, then returns the refusal.
    pub(crate) fn refuse<T>(&mut self, now: u64, event: AuditEvent, reason: String) -> Result<T> {
        self.refuse_with(now, event, Error::Refused(reason))
    }

    /// Records a refused request in the audit log, then returns `error`.
    pub(crate) fn refuse_with<T>(
        &mut self,
        now: u64,
        event: AuditEvent,
        error: Error,
    ) -> Result<T> {
        let mut event = event;
        event.outcome = "refused".into();
        if let serde_json::Value::Object(map) = &mut event.detail {
            map.insert("reason".into(), json!(error.to_string()));
        }
        self.change(now, |_, _| Ok(((), event)))?;
        Err(error)
    }

    /// A setting's value.
    pub fn setting(&mut self, setting: (&str, u64)) -> Result<u64> {
        self.require(Permission::InventoryRead)?;
        self.setting_value(setting)
    }

    /// A setting's value, its signature checked: a rule is never read from
    /// a row the vault did not sign (nor a default taken for one deleted).
    pub(crate) fn setting_value(&mut self, (name, default): (&str, u64)) -> Result<u64> {
        let outcome = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            let tx = self.store.read()?;
            read_setting(&tx, &keys, name, default)
        };
        self.audited(wall_clock(), outcome)
    }

    /// Changes a setting.
    pub fn set_setting(&mut self, name: &str, value: u64, now: u64) -> Result<()> {
        self.require(Permission::Admin)?;
        if !settings::ALL.iter().any(|(known, _)| *known == name) {
            let names: Vec<&str> = settings::ALL.iter().map(|(n, _)| *n).collect();
            return Err(Error::Invalid(format!(
                "unknown setting '{name}': use one of {}",
                names.join(", ")
            )));
        }
        if name == settings::ENTRA_ON_LOST.0 && OnLost::from_setting(value).setting_value() != value
        {
            return Err(Error::Invalid(format!(
                "{name} is report, unassign or delete (0, 1 or 2), not {value}"
            )));
        }
        if name == settings::DELIVERY_WINDOW.0 && value > settings::DELIVERY_WINDOW_MAX {
            return Err(Error::Invalid(format!(
                "{name} is at most {} steps (the vault remembers the codes it gave out that far back)",
                settings::DELIVERY_WINDOW_MAX
            )));
        }
        self.change(now, |tx, keys| {
            tx.meta_set(&format!("setting.{name}"), &value.to_string())?;
            let (id, mac) = keys.signer.setting(name, &value.to_string());
            keys.signer.put(tx, kind::SETTING, vec![(id, mac)])?;
            Ok((
                (),
                AuditEvent::ok("setting.change").detail(json!({"name": name, "value": value})),
            ))
        })
    }

    // ----- operators -------------------------------------------------------

    /// Every audit entry, oldest first.
    pub fn audit_entries(&mut self) -> Result<Vec<AuditRow>> {
        self.require(Permission::AuditRead)?;
        self.store.read()?.audit_all()
    }

    /// Checks the whole chain.
    pub fn audit_verify(&mut self) -> Result<ChainReport> {
        self.require(Permission::AuditRead)?;
        let rows = self.store.read()?.audit_all()?;
        let keys = &self.audit_keys;
        Ok(audit::verify_chain(&rows, &|epoch| {
            keys.get(&epoch).map(|k| **k)
        }))
    }

    /// Checks the signature of every signed row (`oathdesk vault verify`).
    pub fn verify_rows(&mut self) -> Result<signed::RowReport> {
        self.require(Permission::AuditRead)?;
        let tx = self.store.read()?;
        signed::verify_all(&tx, &self.signer, &setting_names())
    }

    /// `vault verify`: every signed row and the audit chain, in one report.
    pub fn verify_vault(&mut self) -> Result<VaultReport> {
        let rows = self.verify_rows()?;
        let audit = self.audit_verify()?;
        let serials = self.serial_findings()?;
        Ok(VaultReport {
            intact: rows.bad.is_empty() && !rows.marker_missing && audit.first_bad.is_none(),
            rows,
            audit,
            serials,
        })
    }

    /// The devices whose serial the serial rule would refuse (kept from
    /// before it), with the `#ID` references of their credentials.
    pub fn serial_findings(&mut self) -> Result<Vec<SerialFinding>> {
        self.require(Permission::InventoryRead)?;
        let tx = self.store.read()?;
        let mut found = Vec::new();
        for device in tx.devices()? {
            let Some(rule) = crate::model::serial_problem(&device.serial) else {
                continue;
            };
            let references = tx
                .credentials(&CredentialFilter {
                    device_serial: Some(device.serial.clone()),
                    ..CredentialFilter::default()
                })?
                .iter()
                .filter(|row| row.serial.as_deref() == Some(device.serial.as_str()))
                .map(|row| format!("#{}", row.id))
                .collect();
            found.push(SerialFinding {
                serial: device.serial.escape_debug().to_string(),
                rule,
                references,
            });
        }
        Ok(found)
    }

    /// Records an event that happened outside the vault's own operations
    /// (an export, a device burn).
    pub fn record(&mut self, event: AuditEvent, now: u64) -> Result<()> {
        self.change(now, |_, _| Ok(((), event)))
    }
}
