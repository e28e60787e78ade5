//! The fleet's clocks and batteries, and "when was this code valid?".
//!
//! Drift sightings are kept wherever the vault sees a token's own code at
//! a known moment: a delivery, a `token check`, an identify of a fresh
//! code. A code the vault computed itself (a helpdesk code, an Entra
//! activation sent by oathdesk) says nothing of the token's clock and is
//! never a sighting. The reports are computed by [`crate::fleet`].
//!
//! Each sighting is signed, and so is its credential's drift series
//! ([`crate::drift_series`]: the credential's sightings in one row,
//! rewritten in the transaction that adds one), which is what the fleet
//! report reads: one row and one MAC per token rather than per sighting.
//! A token's plot reads its sightings; `vault verify` checks both and that
//! they agree.

use oathdesk_otp::forensic::{self, CodeSighting};
use oathdesk_otp::{Interval, parse_code};

use super::records;
use super::*;
use crate::bulk_check::{cores, first_mismatch};
use crate::drift_series;
use crate::fleet::{
    self as reports, ClockSync, DriftReport, EolLine, Hardware, Observation, TokenDrift,
};
use crate::store::SightingRow;

/// Where a sighting came from.
pub(crate) mod source {
    pub const DELIVER: &str = "deliver";
    pub const CHECK: &str = "check";
    pub const IDENTIFY: &str = "identify";
}

/// Keeps a sighting of a time-based credential, signed, in the caller's
/// transaction (a second one of the same moment and source is dropped).
pub(crate) fn record_sighting(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    credential_id: i64,
    at: u64,
    offset_steps: i64,
    source: &str,
) -> Result<()> {
    let row = SightingRow {
        credential_id,
        at,
        source: source.to_owned(),
        offset_steps,
    };
    if tx.sighting_insert(&row)? {
        keys.signer
            .put(tx, kind::SIGHTING, vec![keys.signer.sighting(&row)])?;
        // From the checked sightings, never by appending to the stored
        // series: signing on top of an altered row would launder it.
        let rows = checked_sightings_of(tx, keys, credential_id)?;
        let mac = put_series(tx, keys, credential_id, &rows)?;
        keys.signer.put(tx, kind::DRIFT_SERIES, vec![mac])?;
    }
    Ok(())
}

/// Writes a credential's drift series of `rows` (its sightings, checked,
/// in the store's order); returns its MAC, to be put by the caller.
fn put_series(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    credential_id: i64,
    rows: &[SightingRow],
) -> Result<(String, Vec<u8>)> {
    let points = drift_series::encode(rows)?;
    tx.drift_series_put(credential_id, &points)?;
    Ok(keys.signer.drift_series(credential_id, &points))
}

/// Builds every credential's drift series from the checked sightings and
/// marks them complete: a vault from before series, at its first fleet
/// report (a migration has no key to sign them). Returns how many series
/// and sightings.
fn build_all_series(tx: &impl StoreTx, keys: &Keys<'_>) -> Result<(usize, usize)> {
    let sightings = checked_sightings(tx, keys)?;
    let mut macs = Vec::new();
    let mut built = std::collections::HashSet::new();
    for run in sightings.chunk_by(|a, b| a.credential_id == b.credential_id) {
        let credential_id = run[0].credential_id;
        macs.push(put_series(tx, keys, credential_id, run)?);
        built.insert(credential_id);
    }
    // A series without sightings says what nothing says.
    for (credential_id, _) in tx.drift_series(None)? {
        if !built.contains(&credential_id) {
            tx.drift_series_delete(credential_id)?;
            tx.row_mac_delete(kind::DRIFT_SERIES, &signed::row_id(credential_id))?;
        }
    }
    macs.push(keys.signer.series_complete());
    keys.signer.put(tx, kind::DRIFT_SERIES, macs)?;
    Ok((built.len(), sightings.len()))
}

