//! Proven delivery: a code the token shows, never one the vault showed
//! anyone (released steps), confirms that the token arrived.

use super::*;

/// The outcome of a delivery check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Delivery {
    pub credential: String,
    pub drift_steps: i64,
    pub purged: bool,
    pub purge_after: Option<u64>,
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

/// Records that the code of `counter` was shown, and forgets the
/// credential's steps that no delivery check can reach any more: those more
/// than the largest delivery window ([`settings::DELIVERY_WINDOW_MAX`])
/// behind `current` (the step of now for TOTP, the stored counter for
/// HOTP — where a delivery check searches from), with a step to spare.
pub(crate) fn release_step(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    credential_id: i64,
    current: u64,
    counter: u64,
    now: u64,
) -> Result<()> {
    let record = StepRecord::new(keys.signer, credential_id, current, counter, now);
    let step = record.step();
    tx.released_record(
        step.credential_id,
        step.counter,
        step.at,
        step.mac_kind,
        step.mac_id,
        step.mac,
        step.below,
        step.mac_range,
    )
}

/// What [`release_step`] writes: the step, its MAC, and the range of older
/// steps (and their MACs) to forget.
pub(crate) struct StepRecord {
    credential_id: i64,
    counter: u64,
    at: u64,
    mac_id: String,
    mac: Vec<u8>,
    below: u64,
    lowest: String,
    bound: String,
}

impl StepRecord {
    pub(crate) fn new(
        signer: &Signer,
        credential_id: i64,
        current: u64,
        counter: u64,
        now: u64,
    ) -> StepRecord {
        let (mac_id, mac) = signer.released(credential_id, counter, now);
        // No delivery check reaches further back than the largest window.
        let below = current.saturating_sub(settings::DELIVERY_WINDOW_MAX + 1);
        StepRecord {
            credential_id,
            counter,
            at: now,
            mac_id,
            mac,
            below,
            lowest: signed::released_id(credential_id, 0),
            bound: signed::released_id(credential_id, below),
        }
    }

    pub(crate) fn step(&self) -> crate::store::ReleasedStep<'_> {
        crate::store::ReleasedStep {
            credential_id: self.credential_id,
            counter: self.counter,
            at: self.at,
            mac_kind: kind::RELEASED,
            mac_id: &self.mac_id,
            mac: &self.mac,
            below: self.below,
            mac_range: (&self.lowest, &self.bound),
        }
    }
}

/// Forgets a credential's released steps below `below` (all with `None`:
/// a purged secret can prove no delivery), with their signatures.
pub(crate) fn forget_released(
    tx: &impl StoreTx,
    credential_id: i64,
    below: Option<u64>,
) -> Result<()> {
    for counter in tx.released_forget(credential_id, below)? {
        tx.row_mac_delete(kind::RELEASED, &signed::released_id(credential_id, counter))?;
    }
    Ok(())
}

