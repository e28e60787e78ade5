//! What the web console keeps in the vault: accounts with roles, bearer
//! grants (browser sessions and API tokens) and login throttling.
//!
//! - **Accounts are operators.** Each web account is a vault operator with a
//!   passphrase slot; logging in opens that slot with the password (Argon2id),
//!   as the command line does. The account row adds a role and two flags, and
//!   is MAC'd under a key derived from the vault key: someone who can write
//!   the database but holds no vault key cannot give themselves a role.
//! - **Grants wrap the vault key under a bearer secret** — for accounts
//!   whose operator holds a key slot (admins, provisioners). A login (a
//!   *session*) or an API token is 32 random bytes that only the bearer
//!   holds. The database keeps SHA-256 of the secret (to find the row) and
//!   the vault key sealed under HKDF(secret), bound to the row's account,
//!   kind, scopes and lifetime. Nothing on disk opens the vault by itself, a
//!   request opens it only with the secret it carries, and every server
//!   process on the same database accepts the grant. A rekey ends all
//!   grants (their wrapped key is the old one).
//! - **Helpdesk and auditor accounts hold no key** (threat model, promise
//!   2). Their password opens only their identity, proving who they are;
//!   their grants seal a constant under a key derived from the bearer secret
//!   *and* the vault key, so they open only at a console that holds the
//!   vault key (unsealed) and cannot be forged without it. See
//!   [`crate::Vault::open_grant`] and [`crate::Vault::unlock_with`].
//! - **Throttling is shared.** Failed logins are counted per key (an account
//!   or a client address) in the database, so several servers on one
//!   database enforce one lockout.
//!
//! An account's role is its operator's role ([`crate::policy`]): the
//! vault decides what each may do, for the console as for the command line.

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::audit::{AuditEvent, hex};
use crate::crypto::{self, KdfParams, VaultKey};
use crate::error::{Error, Result};
use crate::policy::{Permission, Role};
use crate::session::{
    Keys, Session, check_operator_name, delete_operator, keep_an_admin, passphrase_slot,
    put_operator,
};
use crate::store::{Store, StoreTx};

/// The roles a web account can have.
pub const ROLES: [&str; 4] = ["admin", "helpdesk", "provisioner", "auditor"];

/// The operator that exists only between the creation of a vault by the web
/// console and the creation of its first admin; its passphrase is the
/// one-time setup code.
pub const SETUP_OPERATOR: &str = "first-run-setup";

// The rows are the store's (crate::store); the web console's names for them.
pub use crate::store::{GrantRow, ThrottleRow, WebAccountRow};

/// A browser session or an API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    Session,
    Token,
}

impl GrantKind {
    pub fn name(self) -> &'static str {
        match self {
            GrantKind::Session => "session",
            GrantKind::Token => "token",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<GrantKind> {
        match text {
            "session" => Ok(GrantKind::Session),
            "token" => Ok(GrantKind::Token),
            other => Err(Error::Database(format!("unknown grant kind '{other}'"))),
        }
    }
}

/// A web account, its MAC checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebAccount {
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub must_change_password: bool,
    pub created_at: u64,
    pub created_by: String,
}

/// An opened (or just created) grant, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// A public handle (the first 8 bytes of the secret's hash, in hex) to
    /// list and revoke it by.
    pub handle: String,
    pub kind: GrantKind,
    pub account: String,
    /// The account's role now.
    pub role: String,
    pub label: Option<String>,
    /// A token's scopes (empty for a session).
    pub scopes: Vec<String>,
    pub created_at: u64,
    pub expires_at: u64,
    pub last_used_at: u64,
    /// The account's password was set by an admin and must be changed.
    pub must_change_password: bool,
}

/// A new grant's bearer secret. Give it to the bearer once; the vault keeps
/// only its hash.
pub type GrantSecret = Zeroizing<[u8; 32]>;

/// When failed logins lock a key out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures within `window` seconds that lock the key.
    pub max_failures: u64,
    pub window: u64,
    /// Seconds the key stays locked.
    pub lockout: u64,
}

/// A grant's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// Seconds from creation to the end, however busy.
    pub max: u64,
    /// Seconds without use that end it (sessions); `None`: no idle limit.
    pub idle: Option<u64>,
}

/// How often `last_used_at` is written: more often would turn every read
/// request into a write.
pub(crate) const TOUCH_EVERY: u64 = 60;

