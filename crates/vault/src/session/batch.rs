//! Adding tokens in bulk: a batch is planned against the vault (what
//! exists, slots, duplicates), its secrets sealed and its rows signed, then
//! written in a fixed number of statements whatever its size.
//!
//! Where the store gives new rows the ids after the highest ones (SQLite),
//! a batch is prepared on a read snapshot *before* the write transaction
//! ([`prepare_tokens`]): SQLite's write lock is one per file, so every
//! millisecond a 100,000-row import spends looking up, sealing and signing
//! inside its transaction is a millisecond the console's writers (each
//! helpdesk code appends an audit entry) wait. The write transaction then
//! only checks that nobody added a device, user or credential since the
//! snapshot (the plan's decisions and ids rest on that) and writes; if
//! somebody did, the batch is planned again inside the transaction, as
//! before. Stores whose ids come from sequences (PostgreSQL) plan inside.
//!
//! Writing 100,000 rows still takes SQLite longer than the console's
//! helpdesk can wait (p99 under 50 ms). So a batch of more than
//! [`STAGE_ROWS`] is written as a *staged import* where the store has them
//! ([`Store::import_guard`]; SQLite, see `store::sqlite::import_batches`):
//! in parts of about [`STAGE_ROWS`] credentials, committed and followed by
//! a pause whenever another writer waits for the lock (see
//! `session::staging`); every read leaves the batch's rows out until one
//! last short transaction publishes the batch and appends its audit entry.
//! All or nothing as before: a batch that fails half-way is deleted, and
//! one whose process died is deleted by the next open or import.

use super::staging::{Interrupted, Staging, write_in_parts};
use super::*;
use crate::store::{IdTops, ImportRanges};

