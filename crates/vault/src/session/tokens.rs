//! Users, devices and credentials: adding them (the one place for a new
//! token's defaults) and their lifecycle.

use super::*;

/// What a new token is when nobody says otherwise — the one place for these
/// defaults, so that the command line, the console and file imports agree.
pub mod defaults {
    use oathdesk_otp::{Algorithm, Secret, seed};

    use crate::error::{Error, Result};
    use crate::model::{DeviceKind, State};

    /// The device a serial and slot name: a slot means a profile of a
    /// multi-profile device (Molto-2); a serial alone a classic, pre-seeded
    /// token (programmable single-profile tokens are named by their burn);
    /// no serial, a device nobody recorded.
    pub fn device_kind(serial: Option<&str>, slot: Option<u32>) -> DeviceKind {
        match (serial, slot) {
            (None, _) => DeviceKind::Unknown,
            (Some(_), Some(_)) => DeviceKind::MultiProfile,
            (Some(_), None) => DeviceKind::Classic,
        }
    }

    /// Profiles of a new device of `kind`: 100 for a Molto-2, else 1.
    pub fn slots(kind: DeviceKind) -> u32 {
        match kind {
            DeviceKind::MultiProfile => 100,
            _ => 1,
        }
    }

    /// The first state: a classic token's seed came from the vendor
    /// (`stock`); a programmable token holds the secret once burned.
    pub fn first_state(kind: DeviceKind) -> State {
        match kind {
            DeviceKind::Classic => State::Stock,
            _ => State::Burned,
        }
    }

    /// A fresh seed for `algorithm`, as long as its HMAC output (RFC 4226's
    /// advice; 20 bytes for SHA-1).
    pub fn generated_secret(algorithm: Algorithm) -> Result<Secret> {
        seed::generate(seed::default_len(algorithm)).map_err(|e| Error::Crypto(e.to_string()))
    }
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
    /// When the token's battery reaches the low end of its stated life
    /// (see `crate::fleet`): hardware tokens in use only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_due: Option<u64>,
    /// The row does not carry the vault's signature (edited outside
    /// oathdesk): shown so that nobody trusts what it says; nothing is done
    /// with it. Absent from JSON unless true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub altered: bool,
}

impl TokenInfo {
    /// `SERIAL`, `SERIAL:SLOT` or `#ID`.
    pub fn reference(&self) -> String {
        reference_of(self.serial.as_deref(), self.slot, self.id)
    }
}

pub(crate) fn reference_of(serial: Option<&str>, slot: Option<u32>, id: i64) -> String {
    match (serial, slot) {
        // A serial from before the serial rule (`CONF:1`) would name
        // another credential, or none: such credentials go by their id.
        (Some(serial), _) if id != 0 && crate::model::serial_problem(serial).is_some() => {
            format!("#{id}")
        }
        (Some(serial), Some(slot)) => format!("{serial}:{slot}"),
        (Some(serial), None) => serial.to_owned(),
        (None, _) => format!("#{id}"),
    }
}

pub(crate) fn info(row: &CredentialRow) -> TokenInfo {
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
        battery_due: crate::fleet::due_of(row),
        altered: false,
    }
}

/// The credentials as shown, each marked if its signature fails.
pub(crate) fn shown(
    tx: &impl StoreTx,
    signer: &Signer,
    enforced: bool,
    rows: &[CredentialRow],
) -> Result<Vec<TokenInfo>> {
    let mut shown: Vec<TokenInfo> = rows.iter().map(info).collect();
    if enforced && !rows.is_empty() {
        let keys: Vec<(&str, String)> = rows
            .iter()
            .map(|r| (kind::CREDENTIAL, signed::row_id(r.id)))
            .collect();
        let stored: HashMap<String, Vec<u8>> = tx
            .row_macs_of(&keys)?
            .into_iter()
            .map(|(_, id, mac)| (id, mac))
            .collect();
        for (info, row) in shown.iter_mut().zip(rows) {
            let (id, mac) = signer.credential(row);
            info.altered = stored.get(&id) != Some(&mac);
        }
    }
    Ok(shown)
}