pub(crate) fn grant_id(secret: &[u8; 32]) -> Vec<u8> {
    Sha256::digest(secret).to_vec()
}

pub(crate) fn grant_handle(id: &[u8]) -> String {
    hex(&id[..8.min(id.len())])
}

pub(crate) fn grant_wrapping_key(secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    crypto::derive_key(secret, b"oathdesk web grant key v1")
}

/// The wrapping key of a grant of an operator without a key slot: it needs
/// the bearer secret and the vault key, so nobody without the vault key
/// can forge such a grant, and the grant opens nothing by itself.
pub(crate) fn bound_grant_wrapping_key(secret: &[u8; 32], key: &VaultKey) -> Zeroizing<[u8; 32]> {
    let binding = key.derive(b"oathdesk web grant binding v1");
    let material = Zeroizing::new([secret.as_slice(), binding.as_slice()].concat());
    crypto::derive_key(&material, b"oathdesk web grant key v2")
}

pub(crate) fn grant_aad(row: &GrantRow) -> Vec<u8> {
    let mut aad = b"oathdesk web grant v1".to_vec();
    for field in [
        hex(&row.id).as_bytes(),
        row.kind.as_bytes(),
        row.account.as_bytes(),
        row.scopes.as_bytes(),
        row.created_at.to_string().as_bytes(),
        row.expires_at.to_string().as_bytes(),
    ] {
        aad.push(0);
        aad.extend_from_slice(field);
    }
    aad
}

pub(crate) fn account_mac(key: &VaultKey, row: &WebAccountRow) -> Vec<u8> {
    let mac_key = key.derive(b"oathdesk web account mac v1");
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_ref()).expect("HMAC takes any key");
    for field in [
        row.name.as_bytes(),
        row.role.as_bytes(),
        if row.disabled { b"1" } else { b"0" },
        if row.must_change_password { b"1" } else { b"0" },
        &row.created_at.to_be_bytes(),
        row.created_by.as_bytes(),
    ] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field);
    }
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn account_verified(key: &VaultKey, row: &WebAccountRow) -> Result<WebAccount> {
    let expected = account_mac(key, row);
    if !subtle_eq(&expected, &row.mac) {
        return Err(Error::Refused(format!(
            "the web account '{}' was changed outside oathdesk (its MAC does not match): \
             an admin must set its role again",
            row.name
        )));
    }
    Ok(WebAccount {
        name: row.name.clone(),
        role: row.role.clone(),
        disabled: row.disabled,
        must_change_password: row.must_change_password,
        created_at: row.created_at,
        created_by: row.created_by.clone(),
    })
}

pub(crate) fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn check_role(role: &str) -> Result<Role> {
    role.parse()
}

/// Keeps a web account's role equal to its operator's (part of
/// `Session::set_operator_role`): re-MAC'd, and its grants ended.
pub(crate) fn follow_operator_role(
    tx: &impl StoreTx,
    key: &VaultKey,
    name: &str,
    role: Role,
) -> Result<()> {
    if let Some(row) = tx.web_account(name)? {
        let mut row = row;
        row.role = role.name().to_owned();
        row.mac = account_mac(key, &row);
        tx.web_account_put(&row)?;
        tx.web_grants_delete_account(Some(name))?;
    }
    Ok(())
}

/// Sets the role of an operator's row (signed) to match its account.
fn set_operator_role(tx: &impl StoreTx, keys: &Keys<'_>, name: &str, role: Role) -> Result<()> {
    let mut row = tx
        .operator(name)?
        .ok_or_else(|| Error::UnknownOperator(name.to_owned()))?;
    if row.role != role.name() {
        row.role = role.name().to_owned();
        // The key slot follows the role.
        put_operator(tx, keys, row)?;
    }
    Ok(())
}

