//! A verifier that remembers: the last accepted counter (so a code is
//! accepted once, and never an older one) and the learned drift (so the
//! window follows a token whose clock wanders). Pure: the caller loads and
//! stores [`Remembered`] (a state file, a vault row).

use crate::engine::{CodeError, Hotp, Window};

/// What a stateful verifier keeps about one credential between calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Remembered {
    /// The counter (TOTP: time step) of the last accepted code, if any.
    pub last_counter: Option<u64>,
    /// The token's offset in steps at its last accepted code; the next
    /// window is centred on `expected + drift`. Always 0 for HOTP, whose
    /// counter is the state itself.
    pub drift: i64,
}

/// The answer of a stateful verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted: store `remember` before telling anyone.
    Accepted {
        /// The counter whose code matched.
        counter: u64,
        /// Its distance from the counter expected without drift.
        offset: i64,
        /// The state to store.
        remember: Remembered,
    },
    /// The code of the last accepted counter, again.
    Replay { counter: u64 },
    /// The code of a counter before the last accepted one.
    Older { counter: u64, last: u64 },
    /// No counter of the (drift-shifted) window gives this code.
    NoMatch { from: u64, to: u64 },
}

/// Verifies `code` for the counter `expected` (TOTP: the step now; HOTP: the
/// counter given) within `window` around `expected + drift`, accepting only
/// counters after the last accepted one. `learn_drift` is true for TOTP.
pub fn verify_remembering(
    hotp: &Hotp,
    code: &str,
    expected: u64,
    window: Window,
    remembered: Remembered,
    learn_drift: bool,
) -> Result<Outcome, CodeError> {
    let drift = if learn_drift { remembered.drift } else { 0 };
    let centre = expected.saturating_add_signed(drift);
    let from = centre.saturating_sub(window.behind);
    let to = centre.saturating_add(window.ahead);
    // Only counters after the last accepted one may be accepted.
    let fresh_from = match remembered.last_counter {
        Some(last) => from.max(last.saturating_add(1)),
        None => from,
    };
    if fresh_from <= to && remembered.last_counter != Some(u64::MAX) {
        // Search nearest-first from the centre, or from the first fresh
        // counter when the last accepted one lies past the centre.
        let base = centre.max(fresh_from);
        let fresh = Window {
            behind: base - fresh_from,
            ahead: to - base,
        };
        if let Some(found) = hotp.verify(code, base, fresh)? {
            let offset = signed_distance(found.counter, expected);
            return Ok(Outcome::Accepted {
                counter: found.counter,
                offset,
                remember: Remembered {
                    last_counter: Some(found.counter),
                    drift: if learn_drift { offset } else { 0 },
                },
            });
        }
    }
    // Not accepted; say why when the code is a used one in the window.
    if let Some(last) = remembered.last_counter
        && from <= last
    {
        let used_to = to.min(last);
        let used = Window {
            behind: used_to - from,
            ahead: 0,
        };
        if let Some(found) = hotp.verify(code, used_to, used)? {
            return Ok(if found.counter == last {
                Outcome::Replay {
                    counter: found.counter,
                }
            } else {
                Outcome::Older {
                    counter: found.counter,
                    last,
                }
            });
        }
    }
    Ok(Outcome::NoMatch { from, to })
}

fn signed_distance(counter: u64, expected: u64) -> i64 {
    if counter >= expected {
        i64::try_from(counter - expected).unwrap_or(i64::MAX)
    } else {
        i64::try_from(expected - counter).map_or(i64::MIN, |d| -d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Digits, Secret};

    fn hotp() -> Hotp {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        Hotp::new(&secret, Algorithm::Sha1, Digits::new(6).unwrap())
    }

    fn code(counter: u64) -> String {
        hotp().generate(counter).to_string()
    }

    fn check(counter: u64, expected: u64, window: u64, state: Remembered) -> Outcome {
        verify_remembering(
            &hotp(),
            &code(counter),
            expected,
            Window::symmetric(window),
            state,
            true,
        )
        .unwrap()
    }

    #[test]
    fn first_code_is_accepted_and_remembered_with_its_drift() {
        let outcome = check(102, 100, 2, Remembered::default());
        assert_eq!(
            outcome,
            Outcome::Accepted {
                counter: 102,
                offset: 2,
                remember: Remembered {
                    last_counter: Some(102),
                    drift: 2
                }
            }
        );
    }

    #[test]
    fn the_same_code_twice_is_a_replay_and_an_earlier_one_older() {
        let state = Remembered {
            last_counter: Some(100),
            drift: 0,
        };
        assert_eq!(check(100, 100, 1, state), Outcome::Replay { counter: 100 });
        assert_eq!(
            check(99, 100, 1, state),
            Outcome::Older {
                counter: 99,
                last: 100
            }
        );
        assert!(matches!(
            check(101, 100, 1, state),
            Outcome::Accepted { counter: 101, .. }
        ));
    }

    #[test]
    fn the_window_follows_the_drift() {
        // A token 5 steps fast: outside ±1 without state, inside with drift 4.
        assert_eq!(
            check(105, 100, 1, Remembered::default()),
            Outcome::NoMatch { from: 99, to: 101 }
        );
        let state = Remembered {
            last_counter: Some(90),
            drift: 4,
        };
        assert_eq!(
            check(105, 100, 1, state),
            Outcome::Accepted {
                counter: 105,
                offset: 5,
                remember: Remembered {
                    last_counter: Some(105),
                    drift: 5
                }
            }
        );
    }

    #[test]
    fn hotp_ignores_drift_and_searches_after_the_last_counter() {
        let state = Remembered {
            last_counter: Some(7),
            drift: 0,
        };
        let outcome = verify_remembering(
            &hotp(),
            &code(9),
            5,
            Window {
                behind: 0,
                ahead: 10,
            },
            state,
            false,
        )
        .unwrap();
        assert_eq!(
            outcome,
            Outcome::Accepted {
                counter: 9,
                offset: 4,
                remember: Remembered {
                    last_counter: Some(9),
                    drift: 0
                }
            }
        );
    }
}
