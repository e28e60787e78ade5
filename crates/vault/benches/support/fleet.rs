//! The simulated fleet of the fleet benches: 100,000 tokens with drift
//! rates of −120..120 s/year, each seen 20 times over three years.

use oathdesk_otp::TimeStep;
use oathdesk_vault::store::SightingRow;

pub const NOW: u64 = 1_800_000_000;
pub const TOKENS: i64 = 100_000;
pub const SIGHTINGS: u64 = 20;

/// The sightings of the credentials `ids`, sorted by credential and time
/// (as the store returns them); the same rates for the same ids.
pub fn history(ids: impl IntoIterator<Item = i64>) -> Vec<SightingRow> {
    let step = TimeStep::DEFAULT;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let start = NOW - 3 * 365 * 86_400;
    let mut sightings = Vec::new();
    for id in ids {
        let rate = (next() * 2.0 - 1.0) * 120.0;
        let mut times: Vec<u64> = (0..SIGHTINGS)
            .map(|_| start + (next() * 3.0 * 365.0 * 86_400.0) as u64)
            .collect();
        times.sort_unstable();
        times.dedup();
        for at in times {
            let offset = rate * (at - start) as f64 / 31_556_952.0;
            let seen = step.counter_at((at as f64 + offset) as u64).unwrap() as i64;
            sightings.push(SightingRow {
                credential_id: id,
                at,
                source: "check".into(),
                offset_steps: seen - step.counter_at(at).unwrap() as i64,
            });
        }
    }
    sightings
}