pub(crate) fn grant_of(row: &GrantRow, account: &WebAccount) -> Result<Grant> {
    Ok(Grant {
        handle: grant_handle(&row.id),
        kind: GrantKind::parse(&row.kind)?,
        account: row.account.clone(),
        role: account.role.clone(),
        label: row.label.clone(),
        scopes: row.scopes.split_whitespace().map(str::to_owned).collect(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        must_change_password: account.must_change_password,
    })
}

/// Re-MACs every web account under a new vault key and ends every grant;
/// part of `Session::rekey`'s transaction.
pub(crate) fn after_rekey(tx: &impl StoreTx, new_key: &VaultKey) -> Result<()> {
    for mut row in tx.web_accounts()? {
        row.mac = account_mac(new_key, &row);
        tx.web_account_put(&row)?;
    }
    tx.web_grants_delete_account(None)?;
    Ok(())
}

pub(crate) fn enabled_admins(tx: &impl StoreTx) -> Result<usize> {
    Ok(tx
        .web_accounts()?
        .iter()
        .filter(|a| a.role == "admin" && !a.disabled)
        .count())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn new_grant(
    tx: &impl StoreTx,
    key: &VaultKey,
    kind: GrantKind,
    account: &str,
    label: Option<&str>,
    scopes: &[String],
    lifetime: u64,
    now: u64,
) -> Result<(GrantSecret, GrantRow)> {
    let mut secret = Zeroizing::new([0u8; 32]);
    crypto::random(secret.as_mut())?;
    let holds_key = tx
        .operator(account)?
        .is_some_and(|o| !o.wrapped_vault_key.is_empty());
    let mut row = GrantRow {
        id: grant_id(&secret),
        kind: kind.name().to_owned(),
        account: account.to_owned(),
        label: label.map(str::to_owned),
        scopes: scopes.join(" "),
        wrapped_key: Vec::new(),
        created_at: now,
        expires_at: now.saturating_add(lifetime),
        last_used_at: now,
    };
    row.wrapped_key = if holds_key {
        key.wrap_under(&grant_wrapping_key(&secret), &grant_aad(&row))?
    } else {
        VaultKey::no_key().wrap_under(&bound_grant_wrapping_key(&secret, key), &grant_aad(&row))?
    };
    tx.web_grant_put(&row)?;
    Ok((secret, row))
}

/// The web account of `operator`, MAC checked.
fn own_account(tx: &impl StoreTx, key: &VaultKey, operator: &str) -> Result<WebAccount> {
    let row = tx.web_account(operator)?.ok_or_else(|| {
        Error::Unauthenticated(format!(
            "operator '{operator}' has no web account: an admin can give them one"
        ))
    })?;
    account_verified(key, &row)
}

impl<S: Store> Session<S> {
    /// Locks the vault again and gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Starts a browser session for this session's operator (who just
    /// unlocked with their password). `failures` is the count of failed
    /// logins before this one, for the audit entry.
    pub fn start_web_session(
        &mut self,
        lifetime: u64,
        failures: u64,
        now: u64,
    ) -> Result<(GrantSecret, Grant)> {
        self.require(Permission::Account)?;
        let operator = self.operator().to_owned();
        self.change(now, |tx, key| {
            let account = own_account(tx, key, &operator)?;
            if account.disabled {
                return Err(Error::Unauthenticated("the account is disabled".into()));
            }
            let (secret, row) = new_grant(
                tx,
                key,
                GrantKind::Session,
                &operator,
                None,
                &[],
                lifetime,
                now,
            )?;
            let event = AuditEvent::ok("web.login").detail(json!({
                "session": grant_handle(&row.id),
                "failed_attempts_before": failures,
            }));
            Ok(((secret, grant_of(&row, &account)?), event))
        })
    }

    /// Ends a grant by its secret (logout).
    pub fn end_grant(&mut self, secret: &[u8; 32], now: u64) -> Result<()> {
        let id = grant_id(secret);
        self.change(now, |tx, _| {
            let kind = tx.web_grant(&id)?.map(|row| row.kind);
            tx.web_grant_delete(&id)?;
            Ok((
                (),
                AuditEvent::ok("web.logout")
                    .detail(json!({"grant": grant_handle(&id), "kind": kind})),
            ))
        })
    }

    /// Creates an API token for this session's operator. Its scopes are
    /// checked by the web console against the role.
    pub fn create_api_token(
        &mut self,
        label: &str,
        scopes: &[String],
        lifetime: u64,
        now: u64,
    ) -> Result<(GrantSecret, Grant)> {
        let label = label.trim();
        if label.is_empty() || label.len() > 100 || label.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "a token's name is 1 to 100 printable characters".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(Error::Invalid("a token needs at least one scope".into()));
        }
        self.require(Permission::Account)?;
        let role = self.role();
        for scope in scopes {
            let permission = Permission::scope(scope).ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown scope '{scope}': use {}",
                    role.permissions()
                        .iter()
                        .filter(|p| **p != Permission::Account)
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if !role.permits(permission) {
                return Err(Error::Forbidden {
                    permission,
                    role,
                    token: false,
                });
            }
        }
        let operator = self.operator().to_owned();
        self.change(now, |tx, key| {
            let account = own_account(tx, key, &operator)?;
            let (secret, row) = new_grant(
                tx,
                key,
                GrantKind::Token,
                &operator,
                Some(label),
                scopes,
                lifetime,
                now,
            )?;
            let event = AuditEvent::ok("web.token.create").detail(json!({
                "token": grant_handle(&row.id),
                "name": label,
                "scopes": scopes,
                "expires_at": row.expires_at,
            }));
            Ok(((secret, grant_of(&row, &account)?), event))
        })
    }

    /// The grants of one account (or of all accounts), newest first.
    pub fn web_grants(&mut self, account: Option<&str>) -> Result<Vec<Grant>> {
        self.require_own_or_admin(account)?;
        let tx = self.store.read()?;
        let accounts: std::collections::HashMap<String, WebAccount> = tx
            .web_accounts()?
            .iter()
            .map(|row| Ok((row.name.clone(), account_verified(&self.key, row)?)))
            .collect::<Result<_>>()?;
        let mut grants = Vec::new();
        for row in tx.web_grants(account)? {
            if let Some(owner) = accounts.get(&row.account) {
                grants.push(grant_of(&row, owner)?);
            }
        }
        grants.sort_by_key(|g| std::cmp::Reverse(g.created_at));
        Ok(grants)
    }

    /// Revokes a grant by its handle; with `account`, only that account's.
    pub fn revoke_grant(&mut self, handle: &str, account: Option<&str>, now: u64) -> Result<()> {
        self.require_own_or_admin(account)?;
        self.change(now, |tx, _| {
            let found = tx
                .web_grants(account)?
                .into_iter()
                .find(|row| grant_handle(&row.id) == handle)
                .ok_or_else(|| Error::NotFound(format!("token or session '{handle}'")))?;
            tx.web_grant_delete(&found.id)?;
            Ok((
                (),
                AuditEvent::ok("web.grant.revoke").detail(json!({
                    "grant": handle,
                    "kind": found.kind,
                    "account": found.account,
                })),
            ))
        })
    }

    /// `Account` for one's own grants or password, `Admin` for anyone's.
    fn require_own_or_admin(&mut self, account: Option<&str>) -> Result<()> {
        if account == Some(self.operator()) {
            self.require(Permission::Account)
        } else {
            self.require(Permission::Admin)
        }
    }

    /// This session's own web account.
    pub fn web_account(&mut self) -> Result<WebAccount> {
        self.require_during_password_change(Permission::Account)?;
        let operator = self.operator().to_owned();
        let tx = self.store.read()?;
        own_account(&tx, &self.key, &operator)
    }

    /// Every web account; an account whose MAC fails is an error naming it.
    pub fn web_accounts(&mut self) -> Result<Vec<WebAccount>> {
        self.require(Permission::Admin)?;
        let tx = self.store.read()?;
        tx.web_accounts()?
            .iter()
            .map(|row| account_verified(&self.key, row))
            .collect()
    }

    /// Creates a web account and its operator slot in one transaction.
    pub fn add_web_account(
        &mut self,
        name: &str,
        password: &[u8],
        kdf: KdfParams,
        role: &str,
        must_change_password: bool,
        now: u64,
    ) -> Result<WebAccount> {
        check_operator_name(name)?;
        let parsed = check_role(role)?;
        check_password(password)?;
        self.require(Permission::Admin)?;
        let by = self.operator().to_owned();
        self.change(now, |tx, key| {
            if tx.operator(name)?.is_some() {
                return Err(Error::Exists(format!(
                    "operator '{name}' (give an existing operator a web account instead)"
                )));
            }
            put_operator(
                tx,
                key,
                passphrase_slot(name, password, kdf, key, &by, parsed, now)?,
            )?;
            let account = put_account(tx, key, name, role, false, must_change_password, &by, now)?;
            let event =
                AuditEvent::ok("web.account.add").detail(json!({"name": name, "role": role}));
            Ok((account, event))
        })
    }

    /// Gives an existing operator (made with the command line) a web account.
    pub fn grant_web_account(&mut self, name: &str, role: &str, now: u64) -> Result<WebAccount> {
        let parsed = check_role(role)?;
        self.require(Permission::Admin)?;
        let by = self.operator().to_owned();
        self.change(now, |tx, key| {
            let operator = tx
                .operator(name)?
                .ok_or_else(|| Error::UnknownOperator(name.to_owned()))?;
            if operator.sealed_identity.is_none() {
                return Err(Error::Invalid(format!(
                    "operator '{name}' unlocks with an age identity file, which a browser cannot \
                     use: add a web account with a password instead"
                )));
            }
            if tx.web_account(name)?.is_some() {
                return Err(Error::Exists(format!("web account '{name}'")));
            }
            keep_an_admin(tx, &operator, Some(parsed))?;
            set_operator_role(tx, key, name, parsed)?;
            let account = put_account(tx, key, name, role, false, false, &by, now)?;
            let event = AuditEvent::ok("web.account.add")
                .detail(json!({"name": name, "role": role, "existing_operator": true}));
            Ok((account, event))
        })
    }

    /// The first admin of a vault made on the command line: this session's
    /// operator becomes admin, allowed only while there is no web account.
    pub fn claim_first_admin(&mut self, now: u64) -> Result<WebAccount> {
        self.require(Permission::Admin)?;
        let name = self.operator().to_owned();
        self.change(now, |tx, key| {
            if !tx.web_accounts()?.is_empty() {
                return Err(Error::Refused(
                    "the web console is set up already: sign in instead".into(),
                ));
            }
            let account = put_account(tx, key, &name, "admin", false, false, &name, now)?;
            Ok((
                account,
                AuditEvent::ok("web.setup")
                    .detail(json!({"admin": name, "existing_operator": true})),
            ))
        })
    }

    /// Completes the first-run setup of a vault the web console created:
    /// creates the first admin, removes the one-time setup operator (this
    /// session's) and starts the admin's browser session, in one transaction.
    pub fn complete_setup(
        &mut self,
        admin: &str,
        password: &[u8],
        kdf: KdfParams,
        session_lifetime: u64,
        now: u64,
    ) -> Result<(GrantSecret, Grant)> {
        if self.operator() != SETUP_OPERATOR {
            return Err(Error::Refused("setup is done with the setup code".into()));
        }
        check_operator_name(admin)?;
        check_password(password)?;
        if admin == SETUP_OPERATOR {
            return Err(Error::Invalid(format!("'{SETUP_OPERATOR}' is reserved")));
        }
        self.require(Permission::Admin)?;
        self.change(now, |tx, key| {
            if !tx.web_accounts()?.is_empty() {
                return Err(Error::Refused(
                    "the web console is set up already: sign in instead".into(),
                ));
            }
            put_operator(
                tx,
                key,
                passphrase_slot(admin, password, kdf, key, admin, Role::Admin, now)?,
            )?;
            let account = put_account(tx, key, admin, "admin", false, false, admin, now)?;
            delete_operator(tx, SETUP_OPERATOR)?;
            let (secret, row) = new_grant(
                tx,
                key,
                GrantKind::Session,
                admin,
                None,
                &[],
                session_lifetime,
                now,
            )?;
            let event = AuditEvent::ok("web.setup").detail(json!({"admin": admin}));
            Ok(((secret, grant_of(&row, &account)?), event))
        })
    }

    /// Changes an account's role or disables/enables it; ends its grants.
    /// The last enabled admin cannot be demoted or disabled.
    pub fn update_web_account(
        &mut self,
        name: &str,
        role: Option<&str>,
        disabled: Option<bool>,
        now: u64,
    ) -> Result<WebAccount> {
        let parsed = role.map(check_role).transpose()?;
        self.require(Permission::Admin)?;
        self.change(now, |tx, key| {
            let row = tx
                .web_account(name)?
                .ok_or_else(|| Error::NotFound(format!("web account '{name}'")))?;
            // An admin may repair an account whose MAC fails by setting it
            // again, so the old row is read without its MAC.
            let new_role = role.unwrap_or(&row.role).to_owned();
            let new_disabled = disabled.unwrap_or(row.disabled);
            let was_admin = row.role == "admin" && !row.disabled;
            let is_admin = new_role == "admin" && !new_disabled;
            if was_admin && !is_admin && enabled_admins(tx)? <= 1 {
                return Err(Error::Refused(format!(
                    "'{name}' is the last enabled admin: make another admin first"
                )));
            }
            if let Some(role) = parsed {
                set_operator_role(tx, key, name, role)?;
            }
            let account = put_account(
                tx,
                key,
                name,
                &new_role,
                new_disabled,
                row.must_change_password,
                &row.created_by,
                row.created_at,
            )?;
            tx.web_grants_delete_account(Some(name))?;
            let event = AuditEvent::ok("web.account.change").detail(json!({
                "name": name, "role": new_role, "disabled": new_disabled,
            }));
            Ok((account, event))
        })
    }

    /// Sets an account's password: a new key pair for its operator slot,
    /// the vault key wrapped to it, every grant of the account ended.
    /// `must_change_password` is set when an admin resets someone else's.
    pub fn set_web_password(
        &mut self,
        name: &str,
        password: &[u8],
        kdf: KdfParams,
        must_change_password: bool,
        now: u64,
    ) -> Result<WebAccount> {
        check_password(password)?;
        if name == self.operator() {
            // Replacing the password an admin set is what a pending change allows.
            self.require_during_password_change(Permission::Account)?;
        } else {
            self.require(Permission::Admin)?;
        }
        let by = self.operator().to_owned();
        let account = self.change(now, |tx, key| {
            let row = tx
                .web_account(name)?
                .ok_or_else(|| Error::NotFound(format!("web account '{name}'")))?;
            let current = account_verified(key, &row)?;
            let old_slot = tx
                .operator(name)?
                .ok_or_else(|| Error::UnknownOperator(name.to_owned()))?;
            let role = check_role(&old_slot.role)?;
            let mut slot =
                passphrase_slot(name, password, kdf, key, &old_slot.created_by, role, now)?;
            slot.created_at = old_slot.created_at;
            put_operator(tx, key, slot)?;
            let account = put_account(
                tx,
                key,
                name,
                &current.role,
                current.disabled,
                must_change_password,
                &current.created_by,
                current.created_at,
            )?;
            tx.web_grants_delete_account(Some(name))?;
            let event = AuditEvent::ok("web.password").detail(json!({
                "name": name, "by": by, "reset": must_change_password,
            }));
            Ok((account, event))
        })?;
        if name == self.operator() {
            self.principal.password_change_pending = account.must_change_password;
        }
        Ok(account)
    }

    /// Removes a web account, its grants and (with `remove_operator`) its
    /// operator slot. The last enabled admin cannot be removed.
    pub fn remove_web_account(
        &mut self,
        name: &str,
        remove_operator: bool,
        now: u64,
    ) -> Result<()> {
        self.require(Permission::Admin)?;
        self.change(now, |tx, _| {
            let row = tx
                .web_account(name)?
                .ok_or_else(|| Error::NotFound(format!("web account '{name}'")))?;
            if row.role == "admin" && !row.disabled && enabled_admins(tx)? <= 1 {
                return Err(Error::Refused(format!(
                    "'{name}' is the last enabled admin: make another admin first"
                )));
            }
            if remove_operator && tx.operators()?.len() <= 1 {
                return Err(Error::Refused(
                    "this is the vault's last operator; add another before removing it".into(),
                ));
            }
            tx.web_grants_delete_account(Some(name))?;
            tx.web_account_delete(name)?;
            if remove_operator {
                delete_operator(tx, name)?;
            }
            let event = AuditEvent::ok("web.account.remove")
                .detail(json!({"name": name, "operator_removed": remove_operator}));
            Ok(((), event))
        })
    }
}

fn check_password(password: &[u8]) -> Result<()> {
    // Long passphrases are the point; a floor stops the worst, and the
    // ceiling keeps Argon2id's input reasonable.
    let length = String::from_utf8_lossy(password).chars().count();
    if length < 10 {
        return Err(Error::Invalid(
            "a password needs at least 10 characters (a few words make a good one)".into(),
        ));
    }
    if password.len() > 1024 {
        return Err(Error::Invalid("a password is at most 1024 bytes".into()));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn put_account(
    tx: &impl StoreTx,
    key: &VaultKey,
    name: &str,
    role: &str,
    disabled: bool,
    must_change_password: bool,
    created_by: &str,
    created_at: u64,
) -> Result<WebAccount> {
    let mut row = WebAccountRow {
        name: name.to_owned(),
        role: role.to_owned(),
        disabled,
        must_change_password,
        created_at,
        created_by: created_by.to_owned(),
        mac: Vec::new(),
    };
    row.mac = account_mac(key, &row);
    tx.web_account_put(&row)?;
    account_verified(key, &row)
}
