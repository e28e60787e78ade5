//! Staff who sign in with their organisation's identity (OpenID Connect).
//!
//! The console checks the provider's ID token (signature, issuer,
//! audience, expiry, nonce) and hands the vault a verified [`OidcIdentity`];
//! what that identity may do is decided here:
//!
//! - **Mappings are signed records** (`oidc_map`): an admin says which group
//!   id or app-role value gives which role. No mapping, no access; a user
//!   whose claims map to two different roles is refused until an admin
//!   removes one, rather than guessing.
//! - **Only roles without a key** ([`Role::may_sign_in_with_oidc`]): the
//!   provider proves who someone is, never that they may open the vault.
//!   A sign-in works only at an unsealed console, whose key serves the
//!   session, as for helpdesk passwords; admins and provisioners unseal and
//!   unlock with their own key.
//! - **Accounts follow identities**: the first sign-in of a mapped user
//!   creates an operator without any slot (nothing unlocks it) and its web
//!   account, linked to the provider's issuer and subject by a signed
//!   `oidc_link` record (audited). Later sign-ins find the account by that
//!   link, not by a name the user could change, and take the role the
//!   mappings give now.
//! - **A session ends when the ID token does** (or earlier, by the
//!   console's session lifetime).

use serde::{Deserialize, Serialize};

use super::records;
use super::web::{Grant, GrantKind, GrantSecret, account_verified, new_grant, put_account};
use super::*;

/// Who made the rows of accounts the first OIDC sign-in created.
pub const CREATED_BY: &str = "oidc";

/// An identity whose ID token the console verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`: stable for the user at this provider.
    pub subject: String,
    /// `preferred_username` (or `email`, or `upn`): the new account's name.
    pub username: String,
    /// The `groups` claim (group object ids at Entra).
    pub groups: Vec<String>,
    /// The `roles` claim (app-role values).
    pub app_roles: Vec<String>,
    /// The token's `exp`: the session ends then at the latest.
    pub expires_at: u64,
}

/// One mapping: a group id or app-role value and the role it gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcMapping {
    /// The group id or app-role value, as the token carries it.
    pub claim: String,
    pub role: String,
    pub created_by: String,
    pub created_at: u64,
}

#[derive(Serialize, Deserialize)]
struct Link {
    issuer: String,
    subject: String,
    account: String,
}

fn link_id(issuer: &str, subject: &str) -> String {
    format!("{issuer}#{subject}")
}

/// The role `identity` gets from `mappings`, or why it gets none.
pub fn role_of(identity: &OidcIdentity, mappings: &[OidcMapping]) -> Result<Role> {
    let mut found: Vec<(&str, Role)> = Vec::new();
    for mapping in mappings {
        let held = identity.groups.iter().chain(&identity.app_roles);
        if held.into_iter().any(|claim| *claim == mapping.claim) {
            let role = Role::parse(&mapping.role).ok_or_else(|| Error::Altered {
                row: signed::record_name(kind::OIDC_MAP, &mapping.claim),
            })?;
            found.push((&mapping.claim, role));
        }
    }
    let Some((_, role)) = found.first().copied() else {
        return Err(Error::SignInRefused(format!(
            "'{}' signed in at the provider, but none of their groups or app roles is mapped \
             to a role here: an admin maps one with 'oathdesk oidc map GROUP ROLE'",
            identity.username
        )));
    };
    if let Some((claim, other)) = found.iter().find(|(_, r)| *r != role) {
        return Err(Error::SignInRefused(format!(
            "the groups of '{}' map to more than one role ({role} via {}, {other} via {claim}): \
             an admin removes one of these mappings ('oathdesk oidc unmap')",
            identity.username, found[0].0
        )));
    }
    if !role.may_sign_in_with_oidc() {
        return Err(Error::SignInRefused(format!(
            "the {role} role holds a key of the vault and signs in with its own passphrase, \
             not through the identity provider"
        )));
    }
    Ok(role)
}

fn check_claim(claim: &str) -> Result<&str> {
    let claim = claim.trim();
    if claim.is_empty() || claim.len() > 256 || claim.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "a group id or app-role value is 1 to 256 printable characters".into(),
        ));
    }
    Ok(claim)
}

fn mappings_in(tx: &impl StoreTx, keys: &Keys<'_>) -> Result<Vec<OidcMapping>> {
    records::list(tx, keys, kind::OIDC_MAP, None)?
        .iter()
        .map(records::body)
        .collect()
}

