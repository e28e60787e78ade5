//! Signing in to the console: login throttling shared through the
//! database, and opening the vault with a grant's bearer secret.

use super::web::*;
use super::*;
use crate::store::GrantRows;

/// A key's throttle row as it stands at `now`: a window that is over
/// starts again (a lockout's window starts when it ends).
fn current_throttle(
    row: Option<ThrottleRow>,
    key: &str,
    policy: &ThrottlePolicy,
    now: u64,
) -> ThrottleRow {
    match row {
        Some(row) if row.first_at.saturating_add(policy.window) > now => row,
        _ => ThrottleRow {
            key: key.to_owned(),
            failures: 0,
            first_at: now,
            locked_until: 0,
        },
    }
}

/// Takes one reserved attempt back from each key.
fn release(tx: &impl StoreTx, keys: &[String]) -> Result<()> {
    for key in keys {
        if let Some(mut row) = tx.web_throttle(key)?
            && row.failures > 0
        {
            row.failures -= 1;
            tx.web_throttle_put(&row)?;
        }
    }
    Ok(())
}

impl<S: Store> Vault<S> {
    /// A vault on a store that is already open (a server keeps a pool of
    /// them).
    pub fn from_store(store: S) -> Vault<S> {
        Vault { store }
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Deletes every grant whose lifetime is over (no key needed); returns
    /// how many.
    pub fn end_expired_grants(&mut self, now: u64) -> Result<u64> {
        let tx = self.store.write()?;
        let count = tx.web_grants_delete_expired(now)?;
        tx.commit()?;
        Ok(count)
    }

    /// Whether any web account exists (no key needed): until one does, the
    /// console offers its first-run setup.
    pub fn web_accounts_exist(&mut self) -> Result<bool> {
        Ok(!self.store.read()?.web_accounts()?.is_empty())
    }

    /// The seconds until which any of `keys` is locked out, if one is.
    pub fn login_locked(&mut self, keys: &[String], now: u64) -> Result<Option<u64>> {
        let tx = self.store.read()?;
        let mut until = None;
        for key in keys {
            if let Some(row) = tx.web_throttle(key)?
                && row.locked_until > now
            {
                until = until.max(Some(row.locked_until));
            }
        }
        Ok(until)
    }

    /// Counts a failed login against each key under its policy; returns the
    /// time until which the worst of them is now locked, if one is.
    pub fn login_failed(
        &mut self,
        keys: &[(String, ThrottlePolicy)],
        now: u64,
    ) -> Result<Option<u64>> {
        let tx = self.store.write()?;
        let mut until = None;
        for (key, policy) in keys {
            let mut row = match tx.web_throttle(key)? {
                Some(row) if row.first_at.saturating_add(policy.window) > now => row,
                _ => ThrottleRow {
                    key: key.clone(),
                    failures: 0,
                    first_at: now,
                    locked_until: 0,
                },
            };
            row.failures += 1;
            if row.failures >= policy.max_failures {
                row.locked_until = now.saturating_add(policy.lockout);
                // The next window starts after the lockout.
                row.failures = 0;
                row.first_at = row.locked_until;
            }
            if row.locked_until > now {
                until = until.max(Some(row.locked_until));
            }
            tx.web_throttle_put(&row)?;
        }
        tx.commit()?;
        Ok(until)
    }

    /// Reserves one attempt against each key before the password is
    /// checked: the attempt counts as a failure from now on, so a burst of
    /// concurrent attempts gets no more tries than the limit, whatever the
    /// password check takes. Returns `Some(until)` — nothing reserved, the
    /// attempt is refused — when a key is locked out or its attempts in
    /// this window (those still being checked included) reached the limit.
    /// Settle a reserved attempt with [`Vault::login_attempt_failed`],
    /// [`Vault::login_attempt_succeeded`] or [`Vault::login_attempt_void`].
    pub fn login_attempt(
        &mut self,
        keys: &[(String, ThrottlePolicy)],
        now: u64,
    ) -> Result<Option<u64>> {
        let tx = self.store.write()?;
        let mut rows = Vec::with_capacity(keys.len());
        let mut refused = None;
        for (key, policy) in keys {
            let row = current_throttle(tx.web_throttle(key)?, key, policy, now);
            if row.locked_until > now {
                refused = refused.max(Some(row.locked_until));
            } else if row.failures >= policy.max_failures {
                // The limit is taken by attempts still being checked: if
                // they fail, the key is locked for the lockout from then.
                refused = refused.max(Some(now.saturating_add(policy.lockout)));
            }
            rows.push(row);
        }
        if refused.is_some() {
            return Ok(refused);
        }
        for mut row in rows {
            row.failures += 1;
            tx.web_throttle_put(&row)?;
        }
        tx.commit()?;
        Ok(None)
    }

    /// Settles a reserved attempt whose password was wrong: it stays
    /// counted, and a key whose failures reached its limit is locked out.
    /// Returns the time until which the worst key is now locked, if one is.
    pub fn login_attempt_failed(
        &mut self,
        keys: &[(String, ThrottlePolicy)],
        now: u64,
    ) -> Result<Option<u64>> {
        let tx = self.store.write()?;
        let mut until = None;
        for (key, policy) in keys {
            let mut row = current_throttle(tx.web_throttle(key)?, key, policy, now);
            if row.locked_until <= now && row.failures >= policy.max_failures {
                row.locked_until = now.saturating_add(policy.lockout);
                // The next window starts after the lockout.
                row.failures = 0;
                row.first_at = row.locked_until;
                tx.web_throttle_put(&row)?;
            }
            if row.locked_until > now {
                until = until.max(Some(row.locked_until));
            }
        }
        tx.commit()?;
        Ok(until)
    }

    /// Settles a reserved attempt whose password was right: the failures
    /// of `cleared` (the account) end, and the attempt is taken back from
    /// `released` (the client address). Returns how many failures the
    /// account had before this attempt (its audit entry records them).
    pub fn login_attempt_succeeded(&mut self, cleared: &str, released: &[String]) -> Result<u64> {
        let tx = self.store.write()?;
        let failures = tx
            .web_throttle(cleared)?
            .map_or(0, |row| row.failures.saturating_sub(1));
        tx.web_throttle_delete(cleared)?;
        release(&tx, released)?;
        tx.commit()?;
        Ok(failures)
    }

    /// Takes a reserved attempt back that checked no password (the console
    /// was sealed, the database failed): it does not count.
    pub fn login_attempt_void(&mut self, keys: &[String]) -> Result<()> {
        let tx = self.store.write()?;
        release(&tx, keys)?;
        tx.commit()
    }

    /// Clears a key's failures after a successful login; returns how many
    /// there were (the login's audit entry records them).
    pub fn login_succeeded(&mut self, key: &str) -> Result<u64> {
        let tx = self.store.write()?;
        let failures = tx.web_throttle(key)?.map_or(0, |row| row.failures);
        tx.web_throttle_delete(key)?;
        tx.commit()?;
        Ok(failures)
    }

    /// Opens the vault with a grant's bearer secret: the grant must exist,
    /// be within its lifetime, belong to an enabled account whose operator
    /// slot still exists, and its wrapped key must be this vault's key.
    ///
    /// A grant of a helpdesk or auditor account holds no vault key: it
    /// opens only with `console_key`, the key of an unsealed console
    /// ([`Error::Sealed`] without one).
    pub fn open_grant(
        mut self,
        secret: &[u8; 32],
        idle: Option<u64>,
        now: u64,
        console_key: Option<&VaultKey>,
    ) -> Result<(Session<S>, Grant)> {
        // One statement on PostgreSQL: the grant, its account and slot,
        // the audit keys and the MACs the session checks as it opens.
        let rows = self.store.read_single()?.grant_rows(&grant_id(secret))?;
        self.open_grant_rows(rows, secret, idle, now, console_key)
    }

    /// Opens the vault with a grant as [`Vault::open_grant`] does, for a
    /// helpdesk code for `upn` at `now`: what the code is decided on is
    /// read with the grant (one statement on PostgreSQL, where the console
    /// spent one statement opening and another deciding), and
    /// [`Session::helpdesk_code`] for that user at that time decides on it.
    /// Nothing of it is used unless the session opens and its permission
    /// allows the code; any change through the session drops it.
    pub fn open_grant_for_helpdesk(
        mut self,
        secret: &[u8; 32],
        idle: Option<u64>,
        now: u64,
        console_key: Option<&VaultKey>,
        upn: &str,
    ) -> Result<(Session<S>, Grant)> {
        let query = helpdesk::helpdesk_query(upn, now);
        let (grant, rows) = self.store.grant_and_helpdesk(&grant_id(secret), &query)?;
        let (mut session, grant) = self.open_grant_rows(grant, secret, idle, now, console_key)?;
        // A vault from before signed rows is signed as an admin opens it:
        // a change after the read, so the read is not used.
        if session.signed {
            session.helpdesk_ahead = Some(helpdesk::Ahead {
                upn: upn.to_owned(),
                now,
                rows,
            });
        }
        Ok((session, grant))
    }

    fn open_grant_rows(
        mut self,
        rows: GrantRows,
        secret: &[u8; 32],
        idle: Option<u64>,
        now: u64,
        console_key: Option<&VaultKey>,
    ) -> Result<(Session<S>, Grant)> {
        let denied = |why: &str| Error::Unauthenticated(why.to_owned());
        let (key, audit_keys, row, account, operator, macs) = {
            let GrantRows {
                grant,
                account,
                operator,
                audit_keys: sealed_audit_keys,
                macs,
            } = rows;
            let row =
                grant.ok_or_else(|| denied("unknown or ended session or token: sign in again"))?;
            if row.expires_at <= now {
                return Err(denied("the session or token has expired: sign in again"));
            }
            if let Some(idle) = idle.filter(|_| row.kind == GrantKind::Session.name())
                && row.last_used_at.saturating_add(idle) <= now
            {
                return Err(denied(
                    "the session ended after a time without use: sign in again",
                ));
            }
            let account = account.ok_or_else(|| denied("the account no longer exists"))?;
            let Some(operator) = operator else {
                return Err(denied("the account's operator slot was removed"));
            };
            let aad = grant_aad(&row);
            let opened = VaultKey::unwrap_from(&grant_wrapping_key(secret), &row.wrapped_key, &aad);
            let key = match opened {
                Some(key) if !key.is_no_key() => key,
                _ if operator.wrapped_vault_key.is_empty() => {
                    let console_key = console_key.ok_or(Error::Sealed)?;
                    let bound = bound_grant_wrapping_key(secret, console_key);
                    match VaultKey::unwrap_from(&bound, &row.wrapped_key, &aad) {
                        Some(marker) if marker.is_no_key() => console_key.clone(),
                        _ => {
                            return Err(denied(
                                "the session or token does not open the vault: sign in again",
                            ));
                        }
                    }
                }
                _ => {
                    return Err(denied(
                        "the session or token does not open the vault: sign in again",
                    ));
                }
            };
            let audit_keys = open_sealed_audit_keys(sealed_audit_keys, &key).map_err(|_| {
                if console_key.is_some_and(|c| c.same_as(&key)) {
                    // The console's key is from before a rekey: unseal again.
                    Error::Sealed
                } else {
                    denied("the vault was rekeyed since this session or token began: sign in again")
                }
            })?;
            (key, audit_keys, row, account, operator, macs)
        };
        let account = account_verified(&key, &account)?;
        if account.disabled {
            return Err(denied("the account is disabled"));
        }
        if now.saturating_sub(row.last_used_at) >= TOUCH_EVERY {
            let tx = self.store.write()?;
            let mut touched = row.clone();
            touched.last_used_at = now;
            tx.web_grant_put(&touched)?;
            tx.commit()?;
        }
        let grant = grant_of(&row, &account)?;
        // A token acts within its scopes; a browser session with its role.
        let scopes = match GrantKind::parse(&row.kind)? {
            GrantKind::Session => None,
            GrantKind::Token => Some(
                grant
                    .scopes
                    .iter()
                    .filter_map(|s| Permission::scope(s))
                    .collect(),
            ),
        };
        let mut session =
            Session::open_with(self.store, &operator, scopes, key, audit_keys, Some(macs))?;
        // A password an admin set opens nothing but its own replacement,
        // for the account's sessions and its API tokens alike.
        session.principal.password_change_pending = account.must_change_password;
        Ok((session, grant))
    }
}