/// Every credential's drift series, each checked against its signature
/// (one read of the kind's MACs, compared on every core) — or `None` if
/// they were never all built (no valid mark). A series deleted behind the
/// vault's back leaves its MAC: refused, by name.
fn checked_series(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
) -> Result<Option<HashMap<i64, Vec<Observation>>>> {
    let stored: HashMap<String, Vec<u8>> = tx.row_macs(kind::DRIFT_SERIES)?.into_iter().collect();
    let (mark, mark_mac) = keys.signer.series_complete();
    match stored.get(&mark) {
        None => return Ok(None),
        Some(mac) if signed::same(mac, &mark_mac) => {}
        Some(_) if keys.enforced => {
            return Err(Error::Altered {
                row: "the mark that every drift series was built".into(),
            });
        }
        Some(_) => return Ok(None),
    }
    let rows = tx.drift_series(None)?;
    if keys.enforced {
        let signer = keys.signer;
        if let Some(bad) = first_mismatch(&rows, &stored, cores(), |(id, points)| {
            signer.drift_series(*id, points)
        }) {
            return Err(Error::Altered {
                row: signed::series_name(rows[bad].0),
            });
        }
        // Every row matched a MAC: any MAC beyond them and the mark is a
        // series that was deleted.
        if stored.len() > rows.len() + 1 {
            let kept: std::collections::HashSet<String> =
                rows.iter().map(|(id, _)| signed::row_id(*id)).collect();
            let gone = stored
                .keys()
                .filter(|id| **id != mark && !kept.contains(*id))
                .min()
                .cloned()
                .unwrap_or_default();
            return Err(Error::Altered {
                row: match crate::store::row_of_key(&gone) {
                    Some(id) => signed::series_name(id),
                    None => signed::record_name(kind::DRIFT_SERIES, &gone),
                },
            });
        }
    }
    rows.iter()
        .map(|(id, points)| Ok((*id, drift_series::observations(*id, points)?)))
        .collect::<Result<_>>()
        .map(Some)
}

/// Every sighting, each checked against its signature: one read of the
/// kind's MACs, compared in memory on every core (a fleet has millions).
fn checked_sightings(tx: &impl StoreTx, keys: &Keys<'_>) -> Result<Vec<SightingRow>> {
    let rows = tx.sightings(None)?;
    if keys.enforced {
        let stored: HashMap<String, Vec<u8>> = tx.row_macs(kind::SIGHTING)?.into_iter().collect();
        let signer = keys.signer;
        if let Some(bad) = first_mismatch(&rows, &stored, cores(), |row| signer.sighting(row)) {
            return Err(Error::Altered {
                row: signed::sighting_name(&rows[bad]),
            });
        }
    }
    Ok(rows)
}

/// One credential's sightings, each checked against its signature.
fn checked_sightings_of(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    credential_id: i64,
) -> Result<Vec<SightingRow>> {
    let rows = tx.sightings(Some(credential_id))?;
    if keys.enforced && !rows.is_empty() {
        let wanted: Vec<(&str, String)> = rows
            .iter()
            .map(|row| (kind::SIGHTING, signed::sighting_id(row)))
            .collect();
        let stored: HashMap<String, Vec<u8>> = tx
            .row_macs_of(&wanted)?
            .into_iter()
            .map(|(_, id, mac)| (id, mac))
            .collect();
        for row in &rows {
            let (id, mac) = keys.signer.sighting(row);
            if !stored.get(&id).is_some_and(|m| signed::same(m, &mac)) {
                return Err(Error::Altered {
                    row: signed::sighting_name(row),
                });
            }
        }
    }
    Ok(rows)
}

/// Every credential, each checked against its signature the same way: a
/// report over the whole fleet reads all of the kind's MACs at once rather
/// than looking up each.
fn checked_credentials(tx: &impl StoreTx, keys: &Keys<'_>) -> Result<Vec<CredentialRow>> {
    let rows = tx.credentials(&CredentialFilter::default())?;
    if keys.enforced {
        let stored: HashMap<String, Vec<u8>> = tx.row_macs(kind::CREDENTIAL)?.into_iter().collect();
        let signer = keys.signer;
        if let Some(bad) = first_mismatch(&rows, &stored, cores(), |row| signer.credential(row)) {
            return Err(Error::Altered {
                row: signed::credential_name(&rows[bad]),
            });
        }
    }
    Ok(rows)
}

/// The latest clock set by oathdesk of each credential, checked — a
/// record deleted behind the vault's back too (its MAC stays): without it
/// the old sightings would count again.
pub(crate) fn clock_syncs(tx: &impl StoreTx, keys: &Keys<'_>) -> Result<HashMap<i64, ClockSync>> {
    let rows = records::list(tx, keys, kind::CLOCK_SYNC, None)?;
    if keys.enforced {
        let kept: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        if let Some((id, _)) = tx
            .row_macs(kind::CLOCK_SYNC)?
            .into_iter()
            .find(|(id, _)| !kept.contains(id.as_str()))
        {
            return Err(Error::Altered {
                row: signed::record_name(kind::CLOCK_SYNC, &id),
            });
        }
    }
    rows.iter()
        .map(|row| {
            let sync: ClockSync = records::body(row)?;
            Ok((sync.credential_id, sync))
        })
        .collect()
}