/// The released steps of a credential, their signatures checked.
pub(crate) fn released_steps(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    credential_id: i64,
) -> Result<Vec<u64>> {
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

/// Why a delivery check refused a code (the caller turns it into an
/// [`Error`] after the refusal's audit entry is written).
pub(crate) enum Refusal {
    NoMatch(String),
    Released(String),
}

impl Refusal {
    pub(crate) fn into_error(self, steps: u64) -> Error {
        match self {
            Refusal::Released(credential) => Error::CodeReleased { credential },
            Refusal::NoMatch(credential) => Error::CodeMismatch { credential, steps },
        }
    }
}

/// The delivery policy in force: the window searched and the purge grace.
#[derive(Clone, Copy)]
pub(crate) struct DeliveryTerms {
    pub steps: u64,
    pub grace: u64,
}

/// The delivery check inside a change: the helpdesk's `token deliver` and
/// a user's self-service link share it, so both refuse released codes and
/// purge alike. Refusals come back as `Ok(Err(..))` with their audit entry.
pub(crate) fn deliver_in(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    token: &TokenRef,
    code: &str,
    terms: DeliveryTerms,
    operator: &str,
    now: u64,
) -> Result<(std::result::Result<Delivery, Refusal>, AuditEvent)> {
    let DeliveryTerms { steps, grace } = terms;
    let mut row = resolve_checked(tx, keys, token)?;
    let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
    row.state.check_transition(State::Delivered)?;
    let secret = held_secret(keys, &row)?;
    let (algorithm, digits, kind) = otp_parts(&row)?;
    let hotp = Hotp::new(&secret, algorithm, digits);
    let window = Window::symmetric(steps);
    let expected = match kind {
        Kind::Totp { step } => step
            .counter_at(now)
            .map_err(|e| Error::Invalid(e.to_string()))?,
        Kind::Hotp { counter } => counter,
    };
    let found = hotp
        .verify(code, expected, window)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let refused = |reason: &str| {
        AuditEvent {
            outcome: "refused".into(),
            ..AuditEvent::of(Action::TokenDeliver)
        }
        .credential(reference.clone())
        .detail(json!({"reason": reason}))
    };
    let Some(found) = found else {
        return Ok((
            Err(Refusal::NoMatch(reference.clone())),
            refused("code does not match"),
        ));
    };
    // A step is released if its row is there, or its signature is:
    // deleting the row alone does not make its code a proof.
    // HOTP counters the helpdesk showed are released steps too.
    if released_steps(tx, keys, row.id)?.contains(&found.counter)
        || !tx
            .row_macs_of(&[(kind::RELEASED, signed::released_id(row.id, found.counter))])?
            .is_empty()
    {
        let reason = match kind {
            Kind::Totp { .. } => "the code's time step was released by the vault",
            Kind::Hotp { .. } => "the code's counter was released by the vault",
        };
        let mut event = refused(reason);
        event.detail["counter"] = json!(found.counter);
        event.user = row.upn.clone();
        return Ok((Err(Refusal::Released(reference.clone())), event));
    }
    move_state(tx, &mut row, State::Delivered, operator, None, now)?;
    row.drift_steps = Some(found.offset);
    if let Kind::Totp { .. } = kind {
        record_sighting(
            tx,
            keys,
            row.id,
            now,
            found.offset,
            sighting_source::DELIVER,
        )?;
    }
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
    let mut event = AuditEvent::of(Action::TokenDeliver)
        .credential(reference.clone())
        .detail(
            json!({"drift_steps": found.offset, "purged": purged, "purge_after": row.purge_after}),
        );
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
}

impl<S: Store> Session<S> {
    /// Checks a code read off the delivered token, records its drift, marks
    /// it delivered, and purges the secret now or after the grace period.
    ///
    /// The code must be one the vault never showed anyone: a code whose time
    /// step was released (a helpdesk code, an enrolment code) proves only
    /// that someone saw it, not that the token arrived (threat model,
    /// promise 5), and is refused with [`Error::CodeReleased`]. A code that
    /// does not verify is refused with [`Error::CodeMismatch`].
    pub fn deliver(&mut self, token: &TokenRef, code: &str, now: u64) -> Result<Delivery> {
        self.require(Permission::Deliver)?;
        let grace = self.setting_value(settings::PURGE_GRACE)?;
        // A window wider than the largest (set before there was one) is
        // clamped: released steps are kept only that far back.
        let steps = self
            .setting_value(settings::DELIVERY_WINDOW)?
            .min(settings::DELIVERY_WINDOW_MAX);
        let operator = self.operator.clone();
        let outcome = self.change(now, |tx, keys| {
            deliver_in(
                tx,
                keys,
                token,
                code,
                DeliveryTerms { steps, grace },
                &operator,
                now,
            )
        })?;
        match outcome {
            Ok(delivery) => {
                if delivery.purged {
                    self.store.scrub()?;
                }
                Ok(delivery)
            }
            Err(refusal) => Err(refusal.into_error(steps)),
        }
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
            release_step(tx, keys, row.id, counter, counter, now)?;
            let mut event = AuditEvent::of(Action::EnrollCode)
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
