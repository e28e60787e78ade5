//! How close HOTP-SHA-1 codes come to the machine's SHA-1 limit, in
//! compressions per CPU-second of one thread.
//!
//! `cargo bench -p oathdesk-otp --bench sha1_limit -- --warm-up-time 1 --measurement-time 3`
//! and compare with `openssl speed -evp sha1` (bash bench/sha1-limit.sh does
//! both). Times are the thread's CPU time, not wall time: the shared build
//! machine runs many other jobs, and CPU time is what one core spends.
//!
//! - `chain`: 64 blocks of one message through `sha1::compress`, each
//!   needing the last (what `openssl speed` measures on large buffers).
//! - `hmac-core`: one code at a time through the `hmac` crate's keyed core
//!   (how `Hotp` computed SHA-1 codes before `sha1_pads`).
//! - `batch/N`: codes of 64 secrets, N independent codes in flight
//!   ([`truncated_batch`]); `batch/1` is `Hotp::generate` today.
//!
//! Every group counts compressions (two per code), so criterion's
//! "elem/s" is compressions per CPU-second.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::HmacCore;
use hmac::digest::core_api::{Buffer, FixedOutputCore};
use hmac::digest::{KeyInit, Output};
use oathdesk_otp::sha1_pads::{Sha1Pads, truncated_batch};

/// CPU time of the calling thread.
struct ThreadCpu;

fn thread_cpu_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

const SECRETS: usize = 64;

fn keys() -> Vec<[u8; 20]> {
    (0..SECRETS as u8)
        .map(|i| [i.wrapping_mul(37); 20])
        .collect()
}

fn batch<const N: usize>(pads: &[Sha1Pads], counter: u64) -> u32 {
    let mut acc = 0u32;
    for group in pads.chunks_exact(N) {
        let jobs: [(&Sha1Pads, u64); N] = std::array::from_fn(|i| (&group[i], counter));
        for value in truncated_batch(black_box(jobs)) {
            acc ^= value;
        }
    }
    acc
}

fn limit(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("sha1-limit");
    group.throughput(Throughput::Elements(64));
    let blocks = vec![sha1::digest::generic_array::GenericArray::from([7u8; 64]); 64];
    group.bench_function("chain", |b| {
        let mut state = [1u32; 5];
        b.iter(|| {
            sha1::compress(&mut state, black_box(&blocks));
            state[0]
        })
    });

    group.throughput(Throughput::Elements(2 * SECRETS as u64));
    let cores: Vec<HmacCore<sha1::Sha1>> = keys()
        .iter()
        .map(|k| HmacCore::new_from_slice(k).unwrap())
        .collect();
    let mut counter = 0u64;
    group.bench_function("hmac-core", |b| {
        b.iter(|| {
            counter += 1;
            let mut acc = 0u8;
            for core in &cores {
                let mut mac = core.clone();
                let mut buffer = Buffer::<HmacCore<sha1::Sha1>>::new(&counter.to_be_bytes());
                let mut out = Output::<HmacCore<sha1::Sha1>>::default();
                mac.finalize_fixed_core(&mut buffer, &mut out);
                acc ^= out[19];
            }
            acc
        })
    });

    let pads: Vec<Sha1Pads> = keys().iter().map(|k| Sha1Pads::new(k)).collect();
    macro_rules! batches {
        ($($n:literal),*) => {$(
            let mut counter = 0u64;
            group.bench_function(concat!("batch/", $n), |b| {
                b.iter(|| {
                    counter += 1;
                    batch::<$n>(&pads, counter)
                })
            });
        )*};
    }
    batches!(1, 2, 4, 8);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = limit
}
criterion_main!(benches);