impl<S: Store> Session<S> {
    /// Maps a group id or app-role value to a role (admins only; the role
    /// must be one without a key).
    pub fn oidc_map(&mut self, claim: &str, role: &str, now: u64) -> Result<OidcMapping> {
        let claim = check_claim(claim)?.to_owned();
        let parsed: Role = role.parse()?;
        self.require(Permission::Admin)?;
        if !parsed.may_sign_in_with_oidc() {
            return Err(Error::Invalid(format!(
                "'{parsed}' holds a key of the vault, and the identity provider never opens the \
                 vault: map groups to helpdesk or auditor; admins and provisioners sign in with \
                 their own passphrase"
            )));
        }
        let by = self.operator().to_owned();
        self.change(now, |tx, keys| {
            let mapping = OidcMapping {
                claim: claim.clone(),
                role: parsed.name().to_owned(),
                created_by: by,
                created_at: now,
            };
            let row = records::record(kind::OIDC_MAP, &claim, "active", &mapping, now)?;
            records::put(tx, keys, vec![row])?;
            let event =
                AuditEvent::ok("oidc.map").detail(json!({"claim": claim, "role": parsed.name()}));
            Ok((mapping, event))
        })
    }

    /// Removes a mapping; accounts it gave a role are refused at their
    /// next sign-in, and their sessions end now.
    pub fn oidc_unmap(&mut self, claim: &str, now: u64) -> Result<()> {
        let claim = check_claim(claim)?.to_owned();
        self.require(Permission::Admin)?;
        self.change(now, |tx, keys| {
            if records::read_one(tx, keys, kind::OIDC_MAP, &claim)?.is_none() {
                return Err(Error::NotFound(format!("a mapping of '{claim}'")));
            }
            tx.record_delete(kind::OIDC_MAP, &claim)?;
            tx.row_mac_delete(kind::OIDC_MAP, &claim)?;
            // Sessions of provider accounts end: the next sign-in decides
            // again with the mappings that are left.
            let mut ended = Vec::new();
            for row in records::list(tx, keys, kind::OIDC_LINK, None)? {
                let link: Link = records::body(&row)?;
                tx.web_grants_delete_account(Some(&link.account))?;
                ended.push(link.account);
            }
            let event = AuditEvent::ok("oidc.unmap")
                .detail(json!({"claim": claim, "sessions_ended_of": ended}));
            Ok(((), event))
        })
    }

    /// The mappings, by claim.
    pub fn oidc_mappings(&mut self) -> Result<Vec<OidcMapping>> {
        self.require(Permission::Admin)?;
        let mut mappings = self.checked_read(wall_clock(), |tx, keys| mappings_in(tx, keys))?;
        mappings.sort_by(|a, b| a.claim.cmp(&b.claim));
        Ok(mappings)
    }
}

/// What a sign-in decided, before it is written.
enum Decision {
    Existing { account: String, role: Role },
    New { account: String, role: Role },
}

impl<S: Store> Vault<S> {
    /// Signs in a verified provider identity at an unsealed console
    /// (`console_key`): finds or creates its account, gives it the role its
    /// mappings say, and starts a browser session that ends at `lifetime`
    /// seconds or when the ID token expires, whichever is first. A refusal
    /// is audited and returned as [`Error::SignInRefused`].
    pub fn oidc_sign_in(
        mut self,
        identity: &OidcIdentity,
        console_key: &VaultKey,
        lifetime: u64,
        now: u64,
    ) -> Result<(GrantSecret, Grant)> {
        if identity.expires_at <= now {
            return Err(Error::Unauthenticated(
                "the identity provider's token has expired: sign in again".into(),
            ));
        }
        let lifetime = lifetime.min(identity.expires_at - now);
        let audit_keys = {
            let tx = self.store.read()?;
            // A console whose key no longer opens the vault is sealed.
            open_audit_keys(&tx, console_key).map_err(|_| Error::Sealed)?
        };
        let epoch = audit_keys.keys().copied().max().unwrap_or(1);
        let audit_key = audit_keys[&epoch].clone();
        let signer = Signer::new(console_key);
        let tx = self.store.write()?;
        let keys = Keys {
            key: console_key,
            signer: &signer,
            enforced: signed::enforced(&tx)?,
        };
        let decided = decide(&tx, &keys, identity);
        let decision = match decided {
            Ok(decision) => decision,
            Err(refusal) => {
                drop(tx);
                let tx = self.store.write()?;
                let event = AuditEvent {
                    outcome: "refused".to_owned(),
                    ..AuditEvent::ok("web.login")
                }
                .detail(json!({
                    "via": "oidc",
                    "issuer": identity.issuer,
                    "subject": identity.subject,
                    "reason": refusal.to_string(),
                }));
                let head = append_audit(&tx, &audit_key, epoch, &identity.username, now, &event)?;
                tx.commit()?;
                audit::anchor(&head);
                return Err(refusal);
            }
        };
        let mut entries = Vec::new();
        let (account, role) = match decision {
            Decision::New { account, role } => {
                create_account(&tx, &keys, identity, &account, role, now)?;
                entries.push(AuditEvent::ok("web.account.add").detail(json!({
                    "name": account,
                    "role": role.name(),
                    "via": "oidc",
                    "issuer": identity.issuer,
                    "subject": identity.subject,
                })));
                (account, role)
            }
            Decision::Existing { account, role } => {
                if let Some(from) = follow_role(&tx, &keys, &account, role)? {
                    entries.push(AuditEvent::ok("web.account.update").detail(json!({
                        "name": account,
                        "role": role.name(),
                        "previous_role": from,
                        "via": "oidc mappings",
                    })));
                }
                (account, role)
            }
        };
        let (secret, row) = new_grant(
            &tx,
            console_key,
            GrantKind::Session,
            &account,
            None,
            &[],
            lifetime,
            now,
        )?;
        let web_account = tx
            .web_account(&account)?
            .ok_or_else(|| Error::Database(format!("the account '{account}' vanished")))?;
        let web_account = account_verified(console_key, &web_account)?;
        let grant = web::grant_of(&row, &web_account)?;
        entries.push(AuditEvent::ok("web.login").detail(json!({
            "session": grant.handle,
            "via": "oidc",
            "role": role.name(),
            "expires_at": row.expires_at,
        })));
        let mut head = None;
        for event in &entries {
            head = Some(append_audit(&tx, &audit_key, epoch, &account, now, event)?);
        }
        tx.commit()?;
        if let Some(head) = head {
            audit::anchor(&head);
        }
        Ok((secret, grant))
    }
}

