//! The fleet drift report over 100,000 tokens with 20 sightings each: the
//! fit, forecast and ranking (`oathdesk_vault::fleet::drift_report`), on
//! rows already read and checked; and the check of the 2,000,000 sightings'
//! signatures that `Session::fleet_drift` makes before it
//! (`oathdesk_vault::bulk_check::first_mismatch`), on one thread (what it
//! did before) and on every core.
//!
//! `cargo bench -p oathdesk-vault --bench fleet`

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use oathdesk_otp::{TimeStep, Verifier};
use oathdesk_vault::bulk_check::{cores, first_mismatch};
use oathdesk_vault::crypto::VaultKey;
use oathdesk_vault::fleet::{Hardware, drift_report};
use oathdesk_vault::model::{CredentialRow, Custody, DeviceKind, State};
use oathdesk_vault::signed::Signer;
use oathdesk_vault::store::SightingRow;

const NOW: u64 = 1_800_000_000;
const TOKENS: i64 = 100_000;
const SIGHTINGS: u64 = 20;

fn credential(id: i64) -> CredentialRow {
    CredentialRow {
        id,
        device_id: Some(id),
        slot: None,
        kind: "totp".into(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: Some(30),
        t0: Some(0),
        counter: None,
        issuer: None,
        label: None,
        state: State::Delivered,
        custody: Custody::Purged,
        sealed_secret: None,
        user_id: None,
        drift_steps: None,
        purge_after: None,
        created_at: 0,
        updated_at: 0,
        serial: Some(format!("{:010}", 2_100_000_000 + id)),
        upn: Some(format!("user{id}@contoso.com")),
        manufacturer: Some("Token2".into()),
        model: Some("C202".into()),
    }
}

/// A fleet with rates of −120..120 s/year and sightings over three years.
fn fleet() -> (Vec<CredentialRow>, HashMap<i64, Hardware>, Vec<SightingRow>) {
    let step = TimeStep::DEFAULT;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let start = NOW - 3 * 365 * 86_400;
    let mut rows = Vec::new();
    let mut hardware = HashMap::new();
    let mut sightings = Vec::new();
    for id in 1..=TOKENS {
        rows.push(credential(id));
        hardware.insert(
            id,
            Hardware {
                kind: if id % 3 == 0 {
                    DeviceKind::SingleProfile
                } else {
                    DeviceKind::Classic
                },
            },
        );
        let rate = (next() * 2.0 - 1.0) * 120.0;
        let mut times: Vec<u64> = (0..SIGHTINGS)
            .map(|_| start + (next() * 3.0 * 365.0 * 86_400.0) as u64)
            .collect();
        times.sort_unstable();
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
    (rows, hardware, sightings)
}

fn drift(c: &mut Criterion) {
    let (rows, hardware, sightings) = fleet();
    let mut group = c.benchmark_group("fleet");
    group.sample_size(10);
    group.bench_function("drift report, 100k tokens x 20 sightings", |b| {
        b.iter(|| {
            let report = drift_report(
                black_box(&rows),
                &hardware,
                black_box(&sightings),
                &HashMap::new(),
                Verifier::Entra,
                180 * 86_400,
                NOW,
            );
            assert_eq!(report.tokens.len(), TOKENS as usize);
            report
        })
    });
    group.finish();
}

fn signatures(c: &mut Criterion) {
    let (_, _, sightings) = fleet();
    let signer = Signer::new(&VaultKey::generate().unwrap());
    let stored: HashMap<String, Vec<u8>> = sightings.iter().map(|s| signer.sighting(s)).collect();
    let mut group = c.benchmark_group("fleet");
    group.sample_size(10);
    let mut threads = vec![1];
    if cores() > 1 {
        threads.push(cores());
    }
    for n in threads {
        group.bench_function(format!("sighting signatures, 2M, {n} thread(s)"), |b| {
            b.iter(|| {
                let bad = first_mismatch(black_box(&sightings), &stored, n, |s| signer.sighting(s));
                assert_eq!(bad, None);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, drift, signatures);
criterion_main!(benches);