/// Records that oathdesk set the clock of `row`'s token to `set_to` at
/// `now` (signed, in the caller's transaction): its drift history starts
/// again. Only time-based credentials have a clock to speak of.
pub(crate) fn record_clock_sync(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    row: &CredentialRow,
    set_to: u64,
    operator: &str,
    via: &str,
    now: u64,
) -> Result<Option<ClockSync>> {
    if row.kind != "totp" {
        return Ok(None);
    }
    let sync = ClockSync {
        credential_id: row.id,
        synced_at: now,
        set_to,
        operator: operator.to_owned(),
        via: via.to_owned(),
    };
    let record = records::record(
        kind::CLOCK_SYNC,
        &signed::row_id(row.id),
        "synced",
        &sync,
        now,
    )?;
    records::put(tx, keys, vec![record])?;
    Ok(Some(sync))
}

/// What a `token check` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TokenCheck {
    pub credential: String,
    /// Steps the token is off (negative: behind).
    pub offset_steps: i64,
}

/// How far back a forensic range must end: it answers for the past, never
/// whether a code works now (no oracle for a live code).
pub const FORENSIC_QUIET_S: u64 = 600;

/// Which credentials a forensic search covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForensicTarget {
    User(String),
    Token(TokenRef),
}

/// One interval a code was valid in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForensicHit {
    pub credential: String,
    pub user: Option<String>,
    pub counter: u64,
    /// When it was the current code (a correct clock).
    pub current_from: u64,
    pub current_until: u64,
    /// When the verifier profile accepted it.
    pub accepted_from: u64,
    pub accepted_until: u64,
}

/// The answer of a forensic search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForensicReport {
    pub from: u64,
    pub to: u64,
    pub verifier: String,
    /// Credentials searched.
    pub searched: Vec<String>,
    /// Credentials that could not be searched, and why (a purged secret).
    pub skipped: Vec<(String, String)>,
    pub hits: Vec<ForensicHit>,
}

