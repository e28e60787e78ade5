//! `oathdesk verify --state` per call, in the library: lock, read and open
//! the sealed state, check the code, seal and write the new state (temp
//! file, fsync, rename, fsync of the directory). Beside it the same check
//! without the file, to show what the durability costs.
//!
//! `cargo bench -p oathdesk-vault --bench verify_state` (the state file is
//! in a temporary directory: `TMPDIR` picks the file system measured).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use oathdesk_otp::{Algorithm, Digits, Hotp, Remembered, Secret, Window, verify_remembering};
use oathdesk_vault::verify_state::{StateFile, StateKey};

fn stateful_verify(c: &mut Criterion) {
    let hotp = Hotp::new(
        &Secret::from_bytes(b"12345678901234567890".to_vec()),
        Algorithm::Sha1,
        Digits::SIX,
    );
    let key = StateKey::parse(&"ab".repeat(32)).unwrap();
    let name = key.credential_name("totp 30 0 SHA1 6", b"12345678901234567890");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verify.state");
    // Other credentials in the file, as a script guarding 100 accounts has.
    {
        let mut state = StateFile::open(&path, &key).unwrap();
        for i in 0..100u64 {
            let other = Remembered {
                last_counter: Some(i),
                drift: 0,
            };
            state.commit(&key, &format!("other{i}"), other, 0).unwrap();
        }
    }
    let mut step = 60_000_000u64;
    c.bench_function(
        "verify --state: lock, open, check, commit (100 credentials)",
        |b| {
            b.iter(|| {
                step += 1;
                let code = hotp.generate(step).to_string();
                let mut state = StateFile::open(&path, &key).unwrap();
                let outcome = verify_remembering(
                    &hotp,
                    &code,
                    step,
                    Window::symmetric(1),
                    state.get(&name),
                    true,
                )
                .unwrap();
                let oathdesk_otp::Outcome::Accepted { remember, .. } = outcome else {
                    panic!("fresh code refused: {outcome:?}");
                };
                state.commit(&key, &name, remember, step * 30).unwrap();
            })
        },
    );
    let mut step = 70_000_000u64;
    let mut remembered = Remembered::default();
    c.bench_function("verify --state: the check alone (no file)", |b| {
        b.iter(|| {
            step += 1;
            let code = hotp.generate(step).to_string();
            if let oathdesk_otp::Outcome::Accepted { remember, .. } = verify_remembering(
                &hotp,
                black_box(&code),
                step,
                Window::symmetric(1),
                remembered,
                true,
            )
            .unwrap()
            {
                remembered = remember;
            }
        })
    });
}

criterion_group!(benches, stateful_verify);
criterion_main!(benches);
