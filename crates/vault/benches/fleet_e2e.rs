//! The fleet drift report end to end: `Session::fleet_drift` on a vault of
//! 100,000 tokens with 20 sightings each (the fleet of `benches/fleet.rs`),
//! reading the rows and checking their signatures as the report does — on
//! SQLite and on PostgreSQL (the test database, `OATHDESK_TEST_DATABASE_URL`
//! or 127.0.0.1:5432/test, in a scratch schema).
//!
//! The vault is built once per database, before the timing: the tokens by
//! `add_tokens` (the import's path), their sightings signed as a `token
//! check` signs them (`Session::record_sightings`, one transaction).
//!
//! Criterion times the wall clock; the bench also prints the CPU time of
//! the whole process per report (every thread, the database's own too for
//! SQLite), which a machine shared with other builds inflates far less.
//!
//! `cargo bench -p oathdesk-vault --bench fleet_e2e`; `FLEET_E2E_DATABASES=sqlite`
//! (or `postgres`) builds and times one database only.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use oathdesk_otp::{Credential, Secret, Verifier};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::model::{DeviceKind, State};
use oathdesk_vault::testing::ScratchSchema;
use oathdesk_vault::{Location, NewToken, Session, Unlock, Vault};

#[path = "support/fleet.rs"]
mod support;
use support::{NOW, TOKENS, history};

/// Cheap Argon2id: the bench measures the report, not the KDF.
const FAST: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

fn seed(i: u64) -> Vec<u8> {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes[8..16].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
    bytes.to_vec()
}

fn token(i: u64) -> NewToken {
    NewToken {
        serial: Some(format!("{:010}", 2_100_000_000 + i)),
        slot: None,
        device_kind: if i.is_multiple_of(3) {
            DeviceKind::SingleProfile
        } else {
            DeviceKind::Classic
        },
        manufacturer: Some("Token2".into()),
        model: Some("C202".into()),
        device_slots: 1,
        credential: Credential::totp(Secret::from_bytes(seed(i))),
        label: None,
        user: Some(format!("user{i}@contoso.com")),
        state: State::Assigned,
    }
}

/// A place for the vault, kept until dropped.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(ScratchSchema),
}

impl Place {
    fn location(&self) -> Location {
        match self {
            Place::Sqlite(dir) => Location::Sqlite(dir.path().join("vault.db")),
            Place::Postgres(schema) => schema.location(),
        }
    }
}

/// A vault of the bench's fleet, unlocked.
fn fleet_vault(database: &str) -> (Place, Session) {
    let place = match database {
        "sqlite" => Place::Sqlite(tempfile::tempdir().unwrap()),
        _ => Place::Postgres(ScratchSchema::new()),
    };
    let began = Instant::now();
    Vault::create_at(&place.location(), "alice", b"passphrase", FAST, NOW).unwrap();
    let mut session = Vault::open_at(&place.location())
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"passphrase"))
        .unwrap();
    let tokens = (1..=TOKENS as u64).map(token).collect();
    let rows = session.add_tokens(tokens, NOW, "bench").unwrap();
    let sightings = history(rows.iter().map(|row| row.id));
    let kept = session.record_sightings(&sightings).unwrap();
    assert_eq!(kept, sightings.len());
    eprintln!(
        "{database}: {} tokens, {kept} sightings built in {:.1} s",
        rows.len(),
        began.elapsed().as_secs_f64()
    );
    (place, session)
}

/// CPU time of this process, every thread.
fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn databases() -> Vec<String> {
    std::env::var("FLEET_E2E_DATABASES")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .collect()
}

fn end_to_end(c: &mut Criterion) {
    for database in databases() {
        let (_place, mut session) = fleet_vault(&database);
        let mut group = c.benchmark_group(format!("fleet e2e {database}"));
        // Seconds an iteration: one each per sample.
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .measurement_time(Duration::from_secs(20));
        let mut cpu: Vec<Duration> = Vec::new();
        group.bench_function("fleet_drift, 100k tokens x 20 sightings", |b| {
            b.iter_custom(|iters| {
                let (wall, began) = (Instant::now(), process_cpu());
                for _ in 0..iters {
                    let report = session
                        .fleet_drift(Verifier::Entra, 180 * 86_400, black_box(NOW))
                        .unwrap();
                    assert_eq!(report.tokens.len(), TOKENS as usize);
                    drop(black_box(report));
                }
                cpu.push((process_cpu() - began) / iters as u32);
                wall.elapsed()
            })
        });
        group.finish();
        cpu.sort_unstable();
        if !cpu.is_empty() {
            eprintln!(
                "{database}: process CPU time per report over {} runs (warm-up included): \
                 min {:.3} s, median {:.3} s, max {:.3} s",
                cpu.len(),
                cpu[0].as_secs_f64(),
                cpu[cpu.len() / 2].as_secs_f64(),
                cpu[cpu.len() - 1].as_secs_f64()
            );
        }
    }
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