/// Which account the identity is and which role it gets, or why not.
fn decide(tx: &impl StoreTx, keys: &Keys<'_>, identity: &OidcIdentity) -> Result<Decision> {
    let role = role_of(identity, &mappings_in(tx, keys)?)?;
    let id = link_id(&identity.issuer, &identity.subject);
    if let Some(row) = records::read_one(tx, keys, kind::OIDC_LINK, &id)? {
        let link: Link = records::body(&row)?;
        let account = tx.web_account(&link.account)?.ok_or_else(|| {
            Error::SignInRefused(format!(
                "the account '{}' of this identity was removed: an admin can remove its link \
                 by adding it again, or ask for a new one",
                link.account
            ))
        })?;
        let account = account_verified(keys.key, &account)?;
        if account.disabled {
            return Err(Error::SignInRefused(format!(
                "the account '{}' is disabled",
                account.name
            )));
        }
        return Ok(Decision::Existing {
            account: account.name,
            role,
        });
    }
    let name = identity.username.trim();
    check_operator_name(name)?;
    if tx.operator(name)?.is_some() {
        return Err(Error::SignInRefused(format!(
            "an operator named '{name}' exists already and signs in with a passphrase: a \
             provider identity never takes over an existing account; an admin renames or \
             removes it first"
        )));
    }
    Ok(Decision::New {
        account: name.to_owned(),
        role,
    })
}

/// The operator (no slot of any kind) and web account of a first sign-in,
/// and the signed link from the identity to them.
fn create_account(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    identity: &OidcIdentity,
    name: &str,
    role: Role,
    now: u64,
) -> Result<()> {
    // A public key whose private key nobody keeps: the operator cannot be
    // unlocked at all, only signed in through the provider.
    let (_discarded, recipient) = crypto::new_identity();
    let row = OperatorRow {
        name: name.to_owned(),
        recipient,
        kdf: None,
        salt: None,
        sealed_identity: None,
        wrapped_vault_key: Vec::new(),
        created_at: now,
        created_by: CREATED_BY.to_owned(),
        role: role.name().to_owned(),
    };
    put_operator(tx, keys, row)?;
    put_account(
        tx,
        keys.key,
        name,
        role.name(),
        false,
        false,
        CREATED_BY,
        now,
    )?;
    let link = Link {
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        account: name.to_owned(),
    };
    let id = link_id(&identity.issuer, &identity.subject);
    let row = records::record(kind::OIDC_LINK, &id, "active", &link, now)?;
    records::put(tx, keys, vec![row])
}

/// Gives an existing account the role its mappings say now; returns the
/// role it had if that changed.
fn follow_role(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    account: &str,
    role: Role,
) -> Result<Option<String>> {
    let mut operator = tx
        .operator(account)?
        .ok_or_else(|| Error::UnknownOperator(account.to_owned()))?;
    if operator.role == role.name() {
        return Ok(None);
    }
    let from = std::mem::replace(&mut operator.role, role.name().to_owned());
    put_operator(tx, keys, operator)?;
    web::follow_operator_role(tx, keys.key, account, role)?;
    Ok(Some(from))
}
