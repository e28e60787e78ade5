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

use crate::any::AnyStore;
use crate::audit::{self, AuditEvent, ChainReport, GENESIS};
use crate::copy;
use crate::crypto::{self, KdfParams, SecretBinding, VaultKey};
use crate::error::{Error, Result};
use crate::identify::{IdentifyIndex, IdentifyMatch};
use crate::location::Location;
use crate::model::{
    CredentialRow, Custody, Device, DeviceKind, EntraLink, Event, State, TokenRef, User,
};
use crate::policy::{Permission, Principal, Role};
use crate::signed::{self, Signer, kind};
use crate::store::{AuditRow, CredentialFilter, HeldSecret, OperatorRow, Store, StoreTx};

/// Settings kept in the vault, with their defaults.
pub mod settings {
    /// Helpdesk codes per user per hour.
    pub const RATE_LIMIT: (&str, u64) = ("helpdesk.codes_per_hour", 5);
    /// Seconds between delivery and the purge of a secret (0: at delivery).
    pub const PURGE_GRACE: (&str, u64) = ("purge.grace_seconds", 0);
    /// Steps either side searched when a delivered token's code is checked.
    pub const DELIVERY_WINDOW: (&str, u64) = ("deliver.window_steps", 10);
    /// All settings.
    pub const ALL: [(&str, u64); 3] = [RATE_LIMIT, PURGE_GRACE, DELIVERY_WINDOW];
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
            append_audit(
                &tx,
                &audit_key,
                1,
                operator,
                now,
                &AuditEvent::ok("vault.init")
                    .detail(json!({"kdf": kdf.to_string(), "role": "admin"})),
            )?;
            // Signed from the start: the audit entry keeps row checking on
            // even if someone deletes the marker.
            signed::sign_all(&tx, &signer, &setting_names())?;
            let head = append_audit(
                &tx,
                &audit_key,
                1,
                operator,
                now,
                &AuditEvent::ok(signed::SIGN_ACTION).detail(json!({"new_vault": true})),
            )?;
            tx.commit()?;
            audit::anchor(&head);
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
            (open_audit_keys(&tx, console_key)?, row)
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

/// Opens an operator's identity with their passphrase or identity file:
/// the proof that they are who they say.
fn open_slot_identity(row: &OperatorRow, unlock: &Unlock<'_>) -> Result<age::x25519::Identity> {
    let operator = &row.name;
    match (unlock, &row.sealed_identity) {
        (Unlock::Passphrase(passphrase), Some(sealed)) => {
            let kdf: KdfParams = row.kdf.as_deref().unwrap_or_default().parse()?;
            let salt = row.salt.as_deref().unwrap_or_default();
            crypto::open_passphrase_slot(operator, passphrase, kdf, salt, sealed)?
                .ok_or_else(|| Error::WrongPassphrase(operator.to_owned()))
        }
        (Unlock::Passphrase(_), None) => Err(Error::NeedsIdentity(operator.to_owned())),
        (Unlock::Identity(text), _) => {
            let identity = crypto::parse_identity(text)?;
            if identity.to_public().to_string() != row.recipient {
                return Err(Error::WrongIdentity(operator.to_owned()));
            }
            Ok(identity)
        }
    }
}

/// The names of the vault's settings.
pub(crate) fn setting_names() -> Vec<&'static str> {
    settings::ALL.iter().map(|(name, _)| *name).collect()
}

/// Writes an operator's slot and signs it (its role is a signed column).
/// The slot follows the role: admins and provisioners hold the vault key
/// wrapped to their recipient; helpdesk and auditor operators hold none
/// (threat model, promise 2), so their passphrase opens nothing.
pub(crate) fn put_operator(tx: &impl StoreTx, keys: &Keys<'_>, mut row: OperatorRow) -> Result<()> {
    let role = Role::parse(&row.role)
        .ok_or_else(|| Error::Invalid(format!("unknown role '{}'", row.role)))?;
    match (role.may_hold_key(), row.wrapped_vault_key.is_empty()) {
        (true, true) => row.wrapped_vault_key = crypto::wrap_vault_key(keys, &row.recipient)?,
        (false, false) => row.wrapped_vault_key = Vec::new(),
        _ => {}
    }
    tx.operator_put(&row)?;
    let (id, mac) = keys.signer.operator(&row);
    keys.signer.put(tx, kind::OPERATOR, vec![(id, mac)])
}

/// Removes an operator's slot and its signature.
pub(crate) fn delete_operator(tx: &impl StoreTx, name: &str) -> Result<bool> {
    tx.row_mac_delete(kind::OPERATOR, name)?;
    tx.operator_delete(name)
}

/// The audit keys of every epoch, opened with the vault key. A key that
/// does not open them is not (or no longer) this vault's key.
pub(crate) fn open_audit_keys(
    tx: &impl StoreTx,
    key: &VaultKey,
) -> Result<HashMap<i64, Zeroizing<[u8; 32]>>> {
    let mut audit_keys = HashMap::new();
    for (epoch, sealed) in tx.audit_keys()? {
        let opened = key
            .open_data(&sealed, &format!("audit key {epoch}"))
            .ok_or_else(|| {
                Error::Crypto(format!("the audit key of epoch {epoch} does not open"))
            })?;
        let array: [u8; 32] = opened
            .as_slice()
            .try_into()
            .map_err(|_| Error::Crypto(format!("the audit key of epoch {epoch} is malformed")))?;
        audit_keys.insert(epoch, Zeroizing::new(array));
    }
    Ok(audit_keys)
}

impl<S: Store> Session<S> {
    /// A session for the operator of `row`, whose slot opened `key`: their
    /// role is checked against its signature (an old vault's rows are
    /// signed here if they are an admin); `scopes` narrow it for an API token.
    pub(crate) fn open(
        mut store: S,
        row: &OperatorRow,
        scopes: Option<Vec<Permission>>,
        key: VaultKey,
        audit_keys: HashMap<i64, Zeroizing<[u8; 32]>>,
    ) -> Result<Session<S>> {
        let signer = Signer::new(&key);
        let role = Role::parse(&row.role);
        let enforced = {
            let tx = store.read()?;
            let enforced = signed::enforced(&tx)?;
            let (id, mac) = signer.operator(row);
            let name = format!("operator {} (role {})", row.name, row.role);
            signed::check(&tx, enforced, kind::OPERATOR, &[(id, name.clone(), mac)])?;
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
            principal: Principal { role, scopes },
            audit_keys,
            epoch,
        };
        if !enforced && role == Role::Admin {
            session.sign_old_rows(wall_clock())?;
        }
        Ok(session)
    }

