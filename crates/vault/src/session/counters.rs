//! HOTP counters: re-synchronising a token whose button was pressed ahead
//! of the vault's counter (two consecutive codes), and an admin setting a
//! counter outright. The counter is a signed column of the credential row.

use super::secrets::{held_secret, otp_parts};
use super::tokens::{info, reference_of, resolve_checked, update_credential};
use super::*;

/// How far ahead of the stored counter `token resync` searches (RFC 4226
/// §7.4 look-ahead).
pub const RESYNC_LOOK_AHEAD: u64 = 1000;

/// The first counter `c` in `from ..= from + look_ahead` whose code is
/// `first` and whose next code is `second`.
pub(crate) fn find_consecutive(
    hotp: &Hotp,
    first: &str,
    second: &str,
    from: u64,
    look_ahead: u64,
) -> Result<Option<u64>> {
    let invalid = |e: oathdesk_otp::CodeError| Error::Invalid(e.to_string());
    // Parse both codes before searching, so a typo is named as one.
    hotp.verify(first, from, Window::EXACT).map_err(invalid)?;
    hotp.verify(second, from, Window::EXACT).map_err(invalid)?;
    for counter in from..=from.saturating_add(look_ahead) {
        let Some(next) = counter.checked_add(1) else {
            break;
        };
        if hotp
            .verify(first, counter, Window::EXACT)
            .map_err(invalid)?
            .is_some()
            && hotp
                .verify(second, next, Window::EXACT)
                .map_err(invalid)?
                .is_some()
        {
            return Ok(Some(counter));
        }
    }
    Ok(None)
}

fn hotp_counter(row: &CredentialRow, reference: &str) -> Result<u64> {
    match otp_parts(row)?.2 {
        Kind::Hotp { counter } => Ok(counter),
        Kind::Totp { .. } => Err(Error::Invalid(format!(
            "{reference} is a TOTP (time) token: counters are for HOTP tokens (a TOTP token's \
             drift is learned at delivery)"
        ))),
    }
}

impl<S: Store> Session<S> {
    /// Moves an HOTP token's counter to just after two consecutive codes
    /// read off it, found within [`RESYNC_LOOK_AHEAD`] of the stored
    /// counter. Only ever forward. Codes that do not follow each other
    /// there are refused with [`Error::CodeMismatch`] (and audited).
    pub fn resync_hotp(
        &mut self,
        token: &TokenRef,
        first: &str,
        second: &str,
        now: u64,
    ) -> Result<TokenInfo> {
        self.require(Permission::Deliver)?;
        let outcome = self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, token)?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            let from = hotp_counter(&row, &reference)?;
            let secret = held_secret(keys.key, &row)?;
            let (algorithm, digits, _) = otp_parts(&row)?;
            let hotp = Hotp::new(&secret, algorithm, digits);
            let mut event = AuditEvent::ok("token.resync").credential(reference.clone());
            event.user = row.upn.clone();
            let Some(found) = find_consecutive(&hotp, first, second, from, RESYNC_LOOK_AHEAD)?
            else {
                event.outcome = "refused".into();
                event.detail = json!({
                    "reason": "no two consecutive codes within the look-ahead",
                    "counter": from,
                    "look_ahead": RESYNC_LOOK_AHEAD,
                });
                return Ok((Err(reference), event));
            };
            let to = found + 2;
            row.counter = Some(to);
            update_credential(tx, keys, &row)?;
            event.detail = json!({"from": from, "to": to});
            Ok((Ok(info(&row)), event))
        })?;
        outcome.map_err(|credential| Error::CodeMismatch {
            credential,
            steps: RESYNC_LOOK_AHEAD,
        })
    }

    /// Sets an HOTP token's counter (admins: [`Permission::Counter`]).
    /// Backwards is allowed — codes already used become valid again — and
    /// said so in the audit entry.
    pub fn set_hotp_counter(
        &mut self,
        token: &TokenRef,
        counter: u64,
        now: u64,
    ) -> Result<TokenInfo> {
        self.require(Permission::Counter)?;
        self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, token)?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            let from = hotp_counter(&row, &reference)?;
            row.counter = Some(counter);
            update_credential(tx, keys, &row)?;
            let mut event = AuditEvent::ok("token.set-counter")
                .credential(reference)
                .detail(json!({"from": from, "to": counter, "backwards": counter < from}));
            event.user = row.upn.clone();
            Ok((info(&row), event))
        })
    }
}
