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
use oathdesk_otp::Verifier;
use oathdesk_vault::bulk_check::{cores, first_mismatch};
use oathdesk_vault::crypto::VaultKey;
use oathdesk_vault::fleet::{Hardware, drift_report, observations_of};
use oathdesk_vault::model::{CredentialRow, Custody, DeviceKind, State};
use oathdesk_vault::signed::Signer;
use oathdesk_vault::store::SightingRow;

#[path = "support/fleet.rs"]
mod support;
use support::{NOW, TOKENS, history};

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

/// The bench's fleet, read and checked already.
fn fleet() -> (Vec<CredentialRow>, HashMap<i64, Hardware>, Vec<SightingRow>) {
    let rows: Vec<CredentialRow> = (1..=TOKENS).map(credential).collect();
    let hardware = (1..=TOKENS)
        .map(|id| {
            let kind = if id % 3 == 0 {
                DeviceKind::SingleProfile
            } else {
                DeviceKind::Classic
            };
            (id, Hardware { kind })
        })
        .collect();
    (rows, hardware, history(1..=TOKENS))
}

fn drift(c: &mut Criterion) {
    let (rows, hardware, sightings) = fleet();
    let by_credential = observations_of(&sightings);
    let mut group = c.benchmark_group("fleet");
    group.sample_size(10);
    group.bench_function("drift report, 100k tokens x 20 sightings", |b| {
        b.iter(|| {
            let report = drift_report(
                black_box(&rows),
                &hardware,
                black_box(&by_credential),
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