    /// Signs the rows of a vault from before signed rows, once, as its
    /// first admin unlocks it; the audit entry says what the migration did.
    fn sign_old_rows(&mut self, now: u64) -> Result<()> {
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

fn operator_info(row: OperatorRow) -> OperatorInfo {
    OperatorInfo {
        unlock: if row.sealed_identity.is_some() {
            "passphrase"
        } else {
            "age-identity"
        },
        name: row.name,
        kdf: row.kdf,
        recipient: row.recipient,
        created_at: row.created_at,
        created_by: row.created_by,
        role: row.role,
    }
}

pub(crate) fn passphrase_slot(
    name: &str,
    passphrase: &[u8],
    kdf: KdfParams,
    key: &VaultKey,
    by: &str,
    role: Role,
    now: u64,
) -> Result<OperatorRow> {
    let (recipient, salt, sealed_identity) = crypto::new_passphrase_slot(name, passphrase, kdf)?;
    Ok(OperatorRow {
        name: name.to_owned(),
        wrapped_vault_key: crypto::wrap_vault_key(key, &recipient)?,
        recipient,
        kdf: Some(kdf.to_string()),
        salt: Some(salt),
        sealed_identity: Some(sealed_identity),
        created_at: now,
        created_by: by.to_owned(),
        role: role.name().to_owned(),
    })
}

/// Appends an entry to the audit chain inside `tx`; the caller hands the
/// head to [`audit::anchor`] once the transaction is committed.
fn append_audit(
    tx: &impl StoreTx,
    key: &[u8; 32],
    epoch: i64,
    operator: &str,
    at: u64,
    event: &AuditEvent,
) -> Result<audit::AuditHead> {
    let (seq, prev_hash) = match tx.audit_last()? {
        Some(last) => (last.seq + 1, last.hash),
        None => (1, GENESIS.to_vec()),
    };
    let mut row = AuditRow {
        seq,
        at,
        operator: operator.to_owned(),
        action: event.action.clone(),
        outcome: event.outcome.clone(),
        user: event.user.clone(),
        credential: event.credential.clone(),
        ticket: event.ticket.clone(),
        detail: event.detail.to_string(),
        epoch,
        prev_hash,
        hash: Vec::new(),
    };
    row.hash = audit::entry_hash(key, &row);
    tx.audit_insert(&row)?;
    Ok(audit::AuditHead::of(&row))
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
}

/// A token to add.
#[derive(Debug)]
pub struct NewToken {
    pub serial: Option<String>,
    pub slot: Option<u32>,
    pub device_kind: DeviceKind,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// Slots of a new device (100 for a Molto-2).
    pub device_slots: u32,
    pub credential: Credential,
    pub label: Option<String>,
    /// Assign to this user right away.
    pub user: Option<String>,
    /// The first state: `stock` for pre-seeded tokens, `burned` once a
    /// programmable token holds the secret.
    pub state: State,
}

/// A credential as shown to people: no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    pub serial: Option<String>,
    pub slot: Option<u32>,
    pub r#type: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: Option<u64>,
    pub t0: Option<u64>,
    pub counter: Option<u64>,
    pub issuer: Option<String>,
    pub label: Option<String>,
    pub state: State,
    pub custody: Custody,
    pub user: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub drift_steps: Option<i64>,
    pub purge_after: Option<u64>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl TokenInfo {
    /// `SERIAL`, `SERIAL:SLOT` or `#ID`.
    pub fn reference(&self) -> String {
        reference_of(self.serial.as_deref(), self.slot, self.id)
    }
}

fn reference_of(serial: Option<&str>, slot: Option<u32>, id: i64) -> String {
    match (serial, slot) {
        (Some(serial), Some(slot)) => format!("{serial}:{slot}"),
        (Some(serial), None) => serial.to_owned(),
        (None, _) => format!("#{id}"),
    }
}

fn info(row: &CredentialRow) -> TokenInfo {
    TokenInfo {
        id: row.id,
        serial: row.serial.clone(),
        slot: row.slot,
        r#type: row.kind.clone(),
        algorithm: row.algorithm.clone(),
        digits: row.digits,
        period: row.period,
        t0: row.t0,
        counter: row.counter,
        issuer: row.issuer.clone(),
        label: row.label.clone(),
        state: row.state,
        custody: row.custody,
        user: row.upn.clone(),
        manufacturer: row.manufacturer.clone(),
        model: row.model.clone(),
        drift_steps: row.drift_steps,
        purge_after: row.purge_after,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// The fields that say how a credential's codes are computed, whether read
/// with the whole row or alone (for the identify index).
trait CodeParams {
    fn id(&self) -> i64;
    fn kind(&self) -> &str;
    fn algorithm(&self) -> &str;
    fn digits(&self) -> u8;
    fn period(&self) -> Option<u64>;
    fn t0(&self) -> Option<u64>;
    fn counter(&self) -> Option<u64>;
}

macro_rules! code_params {
    ($type:ty) => {
        impl CodeParams for $type {
            fn id(&self) -> i64 {
                self.id
            }
            fn kind(&self) -> &str {
                &self.kind
            }
            fn algorithm(&self) -> &str {
                &self.algorithm
            }
            fn digits(&self) -> u8 {
                self.digits
            }
            fn period(&self) -> Option<u64> {
                self.period
            }
            fn t0(&self) -> Option<u64> {
                self.t0
            }
            fn counter(&self) -> Option<u64> {
                self.counter
            }
        }
    };
}

code_params!(CredentialRow);
code_params!(HeldSecret);

fn binding(row: &impl CodeParams) -> SecretBinding {
    SecretBinding {
        credential_id: row.id(),
        kind: row.kind().to_owned(),
        algorithm: row.algorithm().to_owned(),
        digits: row.digits(),
        period: row.period(),
        t0: row.t0(),
    }
}

/// Rebuilds the OTP parameters of a stored credential.
fn otp_parts(row: &impl CodeParams) -> Result<(Algorithm, Digits, Kind)> {
    let corrupt =
        |what: &str| Error::Database(format!("credential #{} has a bad {what}", row.id()));
    let algorithm: Algorithm = row.algorithm().parse().map_err(|_| corrupt("algorithm"))?;
    let digits = Digits::new(u64::from(row.digits())).map_err(|_| corrupt("digit count"))?;
    let kind = match row.kind() {
        "totp" => Kind::Totp {
            step: TimeStep::new(row.period().unwrap_or(30), row.t0().unwrap_or(0))
                .map_err(|_| corrupt("period"))?,
        },
        "hotp" => Kind::Hotp {
            counter: row.counter().unwrap_or(0),
        },
        _ => return Err(corrupt("type")),
    };
    Ok((algorithm, digits, kind))
}

/// A helpdesk code request.
#[derive(Clone, Debug)]
pub struct HelpdeskRequest {
    pub user: String,
    /// How the caller's identity was verified (call-back number, manager...).
    pub verified_by: String,
    pub ticket: String,
    pub token: Option<TokenRef>,
    /// Hand out a code that stays accepted this long.
    pub valid_for: Option<u64>,
    pub verifier: Verifier,
}

/// A code handed to the helpdesk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HelpdeskGrant {
    pub user: String,
    pub serial: Option<String>,
    pub slot: Option<u32>,
    pub credential_id: i64,
    pub code: String,
    pub counter: u64,
    pub offset: i64,
    /// When the code is current.
    pub valid_from: u64,
    pub valid_until: u64,
    /// Until when the verifier accepts it.
    pub accepted_until: u64,
    pub verifier: String,
    /// Codes this user may still get this hour.
    pub remaining_this_hour: u64,
}

/// The outcome of a delivery check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub credential: String,
    pub drift_steps: i64,
    pub purged: bool,
    pub purge_after: Option<u64>,
}

/// A credential found by its code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdentifyHit {
    pub credential: String,
    pub credential_id: i64,
    pub serial: Option<String>,
    pub slot: Option<u32>,
    pub user: Option<String>,
    pub state: State,
    pub offset: i64,
}

impl<S: Store> Session<S> {
    /// Who is working.
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// The vault key, for a console to hold in memory so that it can act
    /// for operators without a key slot (unsealing). Only an admin may;
    /// audited with `how` (sign-in, key file).
    pub fn unseal_key(&mut self, how: &str, now: u64) -> Result<VaultKey> {
        self.require(Permission::Admin)?;
        self.record(
            AuditEvent::ok("console.unseal").detail(json!({"by": how})),
            now,
        )?;
        Ok(self.key.clone())
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

    /// The permission check every operation starts with: a refusal is
    /// audited (like any other refusal) and returned as
    /// [`Error::Forbidden`].
    pub(crate) fn require(&mut self, permission: Permission) -> Result<()> {
        let Err(refusal) = self.principal.check(permission) else {
            return Ok(());
        };
        let event = AuditEvent {
            outcome: "refused".into(),
            ..AuditEvent::ok("forbidden")
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
    fn write_audit(&mut self, now: u64, event: AuditEvent) -> Result<()> {
        let audit_key = self.audit_keys[&self.epoch].clone();
        let tx = self.store.write()?;
        let head = append_audit(&tx, &audit_key, self.epoch, &self.operator, now, &event)?;
        tx.commit()?;
        audit::anchor(&head);
        Ok(())
    }

    /// Passes `outcome` through; an altered row is recorded in the audit
    /// log first (what was refused, and which row).
    pub(crate) fn audited<T>(&mut self, now: u64, outcome: Result<T>) -> Result<T> {
        if let Err(Error::Altered { row }) = &outcome {
            let event = AuditEvent {
                outcome: "refused".into(),
                ..AuditEvent::ok("row.altered")
            }
            .detail(json!({"row": row}));
            self.write_audit(now, event)?;
        }
        outcome
    }

    /// Records a refused request in the audit log, then returns the refusal.
    fn refuse<T>(&mut self, now: u64, event: AuditEvent, reason: String) -> Result<T> {
        self.refuse_with(now, event, Error::Refused(reason))
    }

    /// Records a refused request in the audit log, then returns `error`.
    fn refuse_with<T>(&mut self, now: u64, event: AuditEvent, error: Error) -> Result<T> {
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

    /// Adds an operator with a role who can unlock the vault.
    pub fn add_operator(
        &mut self,
        name: &str,
        how: NewOperator<'_>,
        role: Role,
        now: u64,
    ) -> Result<()> {
        self.require(Permission::Admin)?;
        check_operator_name(name)?;
        let by = self.operator.clone();
        self.change(now, |tx, key| {
            if tx.operator(name)?.is_some() {
                return Err(Error::Exists(format!("operator '{name}'")));
            }
            let (row, unlock) = match how {
                NewOperator::Passphrase(passphrase, kdf) => {
                    if passphrase.is_empty() {
                        return Err(Error::Invalid("the passphrase is empty".into()));
                    }
                    (
                        passphrase_slot(name, passphrase, kdf, key, &by, role, now)?,
                        "passphrase",
                    )
                }
                NewOperator::Recipient(recipient) => {
                    let recipient = crypto::parse_recipient(recipient)?.to_string();
                    (
                        OperatorRow {
                            name: name.to_owned(),
                            wrapped_vault_key: crypto::wrap_vault_key(key, &recipient)?,
                            recipient,
                            kdf: None,
                            salt: None,
                            sealed_identity: None,
                            created_at: now,
                            created_by: by.clone(),
                            role: role.name().to_owned(),
                        },
                        "age-identity",
                    )
                }
            };
            let holds_key = role.may_hold_key();
            put_operator(tx, key, row)?;
            Ok((
                (),
                AuditEvent::ok("operator.add")
                    .detail(json!({"name": name, "unlock": unlock, "role": role.name(), "key_slot": holds_key})),
            ))
        })
    }

    /// Removes an operator's slot. Run `rekey` afterwards so that what the
    /// vault holds from now on is out of their reach even if they kept a
    /// copy of the vault key.
    pub fn remove_operator(&mut self, name: &str, now: u64) -> Result<()> {
        self.require(Permission::Admin)?;
        self.change(now, |tx, _| {
            let Some(row) = tx.operator(name)? else {
                return Err(Error::UnknownOperator(name.to_owned()));
            };
            let operators = tx.operators()?;
            if operators.len() == 1 {
                return Err(Error::Refused(
                    "this is the vault's last operator; add another before removing it".into(),
                ));
            }
            if row.role == Role::Admin.name()
                && operators
                    .iter()
                    .filter(|o| o.role == Role::Admin.name())
                    .count()
                    == 1
            {
                return Err(Error::Refused(format!(
                    "'{name}' is the vault's last admin: make another operator admin first"
                )));
            }
            delete_operator(tx, name)?;
            Ok((
                (),
                AuditEvent::ok("operator.remove").detail(json!({"name": name})),
            ))
        })
    }

    /// Gives an operator another role (and their web account, if they have
    /// one, the same); their sessions and API tokens end. The last admin
    /// keeps the role.
    pub fn set_operator_role(&mut self, name: &str, role: Role, now: u64) -> Result<()> {
        self.require(Permission::Admin)?;
        self.change(now, |tx, keys| {
            let mut row = tx
                .operator(name)?
                .ok_or_else(|| Error::UnknownOperator(name.to_owned()))?;
            let from = row.role.clone();
            if from == Role::Admin.name()
                && role != Role::Admin
                && tx
                    .operators()?
                    .iter()
                    .filter(|o| o.role == Role::Admin.name())
                    .count()
                    == 1
            {
                return Err(Error::Refused(format!(
                    "'{name}' is the vault's last admin: make another operator admin first"
                )));
            }
            row.role = role.name().to_owned();
            put_operator(tx, keys, row)?;
            crate::web::follow_operator_role(tx, keys, name, role)?;
            Ok((
                (),
                AuditEvent::ok("operator.role").detail(json!({
                    "name": name, "from": from, "role": role.name(),
                    "key_slot": role.may_hold_key(),
                })),
            ))
        })
    }

    /// Replaces the vault key: every held secret is sealed again, every
    /// remaining operator gets the new key, and the audit chain continues
    /// under a new key epoch. Returns the number of secrets re-sealed.
    pub fn rekey(&mut self, now: u64) -> Result<usize> {
        self.require(Permission::Admin)?;
        // Re-signing under the new key would launder an altered row.
        let report = self.verify_rows()?;
        if let Some(bad) = report.bad.first() {
            let outcome = Err(Error::Altered {
                row: bad.name.clone(),
            });
            return self.audited(now, outcome);
        }
        let new_key = VaultKey::generate()?;
        let new_epoch = self.epoch + 1;
        let new_audit_key = new_key.audit_key();
        let old_audit_keys: Vec<(i64, Zeroizing<[u8; 32]>)> = self
            .audit_keys
            .iter()
            .map(|(e, k)| (*e, k.clone()))
            .collect();
        let resealed = {
            let tx = self.store.write()?;
            let mut count = 0usize;
            for mut row in tx.credentials(&CredentialFilter {
                held_only: true,
                ..CredentialFilter::default()
            })? {
                let Some(sealed) = &row.sealed_secret else {
                    continue;
                };
                let secret = self.key.open_secret(sealed, &binding(&row))?;
                row.sealed_secret = Some(new_key.seal_secret(&secret, &binding(&row))?);
                row.updated_at = now;
                tx.credential_update(&row)?;
                count += 1;
            }
            for mut operator in tx.operators()? {
                // Operators without a key slot stay without one.
                if operator.wrapped_vault_key.is_empty() {
                    continue;
                }
                operator.wrapped_vault_key = crypto::wrap_vault_key(&new_key, &operator.recipient)?;
                tx.operator_put(&operator)?;
            }
            let new_signer = Signer::new(&new_key);
            signed::sign_all(&tx, &new_signer, &setting_names())?;
            // Web accounts are MAC'd under the vault key and web grants
            // wrap it: re-MAC the one, end the other.
            crate::web::after_rekey(&tx, &new_key)?;
            for (epoch, key) in &old_audit_keys {
                tx.audit_key_put(
                    *epoch,
                    &new_key.seal_data(key.as_ref(), &format!("audit key {epoch}"))?,
                )?;
            }
            tx.audit_key_put(
                new_epoch,
                &new_key.seal_data(new_audit_key.as_ref(), &format!("audit key {new_epoch}"))?,
            )?;
            let head = append_audit(
                &tx,
                &new_audit_key,
                new_epoch,
                &self.operator,
                now,
                &AuditEvent::ok("vault.rekey")
                    .detail(json!({"secrets": count, "epoch": new_epoch})),
            )?;
            tx.commit()?;
            audit::anchor(&head);
            count
        };
        self.signer = Signer::new(&new_key);
        self.signed = true;
        self.key = new_key;
        self.audit_keys.insert(new_epoch, new_audit_key);
        self.epoch = new_epoch;
        Ok(resealed)
    }

    /// The operators.
    pub fn operators(&mut self) -> Result<Vec<OperatorInfo>> {
        self.require(Permission::InventoryRead)?;
        let tx = self.store.read()?;
        Ok(tx.operators()?.into_iter().map(operator_info).collect())
    }

    // ----- users and tokens ------------------------------------------------

    /// Adds a user.
    pub fn add_user(&mut self, upn: &str, display_name: Option<&str>, now: u64) -> Result<User> {
        let upn = upn.trim();
        if upn.is_empty() {
            return Err(Error::Invalid("the user's UPN is empty".into()));
        }
        check_text("UPN", upn)?;
        check_text("display name", display_name.unwrap_or_default())?;
        self.require(Permission::InventoryWrite)?;
        self.change(now, |tx, keys| {
            if tx.user_by_upn(upn)?.is_some() {
                return Err(Error::Exists(format!("user '{upn}'")));
            }
            let id = tx.user_insert(upn, display_name, now)?;
            let user = User {
                id,
                upn: upn.to_owned(),
                display_name: display_name.map(str::to_owned),
                created_at: now,
            };
            let (id, mac) = keys.signer.user(&user);
            keys.signer.put(tx, kind::USER, vec![(id, mac)])?;
            Ok((user, AuditEvent::ok("user.add").user(upn)))
        })
    }

    /// All users.
    pub fn users(&mut self) -> Result<Vec<User>> {
        self.require(Permission::InventoryRead)?;
        self.store.read()?.users()
    }

    /// Adds a token's credential (and its device, the first time its serial
    /// is seen).
    pub fn add_token(&mut self, token: NewToken, now: u64) -> Result<TokenInfo> {
        let rows = self.add_tokens(vec![token], now, "token.add")?;
        Ok(info(&rows[0]))
    }

    /// Adds many tokens in one transaction: all of them or none.
    pub fn add_tokens(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        action: &str,
    ) -> Result<Vec<CredentialRow>> {
        self.require(Permission::InventoryWrite)?;
        let count = tokens.len();
        self.change(now, |tx, key| {
            let added = insert_tokens(tx, key, tokens, now)?;
            let event = if count == 1 {
                let row = &added[0];
                let mut event = AuditEvent::ok(action).credential(reference_of(
                    row.serial.as_deref(),
                    row.slot,
                    row.id,
                ));
                event.user = row.upn.clone();
                event
            } else {
                AuditEvent::ok(action).detail(json!({"credentials": count}))
            };
            Ok((added, event))
        })
    }

    /// Credentials matching `filter`.
    pub fn tokens(&mut self, filter: &CredentialFilter) -> Result<Vec<TokenInfo>> {
        self.require(Permission::InventoryRead)?;
        Ok(self
            .store
            .read()?
            .credentials(filter)?
            .iter()
            .map(info)
            .collect())
    }

    /// One credential and its lifecycle history.
    pub fn token(&mut self, token: &TokenRef) -> Result<(TokenInfo, Vec<Event>)> {
        self.require(Permission::InventoryRead)?;
        let tx = self.store.read()?;
        let row = resolve(&tx, token)?;
        let events = tx.events(row.id)?;
        Ok((info(&row), events))
    }

    /// Moves a credential to another state (ship, lost, retire...).
    pub fn transition(
        &mut self,
        token: &TokenRef,
        to: State,
        note: Option<&str>,
        now: u64,
    ) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        let operator = self.operator.clone();
        self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, token)?;
            move_state(tx, &mut row, to, &operator, note, now)?;
            update_credential(tx, keys, &row)?;
            let mut event = AuditEvent::ok(&format!("token.{}", to.name()))
                .credential(reference_of(row.serial.as_deref(), row.slot, row.id));
            event.user = row.upn.clone();
            if let Some(note) = note {
                event.detail = json!({"note": note});
            }
            Ok((info(&row), event))
        })
    }

