//! "When was this code valid?": every time step in a range whose code is
//! the one given, with when it was current and when a verifier accepted it.
//!
//! There is no shortcut through HMAC: each step of the range is computed.
//! The range is split over threads; a year of 30 s steps is about a
//! million HMACs.

use crate::engine::{Hotp, Window};
use crate::params::{Interval, TimeStep};

/// One step whose code matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeSighting {
    pub counter: u64,
    /// When the code was the token's current one (a correct clock).
    pub current: Interval,
    /// When a verifier with the window accepted it.
    pub accepted: Interval,
}

/// Why a search was not made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForensicError {
    #[error("the range is empty: --from must be before --to")]
    EmptyRange,
    #[error("the range starts before the credential's t0 ({t0})")]
    BeforeT0 { t0: u64 },
    #[error("the range is {years} years long; search at most {max} years at a time")]
    TooLong { years: u64, max: u64 },
}

/// The longest range searched at once (about 53 million steps of 30 s):
/// a mistyped year should not keep a core busy for minutes.
pub const MAX_RANGE_YEARS: u64 = 50;

/// Every step whose code equals `wanted` (the code's value, already
/// parsed for the credential's digits) and whose accepted interval meets
/// `range`, in counter order.
pub fn search(
    hotp: &Hotp,
    step: TimeStep,
    wanted: u32,
    window: Window,
    range: Interval,
) -> Result<Vec<CodeSighting>, ForensicError> {
    if range.until <= range.from {
        return Err(ForensicError::EmptyRange);
    }
    let years = range.len() / (365 * 86_400);
    if years > MAX_RANGE_YEARS {
        return Err(ForensicError::TooLong {
            years,
            max: MAX_RANGE_YEARS,
        });
    }
    let first = step
        .counter_at(range.from)
        .map_err(|_| ForensicError::BeforeT0 { t0: step.t0() })?;
    let last = step
        .counter_at(range.until - 1)
        .map_err(|_| ForensicError::BeforeT0 { t0: step.t0() })?;
    // A code accepted during the range may belong to a step up to `ahead`
    // before it or `behind` after it.
    let low = first.saturating_sub(window.ahead);
    let high = last.saturating_add(window.behind);
    let matching = scan(hotp, wanted, low, high);
    Ok(matching
        .into_iter()
        .filter_map(|counter| {
            let current = step.interval(counter);
            let accepted = Interval {
                from: step.interval(counter.saturating_sub(window.ahead)).from,
                until: step.interval(counter.saturating_add(window.behind)).until,
            };
            (accepted.from < range.until && accepted.until > range.from).then_some(CodeSighting {
                counter,
                current,
                accepted,
            })
        })
        .collect())
}

/// Counters in `low..=high` whose code value is `wanted`, over all cores.
fn scan(hotp: &Hotp, wanted: u32, low: u64, high: u64) -> Vec<u64> {
    let count = high - low + 1;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count.div_ceil(4096) as usize)
        .max(1) as u64;
    let chunk = count.div_ceil(threads);
    let part = |from: u64, to: u64| -> Vec<u64> {
        (from..=to)
            .filter(|&counter| hotp.generate(counter).value() == wanted)
            .collect()
    };
    if threads == 1 {
        return part(low, high);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let from = low + i * chunk;
                let to = (from + chunk - 1).min(high);
                scope.spawn(move || {
                    if from > high {
                        Vec::new()
                    } else {
                        part(from, to)
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("forensic worker panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Digits, Secret};

    fn rfc() -> Hotp {
        Hotp::new(
            &Secret::from_bytes(b"12345678901234567890".to_vec()),
            Algorithm::Sha1,
            Digits::SIX,
        )
    }

    #[test]
    fn finds_the_step_and_its_windows() {
        let hotp = rfc();
        let step = TimeStep::DEFAULT;
        let at = 1_111_111_109; // RFC 6238 vector: step 37037036
        let counter = step.counter_at(at).unwrap();
        let wanted = hotp.generate(counter).value();
        let range = Interval {
            from: at - 3600,
            until: at + 3600,
        };
        let found = search(&hotp, step, wanted, Window::symmetric(2), range).unwrap();
        let ours: Vec<_> = found.iter().filter(|s| s.counter == counter).collect();
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0].current, step.interval(counter));
        assert_eq!(ours[0].accepted.from, step.interval(counter - 2).from);
        assert_eq!(ours[0].accepted.until, step.interval(counter + 2).until);
        // Every hit really is the code.
        assert!(
            found
                .iter()
                .all(|s| hotp.generate(s.counter).value() == wanted)
        );
    }

    #[test]
    fn a_step_just_outside_the_range_counts_if_accepted_inside() {
        let hotp = rfc();
        let step = TimeStep::DEFAULT;
        let counter = 40_000_000u64;
        let wanted = hotp.generate(counter).value();
        let start = step.interval(counter).until; // the range begins after it
        let range = Interval {
            from: start,
            until: start + 30,
        };
        let exact = search(&hotp, step, wanted, Window::EXACT, range).unwrap();
        assert!(exact.iter().all(|s| s.counter != counter));
        let wide = search(&hotp, step, wanted, Window::symmetric(1), range).unwrap();
        assert!(wide.iter().any(|s| s.counter == counter));
    }

    #[test]
    fn threads_agree_with_one_pass() {
        let hotp = rfc();
        let wanted = hotp.generate(150_000).value(); // found at least once
        let many = scan(&hotp, wanted, 0, 200_000);
        let one: Vec<u64> = (0..=200_000)
            .filter(|&c| hotp.generate(c).value() == wanted)
            .collect();
        assert_eq!(many, one);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let hotp = rfc();
        let step = TimeStep::DEFAULT;
        let empty = Interval {
            from: 10,
            until: 10,
        };
        assert_eq!(
            search(&hotp, step, 1, Window::EXACT, empty),
            Err(ForensicError::EmptyRange)
        );
        let long = Interval {
            from: 0,
            until: 60 * 365 * 86_400,
        };
        assert!(matches!(
            search(&hotp, step, 1, Window::EXACT, long),
            Err(ForensicError::TooLong { .. })
        ));
    }
}
