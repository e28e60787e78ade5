//! Which credential produced this code? A scan over every held secret.
//!
//! The index keys HMAC once per secret ([`Hotp::new`] absorbs the pads), so
//! a probe costs two SHA-1 compressions per counter tried; the scan splits
//! the index over all cores. One code usually matches several of a million
//! secrets by chance (a 6-digit code collides with probability 10^-6 per
//! counter); two consecutive codes make the answer unique.

use oathdesk_otp::sha1_pads::{Sha1Pads, truncated_batch};
use oathdesk_otp::{Hotp, TimeStep, Window};

/// SHA-1 codes computed together in the scan: four keep the core busiest
/// (bench `sha1_limit` in crates/otp; BENCHMARKS.md, "identify close to the
/// limit").
const BATCH: usize = 4;
use serde::Serialize;

/// How one indexed credential counts.
#[derive(Clone, Copy, Debug)]
enum Clock {
    Time(TimeStep),
    Events(u64),
}

/// One credential of the index.
#[derive(Clone, Debug)]
struct Entry {
    credential_id: i64,
    hotp: Hotp,
    clock: Clock,
}

impl Entry {
    /// The expected counter and the first and last counters to try:
    /// `window` around the time's counter, or forward only from an event
    /// token's next counter. `None` before the time step's T0.
    fn counters(&self, time: u64, window: Window) -> Option<(u64, u64, u64)> {
        match self.clock {
            Clock::Time(step) => {
                let expected = step.counter_at(time).ok()?;
                Some((
                    expected,
                    expected.saturating_sub(window.behind),
                    expected.saturating_add(window.ahead),
                ))
            }
            Clock::Events(counter) => {
                Some((counter, counter, counter.saturating_add(window.ahead)))
            }
        }
    }
}

/// Keyed HMAC states of every held secret, ready to scan.
#[derive(Clone, Debug, Default)]
pub struct IdentifyIndex {
    entries: Vec<Entry>,
}

/// A credential that produced the code(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct IdentifyMatch {
    pub credential_id: i64,
    /// Steps between the token and the expected counter (negative: behind).
    pub offset: i64,
    /// The counter of the first code.
    pub counter: u64,
}

/// A code typed for identification: its value and length.
fn parse(code: &str) -> Option<(u32, u8)> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, digits.len() as u8))
}