    /// Moves several credentials to one state in one transaction: all of
    /// them, or none (the refusal names the first that cannot move).
    pub fn transition_all(
        &mut self,
        tokens: &[TokenRef],
        to: State,
        note: Option<&str>,
        now: u64,
    ) -> Result<Vec<TokenInfo>> {
        if tokens.is_empty() {
            return Err(Error::Invalid("no tokens chosen".into()));
        }
        self.require(Permission::InventoryWrite)?;
        let operator = self.operator.clone();
        self.change(now, |tx, keys| {
            let mut moved = Vec::with_capacity(tokens.len());
            for token in tokens {
                let mut row = resolve_checked(tx, keys, token)?;
                move_state(tx, &mut row, to, &operator, note, now)?;
                update_credential(tx, keys, &row)?;
                moved.push(info(&row));
            }
            let references: Vec<String> = moved.iter().map(TokenInfo::reference).collect();
            let mut detail = json!({"credentials": references});
            if let Some(note) = note {
                detail["note"] = json!(note);
            }
            Ok((
                moved,
                AuditEvent::ok(&format!("token.{}", to.name())).detail(detail),
            ))
        })
    }

    /// Every device, with its kind and number of slots.
    pub fn devices(&mut self) -> Result<Vec<Device>> {
        self.require(Permission::InventoryRead)?;
        self.store.read()?.devices()
    }