/// A device or user that exists, or one this batch adds (by its index).
#[derive(Clone, Copy)]
pub(crate) enum Planned {
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

/// A batch checked against one view of the vault: the devices and users it
/// adds (ids still to give), and each token's device and user.
struct Plan {
    new_devices: Vec<Device>,
    new_users: Vec<User>,
    links: Vec<(Option<Planned>, Option<Planned>)>,
}

/// Adds tokens in a fixed number of database round trips, whatever their
/// number: what exists is looked up for the whole batch, the batch is
/// checked in memory (slots, duplicates), then devices, users, credentials
/// and their first events are written in bulk. A shared database pays a
/// round trip per statement, so per-token statements would make a large
/// import there a hundred times slower than on SQLite.
pub(crate) fn insert_tokens(
    tx: &impl StoreTx,
    key: &Keys<'_>,
    tokens: Vec<NewToken>,
    now: u64,
) -> Result<Vec<CredentialRow>> {
    insert_tokens_with(tx, key, tokens, now, true)
}

pub(crate) fn insert_tokens_with(
    tx: &impl StoreTx,
    key: &Keys<'_>,
    tokens: Vec<NewToken>,
    now: u64,
    serial_rule: bool,
) -> Result<Vec<CredentialRow>> {
    let plan = plan_tokens(tx, key, &tokens, now, serial_rule)?;
    // Ids first: a MAC is bound to its row's id, and is written by the
    // row's own INSERT.
    let device_ids = tx.device_ids(plan.new_devices.len())?;
    let user_ids = tx.user_ids(plan.new_users.len())?;
    let ids = tx.credential_ids(tokens.len())?;
    let (devices, users, rows) = plan.with_ids(&tokens, &device_ids, &user_ids, &ids, now);
    let rows = write_signed(tx, key, &devices, &users, rows, &tokens)?;
    tx.events_insert(&first_events(&rows, now))?;
    Ok(rows)
}

/// Checks a batch against what `tx` sees: text, serials, slots, duplicates
/// within the batch and against the vault, and the signatures of the
/// existing rows its decisions rest on.
fn plan_tokens(
    tx: &impl StoreTx,
    key: &Keys<'_>,
    tokens: &[NewToken],
    now: u64,
    serial_rule: bool,
) -> Result<Plan> {
    let mut serials: Vec<String> = Vec::new();
    let mut upns: Vec<String> = Vec::new();
    for token in tokens {
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
            // The one serial rule, for every way a token comes in.
            if serial_rule {
                crate::model::check_serial(serial)?;
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
    let mut links: Vec<(Option<Planned>, Option<Planned>)> = Vec::with_capacity(tokens.len());
    for token in tokens {
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
        links.push((device, user));
    }
    Ok(Plan {
        new_devices,
        new_users,
        links,
    })
}

impl Plan {
    /// The batch's rows with their ids (secrets not sealed yet).
    fn with_ids(
        self,
        tokens: &[NewToken],
        device_ids: &[i64],
        user_ids: &[i64],
        ids: &[i64],
        now: u64,
    ) -> (Vec<Device>, Vec<User>, Vec<CredentialRow>) {
        let mut devices = self.new_devices;
        for (device, id) in devices.iter_mut().zip(device_ids) {
            device.id = *id;
        }
        let mut users = self.new_users;
        for (user, id) in users.iter_mut().zip(user_ids) {
            user.id = *id;
        }
        let rows = tokens
            .iter()
            .zip(self.links)
            .zip(ids)
            .map(|((token, (device, user)), &id)| {
                let user_id = user.map(|u| u.id(user_ids));
                let c = &token.credential;
                let (kind, period, t0, counter) = match c.kind {
                    Kind::Totp { step } => ("totp", Some(step.period()), Some(step.t0()), None),
                    Kind::Hotp { counter } => ("hotp", None, None, Some(counter)),
                };
                CredentialRow {
                    id,
                    device_id: device.map(|d| d.id(device_ids)),
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
                }
            })
            .collect();
        (devices, users, rows)
    }
}

/// Each new credential's first event.
fn first_events(rows: &[CredentialRow], now: u64) -> Vec<Event> {
    rows.iter()
        .map(|row| Event {
            credential_id: row.id,
            from_state: None,
            to_state: row.state,
            operator: String::new(),
            at: now,
            note: None,
        })
        .collect()
}

/// A batch planned, sealed and signed on a snapshot, to be written by a
/// later write transaction (see the module's introduction).
pub(crate) struct PreparedTokens {
    /// The highest ids the snapshot held: the batch's rows take the ids
    /// after them, so it is written only while they are still the highest.
    tops: IdTops,
    devices: Vec<Device>,
    device_macs: Vec<Vec<u8>>,
    users: Vec<User>,
    user_macs: Vec<Vec<u8>>,
    rows: Vec<CredentialRow>,
    credential_macs: Vec<Vec<u8>>,
    /// Whether the rows are sealed and signed (else the MACs are empty,
    /// and a staged write seals each part as it goes).
    sealed: bool,
}

/// Plans a batch on the snapshot `tx`, and seals and signs it if `seal`,
/// if the store gives new rows the ids after the highest (`None`
/// otherwise: plan it inside the write transaction with
/// [`insert_tokens`]). A batch to be staged is sealed part by part while
/// the parts are written ([`Session::write_staged`]).
pub(crate) fn prepare_tokens(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    tokens: &[NewToken],
    now: u64,
    seal: bool,
) -> Result<Option<PreparedTokens>> {
    let Some(tops) = tx.id_tops()? else {
        return Ok(None);
    };
    let plan = plan_tokens(tx, keys, tokens, now, true)?;
    let after =
        |top: i64, count: usize| -> Vec<i64> { (1..=count as i64).map(|n| top + n).collect() };
    let device_ids = after(tops.devices, plan.new_devices.len());
    let user_ids = after(tops.users, plan.new_users.len());
    let ids = after(tops.credentials, tokens.len());
    let (devices, users, rows) = plan.with_ids(tokens, &device_ids, &user_ids, &ids, now);
    let mut prepared = PreparedTokens {
        tops,
        devices,
        device_macs: Vec::new(),
        users,
        user_macs: Vec::new(),
        rows,
        credential_macs: Vec::new(),
        sealed: false,
    };
    if seal {
        prepared.seal(keys, tokens)?;
    }
    Ok(Some(prepared))
}

/// Which rows one transaction of a staged import writes (indexes into
/// the batch's devices, users and credentials).
#[derive(Default)]
struct Part {
    devices: Vec<usize>,
    users: Vec<usize>,
    credentials: Vec<usize>,
}

/// One part of a staged batch, sealed and signed, ready to write.
struct SealedPart {
    devices: Vec<Device>,
    device_macs: Macs,
    users: Vec<User>,
    user_macs: Macs,
    rows: Vec<CredentialRow>,
    credential_macs: Macs,
}

impl SealedPart {
    fn write(&self, tx: &impl StoreTx, now: u64) -> Result<()> {
        tx.devices_insert(&self.devices, &self.device_macs)?;
        tx.users_insert(&self.users, &self.user_macs)?;
        tx.credentials_insert(&self.rows, &self.credential_macs)?;
        tx.events_insert(&first_events(&self.rows, now))
    }
}

fn pick<T: Clone>(items: &[T], indexes: &[usize]) -> Vec<T> {
    indexes.iter().map(|&i| items[i].clone()).collect()
}

impl PreparedTokens {
    /// Seals and signs the whole batch (on every core), if not yet.
    fn seal(&mut self, keys: &Keys<'_>, tokens: &[NewToken]) -> Result<()> {
        if !self.sealed {
            (self.device_macs, self.user_macs, self.credential_macs) =
                seal_and_sign(keys, &self.devices, &self.users, &mut self.rows, tokens)?;
            self.sealed = true;
        }
        Ok(())
    }

    /// One part, sealed and signed (taken as it is if the batch is).
    fn seal_part(&self, keys: &Keys<'_>, tokens: &[NewToken], part: &Part) -> Result<SealedPart> {
        let devices = pick(&self.devices, &part.devices);
        let users = pick(&self.users, &part.users);
        let mut rows = pick(&self.rows, &part.credentials);
        if self.sealed {
            return Ok(SealedPart {
                devices,
                device_macs: pick(&self.device_macs, &part.devices),
                users,
                user_macs: pick(&self.user_macs, &part.users),
                rows,
                credential_macs: pick(&self.credential_macs, &part.credentials),
            });
        }
        let device_macs = devices.iter().map(|d| keys.signer.device(d).1).collect();
        let user_macs = users.iter().map(|u| keys.signer.user(u).1).collect();
        let credential_macs = rows
            .iter_mut()
            .zip(&part.credentials)
            .map(|(row, &index)| {
                let secret = tokens[index].credential.secret.as_bytes();
                row.sealed_secret = Some(keys.seal_secret(secret, &binding(row))?);
                Ok(keys.signer.credential(row).1)
            })
            .collect::<Result<_>>()?;
        Ok(SealedPart {
            devices,
            device_macs,
            users,
            user_macs,
            rows,
            credential_macs,
        })
    }

    /// How many credentials the batch adds.
    pub(crate) fn credentials(&self) -> usize {
        self.rows.len()
    }

    /// The ids its new rows take.
    fn ranges(&self) -> ImportRanges {
        let span = |top: i64, count: usize| (top + 1, top + count as i64);
        ImportRanges {
            devices: span(self.tops.devices, self.devices.len()),
            users: span(self.tops.users, self.users.len()),
            credentials: span(self.tops.credentials, self.rows.len()),
        }
    }

    /// The batch in parts of `rows` credentials, each with the new devices
    /// and users its credentials need (and no earlier part wrote). The
    /// first part holds the highest new id of each table: once it is
    /// committed, every other writer takes ids above the batch's.
    fn parts(&self, rows: usize) -> Vec<Part> {
        let index_in = |id: Option<i64>, top: i64, count: usize| {
            id.map(|id| id - top - 1)
                .filter(|index| (0..count as i64).contains(index))
                .map(|index| index as usize)
        };
        let mut device_done = vec![false; self.devices.len()];
        let mut user_done = vec![false; self.users.len()];
        let mut part_of = |credentials: Vec<usize>, devices: Vec<usize>, users: Vec<usize>| {
            let mut part = Part::default();
            let needed_devices = credentials.iter().filter_map(|&c| {
                index_in(
                    self.rows[c].device_id,
                    self.tops.devices,
                    self.devices.len(),
                )
            });
            for device in devices.into_iter().chain(needed_devices) {
                if !std::mem::replace(&mut device_done[device], true) {
                    part.devices.push(device);
                }
            }
            let needed_users = credentials
                .iter()
                .filter_map(|&c| index_in(self.rows[c].user_id, self.tops.users, self.users.len()));
            for user in users.into_iter().chain(needed_users) {
                if !std::mem::replace(&mut user_done[user], true) {
                    part.users.push(user);
                }
            }
            part.devices.sort_unstable();
            part.users.sort_unstable();
            part.credentials = credentials;
            part
        };
        let last = self.rows.len() - 1;
        let mut parts = vec![part_of(
            vec![last],
            self.devices.len().checked_sub(1).into_iter().collect(),
            self.users.len().checked_sub(1).into_iter().collect(),
        )];
        let indexes: Vec<usize> = (0..last).collect();
        for chunk in indexes.chunks(rows.max(1)) {
            parts.push(part_of(chunk.to_vec(), Vec::new(), Vec::new()));
        }
        // Devices and users no credential needs (none today) go last.
        let devices: Vec<usize> = (0..self.devices.len()).collect();
        let users: Vec<usize> = (0..self.users.len()).collect();
        let rest = part_of(Vec::new(), devices, users);
        if !rest.devices.is_empty() || !rest.users.is_empty() {
            parts.push(rest);
        }
        parts
    }

    /// Writes the batch in `tx` if no device, user or credential was added
    /// since its snapshot; else writes nothing and returns `None` (plan it
    /// again). Nothing else can make its plan wrong: the vault never
    /// deletes these rows nor changes what the plan read of them (a serial,
    /// a user's name, a slot taken), and its unique indexes refuse what
    /// would still collide.
    pub(crate) fn write(
        mut self,
        tx: &impl StoreTx,
        keys: &Keys<'_>,
        tokens: &[NewToken],
        now: u64,
    ) -> Result<Option<Vec<CredentialRow>>> {
        if tx.id_tops()? != Some(self.tops) {
            return Ok(None);
        }
        self.seal(keys, tokens)?;
        tx.devices_insert(&self.devices, &self.device_macs)?;
        tx.users_insert(&self.users, &self.user_macs)?;
        tx.credentials_insert(&self.rows, &self.credential_macs)?;
        tx.events_insert(&first_events(&self.rows, now))?;
        Ok(Some(self.rows))
    }
}

/// One MAC per row.
type Macs = Vec<Vec<u8>>;

/// Seals every secret and signs every row of a batch, on every core for a
/// large one: the MACs of the devices, the users and the credentials.
fn seal_and_sign(
    keys: &Keys<'_>,
    devices: &[Device],
    users: &[User],
    rows: &mut [CredentialRow],
    tokens: &[NewToken],
) -> Result<(Macs, Macs, Macs)> {
    /// Fewer rows than this per thread are not worth a thread.
    const AT_LEAST_PER_THREAD: usize = 1000;
    let seal = |rows: &mut [CredentialRow], tokens: &[NewToken]| -> Result<Vec<Vec<u8>>> {
        rows.iter_mut()
            .zip(tokens)
            .map(|(row, token)| {
                let secret = token.credential.secret.as_bytes();
                row.sealed_secret = Some(keys.seal_secret(secret, &binding(row))?);
                Ok(keys.signer.credential(row).1)
            })
            .collect()
    };
    let device_macs =
        || -> Vec<Vec<u8>> { devices.iter().map(|d| keys.signer.device(d).1).collect() };
    let user_macs = || -> Vec<Vec<u8>> { users.iter().map(|u| keys.signer.user(u).1).collect() };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(rows.len() / AT_LEAST_PER_THREAD).max(1);
    if threads == 1 {
        return Ok((device_macs(), user_macs(), seal(rows, tokens)?));
    }
    let per_thread = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = rows.chunks_mut(per_thread).zip(tokens.chunks(per_thread));
        let (first_rows, first_tokens) = parts.next().expect("more than one part");
        let others: Vec<_> = parts
            .map(|(rows, tokens)| scope.spawn(move || seal(rows, tokens)))
            .collect();
        let device_macs = device_macs();
        let user_macs = user_macs();
        let mut credential_macs = seal(first_rows, first_tokens)?;
        for other in others {
            let macs = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            credential_macs.extend(macs);
        }
        Ok((device_macs, user_macs, credential_macs))
    })
}

impl<S: Store> Session<S> {
    /// Writes a prepared batch as a staged import and publishes it with
    /// `event` in the audit log. Hands the batch back unwritten if the
    /// store does not stage imports or rows were added since its snapshot
    /// (write it in one transaction then).
    pub(crate) fn write_staged(
        &mut self,
        prepared: PreparedTokens,
        tokens: &[NewToken],
        now: u64,
        event: AuditEvent,
        staging: &mut Staging<'_>,
    ) -> Result<std::result::Result<Vec<CredentialRow>, PreparedTokens>> {
        let Some(_guard) = self.store.import_guard()? else {
            return Ok(Err(prepared));
        };
        let parts = prepared.parts(staging.rows);
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        // A worker seals and signs the parts in order, two ahead at most,
        // while this thread writes them: the sealing hides behind the
        // writing, as it does in one transaction (`write_signed`), and is
        // still done before the part's turn.
        let written: std::cell::RefCell<Vec<Option<CredentialRow>>> =
            std::cell::RefCell::new(vec![None; prepared.rows.len()]);
        let (batch, outcome) = std::thread::scope(|scope| {
            let (send, receive) = std::sync::mpsc::sync_channel::<Result<SealedPart>>(2);
            let (worker_parts, worker_prepared, worker_keys) = (&parts, &prepared, &keys);
            scope.spawn(move || {
                for part in worker_parts {
                    let sealed = worker_prepared.seal_part(worker_keys, tokens, part);
                    let failed = sealed.is_err();
                    if send.send(sealed).is_err() || failed {
                        return;
                    }
                }
            });
            let write = |tx: &S::Tx<'_>, n: usize| -> Result<usize> {
                let sealed = receive.recv().map_err(|_| {
                    Error::Database("a sealing worker stopped before the import was written".into())
                })??;
                sealed.write(tx, now)?;
                let mut written = written.borrow_mut();
                for (&index, row) in parts[n].credentials.iter().zip(sealed.rows) {
                    written[index] = Some(row);
                }
                Ok(parts[n].credentials.len())
            };
            let result = write_in_parts(
                &mut self.store,
                staging,
                parts.len(),
                |tx| {
                    if tx.id_tops()? != Some(prepared.tops) {
                        return Ok(None);
                    }
                    let batch = tx.import_batch_begin(&prepared.ranges(), now)?;
                    Ok(Some((batch, write(tx, 0)?)))
                },
                |tx, _, n| write(tx, n),
            );
            // A worker still sealing stops at its next part.
            drop(receive);
            result
        });
        let Some(batch) = batch else {
            return match outcome {
                // Rows were added since the snapshot: nothing written.
                Ok(()) => Ok(Err(prepared)),
                Err(Interrupted::Failed(error)) => Err(error),
                Err(Interrupted::Stopped) => Err(stopped()),
            };
        };
        let outcome = outcome.and_then(|()| {
            if !(staging.go_on)(parts.len()) {
                return Err(Interrupted::Stopped);
            }
            self.change(now, |tx, _| {
                tx.import_batch_publish(batch)?;
                Ok(((), event))
            })
            .map_err(Interrupted::Failed)
        });
        match outcome {
            Ok(()) => Ok(Ok(written.into_inner().into_iter().flatten().collect())),
            Err(Interrupted::Failed(error)) => {
                self.remove_batch(batch);
                Err(error)
            }
            Err(Interrupted::Stopped) => Err(stopped()),
        }
    }

