//! Vault benchmarks: identify over a million secrets, unlock with the
//! default Argon2id cost, and — on SQLite and on PostgreSQL side by side —
//! a helpdesk code and a 100k-row import.
//!
//! `cargo bench -p oathdesk-vault --bench vault` (PostgreSQL: the test
//! database, `OATHDESK_TEST_DATABASE_URL` or 127.0.0.1:5432/test, in a
//! scratch schema per vault). Loading a million credentials for identify,
//! on both databases, is `bench/identify-1m.sh`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use oathdesk_otp::{Algorithm, Credential, Digits, Hotp, Secret, TimeStep, Totp, Verifier, Window};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::identify::IdentifyIndex;
use oathdesk_vault::model::{DeviceKind, State};
use oathdesk_vault::testing::ScratchSchema;
use oathdesk_vault::verification::Verification;
use oathdesk_vault::{
    FactsUpdate, HelpdeskRequest, Location, NewOperator, NewToken, Role, Session, Unlock, Vault,
};

const NOW: u64 = 1_750_000_000;

/// Deterministic distinct 20-byte seeds.
fn seed(i: u64) -> Vec<u8> {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes[8..16].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
    bytes.to_vec()
}

fn identify(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let mut index = IdentifyIndex::with_capacity(N as usize);
    for i in 0..N {
        let hotp = Hotp::new(&Secret::from_bytes(seed(i)), Algorithm::Sha1, Digits::SIX);
        index.push_totp(i as i64, hotp, TimeStep::DEFAULT);
    }
    // The codes of a credential somewhere in the middle, one step slow.
    let target = Totp::new(
        &Secret::from_bytes(seed(777_777)),
        Algorithm::Sha1,
        Digits::SIX,
        TimeStep::DEFAULT,
    );
    let first = target.generate_at(NOW - 30).unwrap().to_string();
    let second = target.generate_at(NOW).unwrap().to_string();
    let mut group = c.benchmark_group("identify");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("1M credentials, one code, ±1 step", |b| {
        b.iter(|| index.identify(black_box(&[first.as_str()]), NOW, Window::symmetric(1)))
    });
    group.bench_function("1M credentials, two codes, ±1 step", |b| {
        b.iter(|| {
            let found = index
                .identify(
                    black_box(&[first.as_str(), second.as_str()]),
                    NOW,
                    Window::symmetric(1),
                )
                .unwrap();
            assert_eq!(found.len(), 1);
            found
        })
    });
    group.finish();
}

fn token(i: u64) -> NewToken {
    NewToken {
        serial: Some(format!("T{i:07}")),
        slot: None,
        device_kind: DeviceKind::Classic,
        manufacturer: None,
        model: None,
        device_slots: 1,
        credential: Credential::totp(Secret::from_bytes(seed(i))),
        label: None,
        user: Some(format!("user{i}@contoso.com")),
        state: State::Assigned,
    }
}

fn vault_operations(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();

    let default_path = dir.path().join("default.db");
    Vault::create(
        &default_path,
        "alice",
        b"passphrase",
        KdfParams::DEFAULT,
        NOW,
    )
    .unwrap();
    let mut group = c.benchmark_group("vault");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("unlock (default Argon2id: 256 MiB, t=2, p=2)", |b| {
        b.iter(|| {
            Vault::open(&default_path)
                .unwrap()
                .unlock("alice", Unlock::Passphrase(b"passphrase"))
                .unwrap()
        })
    });

    group.finish();
}

/// Cheap Argon2id: these benches measure the database, not the KDF.
const FAST: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// A place for a new vault, kept until dropped.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(ScratchSchema),
}

impl Place {
    fn new(database: &str) -> Place {
        match database {
            "sqlite" => Place::Sqlite(tempfile::tempdir().unwrap()),
            _ => Place::Postgres(ScratchSchema::new()),
        }
    }

    fn location(&self) -> Location {
        match self {
            Place::Sqlite(dir) => Location::Sqlite(dir.path().join("vault.db")),
            Place::Postgres(schema) => schema.location(),
        }
    }

    fn session(&self) -> Session {
        Vault::create_at(&self.location(), "alice", b"passphrase", FAST, NOW).unwrap();
        Vault::open_at(&self.location())
            .unwrap()
            .unlock("alice", Unlock::Passphrase(b"passphrase"))
            .unwrap()
    }
}

fn databases(c: &mut Criterion) {
    for database in ["sqlite", "postgres"] {
        let mut group = c.benchmark_group(database);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(8));

        let desk = Place::new(database);
        let mut session = desk.session();
        session
            .set_setting("helpdesk.codes_per_hour", 1_000_000_000, NOW)
            .unwrap();
        session
            .add_tokens((0..10_000).map(token).collect(), NOW, "bench")
            .unwrap();
        // The method checks the data on file (the badge's employee id).
        session
            .update_user_facts(
                vec![FactsUpdate {
                    upn: "user4242@contoso.com".into(),
                    display_name: None,
                    values: [("employee_id".to_owned(), Some("E4242".to_owned()))].into(),
                }],
                "bench",
                false,
                NOW,
            )
            .unwrap();
        let request = HelpdeskRequest {
            user: "user4242@contoso.com".into(),
            verifications: vec![Verification {
                method: "in-person".into(),
                confirmed: vec![true],
                evidence: String::new(),
            }],
            ticket: "BENCH-0001".into(),
            token: None,
            valid_for: Some(60),
            verifier: Verifier::Entra,
        };
        group.bench_function("helpdesk code (10k-token vault, audited)", |b| {
            b.iter(|| session.helpdesk_code(black_box(&request), NOW).unwrap())
        });
        // The same, a code an hour apart: the rate-limit counts see the last
        // hour's (and day's) codes only, so a code's time does not grow with
        // the number of codes the bench has issued, as it does above, where
        // every code is counted by every later one.
        let mut at = NOW;
        group.bench_function("helpdesk code, an hour apart (flat counts)", |b| {
            b.iter(|| {
                at += 3601;
                session.helpdesk_code(black_box(&request), at).unwrap()
            })
        });
        // Four eyes: the request, another operator's approval, the collection.
        session
            .add_operator(
                "bea",
                NewOperator::Passphrase(b"bea passphrase", FAST),
                Role::Admin,
                NOW,
            )
            .unwrap();
        let mut bea = Vault::open_at(&desk.location())
            .unwrap()
            .unlock("bea", Unlock::Passphrase(b"bea passphrase"))
            .unwrap();
        let mut policy = session.helpdesk_policy().unwrap();
        policy.four_eyes.always = true;
        session.set_helpdesk_policy(&policy, NOW).unwrap();
        group.bench_function(
            "helpdesk code with four eyes (request, approve, collect)",
            |b| {
                b.iter(|| {
                    let Err(oathdesk_vault::Error::ApprovalRequired { id, .. }) =
                        session.helpdesk_code(black_box(&request), NOW)
                    else {
                        panic!("four eyes")
                    };
                    bea.decide_approval(&id, true, None, NOW).unwrap();
                    session.helpdesk_collect(&id, NOW).unwrap()
                })
            },
        );
        drop((session, bea));

        group.bench_function("import 100k credentials (one transaction)", |b| {
            b.iter_batched(
                || {
                    let place = Place::new(database);
                    let session = place.session();
                    (place, session, (0..100_000).map(token).collect::<Vec<_>>())
                },
                // The place is returned so that removing it is not timed.
                |(place, mut session, tokens)| {
                    assert_eq!(
                        session.add_tokens(tokens, NOW, "bench").unwrap().len(),
                        100_000
                    );
                    place
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, identify, vault_operations, databases);
criterion_main!(benches);