    /// Assigns a credential to a user (state `assigned`).
    pub fn assign(&mut self, token: &TokenRef, upn: &str, now: u64) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        let operator = self.operator.clone();
        self.change(now, |tx, keys| {
            let user = tx.user_by_upn(upn)?.ok_or_else(|| {
                Error::NotFound(format!("user '{upn}' (add it with 'oathdesk user add')"))
            })?;
            check_user(tx, keys, &user)?;
            let mut row = resolve_checked(tx, keys, token)?;
            move_state(
                tx,
                &mut row,
                State::Assigned,
                &operator,
                Some(&user.upn),
                now,
            )?;
            row.user_id = Some(user.id);
            row.upn = Some(user.upn.clone());
            update_credential(tx, keys, &row)?;
            let event = AuditEvent::ok("token.assign")
                .credential(reference_of(row.serial.as_deref(), row.slot, row.id))
                .user(user.upn);
            Ok((info(&row), event))
        })
    }

    /// Checks a code read off the delivered token, records its drift, marks
    /// it delivered, and purges the secret now or after the grace period.
    ///
    /// The code must be one the vault never showed anyone: a code whose time
    /// step was released (a helpdesk code, an enrolment code) proves only
    /// that someone saw it, not that the token arrived (threat model,
    /// promise 5), and is refused with [`Error::CodeReleased`].
    pub fn deliver(&mut self, token: &TokenRef, code: &str, now: u64) -> Result<Delivery> {
        self.require(Permission::Deliver)?;
        let grace = self.setting_value(settings::PURGE_GRACE)?;
        let steps = self.setting_value(settings::DELIVERY_WINDOW)?;
        let operator = self.operator.clone();
        enum Refusal {
            NoMatch(String),
            Released(String),
        }
        let outcome = self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, token)?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            row.state.check_transition(State::Delivered)?;
            let secret = held_secret(keys, &row)?;
            let (algorithm, digits, kind) = otp_parts(&row)?;
            let hotp = Hotp::new(&secret, algorithm, digits);
            let window = Window::symmetric(steps);
            let expected = match kind {
                Kind::Totp { step } => step.counter_at(now).map_err(|e| Error::Invalid(e.to_string()))?,
                Kind::Hotp { counter } => counter,
            };
            let found = hotp
                .verify(code, expected, window)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let refused = |reason: &str| {
                AuditEvent {
                    outcome: "refused".into(),
                    ..AuditEvent::ok("token.deliver")
                }
                .credential(reference.clone())
                .detail(json!({"reason": reason}))
            };
            let Some(found) = found else {
                return Ok((Err(Refusal::NoMatch(reference.clone())), refused("code does not match")));
            };
            // A step is released if its row is there, or its signature is:
            // deleting the row alone does not make its code a proof.
            if matches!(kind, Kind::Totp { .. })
                && (released_steps(tx, keys, row.id)?.contains(&found.counter)
                    || !tx
                        .row_macs(
                            kind::RELEASED,
                            Some(&[signed::released_id(row.id, found.counter)]),
                        )?
                        .is_empty())
            {
                let mut event = refused("the code's time step was released by the vault");
                event.detail["counter"] = json!(found.counter);
                event.user = row.upn.clone();
                return Ok((Err(Refusal::Released(reference.clone())), event));
            }
            move_state(tx, &mut row, State::Delivered, &operator, None, now)?;
            row.drift_steps = Some(found.offset);
            if let Kind::Hotp { .. } = kind {
                row.counter = Some(found.counter + 1);
            }
            let purged = grace == 0;
            if purged {
                row.purge_after = None;
            } else {
                row.purge_after = Some(now.saturating_add(grace));
            }
            update_credential(tx, keys, &row)?;
            if purged {
                purge_credential(tx, keys, row.id, now)?;
            }
            let mut event = AuditEvent::ok("token.deliver")
                .credential(reference.clone())
                .detail(json!({"drift_steps": found.offset, "purged": purged, "purge_after": row.purge_after}));
            event.user = row.upn.clone();
            Ok((
                Ok(Delivery {
                    credential: reference,
                    drift_steps: found.offset,
                    purged,
                    purge_after: row.purge_after,
                }),
                event,
            ))
        })?;
        match outcome {
            Ok(delivery) => {
                if delivery.purged {
                    self.store.scrub()?;
                }
                Ok(delivery)
            }
            Err(Refusal::Released(credential)) => Err(Error::CodeReleased { credential }),
            Err(Refusal::NoMatch(reference)) => Err(Error::Refused(format!(
                "the code does not match {reference} within ±{steps} steps: check the serial and slot, \
                 or read the next code off the token"
            ))),
        }
    }

    /// Purges a credential's secret now.
    pub fn purge(&mut self, token: &TokenRef, now: u64) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        let info = self.change(now, |tx, keys| {
            let row = resolve_checked(tx, keys, token)?;
            if row.custody == Custody::Purged {
                return Err(Error::Refused(format!(
                    "the secret of {} was already purged",
                    reference_of(row.serial.as_deref(), row.slot, row.id)
                )));
            }
            purge_credential(tx, keys, row.id, now)?;
            let mut purged = row.clone();
            purged.custody = Custody::Purged;
            purged.sealed_secret = None;
            purged.purge_after = None;
            let mut event = AuditEvent::ok("token.purge").credential(reference_of(
                row.serial.as_deref(),
                row.slot,
                row.id,
            ));
            event.user = row.upn.clone();
            Ok((info(&purged), event))
        })?;
        self.store.scrub()?;
        Ok(info)
    }

    /// Purges every secret whose grace period has ended; returns how many.
    pub fn purge_due(&mut self, now: u64) -> Result<usize> {
        self.require(Permission::InventoryWrite)?;
        let due = self.store.read()?.credentials(&CredentialFilter {
            purge_due_at: Some(now),
            ..CredentialFilter::default()
        })?;
        if due.is_empty() {
            return Ok(0);
        }
        let count = due.len();
        self.change(now, |tx, keys| {
            // A purge destroys: a row whose purge time was forged is not obeyed.
            signed::check_credentials(
                tx,
                keys.signer,
                keys.enforced,
                &due.iter().collect::<Vec<_>>(),
            )?;
            for row in &due {
                purge_credential(tx, keys, row.id, now)?;
            }
            let references: Vec<String> = due
                .iter()
                .map(|r| reference_of(r.serial.as_deref(), r.slot, r.id))
                .collect();
            Ok((
                (),
                AuditEvent::ok("token.purge").detail(json!({"due": references})),
            ))
        })?;
        self.store.scrub()?;
        Ok(count)
    }

    // ----- device burns ----------------------------------------------------

    /// Records a secret that is about to be burned into a programmable
    /// token, in state `burning`, before anything is written to the token:
    /// whatever happens to the burn, the vault knows which secret was meant
    /// for which device serial and slot.
    ///
    /// A live credential already in that slot is refused unless `replace`;
    /// replaced, it is retired, detached from the device and its secret
    /// purged (the token no longer holds it). One still `burning` — a burn
    /// cut short — is always superseded: the token never confirmed it. A
    /// retired credential left in the slot is detached.
    pub fn begin_burn(&mut self, token: NewToken, replace: bool, now: u64) -> Result<TokenInfo> {
        let Some(serial) = token.serial.clone() else {
            return Err(Error::Invalid(
                "a burn needs the device serial (read from the token)".into(),
            ));
        };
        self.require(Permission::InventoryWrite)?;
        let slot = token.slot;
        let operator = self.operator.clone();
        let (row, purged) = self.change(now, |tx, key| {
            let reference = reference_of(Some(&serial), slot, 0);
            let occupants: Vec<CredentialRow> = tx
                .credentials(&CredentialFilter {
                    device_serial: Some(serial.clone()),
                    slot,
                    ..CredentialFilter::default()
                })?
                .into_iter()
                .filter(|r| r.slot == slot)
                .collect();
            signed::check_credentials(
                tx,
                key.signer,
                key.enforced,
                &occupants.iter().collect::<Vec<_>>(),
            )?;
            let mut superseded = Vec::new();
            let mut purged = false;
            for mut old in occupants {
                if old.state != State::Retired {
                    if old.state != State::Burning && !replace {
                        return Err(Error::Refused(format!(
                            "the vault records {} in {reference} ({}{}): pass --overwrite to replace it",
                            reference_of(None, None, old.id),
                            old.state,
                            old.upn
                                .as_deref()
                                .map(|u| format!(", {u}"))
                                .unwrap_or_default()
                        )));
                    }
                    let note = format!("superseded by a new burn of {reference}");
                    move_state(tx, &mut old, State::Retired, &operator, Some(&note), now)?;
                    tx.credential_update(&old)?;
                    if old.custody == Custody::Held {
                        tx.credential_purge(old.id, now)?;
                        purged = true;
                    }
                }
                tx.credential_detach(old.id, now)?;
                key.signer.resign_credentials(tx, &[old.id])?;
                superseded.push(old.id);
            }
            let new = NewToken {
                state: State::Burning,
                ..token
            };
            let row = insert_tokens(tx, key, vec![new], now)?.remove(0);
            let mut event = AuditEvent::ok("device.burn.begin")
                .credential(reference_of(row.serial.as_deref(), row.slot, row.id))
                .detail(json!({"credential_id": row.id, "superseded": superseded}));
            event.user = row.upn.clone();
            Ok(((row, purged), event))
        })?;
        if purged {
            self.store.scrub()?;
        }
        Ok(info(&row))
    }

    /// Marks a burn confirmed by the token: `burning → burned`, then
    /// `assigned` when the credential is for a user.
    pub fn finish_burn(&mut self, credential_id: i64, note: &str, now: u64) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        let operator = self.operator.clone();
        self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, &TokenRef::Id(credential_id))?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            if row.state != State::Burning {
                return Err(Error::Refused(format!(
                    "{reference} is {}, not burning: there is no burn to finish",
                    row.state
                )));
            }
            move_state(tx, &mut row, State::Burned, &operator, Some(note), now)?;
            if let Some(upn) = row.upn.clone() {
                move_state(tx, &mut row, State::Assigned, &operator, Some(&upn), now)?;
            }
            update_credential(tx, keys, &row)?;
            let mut event = AuditEvent::ok("device.burn")
                .credential(reference)
                .detail(json!({"note": note}));
            event.user = row.upn.clone();
            Ok((info(&row), event))
        })
    }

    // ----- secret access ----------------------------------------------------

    /// A code for a user who cannot read their own token yet (it is in the
    /// post): granted only with identity verification and a ticket, for a
    /// held credential that is neither lost nor retired, within the
    /// per-user rate limit. Every request is audited, granted or refused.
    pub fn helpdesk_code(&mut self, request: &HelpdeskRequest, now: u64) -> Result<HelpdeskGrant> {
        self.require(Permission::HelpdeskCode)?;
        let limit = self.setting_value(settings::RATE_LIMIT)?;
        let mut event = AuditEvent {
            action: "helpdesk.code".into(),
            outcome: "granted".into(),
            user: Some(request.user.clone()),
            credential: request.token.as_ref().map(ToString::to_string),
            ticket: Some(request.ticket.clone()).filter(|t| !t.trim().is_empty()),
            detail: json!({"verified_by": request.verified_by}),
        };
        if request.verified_by.trim().is_empty() || request.ticket.trim().is_empty() {
            return self.refuse(
                now,
                event,
                "identity verification is required: say how the caller was verified (--verified-by) \
                 and give the ticket (--ticket)"
                    .into(),
            );
        }
        let read = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            let tx = self.store.read()?;
            helpdesk_candidates(&tx, &keys, &request.user, now)
        };
        let (user, candidates, granted_last_hour) = self.audited(now, read)?;
        let Some(user) = user else {
            let reason = format!("no user '{}' in the vault", request.user);
            return self.refuse(now, event, reason);
        };
        let chosen: Vec<&CredentialRow> = candidates
            .iter()
            .filter(|row| match &request.token {
                None => true,
                Some(TokenRef::Id(id)) => row.id == *id,
                Some(TokenRef::Serial { serial, slot }) => {
                    row.serial.as_deref() == Some(serial.as_str())
                        && (slot.is_none() || row.slot == *slot)
                }
            })
            .collect();
        let usable: Vec<&CredentialRow> = chosen
            .iter()
            .copied()
            .filter(|r| r.custody == Custody::Held && r.state.vouches_for_codes())
            .collect();
        let row = match usable.as_slice() {
            [one] => (*one).clone(),
            [] => {
                let reason = match chosen.first() {
                    None if request.token.is_some() => format!(
                        "{} is not assigned to {}",
                        request
                            .token
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        user.upn
                    ),
                    None => format!("{} has no token assigned", user.upn),
                    Some(row) if row.state == State::Lost => format!(
                        "{} is reported lost: no codes are given for a lost token",
                        reference_of(row.serial.as_deref(), row.slot, row.id)
                    ),
                    Some(row) if row.state == State::Retired => format!(
                        "{} is retired",
                        reference_of(row.serial.as_deref(), row.slot, row.id)
                    ),
                    // The token may not hold this secret: its burn was not
                    // confirmed.
                    Some(row) if row.state == State::Burning => format!(
                        "{} is still being burned (its burn was cut short): finish the burn before giving codes",
                        reference_of(row.serial.as_deref(), row.slot, row.id)
                    ),
                    Some(row) => format!(
                        "the secret of {} was purged after delivery: the user reads the code off their own token",
                        reference_of(row.serial.as_deref(), row.slot, row.id)
                    ),
                };
                return self.refuse(now, event, reason);
            }
            many => {
                let list: Vec<String> = many
                    .iter()
                    .map(|r| reference_of(r.serial.as_deref(), r.slot, r.id))
                    .collect();
                let reason = format!(
                    "{} has {} usable tokens ({}): choose one with --serial",
                    user.upn,
                    many.len(),
                    list.join(", ")
                );
                return self.refuse(now, event, reason);
            }
        };
        let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
        event.credential = Some(reference.clone());
        if granted_last_hour >= limit {
            let reason = rate_limit_reason(&user.upn, granted_last_hour, limit);
            return self.refuse_with(
                now,
                event,
                Error::RateLimited {
                    reason,
                    retry_at: now.saturating_add(3600),
                },
            );
        }
        let secret = held_secret(&self.key, &row)?;
        let (algorithm, digits, kind) = otp_parts(&row)?;
        let Kind::Totp { step } = kind else {
            return self.refuse(
                now,
                event,
                format!(
                    "{reference} is an HOTP (event) token: helpdesk codes are for time-based tokens"
                ),
            );
        };
        let totp = Totp::new(&secret, algorithm, digits, step);
        let window = request
            .verifier
            .window(step.period())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let LastingCode { code, accepted } = totp
            .code_valid_for(now, request.valid_for.unwrap_or(0), window)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let grant = HelpdeskGrant {
            user: user.upn.clone(),
            serial: row.serial.clone(),
            slot: row.slot,
            credential_id: row.id,
            code: code.code.to_string(),
            counter: code.counter,
            offset: code.offset,
            valid_from: code.current.from,
            valid_until: code.current.until,
            accepted_until: accepted.until,
            verifier: request.verifier.to_string(),
            remaining_this_hour: limit - granted_last_hour - 1,
        };
        event.user = Some(user.upn.clone());
        event.detail = json!({
            "verified_by": request.verified_by,
            "counter": grant.counter,
            "accepted_until": grant.accepted_until,
            "verifier": grant.verifier,
        });
        // The count above was read outside the write transaction; another
        // process may have granted codes since. Count again where writers
        // are serialised, so concurrent requests cannot pass the limit.
        let since = now.saturating_sub(3600);
        let refused = self.change(now, |tx, keys| {
            let granted = tx.audit_count("helpdesk.code", "granted", &request.user, since)?;
            if granted >= limit {
                let reason = rate_limit_reason(&user.upn, granted, limit);
                let mut refusal = event;
                refusal.outcome = "refused".into();
                refusal.detail = json!({"verified_by": request.verified_by, "reason": reason});
                return Ok((Some(reason), refusal));
            }
            // The step whose code is shown can never prove a delivery.
            release_step(tx, keys, grant.credential_id, grant.counter, now)?;
            Ok((None, event))
        })?;
        match refused {
            Some(reason) => Err(Error::RateLimited {
                reason,
                retry_at: now.saturating_add(3600),
            }),
            None => Ok(grant),
        }
    }

    /// Builds the in-memory identify index of every held secret: secrets
    /// are opened and HMAC-keyed on all cores.
    pub fn identify_index(&mut self) -> Result<IdentifyIndex> {
        self.require(Permission::Identify)?;
        self.build_identify_index()
    }

    fn build_identify_index(&mut self) -> Result<IdentifyIndex> {
        let held = self.store.read()?.held_secrets()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = held.len().div_ceil(threads).max(1);
        let key = &self.key;
        let build = |part: &[HeldSecret]| -> Result<IdentifyIndex> {
            let mut index = IdentifyIndex::with_capacity(part.len());
            for held in part {
                let secret = Secret::from_bytes(
                    key.open_secret(&held.sealed_secret, &binding(held))?
                        .to_vec(),
                );
                let (algorithm, digits, kind) = otp_parts(held)?;
                let hotp = Hotp::new(&secret, algorithm, digits);
                match kind {
                    Kind::Totp { step } => index.push_totp(held.id, hotp, step),
                    Kind::Hotp { counter } => index.push_hotp(held.id, hotp, counter),
                }
            }
            Ok(index)
        };
        let parts: Vec<Result<IdentifyIndex>> = std::thread::scope(|scope| {
            let workers: Vec<_> = held
                .chunks(chunk)
                .map(|part| scope.spawn(move || build(part)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("index worker panicked"))
                .collect()
        });
        let mut index = IdentifyIndex::with_capacity(held.len());
        for part in parts {
            index.append(part?);
        }
        Ok(index)
    }

    /// Finds which held credentials produce `codes` (one, or consecutive
    /// ones) around `at`. The search is audited.
    pub fn identify(
        &mut self,
        codes: &[&str],
        at: u64,
        window: Window,
        now: u64,
    ) -> Result<Vec<IdentifyHit>> {
        self.require(Permission::Identify)?;
        let index = self.build_identify_index()?;
        let matches = index
            .identify(codes, at, window)
            .ok_or_else(|| Error::Invalid("a code is 4 to 10 digits".into()))?;
        let mut rows = HashMap::new();
        let checked = {
            let tx = self.store.read()?;
            for m in &matches {
                let filter = CredentialFilter {
                    id: Some(m.credential_id),
                    ..CredentialFilter::default()
                };
                if let Some(row) = tx.credentials(&filter)?.pop() {
                    rows.insert(row.id, row);
                }
            }
            // A hit names a user and a state: only from signed rows.
            let hits: Vec<&CredentialRow> = rows.values().collect();
            signed::check_credentials(&tx, &self.signer, self.signed, &hits)
        };
        self.audited(now, checked)?;
        let hits: Vec<IdentifyHit> = matches
            .iter()
            .filter_map(|m: &IdentifyMatch| {
                let row = rows.get(&m.credential_id)?;
                Some(IdentifyHit {
                    credential: reference_of(row.serial.as_deref(), row.slot, row.id),
                    credential_id: row.id,
                    serial: row.serial.clone(),
                    slot: row.slot,
                    user: row.upn.clone(),
                    state: row.state,
                    offset: m.offset,
                })
            })
            .collect();
        let found: Vec<&str> = hits.iter().map(|h| h.credential.as_str()).collect();
        let event = AuditEvent::ok("identify").detail(json!({
            "codes": codes.len(),
            "searched": index.len(),
            "found": found,
        }));
        self.change(now, |_, _| Ok(((), event)))?;
        Ok(hits)
    }

    // ----- audit ----------------------------------------------------------------

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

    /// Records an event that happened outside the vault's own operations
    /// (an export, a device burn).
    pub fn record(&mut self, event: AuditEvent, now: u64) -> Result<()> {
        self.change(now, |_, _| Ok(((), event)))
    }

    /// Opens every held secret that `filter` selects, in one read, for an
    /// export. The caller records the export with [`Session::record`].
    pub fn reveal_all(
        &mut self,
        filter: &CredentialFilter,
    ) -> Result<Vec<(TokenInfo, Credential)>> {
        self.require(Permission::Export)?;
        let filter = CredentialFilter {
            held_only: true,
            ..filter.clone()
        };
        let checked = {
            let tx = self.store.read()?;
            tx.credentials(&filter).and_then(|rows| {
                signed::check_credentials(
                    &tx,
                    &self.signer,
                    self.signed,
                    &rows.iter().collect::<Vec<_>>(),
                )?;
                Ok(rows)
            })
        };
        let rows = self.audited(wall_clock(), checked)?;
        rows.iter()
            .map(|row| Ok((info(row), credential_of(&self.key, row)?)))
            .collect()
    }

    // ----- Microsoft Entra ------------------------------------------------------

    /// What Entra holds of each credential in `tenant`.
    pub fn entra_links(&mut self, tenant: &str) -> Result<Vec<EntraLink>> {
        self.require(Permission::InventoryRead)?;
        let checked = {
            let tx = self.store.read()?;
            tx.entra_links(tenant).and_then(|links| {
                check_entra_links(&tx, &self.signer, self.signed, &links)?;
                Ok(links)
            })
        };
        self.audited(wall_clock(), checked)
    }

    /// What Entra holds of one credential in `tenant`, if anything.
    pub fn entra_link(&mut self, tenant: &str, credential_id: i64) -> Result<Option<EntraLink>> {
        self.require(Permission::InventoryRead)?;
        let checked = {
            let tx = self.store.read()?;
            tx.entra_link(tenant, credential_id).and_then(|link| {
                check_entra_links(&tx, &self.signer, self.signed, link.as_slice())?;
                Ok(link)
            })
        };
        self.audited(wall_clock(), checked)
    }

    /// Writes links and forgets others in one transaction with `event` in
    /// the audit log: a step of a push is recorded whole or not at all.
    pub fn entra_record(
        &mut self,
        put: &[EntraLink],
        forget: &[(String, i64)],
        event: AuditEvent,
        now: u64,
    ) -> Result<()> {
        self.require(Permission::InventoryWrite)?;
        for link in put {
            check_text("Entra serial", &link.serial)?;
        }
        self.change(now, |tx, keys| {
            for (tenant, credential_id) in forget {
                tx.entra_link_delete(tenant, *credential_id)?;
                tx.row_mac_delete(
                    kind::ENTRA_LINK,
                    &signed::entra_link_id(tenant, *credential_id),
                )?;
            }
            let mut macs = Vec::with_capacity(put.len());
            for link in put {
                tx.entra_link_put(link)?;
                macs.push(keys.signer.entra_link(link));
            }
            keys.signer.put(tx, kind::ENTRA_LINK, macs)?;
            Ok(((), event))
        })
    }

    /// Opens a held credential's secret for another part of oathdesk (device
    /// burns, exports). The caller records why with [`Session::record`] in
    /// the same breath.
    pub fn reveal(&mut self, token: &TokenRef) -> Result<(TokenInfo, Credential)> {
        self.require(Permission::Export)?;
        let checked = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            let tx = self.store.read()?;
            resolve_checked(&tx, &keys, token)
        };
        let row = self.audited(wall_clock(), checked)?;
        Ok((info(&row), credential_of(&self.key, &row)?))
    }

    /// The code a token shows now, for an enrolment done at the desk: the
    /// time step is recorded as released (so the code never proves a
    /// delivery) and the showing is audited. For time-based credentials.
    pub fn enrolment_code(
        &mut self,
        token: &TokenRef,
        verifier: Verifier,
        now: u64,
    ) -> Result<EnrolmentCode> {
        self.require(Permission::Export)?;
        self.change(now, |tx, keys| {
            let row = resolve_checked(tx, keys, token)?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            let secret = held_secret(keys, &row)?;
            let (algorithm, digits, kind) = otp_parts(&row)?;
            let Kind::Totp { step } = kind else {
                return Err(Error::Invalid(format!(
                    "{reference} is an HOTP (event) token: enrolment codes are for time-based tokens"
                )));
            };
            let totp = Totp::new(&secret, algorithm, digits, step);
            let counter = step
                .counter_at(now)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let code = totp.at_counter(counter, 0);
            let window = verifier
                .window(step.period())
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let accepted = totp.accepted_interval(counter, window);
            release_step(tx, keys, row.id, counter, now)?;
            let mut event = AuditEvent::ok("enroll.code")
                .credential(reference.clone())
                .detail(json!({"counter": counter}));
            event.user = row.upn.clone();
            Ok((
                EnrolmentCode {
                    credential: reference,
                    user: row.upn.clone(),
                    code: code.code.to_string(),
                    counter,
                    valid_until: code.current.until,
                    accepted_until: accepted.until,
                },
                event,
            ))
        })
    }
}