    /// Removes an unpublished batch's rows after an error; if even that
    /// fails, they stay hidden and the next open removes them.
    pub(crate) fn remove_batch(&mut self, batch: i64) {
        let _ = self.store.write().and_then(|tx| {
            tx.import_batch_remove(batch)?;
            tx.commit()
        });
    }
}

/// The error of a staged write a test stopped as a crash would.
pub(crate) fn stopped() -> Error {
    Error::Database("the import was stopped before it was published".into())
}

/// Seals and signs new rows and writes them, the work on two cores: a
/// worker computes the MACs of the devices, then the users, then seals and
/// signs the credentials chunk by chunk, while this thread writes each part
/// as soon as it is ready. The database writer is the bottleneck of a large
/// import; this way the sealing and signing mostly hide behind its writes
/// instead of adding to them. Small batches are done in line.
fn write_signed(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    devices: &[Device],
    users: &[User],
    mut rows: Vec<CredentialRow>,
    tokens: &[NewToken],
) -> Result<Vec<CredentialRow>> {
    const CHUNK: usize = 4096;
    let sign_devices =
        || -> Vec<Vec<u8>> { devices.iter().map(|d| keys.signer.device(d).1).collect() };
    let sign_users = || -> Vec<Vec<u8>> { users.iter().map(|u| keys.signer.user(u).1).collect() };
    let seal_and_sign = |rows: &mut [CredentialRow], tokens: &[NewToken]| -> Result<Vec<Vec<u8>>> {
        let mut macs = Vec::with_capacity(rows.len());
        for (row, token) in rows.iter_mut().zip(tokens) {
            let secret = token.credential.secret.as_bytes();
            row.sealed_secret = Some(keys.seal_secret(secret, &binding(row))?);
            macs.push(keys.signer.credential(row).1);
        }
        Ok(macs)
    };
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
    if !parallel || rows.len() + devices.len() + users.len() < 1000 {
        tx.devices_insert(devices, &sign_devices())?;
        tx.users_insert(users, &sign_users())?;
        let macs = seal_and_sign(&mut rows, tokens)?;
        tx.credentials_insert(&rows, &macs)?;
        return Ok(rows);
    }
    enum Part {
        Devices(Vec<Vec<u8>>),
        Users(Vec<Vec<u8>>),
        Credentials(Result<(Vec<CredentialRow>, Vec<Vec<u8>>)>),
    }
    let total = rows.len();
    std::thread::scope(|scope| {
        // Two parts ahead at most: the worker never runs far ahead of the
        // writer, so memory stays that of the batch itself.
        let (send, receive) = std::sync::mpsc::sync_channel::<Part>(2);
        scope.spawn(move || {
            if send.send(Part::Devices(sign_devices())).is_err()
                || send.send(Part::Users(sign_users())).is_err()
            {
                return;
            }
            let mut rest = rows;
            let mut tokens = tokens;
            while !rest.is_empty() {
                let tail = rest.split_off(CHUNK.min(rest.len()));
                let mut chunk = std::mem::replace(&mut rest, tail);
                let (these, others) = tokens.split_at(chunk.len());
                tokens = others;
                let part = seal_and_sign(&mut chunk, these).map(|macs| (chunk, macs));
                let failed = part.is_err();
                // The writer stopped (it failed): nothing more to do.
                if send.send(Part::Credentials(part)).is_err() || failed {
                    return;
                }
            }
        });
        let mut written = Vec::with_capacity(total);
        for part in receive {
            match part {
                Part::Devices(macs) => tx.devices_insert(devices, &macs)?,
                Part::Users(macs) => tx.users_insert(users, &macs)?,
                Part::Credentials(part) => {
                    let (chunk, macs) = part?;
                    tx.credentials_insert(&chunk, &macs)?;
                    written.extend(chunk);
                }
            }
        }
        if written.len() != total {
            return Err(Error::Database(
                "a sealing worker stopped before the import was written".into(),
            ));
        }
        Ok(written)
    })
}