/// Finds exactly one credential.
pub(crate) fn resolve(tx: &impl StoreTx, token: &TokenRef) -> Result<CredentialRow> {
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
pub(crate) fn resolve_checked(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    token: &TokenRef,
) -> Result<CredentialRow> {
    let row = resolve(tx, token)?;
    signed::check_credentials(tx, keys.signer, keys.enforced, &[&row])?;
    Ok(row)
}

/// Writes a credential's mutable fields and signs the row as written.
pub(crate) fn update_credential(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    row: &CredentialRow,
) -> Result<()> {
    tx.credential_update(row)?;
    keys.signer
        .put(tx, kind::CREDENTIAL, vec![keys.signer.credential(row)])
}

/// Purges a credential's secret and signs what is left of the row; its
/// released steps go too (without the secret no code proves anything).
pub(crate) fn purge_credential(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    id: i64,
    now: u64,
) -> Result<()> {
    tx.credential_purge(id, now)?;
    forget_released(tx, id, None)?;
    keys.signer.resign_credentials(tx, &[id])
}

pub(crate) fn check_user(tx: &impl StoreTx, keys: &Keys<'_>, user: &User) -> Result<()> {
    let (id, mac) = keys.signer.user(user);
    let name = format!("user {} ({})", user.id, user.upn);
    signed::check(tx, keys.enforced, kind::USER, &[(id, name, mac)])
}

pub(crate) fn move_state(
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

impl<S: Store> Session<S> {
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

    /// For tests: adds a token as a vault from before the serial rule
    /// could hold it (a serial like `CONF:1`), signed like any other.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn add_token_from_before_the_serial_rule(
        &mut self,
        token: NewToken,
        now: u64,
    ) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        self.change(now, |tx, key| {
            let row = insert_tokens_with(tx, key, vec![token], now, false)?.remove(0);
            Ok((info(&row), AuditEvent::ok("token.add")))
        })
    }

    /// Adds many tokens in one transaction: all of them or none.
    pub fn add_tokens(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        action: &str,
    ) -> Result<Vec<CredentialRow>> {
        self.add_tokens_audited(tokens, now, action, json!({}))
    }

    /// [`Session::add_tokens`], with more to say in the audit entry.
    pub(crate) fn add_tokens_audited(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        action: &str,
        extra: serde_json::Value,
    ) -> Result<Vec<CredentialRow>> {
        let mut go_on = |_: usize| true;
        let mut staging = Staging::new(&mut go_on);
        self.add_tokens_between(tokens, now, action, extra, || {}, &mut staging)
    }

    /// For tests: [`Session::add_tokens`] with `meanwhile` run after the
    /// batch was prepared and before it is written (another writer's turn).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn add_tokens_with_a_change_between(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        meanwhile: impl FnOnce(),
    ) -> Result<Vec<CredentialRow>> {
        let mut go_on = |_: usize| true;
        let mut staging = Staging::new(&mut go_on);
        self.add_tokens_between(tokens, now, "token.add", json!({}), meanwhile, &mut staging)
    }

    /// For tests: [`Session::add_tokens`] staged in transactions of
    /// `rows` credentials (if the store stages imports), with `go_on`
    /// asked before each transaction after the first: `false` stops the
    /// import there as a crash would. Every part is its own transaction,
    /// as if a writer waited after each.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn add_tokens_staged(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        rows: usize,
        mut go_on: impl FnMut(usize) -> bool,
    ) -> Result<Vec<CredentialRow>> {
        let mut staging = Staging::new(&mut go_on);
        staging.rows = rows;
        // As if a writer waited after every part: each its own transaction.
        staging.always_let_in = true;
        self.add_tokens_between(tokens, now, "token.add", json!({}), || {}, &mut staging)
    }

    /// For tests: [`Session::add_tokens`] staged in parts of `rows`
    /// credentials that share a transaction unless a writer waits (as
    /// every import does); `go_on` as in [`Session::add_tokens_staged`].
    /// Returns the rows and the transactions the parts took.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fn add_tokens_adaptively(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        rows: usize,
        mut go_on: impl FnMut(usize) -> bool,
    ) -> Result<(Vec<CredentialRow>, usize)> {
        let mut staging = Staging::new(&mut go_on);
        staging.rows = rows;
        let added =
            self.add_tokens_between(tokens, now, "token.add", json!({}), || {}, &mut staging)?;
        Ok((added, staging.transactions))
    }

    /// Prepares the batch before the write transaction where the store
    /// allows, and stages a large one where it can (see `session::batch`);
    /// else writes it in one transaction.
    fn add_tokens_between(
        &mut self,
        tokens: Vec<NewToken>,
        now: u64,
        action: &str,
        extra: serde_json::Value,
        meanwhile: impl FnOnce(),
        staging: &mut Staging<'_>,
    ) -> Result<Vec<CredentialRow>> {
        self.require(Permission::InventoryWrite)?;
        let count = tokens.len();
        let staging_rows = staging.rows;
        // A large batch is written before the writers' lock where the
        // store allows it (see `session::late_lock`).
        let mut meanwhile = Some(meanwhile);
        let late =
            self.add_tokens_late_locked(&tokens, now, &mut meanwhile, None::<fn()>, |added| {
                batch_event(action, count, added.first(), extra.clone())
            })?;
        if let Some(added) = late {
            return Ok(added);
        }
        let prepare = |session: &mut Self| {
            session.checked_read(now, |tx, keys| {
                // A batch to be staged is sealed part by part as it is written.
                prepare_tokens(tx, keys, &tokens, now, tokens.len() <= staging_rows)
            })
        };
        let mut prepared = prepare(self)?;
        if let Some(meanwhile) = meanwhile.take() {
            meanwhile();
        }
        // A large batch is staged; prepared again if another writer added
        // rows since its snapshot, and at last written in one transaction.
        for attempt in 1..=STAGE_ATTEMPTS {
            let Some(batch) = prepared.take() else { break };
            if batch.credentials() <= staging.rows {
                prepared = Some(batch);
                break;
            }
            let event = batch_event(action, count, None, extra.clone());
            match self.write_staged(batch, &tokens, now, event, staging)? {
                Ok(added) => return Ok(added),
                Err(_) if attempt < STAGE_ATTEMPTS => prepared = prepare(self)?,
                Err(unwritten) => prepared = Some(unwritten),
            }
        }
        self.change(now, |tx, key| {
            let written = match prepared {
                Some(prepared) => prepared.write(tx, key, &tokens, now)?,
                None => None,
            };
            // Rows were added since the snapshot (or the store plans in the
            // transaction): plan again, here.
            let added = match written {
                Some(rows) => rows,
                None => insert_tokens(tx, key, tokens, now)?,
            };
            let event = batch_event(action, count, added.first(), extra);
            Ok((added, event))
        })
    }

    /// Credentials matching `filter`.
    pub fn tokens(&mut self, filter: &CredentialFilter) -> Result<Vec<TokenInfo>> {
        self.require(Permission::InventoryRead)?;
        let tx = self.store.read()?;
        let rows = tx.credentials(filter)?;
        shown(&tx, &self.signer, self.signed, &rows)
    }

    /// One credential and its lifecycle history.
    pub fn token(&mut self, token: &TokenRef) -> Result<(TokenInfo, Vec<Event>)> {
        self.require(Permission::InventoryRead)?;
        let tx = self.store.read()?;
        let row = resolve(&tx, token)?;
        let events = tx.events(row.id)?;
        let mut shown = shown(&tx, &self.signer, self.signed, std::slice::from_ref(&row))?;
        Ok((shown.remove(0), events))
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
}

/// The audit entry of a batch of `count` tokens: the credential and its
/// user for one (`only`), the count for more, and `extra` in the detail.
pub(super) fn batch_event(
    action: &str,
    count: usize,
    only: Option<&CredentialRow>,
    extra: serde_json::Value,
) -> AuditEvent {
    let mut event = match only.filter(|_| count == 1) {
        Some(row) => {
            let mut event = AuditEvent::ok(action).credential(reference_of(
                row.serial.as_deref(),
                row.slot,
                row.id,
            ));
            event.user = row.upn.clone();
            event
        }
        None => AuditEvent::ok(action).detail(json!({"credentials": count})),
    };
    if let (Some(detail), serde_json::Value::Object(more)) = (event.detail.as_object_mut(), extra) {
        detail.extend(more);
    }
    event
}