/// A code shown at enrolment (see [`Session::enrolment_code`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnrolmentCode {
    pub credential: String,
    pub user: Option<String>,
    pub code: String,
    pub counter: u64,
    /// When the token moves on to the next code.
    pub valid_until: u64,
    /// Until when the verifier accepts it.
    pub accepted_until: u64,
}

/// What [`Session::copy_to`] copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// The target, password masked.
    pub to: String,
    /// Rows per table, parents first.
    pub tables: Vec<(String, u64)>,
    /// Audit entries in the copy, verified with this vault's keys.
    pub audit_entries: u64,
    /// `SEQ:HEX` of the copy's newest entry (the source's `vault.copy`).
    pub head: Option<String>,
}

impl Session<AnyStore> {
    /// Copies this vault row for row into `target` (a new file, an empty
    /// database or schema; with `replace`, one that holds a vault, whose
    /// content is replaced). Secrets stay sealed: nothing is decrypted.
    ///
    /// The source's audit chain is checked first (a broken one is not
    /// copied), the copy is recorded in it (`vault.copy`, so the copy's
    /// newest entry says where it went), and the copy is one transaction
    /// that reads one snapshot of the source. Afterwards the copy's audit
    /// keys are opened with this session's vault key and its chain
    /// verified; its head must be the one the source had.
    pub fn copy_to(&mut self, target: &Location, replace: bool, now: u64) -> Result<CopyReport> {
        self.require(Permission::Admin)?;
        let chain = self.audit_verify()?;
        if let Some((seq, why)) = chain.first_bad {
            return Err(Error::Refused(format!(
                "the audit chain of this vault is broken at entry {seq} ({why}): it is not copied; \
                 see 'oathdesk audit verify'"
            )));
        }
        let mut target_store = match AnyStore::open(target) {
            Ok(_) if !replace => {
                return Err(Error::Refused(format!(
                    "{target} already holds a vault: pass --replace to overwrite it with this one"
                )));
            }
            Ok(store) => store,
            Err(Error::NoVault { .. }) => AnyStore::create(target)?,
            Err(e) => return Err(e),
        };
        let shown = target.to_string();
        self.record(
            AuditEvent::ok("vault.copy").detail(json!({"to": shown, "database": target.kind()})),
            now,
        )?;
        let copied = self.copy_rows(&mut target_store, replace);
        match copied {
            Ok(mut report) => {
                report.to = shown;
                Ok(report)
            }
            Err(e) => {
                let mut failed = AuditEvent::ok("vault.copy")
                    .detail(json!({"to": shown, "reason": e.to_string()}));
                failed.outcome = "failed".into();
                let _ = self.record(failed, now);
                Err(e)
            }
        }
    }

