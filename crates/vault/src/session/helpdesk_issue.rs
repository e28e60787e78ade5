//! Which code a helpdesk request shows, as a pure function of the
//! credential row: TOTP by time and the verifier's window, HOTP at the
//! stored counter (moved past it when the release is written).

use super::helpdesk::HelpdeskRequest;
use super::*;

/// The code a helpdesk request would show, before the release is written.
pub(crate) struct Issued {
    pub code: String,
    pub counter: u64,
    pub offset: i64,
    pub valid_from: u64,
    pub valid_until: u64,
    pub accepted_until: u64,
    /// Where delivery checks search from now (TOTP: the step of now).
    pub current: u64,
    /// HOTP: the generator, to compute the code again at the counter read
    /// in the write transaction.
    pub hotp: Option<Hotp>,
}

pub(crate) enum Issue {
    Refused(String),
    Invalid(Error),
}

/// The code for `row`: TOTP the code that stays accepted as asked; HOTP the
/// code at the stored counter (accepted until a later one is used, so any
/// `valid_for` is met).
pub(crate) fn issue(
    secret: &Secret,
    row: &CredentialRow,
    request: &HelpdeskRequest,
    now: u64,
) -> std::result::Result<Issued, Issue> {
    let invalid = |e: String| Issue::Invalid(Error::Invalid(e));
    let (algorithm, digits, kind) = otp_parts(row).map_err(Issue::Invalid)?;
    match kind {
        Kind::Hotp { counter } => {
            let hotp = Hotp::new(secret, algorithm, digits);
            Ok(Issued {
                code: hotp.generate(counter).to_string(),
                counter,
                offset: 0,
                valid_from: now,
                valid_until: u64::MAX,
                accepted_until: u64::MAX,
                current: counter,
                hotp: Some(hotp),
            })
        }
        Kind::Totp { step } => {
            let totp = Totp::new(secret, algorithm, digits, step);
            let window = request
                .verifier
                .window(step.period())
                .map_err(|e| invalid(e.to_string()))?;
            let LastingCode { code, accepted } = totp
                .code_valid_for(now, request.valid_for.unwrap_or(0), window)
                .map_err(|e| match e {
                    e @ oathdesk_otp::ValidForError::TooLong { .. } => {
                        Issue::Refused(e.to_string())
                    }
                    e => invalid(e.to_string()),
                })?;
            let current = step.counter_at(now).map_err(|e| invalid(e.to_string()))?;
            Ok(Issued {
                code: code.code.to_string(),
                counter: code.counter,
                offset: code.offset,
                valid_from: code.current.from,
                valid_until: code.current.until,
                accepted_until: accepted.until,
                current,
                hotp: None,
            })
        }
    }
}