impl<S: Store> Session<S> {
    /// Checks a code read off a token now: records where its clock stands
    /// (a sighting) and its last drift, changing nothing else. A code the
    /// vault gave out (a released step) says nothing of the token and is
    /// refused, as at delivery. The same permission as a delivery: it is
    /// the same act, repeated.
    pub fn check_token(&mut self, token: &TokenRef, code: &str, now: u64) -> Result<TokenCheck> {
        self.require(Permission::Deliver)?;
        let steps = settings::DELIVERY_WINDOW_MAX;
        enum Refusal {
            NoMatch(String),
            Released(String),
        }
        let outcome = self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, token)?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            let (algorithm, digits, kind) = otp_parts(&row)?;
            let Kind::Totp { step } = kind else {
                return Err(Error::Invalid(format!(
                    "{reference} is an HOTP (event) token: it has no clock to check"
                )));
            };
            let secret = held_secret(keys, &row)?;
            let hotp = Hotp::new(&secret, algorithm, digits);
            let expected = step
                .counter_at(now)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let found = hotp
                .verify(code, expected, Window::symmetric(steps))
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let refused = |reason: &str| {
                let mut event = AuditEvent {
                    outcome: "refused".into(),
                    ..AuditEvent::ok("token.check")
                }
                .credential(reference.clone())
                .detail(json!({"reason": reason}));
                event.user = row.upn.clone();
                event
            };
            let Some(found) = found else {
                return Ok((
                    Err(Refusal::NoMatch(reference.clone())),
                    refused("code does not match"),
                ));
            };
            if released_steps(tx, keys, row.id)?.contains(&found.counter)
                || !tx
                    .row_macs_of(&[(kind::RELEASED, signed::released_id(row.id, found.counter))])?
                    .is_empty()
            {
                return Ok((
                    Err(Refusal::Released(reference.clone())),
                    refused("the code's time step was released by the vault"),
                ));
            }
            record_sighting(tx, keys, row.id, now, found.offset, source::CHECK)?;
            row.drift_steps = Some(found.offset);
            update_credential(tx, keys, &row)?;
            let mut event = AuditEvent::ok("token.check")
                .credential(reference.clone())
                .detail(json!({"drift_steps": found.offset}));
            event.user = row.upn.clone();
            Ok((
                Ok(TokenCheck {
                    credential: reference,
                    offset_steps: found.offset,
                }),
                event,
            ))
        })?;
        outcome.map_err(|refusal| match refusal {
            Refusal::Released(credential) => Error::CodeReleased { credential },
            Refusal::NoMatch(credential) => Error::CodeMismatch { credential, steps },
        })
    }

    /// Keeps many sightings at once, each signed as a `token check` signs
    /// it, in one transaction and not audited: what benches use to give a
    /// fleet its history (two million checks, one transaction each, would
    /// take hours). Returns how many were new.
    #[cfg(feature = "testing")]
    pub fn record_sightings(&mut self, rows: &[SightingRow]) -> Result<usize> {
        let tx = self.store.write()?;
        let mut macs = Vec::with_capacity(rows.len());
        for row in rows {
            if tx.sighting_insert(row)? {
                macs.push(self.signer.sighting(row));
            }
        }
        let kept = macs.len();
        self.signer.put(&tx, kind::SIGHTING, macs)?;
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        build_all_series(&tx, &keys)?;
        tx.commit()?;
        Ok(kept)
    }

    /// The drift report of every time-based token with sightings, against
    /// `verifier`; "near the edge" looks `horizon_s` ahead. Reads each
    /// credential's drift series, checked; a vault from before series
    /// builds them first, from its checked sightings (once, audited).
    pub fn fleet_drift(
        &mut self,
        verifier: Verifier,
        horizon_s: u64,
        now: u64,
    ) -> Result<DriftReport> {
        self.require(Permission::InventoryRead)?;
        let (rows, series, resyncs, hardware) = match self.drift_inputs(now)? {
            Some(inputs) => inputs,
            None => {
                self.change(now, |tx, keys| {
                    let (series, sightings) = build_all_series(tx, keys)?;
                    let event = AuditEvent::ok("fleet.drift_series")
                        .detail(json!({"series": series, "sightings": sightings}));
                    Ok(((), event))
                })?;
                self.drift_inputs(now)?.ok_or_else(|| {
                    Error::Database("the drift series were built but are not marked".into())
                })?
            }
        };
        Ok(reports::drift_report(
            &rows, &hardware, &series, &resyncs, verifier, horizon_s, now,
        ))
    }

    /// What the drift report reads, checked — `None` while the drift series
    /// were never all built.
    #[allow(clippy::type_complexity)]
    fn drift_inputs(
        &mut self,
        now: u64,
    ) -> Result<
        Option<(
            Vec<CredentialRow>,
            HashMap<i64, Vec<Observation>>,
            HashMap<i64, ClockSync>,
            HashMap<i64, Hardware>,
        )>,
    > {
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        let read = (|| {
            let tx = self.store.read()?;
            let Some(series) = checked_series(&tx, &keys)? else {
                return Ok(None);
            };
            let rows = checked_credentials(&tx, &keys)?;
            let resyncs = clock_syncs(&tx, &keys)?;
            let hardware: HashMap<i64, Hardware> = tx
                .devices()?
                .into_iter()
                .map(|d| (d.id, Hardware { kind: d.kind }))
                .collect();
            Ok(Some((rows, series, resyncs, hardware)))
        })();
        self.audited(now, read)
    }

    /// One token's sightings, fitted drift and standing against `verifier`
    /// (what a plot of its clock needs): the same permission as the drift
    /// report, of which it is one line. An HOTP token has no clock.
    pub fn token_drift(
        &mut self,
        token: &TokenRef,
        verifier: Verifier,
        horizon_s: u64,
        now: u64,
    ) -> Result<TokenDrift> {
        self.require(Permission::InventoryRead)?;
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        let read = (|| {
            let tx = self.store.read()?;
            let row = resolve_checked(&tx, &keys, token)?;
            let sightings = checked_sightings_of(&tx, &keys, row.id)?;
            let resync = clock_syncs(&tx, &keys)?.remove(&row.id);
            let kind = match row.device_id {
                Some(id) => tx
                    .devices()?
                    .into_iter()
                    .find(|d| d.id == id)
                    .map_or(DeviceKind::Unknown, |d| d.kind),
                None => DeviceKind::Unknown,
            };
            Ok((row, sightings, kind, resync))
        })();
        let (row, sightings, kind, resync) = self.audited(now, read)?;
        reports::token_drift(
            &row,
            kind,
            &sightings,
            resync.as_ref(),
            verifier,
            horizon_s,
            now,
        )
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{} is an HOTP (event) token: it has no clock to drift",
                reference_of(row.serial.as_deref(), row.slot, row.id)
            ))
        })
    }

    /// The tokens whose battery is due by `until` (overdue included).
    pub fn fleet_eol(&mut self, until: u64, now: u64) -> Result<Vec<EolLine>> {
        self.require(Permission::InventoryRead)?;
        let keys = Keys {
            key: &self.key,
            signer: &self.signer,
            enforced: self.signed,
        };
        let read = (|| checked_credentials(&self.store.read()?, &keys))();
        let rows = self.audited(now, read)?;
        Ok(reports::eol_report(&rows, until))
    }

    /// Every interval of `range` in which `code` was the current code of
    /// the target's credentials, or accepted by `verifier`. For the past
    /// only: the range must end [`FORENSIC_QUIET_S`] before `now`. Audited
    /// (the code itself is not written down), admins and auditors only.
    pub fn forensic(
        &mut self,
        target: &ForensicTarget,
        code: &str,
        range: Interval,
        verifier: Verifier,
        now: u64,
    ) -> Result<ForensicReport> {
        self.require(Permission::Forensic)?;
        if range.until <= range.from {
            return Err(Error::Invalid(format!(
                "the range must end after it starts (from {}, to {})",
                audit::rfc3339(range.from),
                audit::rfc3339(range.until)
            )));
        }
        if range.until > now.saturating_sub(FORENSIC_QUIET_S) {
            return Err(Error::Invalid(format!(
                "the range must end at least {} minutes ago: forensic answers for the past, \
                 never whether a code works now (set --to earlier)",
                FORENSIC_QUIET_S / 60
            )));
        }
        self.change(now, |tx, keys| {
            let rows = match target {
                ForensicTarget::Token(token) => vec![resolve_checked(tx, keys, token)?],
                ForensicTarget::User(upn) => {
                    let rows = tx.credentials(&CredentialFilter {
                        user_upn: Some(upn.clone()),
                        ..CredentialFilter::default()
                    })?;
                    if rows.is_empty() {
                        return Err(Error::NotFound(format!("a credential of user {upn}")));
                    }
                    let refs: Vec<&CredentialRow> = rows.iter().collect();
                    signed::check_credentials(tx, keys.signer, keys.enforced, &refs)?;
                    rows
                }
            };
            let mut report = ForensicReport {
                from: range.from,
                to: range.until,
                verifier: verifier.to_string(),
                searched: Vec::new(),
                skipped: Vec::new(),
                hits: Vec::new(),
            };
            for row in &rows {
                let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
                match search_one(keys, row, code, range, verifier) {
                    Ok(found) => {
                        report.searched.push(reference.clone());
                        report.hits.extend(found.into_iter().map(|s| ForensicHit {
                            credential: reference.clone(),
                            user: row.upn.clone(),
                            counter: s.counter,
                            current_from: s.current.from,
                            current_until: s.current.until,
                            accepted_from: s.accepted.from,
                            accepted_until: s.accepted.until,
                        }));
                    }
                    // One bad range or code is everyone's problem.
                    Err(e @ Error::Invalid(_)) => return Err(e),
                    Err(e) => report.skipped.push((reference, e.to_string())),
                }
            }
            let mut event = AuditEvent::ok("forensic").detail(json!({
                "target": match target {
                    ForensicTarget::User(upn) => upn.clone(),
                    ForensicTarget::Token(t) => t.to_string(),
                },
                "from": range.from,
                "to": range.until,
                "verifier": verifier.to_string(),
                "code_digits": code.trim().len(),
                "searched": report.searched,
                "hits": report.hits.len(),
            }));
            if let ForensicTarget::User(upn) = target {
                event.user = Some(upn.clone());
            }
            Ok((report, event))
        })
    }
}

/// One credential's search.
fn search_one(
    keys: &Keys<'_>,
    row: &CredentialRow,
    code: &str,
    range: Interval,
    verifier: Verifier,
) -> Result<Vec<CodeSighting>> {
    let (algorithm, digits, kind) = otp_parts(row)?;
    let Kind::Totp { step } = kind else {
        return Err(Error::Refused(
            "an HOTP (event) token: its codes have no time".into(),
        ));
    };
    // A code of another length, or a profile that does not take the
    // period, skips this credential only (a user may hold several kinds).
    let wanted = parse_code(code.trim(), digits).map_err(|e| Error::Refused(e.to_string()))?;
    let window = verifier
        .window(step.period())
        .map_err(|e| Error::Refused(e.to_string()))?;
    let secret = held_secret(keys.key, row)?;
    let hotp = Hotp::new(&secret, algorithm, digits);
    forensic::search(&hotp, step, wanted, window, range).map_err(|e| Error::Invalid(e.to_string()))
}