    fn copy_rows(&mut self, target_store: &mut AnyStore, replace: bool) -> Result<CopyReport> {
        let (tables, source_head) = {
            let source = self.store.read()?;
            let target_tx = target_store.write()?;
            let tables = copy::tables(&target_tx)?;
            let source_tables = copy::tables(&source)?;
            for table in &tables {
                let theirs = source_tables.iter().find(|t| t.name == table.name);
                if theirs.map(|t| &t.columns) != Some(&table.columns) {
                    return Err(Error::Invalid(format!(
                        "table {} differs between the two databases: are both at schema version {}?",
                        table.name,
                        crate::migrations::LATEST
                    )));
                }
            }
            if replace {
                copy::clear(&target_tx, &tables)?;
            }
            let mut counted = Vec::with_capacity(tables.len());
            for table in &tables {
                let rows = copy::copy_table(&source, &target_tx, table)?;
                let (in_source, in_target) = (
                    copy::count(&source, &table.name)?,
                    copy::count(&target_tx, &table.name)?,
                );
                if rows != in_source || rows != in_target {
                    return Err(Error::Database(format!(
                        "table {}: {in_source} rows in the source, {rows} copied, {in_target} in the target",
                        table.name
                    )));
                }
                counted.push((table.name.clone(), rows));
            }
            copy::continue_ids(&target_tx)?;
            let head = source.audit_last()?.map(|row| row.hash);
            target_tx.commit()?;
            (counted, head)
        };
        // The copy is a vault this key opens, with the same history.
        let target_tx = target_store.read()?;
        let keys = open_audit_keys(&target_tx, &self.key).map_err(|e| {
            Error::Database(format!("the copy does not open with this vault's key: {e}"))
        })?;
        let rows = target_tx.audit_all()?;
        let report = audit::verify_chain(&rows, &|epoch| keys.get(&epoch).map(|k| **k));
        if let Some((seq, why)) = report.first_bad {
            return Err(Error::Database(format!(
                "the copy's audit chain fails at entry {seq}: {why}"
            )));
        }
        if rows.last().map(|r| &r.hash) != source_head.as_ref() {
            return Err(Error::Database(
                "the copy's newest audit entry is not the source's".into(),
            ));
        }
        Ok(CopyReport {
            to: String::new(),
            tables,
            audit_entries: report.entries,
            head: report.head,
        })
    }
}

