//! Activation codes computed from the vault at send time.
//!
//! Entra activates a token only with a code the token would show. oathdesk
//! holds the secret, so it computes that code the moment before it sends
//! it. A code computed in the last seconds of its step may reach Entra in
//! the next step; Entra's activation window (±1 day for 30 s tokens, ±2 days
//! for 60 s tokens, `../shared/specs/entra.md` §3.1) would still take it, but
//! the replay rule (a code for a step at or before the last one used is
//! refused, §3.3) makes a code from a step that is ending a poor choice for
//! a retry. So near a boundary oathdesk waits for the next step.

use std::time::Duration;

use oathdesk_otp::{TimeStep, Totp};

use crate::error::{Error, Result};
use crate::graph::VerificationCode;

/// Within this many seconds of a step's end, wait for the next step.
pub const STEP_GUARD: Duration = Duration::from_secs(5);

/// How long to wait at `now` (Unix time with sub-second precision) so that
/// the code computed afterwards stays current for at least `guard`.
pub fn wait_before_code(now: Duration, step: TimeStep, guard: Duration) -> Duration {
    let period = Duration::from_secs(step.period());
    let since_t0 = now.saturating_sub(Duration::from_secs(step.t0()));
    let into_step = Duration::from_nanos((since_t0.as_nanos() % period.as_nanos()) as u64);
    let left = period - into_step;
    if left < guard { left } else { Duration::ZERO }
}

/// The code to send now: waits past a step boundary if one is near, and
/// past `not_before` (the counter of a code already sent for this token, so
/// that a second attempt never replays it). Returns the code and its
/// counter.
pub fn code_to_send(
    totp: &Totp,
    not_before: Option<u64>,
    now: &dyn Fn() -> Duration,
    sleep: &dyn Fn(Duration),
) -> Result<(VerificationCode, u64)> {
    let step = totp.step();
    loop {
        let wait = wait_before_code(now(), step, STEP_GUARD);
        if !wait.is_zero() {
            sleep(wait + Duration::from_millis(20));
            continue;
        }
        let at = now();
        let counter = step
            .counter_at(at.as_secs())
            .map_err(|e| Error::Refused(e.to_string()))?;
        if not_before.is_some_and(|used| counter <= used) {
            let next = step.interval(counter).until;
            sleep(Duration::from_secs(next).saturating_sub(at) + Duration::from_millis(20));
            continue;
        }
        let code = totp.hotp().generate(counter).to_string();
        return Ok((VerificationCode::new(&code)?, counter));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use oathdesk_otp::{Algorithm, Digits, Secret};

    use super::*;

    #[test]
    fn waits_only_near_the_end_of_a_step() {
        let step = TimeStep::new(30, 0).unwrap();
        let at = |s: f64| Duration::from_secs_f64(s);
        assert_eq!(wait_before_code(at(60.0), step, STEP_GUARD), Duration::ZERO);
        assert_eq!(wait_before_code(at(84.9), step, STEP_GUARD), Duration::ZERO);
        assert_eq!(
            wait_before_code(at(86.5), step, STEP_GUARD),
            Duration::from_millis(3500)
        );
        let sixty = TimeStep::new(60, 0).unwrap();
        assert_eq!(wait_before_code(at(119.0), sixty, STEP_GUARD), at(1.0));
    }

    #[test]
    fn the_code_is_the_next_steps_near_a_boundary_and_never_reused() {
        let secret = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let totp = Totp::new(&secret, Algorithm::Sha1, Digits::SIX, TimeStep::DEFAULT);
        // RFC 6238: T = 59 is counter 1; 28 s into that step only 2 s are left.
        let clock = Cell::new(Duration::from_secs(58));
        let now = || clock.get();
        let sleep = |d: Duration| clock.set(clock.get() + d);
        let (code, counter) = code_to_send(&totp, None, &now, &sleep).unwrap();
        assert_eq!(counter, 2);
        assert_eq!(
            code,
            VerificationCode::new(&totp.hotp().generate(2).to_string()).unwrap()
        );
        assert!(clock.get() >= Duration::from_secs(60));
        // A second attempt in the same step waits for the next one.
        let (_, again) = code_to_send(&totp, Some(2), &now, &sleep).unwrap();
        assert_eq!(again, 3);
        assert!(clock.get() >= Duration::from_secs(90));
    }
}
