//! A large import on a store with write transactions that take the
//! writers' lock late ([`Store::write_unlocked`]; PostgreSQL): the batch is
//! planned, its ids drawn, its secrets sealed and its rows signed and
//! written before the lock, unseen by others until the commit; the lock is
//! held only to append the import's audit entry and publish its rows to
//! identify ([`StoreTx::lock_writers`]). Every writer appends to the audit
//! chain under that lock, so a helpdesk code no longer waits for the whole
//! import (issue 19).
//!
//! A large update of users' data on file (a spreadsheet import's second
//! step, a directory sync) is written the same way: merged into the data
//! on file it read, its records written, then the lock taken only for its
//! audit entry.
//!
//! The plan rests on what the vault held while it was made; a writer that
//! adds a colliding row meanwhile (the same serial or user, a credential in
//! the same slot) makes the insert fail on a unique index or the lock say
//! so, and so does a write of data on file since the update read it (the
//! generation of those records, read first, must be current under the
//! lock: else the update's records, merged into what it read, would undo
//! that write). A writer that holds the lock and meets one of the
//! attempt's rows waits for it; the attempt sees that before it waits for
//! the lock in turn, and gives way (`store::postgres::late_lock`). Then
//! nothing of this attempt stays, and the batch is written once more the
//! usual way, planned under the lock, where the collision is reported as
//! it always was.

use super::verification::{FactsReport, FactsUpdate, facts_event, write_facts};
use super::*;
use crate::store::IdsWanted;

/// From this many tokens on, an import is written before the writers'
/// lock where the store allows it: fewer cost less than the round trip the
/// separate lock adds.
pub(crate) const LATE_LOCK_ROWS: usize = 64;

impl<S: Store> Session<S> {
    /// Adds `tokens` in a transaction that takes the writers' lock only
    /// after writing them. `Ok(None)`: not written, nothing changed (the
    /// store has no such transactions, or another writer's rows collided):
    /// write them the usual way. For tests, `meanwhile` runs before the
    /// batch is planned (taken only if this way is tried) and `in_flight`
    /// between its rows' writing and the lock.
    pub(super) fn add_tokens_late_locked(
        &mut self,
        tokens: &[NewToken],
        now: u64,
        meanwhile: &mut Option<impl FnOnce()>,
        in_flight: Option<impl FnOnce()>,
        event_of: impl FnOnce(&[CredentialRow]) -> AuditEvent,
    ) -> Result<Option<Vec<CredentialRow>>> {
        if tokens.len() < LATE_LOCK_ROWS {
            return Ok(None);
        }
        let n = tokens.len();
        let ids = IdsWanted {
            devices: n,
            users: n,
            credentials: n,
            events: n,
        };
        self.write_late_locked(
            ids,
            now,
            |tx, keys| {
                if let Some(meanwhile) = meanwhile.take() {
                    meanwhile();
                }
                insert_tokens(tx, keys, tokens.iter().map(copy_of).collect(), now)
            },
            in_flight,
            |added| event_of(added),
        )
    }

    /// Writes a change in a transaction that takes the writers' lock only
    /// after `write` (with ids drawn for it as `ids` says), then appends
    /// the change's audit entry. `Ok(None)`: not written, nothing changed
    /// (the store has no such transactions, or another writer got in the
    /// way: a failure of the store's own, or the lock said so). For tests,
    /// `in_flight` runs between `write` and the lock.
    fn write_late_locked<T>(
        &mut self,
        ids: IdsWanted,
        now: u64,
        write: impl FnOnce(&S::Tx<'_>, &Keys<'_>) -> Result<T>,
        in_flight: Option<impl FnOnce()>,
        event_of: impl FnOnce(&T) -> AuditEvent,
    ) -> Result<Option<T>> {
        let audit_key = self.audit_keys[&self.epoch].clone();
        let outcome = {
            let Some(tx) = self.store.write_unlocked(ids)? else {
                return Ok(None);
            };
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            match write(&tx, &keys) {
                // The store's own failure (a unique index, a deadlock, ids
                // short): another writer's rows, most likely. Rolled back.
                Err(Error::Database(_)) => return Ok(None),
                Err(error) => Err(error),
                Ok(written) => {
                    if let Some(in_flight) = in_flight {
                        in_flight();
                    }
                    if !tx.lock_writers()? {
                        return Ok(None);
                    }
                    let event = event_of(&written);
                    let head =
                        append_audit(&tx, &audit_key, self.epoch, &self.operator, now, &event)?;
                    tx.commit()?;
                    audit::anchor(&head);
                    Ok(written)
                }
            }
        };
        self.audited(now, outcome).map(Some)
    }
}

