//! Criterion benchmarks of the OTP engine, with totp-rs as the reference.
//!
//! `cargo bench -p oathdesk-otp --bench otp -- --warm-up-time 1 --measurement-time 3`
//!
//! - `generate`: one TOTP code from a prebuilt [`Totp`] (keying done once).
//! - `verify`: a code that matches nothing, so the whole window is scanned.
//! - `keying`: [`Totp::new`], the per-secret cost that prebuilding saves.
//! - `totp-rs`: the same work with `totp_rs::TOTP`, which keys HMAC again
//!   for every code and formats a `String`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp, Window};

/// The RFC 6238 keys: 20, 32 and 64 bytes.
fn rfc_key(algorithm: Algorithm) -> Vec<u8> {
    b"1234567890123456789012345678901234567890123456789012345678901234"[..algorithm.output_len()]
        .to_vec()
}

fn totp(algorithm: Algorithm) -> Totp {
    Totp::new(
        &Secret::from_bytes(rfc_key(algorithm)),
        algorithm,
        Digits::SIX,
        TimeStep::DEFAULT,
    )
}

/// A start time; each iteration moves one step on, so no two iterations
/// hash the same counter.
const T: u64 = 1_763_800_000;

/// A six-digit code that none of the counters `T/30 - 10 ..= T/30 + 10`
/// produce, so verification scans its whole window.
fn missing_code(totp: &Totp) -> String {
    let table = totp.codes_around(T, 10, 10).unwrap();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|code| table.iter().all(|t| t.code.to_string() != *code))
        .unwrap()
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    for algorithm in Algorithm::ALL {
        let totp = totp(algorithm);
        let mut time = T;
        group.bench_function(algorithm.to_string(), |b| {
            b.iter(|| {
                time = time.wrapping_add(30);
                totp.generate_at(black_box(time))
            })
        });
    }
    // With the decimal string, which is what totp-rs returns.
    let sha1 = totp(Algorithm::Sha1);
    let mut time = T;
    group.bench_function("sha1+to_string", |b| {
        b.iter(|| {
            time = time.wrapping_add(30);
            sha1.generate_at(black_box(time)).unwrap().to_string()
        })
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    let sha1 = totp(Algorithm::Sha1);
    let code = missing_code(&sha1);
    for steps in [1u64, 10] {
        let window = Window::symmetric(steps);
        assert_eq!(sha1.verify_at(&code, T, window), Ok(None));
        group.bench_function(format!("sha1/window {steps}"), |b| {
            b.iter(|| sha1.verify_at(black_box(&code), black_box(T), black_box(window)))
        });
    }
    group.finish();
}

fn keying(c: &mut Criterion) {
    let mut group = c.benchmark_group("keying");
    for algorithm in Algorithm::ALL {
        let secret = Secret::from_bytes(rfc_key(algorithm));
        group.bench_function(format!("{algorithm}/new"), |b| {
            b.iter(|| {
                Totp::new(
                    black_box(&secret),
                    algorithm,
                    Digits::SIX,
                    TimeStep::DEFAULT,
                )
            })
        });
    }
    // Keying plus one code: what a caller that does not keep the Totp pays.
    let secret = Secret::from_bytes(rfc_key(Algorithm::Sha1));
    let mut time = T;
    group.bench_function("sha1/new+generate", |b| {
        b.iter(|| {
            time = time.wrapping_add(30);
            Totp::new(
                black_box(&secret),
                Algorithm::Sha1,
                Digits::SIX,
                TimeStep::DEFAULT,
            )
            .generate_at(black_box(time))
        })
    });
    group.finish();
}

fn totp_rs(c: &mut Criterion) {
    let mut group = c.benchmark_group("totp-rs");
    let key = rfc_key(Algorithm::Sha1);
    let reference = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, key.clone())
        .expect("a 20-byte key and 6 digits are valid");
    // Same codes as ours.
    assert_eq!(
        reference.generate(T),
        totp(Algorithm::Sha1).generate_at(T).unwrap().to_string()
    );
    let mut time = T;
    group.bench_function("sha1/generate", |b| {
        b.iter(|| {
            time = time.wrapping_add(30);
            reference.generate(black_box(time))
        })
    });
    let code = missing_code(&totp(Algorithm::Sha1));
    assert!(!reference.check(&code, T));
    group.bench_function("sha1/check window 1", |b| {
        b.iter(|| reference.check(black_box(&code), black_box(T)))
    });
    group.finish();
}

criterion_group!(benches, generate, verify, keying, totp_rs);
criterion_main!(benches);