impl IdentifyIndex {
    /// An empty index with room for `capacity` credentials.
    pub fn with_capacity(capacity: usize) -> IdentifyIndex {
        IdentifyIndex {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Adds a TOTP credential.
    pub fn push_totp(&mut self, credential_id: i64, hotp: Hotp, step: TimeStep) {
        self.entries.push(Entry {
            credential_id,
            hotp,
            clock: Clock::Time(step),
        });
    }

    /// Adds an HOTP credential whose next counter is `counter`.
    pub fn push_hotp(&mut self, credential_id: i64, hotp: Hotp, counter: u64) {
        self.entries.push(Entry {
            credential_id,
            hotp,
            clock: Clock::Events(counter),
        });
    }

    /// Moves the entries of `other` into this index.
    pub fn append(&mut self, mut other: IdentifyIndex) {
        self.entries.append(&mut other.entries);
    }

    /// Drops the entries of these credentials (changed or deleted since
    /// the index was built; those still held are pushed again). One pass
    /// over the entries: no per-credential lookup table, so the index
    /// costs no memory beyond its entries.
    pub fn remove(&mut self, credential_ids: &[i64]) {
        if credential_ids.is_empty() {
            return;
        }
        let gone: std::collections::HashSet<i64> = credential_ids.iter().copied().collect();
        self.entries
            .retain(|entry| !gone.contains(&entry.credential_id));
    }

    /// The credentials indexed, in no particular order (for tests and
    /// checks: the index of a vault equals a fresh build's).
    pub fn credential_ids(&self) -> Vec<i64> {
        self.entries.iter().map(|e| e.credential_id).collect()
    }

    /// Bytes one indexed credential takes: its keyed HMAC states (inner and
    /// outer, sized for the largest algorithm, SHA-512), digits, id and
    /// clock. The index is one `Vec` of these, so this is the memory per
    /// credential, plus the vector's spare capacity.
    pub const BYTES_PER_CREDENTIAL: usize = std::mem::size_of::<Entry>();

    /// Bytes the index holds (entries and spare capacity).
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * Self::BYTES_PER_CREDENTIAL
    }

    /// Number of credentials.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The credentials whose secret is `secret` (under `algorithm`): their
    /// codes agree with the secret's at four far-apart counters (a chance
    /// match of one other secret is about 10^-24 with 6 digits). Secrets
    /// are never compared or opened here: the index's keyed HMAC states
    /// answer, as they do for [`IdentifyIndex::identify`].
    pub fn same_secret(
        &self,
        secret: &oathdesk_otp::Secret,
        algorithm: oathdesk_otp::Algorithm,
    ) -> Vec<i64> {
        const PROBES: [u64; 4] = [0, 1, 1 << 20, 1 << 40];
        let mut probes: Vec<(u8, Hotp, [u32; 4])> = Vec::new();
        let mut found = Vec::new();
        for entry in &self.entries {
            let digits = entry.hotp.digits();
            let length = digits.get();
            let position = match probes.iter().position(|(l, _, _)| *l == length) {
                Some(i) => i,
                None => {
                    let hotp = Hotp::new(secret, algorithm, digits);
                    let values = PROBES.map(|c| hotp.generate(c).value());
                    probes.push((length, hotp, values));
                    probes.len() - 1
                }
            };
            let values = &probes[position].2;
            if PROBES
                .iter()
                .zip(values)
                .all(|(&c, &v)| entry.hotp.generate(c).value() == v)
            {
                found.push(entry.credential_id);
            }
        }
        found
    }

    /// Finds the credentials whose code at some counter in `window` around
    /// the expected one is `codes[0]`, and whose following counters give the
    /// rest of `codes`. HOTP credentials are searched forward only (an event
    /// token's counter only moves on). `None` when a code is not 1-10 digits.
    pub fn identify(
        &self,
        codes: &[&str],
        time: u64,
        window: Window,
    ) -> Option<Vec<IdentifyMatch>> {
        let wanted: Vec<(u32, u8)> = codes.iter().map(|c| parse(c)).collect::<Option<_>>()?;
        let Some(&(first_value, length)) = wanted.first() else {
            return Some(Vec::new());
        };
        if wanted.iter().any(|&(_, l)| l != length) {
            return Some(Vec::new());
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = self.entries.len().div_ceil(threads).max(1024);
        let scan = |entries: &[Entry]| -> Vec<IdentifyMatch> {
            let mut found = Vec::new();
            // SHA-1 probes wait here until a batch is full (see `sha1_pads`).
            let mut pending: Vec<(&Entry, &Sha1Pads, u64, u64)> = Vec::with_capacity(BATCH);
            let mut check = |entry: &Entry, expected: u64, counter: u64, raw: Option<u32>| {
                let code = match raw {
                    Some(raw) => entry.hotp.code_of_truncated(raw),
                    None => entry.hotp.generate(counter),
                };
                if code.value() != first_value {
                    return;
                }
                let rest_match = wanted[1..].iter().enumerate().all(|(i, &(value, _))| {
                    entry
                        .hotp
                        .generate(counter.saturating_add(i as u64 + 1))
                        .value()
                        == value
                });
                if rest_match {
                    found.push(IdentifyMatch {
                        credential_id: entry.credential_id,
                        offset: counter.wrapping_sub(expected) as i64,
                        counter,
                    });
                }
            };
            for entry in entries {
                if entry.hotp.digits().get() != length {
                    continue;
                }
                let Some((expected, first, last)) = entry.counters(time, window) else {
                    continue;
                };
                let Some(pads) = entry.hotp.sha1_pads() else {
                    (first..=last).for_each(|counter| check(entry, expected, counter, None));
                    continue;
                };
                for counter in first..=last {
                    pending.push((entry, pads, expected, counter));
                    if pending.len() == BATCH {
                        let jobs: [(&Sha1Pads, u64); BATCH] = std::array::from_fn(|i| {
                            let (_, pads, _, counter) = pending[i];
                            (pads, counter)
                        });
                        for (raw, &(entry, _, expected, counter)) in
                            truncated_batch(jobs).into_iter().zip(&pending)
                        {
                            check(entry, expected, counter, Some(raw));
                        }
                        pending.clear();
                    }
                }
            }
            for (entry, _, expected, counter) in pending.drain(..) {
                check(entry, expected, counter, None);
            }
            found
        };
        let mut matches: Vec<IdentifyMatch> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .entries
                .chunks(chunk)
                .map(|part| scope.spawn(move || scan(part)))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("identify worker panicked"))
                .collect()
        });
        matches.sort_by_key(|m| (m.offset.unsigned_abs(), m.credential_id));
        Some(matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oathdesk_otp::{Algorithm, Digits, Secret};

    fn hotp(seed: u8) -> Hotp {
        Hotp::new(
            &Secret::from_bytes(vec![seed; 20]),
            Algorithm::Sha1,
            Digits::SIX,
        )
    }

    #[test]
    fn finds_the_credential_and_its_drift() {
        let mut index = IdentifyIndex::default();
        for seed in 0..50u8 {
            index.push_totp(i64::from(seed), hotp(seed), TimeStep::DEFAULT);
        }
        let time = 1_700_000_000;
        let expected = time / 30;
        // Credential 17 runs one step slow.
        let first = hotp(17).generate(expected - 1).to_string();
        let second = hotp(17).generate(expected).to_string();
        let found = index
            .identify(&[&first, &second], time, Window::symmetric(1))
            .unwrap();
        assert_eq!(
            found,
            vec![IdentifyMatch {
                credential_id: 17,
                offset: -1,
                counter: expected - 1
            }]
        );
        assert!(index.identify(&["12a456"], time, Window::EXACT).is_none());
        // Outside the window: nothing.
        let far = hotp(17).generate(expected - 5).to_string();
        let next = hotp(17).generate(expected - 4).to_string();
        assert!(
            index
                .identify(&[&far, &next], time, Window::symmetric(1))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn batched_scan_finds_what_one_code_at_a_time_finds() {
        // SHA-1 entries are scanned in batches, the others one by one: mix
        // them, with a count that leaves a partial batch, and hide the
        // wanted codes at the start, the middle and the end.
        let mut index = IdentifyIndex::default();
        let mut all = Vec::new();
        for seed in 0..203u8 {
            let algorithm = match seed % 5 {
                3 => Algorithm::Sha256,
                4 => Algorithm::Sha512,
                _ => Algorithm::Sha1,
            };
            let hotp = Hotp::new(&Secret::from_bytes(vec![seed; 20]), algorithm, Digits::SIX);
            all.push(hotp.clone());
            if seed % 7 == 6 {
                index.push_hotp(i64::from(seed), hotp, 40);
            } else {
                index.push_totp(i64::from(seed), hotp, TimeStep::DEFAULT);
            }
        }
        let time = 1_700_000_000;
        let now = time / 30;
        for (seed, counter) in [
            (0usize, now - 1),
            (101, now + 1),
            (201, now),
            (200, now),
            (13, 41),
        ] {
            let code = all[seed].generate(counter).to_string();
            let found = index
                .identify(&[&code], time, Window::symmetric(1))
                .unwrap();
            let mut naive = Vec::new();
            for (id, hotp) in all.iter().enumerate() {
                let (expected, counters) = if id % 7 == 6 {
                    (40, 40..=41)
                } else {
                    (now, now - 1..=now + 1)
                };
                for c in counters {
                    if hotp.generate(c).to_string() == code {
                        naive.push((id as i64, c.wrapping_sub(expected) as i64));
                    }
                }
            }
            let mut got: Vec<(i64, i64)> =
                found.iter().map(|m| (m.credential_id, m.offset)).collect();
            got.sort();
            naive.sort();
            assert!(
                naive.contains(&(
                    seed as i64,
                    counter.wrapping_sub(if seed % 7 == 6 { 40 } else { now }) as i64
                )),
                "credential {seed}: {naive:?}"
            );
            assert_eq!(got, naive, "code of credential {seed}");
        }
    }

    #[test]
    fn memory_per_credential_is_what_the_docs_say() {
        // docs/identify-index.md states this figure (x86-64): keep them equal.
        assert_eq!(IdentifyIndex::BYTES_PER_CREDENTIAL, 224);
        let mut index = IdentifyIndex::with_capacity(3);
        for seed in 0..3u8 {
            index.push_totp(i64::from(seed), hotp(seed), TimeStep::DEFAULT);
        }
        assert_eq!(index.memory_bytes(), 3 * 224);
        index.remove(&[1]);
        assert_eq!(index.credential_ids(), vec![0, 2]);
    }

    #[test]
    fn hotp_is_searched_forward() {
        let mut index = IdentifyIndex::default();
        index.push_hotp(1, hotp(1), 10);
        let ahead = hotp(1).generate(13).to_string();
        let behind = hotp(1).generate(8).to_string();
        assert_eq!(
            index.identify(&[&ahead], 0, Window::symmetric(5)).unwrap()[0].offset,
            3
        );
        assert!(
            index
                .identify(&[&behind], 0, Window::symmetric(5))
                .unwrap()
                .is_empty()
        );
    }
}
