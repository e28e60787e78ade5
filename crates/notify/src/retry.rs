//! When to try a delivery again. The same policy as the Graph client's
//! (`oathdesk_entra::http::RetryPolicy`), kept here so that sending a
//! notice does not pull in the Entra client and the vault it needs.
//!
//! A receiver that is down, overloaded (`429`) or failing (`5xx`) may
//! accept the same notice a moment later; one that answered another `4xx`
//! will not, so that ends the delivery at once. The policy is a pure
//! function ([`RetryPolicy::delay`]), tested without a network.

use std::time::{Duration, SystemTime};

/// When and how often to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles with each retry.
    pub base: Duration,
    /// The longest backoff without a `Retry-After`.
    pub cap: Duration,
    /// The longest `Retry-After` obeyed. A receiver that asks for more
    /// ends the delivery: waiting longer would hold up the helpdesk action
    /// that sends the notice, and the signature would go stale.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts over about eight seconds of backoff.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Statuses worth another try: throttling and server trouble.
pub fn is_retryable(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// Reads `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (1 for the first
    /// retry), or `None` to give up. `retry_after` is the receiver's wish;
    /// `jitter` in `0.0..1.0` spreads senders that failed together.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if retry >= self.attempts {
            return None;
        }
        if let Some(wish) = retry_after {
            return (wish <= self.max_retry_after).then_some(wish);
        }
        let exponent = retry.saturating_sub(1).min(20);
        let backoff = self.base.saturating_mul(1 << exponent).min(self.cap);
        // Half fixed, half random: never more than the backoff.
        Some(backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

/// A number in `0.0..1.0` from the OS RNG (0.5 if it fails: jitter only
/// spreads retries, it protects nothing).
pub(crate) fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_stops_at_the_cap_and_gives_up_after_the_attempts() {
        let policy = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(5),
        };
        assert_eq!(policy.delay(1, None, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(policy.delay(1, None, 0.0), Some(Duration::from_millis(50)));
        assert_eq!(policy.delay(2, None, 1.0), Some(Duration::from_millis(200)));
        assert_eq!(policy.delay(3, None, 1.0), Some(Duration::from_millis(300)));
        assert_eq!(policy.delay(4, None, 1.0), None);
        let j = jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }

    #[test]
    fn retry_after_is_obeyed_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7)), 0.3),
            Some(Duration::from_secs(7))
        );
        assert_eq!(policy.delay(1, Some(Duration::from_secs(61)), 0.3), None);
        assert_eq!(
            policy.delay(policy.attempts, Some(Duration::from_secs(1)), 0.3),
            None
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        // 2015-10-21 07:28:00 UTC is 1445412480.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("later", now), None);
    }

    #[test]
    fn statuses() {
        assert!(is_retryable(429) && is_retryable(500) && is_retryable(503) && is_retryable(599));
        assert!(!is_retryable(400) && !is_retryable(404) && !is_retryable(302));
        assert!(!is_retryable(200) && !is_retryable(600));
    }
}