/// A stored credential with its secret opened.
fn credential_of(key: &VaultKey, row: &CredentialRow) -> Result<Credential> {
    let secret = held_secret(key, row)?;
    let (algorithm, digits, kind) = otp_parts(row)?;
    Ok(Credential {
        secret,
        kind,
        algorithm,
        digits,
        issuer: row.issuer.clone(),
        account: row
            .upn
            .clone()
            .or_else(|| row.label.clone())
            .unwrap_or_default(),
        label_issuer: None,
    })
}

fn rate_limit_reason(upn: &str, granted: u64, limit: u64) -> String {
    format!(
        "rate limit: {upn} already had {granted} helpdesk code(s) in the last hour (limit {limit}); \
         wait, or raise '{}' with 'oathdesk vault set'",
        settings::RATE_LIMIT.0
    )
}

/// Finds exactly one credential.
fn resolve(tx: &impl StoreTx, token: &TokenRef) -> Result<CredentialRow> {
    let filter = match token {
        TokenRef::Id(id) => CredentialFilter {
            id: Some(*id),
            ..CredentialFilter::default()
        },
        TokenRef::Serial { serial, slot } => CredentialFilter {
            device_serial: Some(serial.clone()),
            slot: *slot,
            ..CredentialFilter::default()
        },
    };
    let mut rows = tx.credentials(&filter)?;
    match rows.len() {
        1 => Ok(rows.remove(0)),
        0 => Err(Error::NotFound(format!(
            "token {token} (list them with 'oathdesk token list')"
        ))),
        n => {
            let slots: Vec<String> = rows
                .iter()
                .filter_map(|r| r.slot.map(|s| s.to_string()))
                .collect();
            Err(Error::Invalid(format!(
                "{token} has {n} profiles (slots {}): say which, as {token}:SLOT",
                slots.join(", ")
            )))
        }
    }
}

/// Finds exactly one credential and checks its signature.
fn resolve_checked(tx: &impl StoreTx, keys: &Keys<'_>, token: &TokenRef) -> Result<CredentialRow> {
    let row = resolve(tx, token)?;
    signed::check_credentials(tx, keys.signer, keys.enforced, &[&row])?;
    Ok(row)
}

/// Writes a credential's mutable fields and signs the row as written.
fn update_credential(tx: &impl StoreTx, keys: &Keys<'_>, row: &CredentialRow) -> Result<()> {
    tx.credential_update(row)?;
    keys.signer
        .put(tx, kind::CREDENTIAL, vec![keys.signer.credential(row)])
}

/// Purges a credential's secret and signs what is left of the row.
fn purge_credential(tx: &impl StoreTx, keys: &Keys<'_>, id: i64, now: u64) -> Result<()> {
    tx.credential_purge(id, now)?;
    keys.signer.resign_credentials(tx, &[id])
}

fn check_user(tx: &impl StoreTx, keys: &Keys<'_>, user: &User) -> Result<()> {
    let (id, mac) = keys.signer.user(user);
    let name = format!("user {} ({})", user.id, user.upn);
    signed::check(tx, keys.enforced, kind::USER, &[(id, name, mac)])
}

fn check_entra_links(
    tx: &impl StoreTx,
    signer: &Signer,
    enforced: bool,
    links: &[EntraLink],
) -> Result<()> {
    let expected: Vec<(String, String, Vec<u8>)> = links
        .iter()
        .map(|link| {
            let (id, mac) = signer.entra_link(link);
            let name = format!(
                "the Entra link of credential {} in {}",
                link.credential_id, link.tenant
            );
            (id, name, mac)
        })
        .collect();
    signed::check(tx, enforced, kind::ENTRA_LINK, &expected)
}

/// A setting's value from its signed row. A setting that was signed and is
/// gone counts as altered: deleting a limit must not lift it to the default.
fn read_setting(tx: &impl StoreTx, keys: &Keys<'_>, name: &str, default: u64) -> Result<u64> {
    let row = || format!("setting {name}");
    match tx.meta_get(&format!("setting.{name}"))? {
        Some(value) => {
            let (id, mac) = keys.signer.setting(name, &value);
            signed::check(tx, keys.enforced, kind::SETTING, &[(id, row(), mac)])?;
            value.parse().map_err(|_| Error::Altered { row: row() })
        }
        None => {
            if keys.enforced
                && !tx
                    .row_macs(kind::SETTING, Some(&[name.to_owned()]))?
                    .is_empty()
            {
                return Err(Error::Altered { row: row() });
            }
            Ok(default)
        }
    }
}

/// The user a helpdesk code is asked for, their credentials and the codes
/// granted for them in the last hour; the rows that decide are checked.
#[allow(clippy::type_complexity)]
fn helpdesk_candidates(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    upn: &str,
    now: u64,
) -> Result<(Option<User>, Vec<CredentialRow>, u64)> {
    let user = tx.user_by_upn(upn)?;
    let candidates = match &user {
        Some(user) => {
            check_user(tx, keys, user)?;
            tx.credentials(&CredentialFilter {
                user_upn: Some(user.upn.clone()),
                ..CredentialFilter::default()
            })?
        }
        None => Vec::new(),
    };
    signed::check_credentials(
        tx,
        keys.signer,
        keys.enforced,
        &candidates.iter().collect::<Vec<_>>(),
    )?;
    let since = now.saturating_sub(3600);
    let granted = tx.audit_count("helpdesk.code", "granted", upn, since)?;
    Ok((user, candidates, granted))
}

/// How long a released step is remembered: longer than any delivery
/// window can reach back (the default window is ±10 steps).
const RELEASED_KEPT: u64 = 86_400;

/// Records that the code of `counter` was shown, and forgets steps too old
/// to match any delivery check.
fn release_step(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    credential_id: i64,
    counter: u64,
    now: u64,
) -> Result<()> {
    tx.released_put(credential_id, counter, now)?;
    let at = tx
        .released(credential_id)?
        .into_iter()
        .find(|(c, _)| *c == counter)
        .map_or(now, |(_, at)| at);
    keys.signer.put(
        tx,
        kind::RELEASED,
        vec![keys.signer.released(credential_id, counter, at)],
    )?;
    for (id, counter) in tx.released_prune(now.saturating_sub(RELEASED_KEPT))? {
        tx.row_mac_delete(kind::RELEASED, &signed::released_id(id, counter))?;
    }
    Ok(())
}

/// The released steps of a credential, their signatures checked.
fn released_steps(tx: &impl StoreTx, keys: &Keys<'_>, credential_id: i64) -> Result<Vec<u64>> {
    let steps = tx.released(credential_id)?;
    let expected: Vec<(String, String, Vec<u8>)> = steps
        .iter()
        .map(|(counter, at)| {
            let (id, mac) = keys.signer.released(credential_id, *counter, *at);
            (
                id,
                format!("released step {counter} of credential {credential_id}"),
                mac,
            )
        })
        .collect();
    signed::check(tx, keys.enforced, kind::RELEASED, &expected)?;
    Ok(steps.into_iter().map(|(counter, _)| counter).collect())
}

