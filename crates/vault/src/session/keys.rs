//! Operators and keys: who may open the vault, with which role and key
//! slot, rekeying, and unsealing a console.

use super::*;

/// Opens an operator's identity with their passphrase or identity file:
/// the proof that they are who they say.
pub(crate) fn open_slot_identity(
    row: &OperatorRow,
    unlock: &Unlock<'_>,
) -> Result<age::x25519::Identity> {
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
    open_sealed_audit_keys(tx.audit_keys()?, key)
}

/// [`open_audit_keys`] of audit keys already read (`StoreTx::audit_keys`).
pub(crate) fn open_sealed_audit_keys(
    sealed_keys: Vec<(i64, Vec<u8>)>,
    key: &VaultKey,
) -> Result<HashMap<i64, Zeroizing<[u8; 32]>>> {
    let mut audit_keys = HashMap::new();
    for (epoch, sealed) in sealed_keys {
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

pub(crate) fn operator_info(row: OperatorRow) -> OperatorInfo {
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
        key_slot: Role::parse(&row.role).is_some_and(Role::may_hold_key),
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

impl<S: Store> Session<S> {
    /// The vault key, for a console to hold in memory so that it can act
    /// for operators without a key slot (unsealing). Only an admin may;
    /// audited with `how` (sign-in, key file).
    pub fn unseal_key(&mut self, how: &str, now: u64) -> Result<VaultKey> {
        self.require(Permission::Admin)?;
        self.record(
            AuditEvent::of(Action::ConsoleUnseal).detail(json!({"by": how})),
            now,
        )?;
        Ok(self.key.clone())
    }

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
            keep_an_admin(tx, &row, None)?;
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
            keep_an_admin(tx, &row, Some(role))?;
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
            // The recovery slot is a public key: its shares open the new
            // key too (its recipient was checked by `verify_rows` above).
            let recovery = super::recovery::rewrap(&tx, &new_key, now)?;
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
                &AuditEvent::ok("vault.rekey").detail(
                    json!({"secrets": count, "epoch": new_epoch, "recovery_slot_rewrapped": recovery}),
                ),
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
}

/// The vault keeps an admin: `row` may not lose the role (become `to`, or
/// go with `None`) if it is the last operator that has it.
pub(crate) fn keep_an_admin(tx: &impl StoreTx, row: &OperatorRow, to: Option<Role>) -> Result<()> {
    let admin = Role::Admin.name();
    if row.role != admin || to == Some(Role::Admin) {
        return Ok(());
    }
    let admins = tx.operators()?.iter().filter(|o| o.role == admin).count();
    if admins <= 1 {
        return Err(Error::Refused(format!(
            "'{}' is the vault's last admin: make another operator admin first",
            row.name
        )));
    }
    Ok(())
}