impl<S: Store> Session<S> {
    /// For tests: [`Session::add_tokens`] with `in_flight` run after the
    /// batch's rows were written and before the writers' lock is taken,
    /// where the store has such transactions (else before the batch is
    /// written, as [`Session::add_tokens_with_a_change_between`]).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn add_tokens_with_a_change_in_flight(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        in_flight: impl FnOnce(),
    ) -> Result<Vec<CredentialRow>> {
        self.require(Permission::InventoryWrite)?;
        let count = tokens.len();
        let mut in_flight = Some(in_flight);
        let mut before = None::<fn()>;
        // `in_flight` is taken only once the rows are written.
        let hook = || {
            if let Some(hook) = in_flight.take() {
                hook();
            }
        };
        let late = self.add_tokens_late_locked(&tokens, now, &mut before, Some(hook), |added| {
            batch_event("token.add", count, added.first(), json!({}))
        })?;
        match late {
            Some(added) => Ok(added),
            None => self.add_tokens_with_a_change_between(tokens, now, || {
                if let Some(hook) = in_flight.take() {
                    hook();
                }
            }),
        }
    }
}

impl<S: Store> Session<S> {
    /// Writes a large update of data on file in a transaction that takes
    /// the writers' lock only after writing its records. `Ok(None)`: not
    /// written, nothing changed (too small, the store has no such
    /// transactions, or another writer got in the way): write it the usual
    /// way. For tests, `in_flight` runs between the records' writing and
    /// the lock.
    pub(super) fn update_user_facts_late_locked(
        &mut self,
        updates: &[FactsUpdate],
        source: &str,
        create: bool,
        now: u64,
        in_flight: Option<impl FnOnce()>,
    ) -> Result<Option<FactsReport>> {
        if updates.len() < LATE_LOCK_ROWS {
            return Ok(None);
        }
        let ids = IdsWanted {
            users: if create { updates.len() } else { 0 },
            ..IdsWanted::default()
        };
        self.write_late_locked(
            ids,
            now,
            |tx, keys| {
                // Read first: the lock refuses if data on file is written
                // between this read and the lock.
                tx.records_generation(kind::USER_FACTS)?;
                write_facts(tx, keys, updates, source, create, now)
            },
            in_flight,
            |report| facts_event(source, report),
        )
    }

    /// For tests: [`Session::update_user_facts`] (without adding users)
    /// with `in_flight` run after its records were written and before the
    /// writers' lock is taken, where the store has such transactions.
    /// The report, and whether that attempt was the one that wrote it
    /// (false: it gave way or was refused at the lock, and the update was
    /// written again).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn update_user_facts_with_a_change_in_flight(
        &mut self,
        updates: Vec<FactsUpdate>,
        source: &str,
        now: u64,
        in_flight: impl FnOnce(),
    ) -> Result<(FactsReport, bool)> {
        self.require(Permission::InventoryWrite)?;
        super::verification::check_updates(&updates)?;
        match self.update_user_facts_late_locked(&updates, source, false, now, Some(in_flight))? {
            Some(report) => Ok((report, true)),
            None => Ok((self.update_user_facts(updates, source, false, now)?, false)),
        }
    }
}

/// A token to add, again (for the second attempt).
fn copy_of(token: &NewToken) -> NewToken {
    NewToken {
        serial: token.serial.clone(),
        slot: token.slot,
        device_kind: token.device_kind,
        manufacturer: token.manufacturer.clone(),
        model: token.model.clone(),
        device_slots: token.device_slots,
        credential: token.credential.clone(),
        label: token.label.clone(),
        user: token.user.clone(),
        state: token.state,
    }
}