fn held_secret(key: &VaultKey, row: &CredentialRow) -> Result<Secret> {
    match &row.sealed_secret {
        Some(sealed) if row.custody == Custody::Held => Ok(Secret::from_bytes(
            key.open_secret(sealed, &binding(row))?.to_vec(),
        )),
        _ => Err(Error::Refused(format!(
            "the secret of {} was purged; the vault no longer holds it",
            reference_of(row.serial.as_deref(), row.slot, row.id)
        ))),
    }
}

fn move_state(
    tx: &impl StoreTx,
    row: &mut CredentialRow,
    to: State,
    operator: &str,
    note: Option<&str>,
    now: u64,
) -> Result<()> {
    row.state.check_transition(to).map_err(|e| match e {
        Error::Refused(reason) => Error::Refused(format!(
            "{}: {reason}",
            reference_of(row.serial.as_deref(), row.slot, row.id)
        )),
        other => other,
    })?;
    tx.event_insert(&Event {
        credential_id: row.id,
        from_state: Some(row.state),
        to_state: to,
        operator: operator.to_owned(),
        at: now,
        note: note.map(str::to_owned),
    })?;
    row.state = to;
    row.updated_at = now;
    Ok(())
}

/// A device or user that exists, or one this batch adds (by its index).
#[derive(Clone, Copy)]
enum Planned {
    Existing(i64),
    New(usize),
}

impl Planned {
    fn id(self, new_ids: &[i64]) -> i64 {
        match self {
            Planned::Existing(id) => id,
            Planned::New(index) => new_ids[index],
        }
    }
}

/// Adds tokens in a fixed number of database round trips, whatever their
/// number: what exists is looked up for the whole batch, the batch is
/// checked in memory (slots, duplicates), then devices, users, credentials
/// and their first events are written in bulk. A shared database pays a
/// round trip per statement, so per-token statements would make a large
/// import there a hundred times slower than on SQLite.
fn insert_tokens(
    tx: &impl StoreTx,
    key: &Keys<'_>,
    tokens: Vec<NewToken>,
    now: u64,
) -> Result<Vec<CredentialRow>> {
    let mut serials: Vec<String> = Vec::new();
    let mut upns: Vec<String> = Vec::new();
    for token in &tokens {
        for (field, value) in [
            ("serial", token.serial.as_deref()),
            ("user", token.user.as_deref()),
            ("label", token.label.as_deref()),
            ("manufacturer", token.manufacturer.as_deref()),
            ("model", token.model.as_deref()),
            ("issuer", token.credential.issuer.as_deref()),
        ] {
            check_text(field, value.unwrap_or_default())?;
        }
        if let Some(serial) = &token.serial {
            let serial = serial.trim();
            if serial.is_empty() {
                return Err(Error::Invalid("the serial is empty".into()));
            }
            serials.push(serial.to_owned());
        }
        if let Some(upn) = &token.user {
            upns.push(upn.clone());
        }
    }
    serials.sort_unstable();
    serials.dedup();
    upns.sort_unstable();
    upns.dedup();

    // What the vault has already.
    let existing_devices: HashMap<String, Device> = tx
        .devices_by_serial(&serials)?
        .into_iter()
        .map(|d| (d.serial.clone(), d))
        .collect();
    let mut taken: std::collections::HashSet<(String, Option<u32>)> = Default::default();
    if !existing_devices.is_empty() {
        let serial_of: HashMap<i64, &str> = existing_devices
            .values()
            .map(|d| (d.id, d.serial.as_str()))
            .collect();
        let ids: Vec<i64> = serial_of.keys().copied().collect();
        for (device_id, slot) in tx.slots_taken(&ids)? {
            taken.insert((serial_of[&device_id].to_owned(), slot));
        }
    }
    let existing_users: Vec<User> = tx.users_by_upn(&upns)?;
    let mut users: HashMap<String, Planned> = existing_users
        .iter()
        .map(|u| (u.upn.to_lowercase(), Planned::Existing(u.id)))
        .collect();

    // The existing rows that decide (a device's slots, a user's id) must
    // be the vault's.
    let expected: Vec<(String, String, Vec<u8>)> = existing_users
        .iter()
        .map(|u| {
            let (id, mac) = key.signer.user(u);
            (id, format!("user {} ({})", u.id, u.upn), mac)
        })
        .collect();
    signed::check(tx, key.enforced, kind::USER, &expected)?;
    let expected: Vec<(String, String, Vec<u8>)> = existing_devices
        .values()
        .map(|d| {
            let (id, mac) = key.signer.device(d);
            (id, format!("device {} (serial {})", d.id, d.serial), mac)
        })
        .collect();
    signed::check(tx, key.enforced, kind::DEVICE, &expected)?;

    // The batch, checked in memory, in order.
    let mut devices: HashMap<String, (Planned, u32)> = existing_devices
        .values()
        .map(|d| (d.serial.clone(), (Planned::Existing(d.id), d.slots)))
        .collect();
    let mut new_devices: Vec<Device> = Vec::new();
    let mut new_users: Vec<User> = Vec::new();
    let mut plans: Vec<(Option<Planned>, Option<Planned>)> = Vec::with_capacity(tokens.len());
    for token in &tokens {
        let device = match &token.serial {
            Some(serial) => {
                let serial = serial.trim();
                let (device, slots) = *devices.entry(serial.to_owned()).or_insert_with(|| {
                    new_devices.push(Device {
                        id: 0,
                        serial: serial.to_owned(),
                        manufacturer: token.manufacturer.clone(),
                        model: token.model.clone(),
                        kind: token.device_kind,
                        slots: token.device_slots.max(1),
                        created_at: now,
                    });
                    (
                        Planned::New(new_devices.len() - 1),
                        token.device_slots.max(1),
                    )
                });
                if let Some(slot) = token.slot
                    && slot >= slots
                {
                    return Err(Error::Invalid(format!(
                        "device {serial} has {slots} slot(s), numbered 0 to {}: slot {slot} does not exist",
                        slots - 1
                    )));
                }
                if !taken.insert((serial.to_owned(), token.slot)) {
                    return Err(Error::Exists(format!(
                        "a credential in {}",
                        reference_of(Some(serial), token.slot, 0)
                    )));
                }
                if token.slot.is_none() && slots > 1 {
                    return Err(Error::Invalid(format!(
                        "device {serial} has {slots} profiles: give the slot as {serial}:SLOT"
                    )));
                }
                Some(device)
            }
            None => None,
        };
        let user = token.user.as_ref().map(|upn| {
            *users.entry(upn.to_lowercase()).or_insert_with(|| {
                new_users.push(User {
                    id: 0,
                    upn: upn.clone(),
                    display_name: None,
                    created_at: now,
                });
                Planned::New(new_users.len() - 1)
            })
        });
        plans.push((device, user));
    }

    // The writes.
    let new_device_ids = tx.devices_insert(&new_devices)?;
    let new_user_ids = tx.users_insert(&new_users)?;
    let device_macs = new_devices
        .iter_mut()
        .zip(&new_device_ids)
        .map(|(device, id)| {
            device.id = *id;
            key.signer.device(device)
        })
        .collect();
    key.signer.put(tx, kind::DEVICE, device_macs)?;
    let user_macs = new_users
        .iter_mut()
        .zip(&new_user_ids)
        .map(|(user, id)| {
            user.id = *id;
            key.signer.user(user)
        })
        .collect();
    key.signer.put(tx, kind::USER, user_macs)?;
    let ids = tx.credential_ids(tokens.len())?;
    let mut rows = Vec::with_capacity(tokens.len());
    for ((token, (device, user)), id) in tokens.into_iter().zip(plans).zip(ids) {
        let user_id = user.map(|u| u.id(&new_user_ids));
        let c = &token.credential;
        let (kind, period, t0, counter) = match c.kind {
            Kind::Totp { step } => ("totp", Some(step.period()), Some(step.t0()), None),
            Kind::Hotp { counter } => ("hotp", None, None, Some(counter)),
        };
        let mut row = CredentialRow {
            id,
            device_id: device.map(|d| d.id(&new_device_ids)),
            slot: token.slot,
            kind: kind.to_owned(),
            algorithm: c.algorithm.to_string(),
            digits: c.digits.get(),
            period,
            t0,
            counter,
            issuer: c.issuer.clone(),
            label: token.label.clone(),
            // A secret being burned stays `burning` until the token
            // confirmed it, even when it is already meant for a user.
            state: if user_id.is_some() && token.state != State::Burning {
                State::Assigned
            } else {
                token.state
            },
            custody: Custody::Held,
            sealed_secret: None,
            user_id,
            drift_steps: None,
            purge_after: None,
            created_at: now,
            updated_at: now,
            serial: token.serial.as_ref().map(|s| s.trim().to_owned()),
            upn: token.user.clone(),
            manufacturer: token.manufacturer.clone(),
            model: token.model.clone(),
        };
        // The id is part of the associated data: it was reserved first.
        row.sealed_secret = Some(key.seal_secret(c.secret.as_bytes(), &binding(&row))?);
        rows.push(row);
    }
    tx.credentials_insert(&rows)?;
    key.signer.put(
        tx,
        kind::CREDENTIAL,
        rows.iter().map(|row| key.signer.credential(row)).collect(),
    )?;
    let events: Vec<Event> = rows
        .iter()
        .map(|row| Event {
            credential_id: row.id,
            from_state: None,
            to_state: row.state,
            operator: String::new(),
            at: now,
            note: None,
        })
        .collect();
    tx.events_insert(&events)?;
    Ok(rows)
}
