//! Converting 100,000 credentials: Entra CSV → encrypted PSKC and back.
//!
//! `cargo bench -p oathdesk-formats --bench formats`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use oathdesk_formats::format::{self, Format, WriteOptions};
use oathdesk_formats::{Keys, Record};
use oathdesk_otp::{Credential, Secret};
use zeroize::Zeroizing;

const N: usize = 100_000;

fn records() -> Vec<Record> {
    (0..N)
        .map(|i| {
            let mut seed = [0u8; 20];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[8..16]
                .copy_from_slice(&((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
            let mut record = Record::new(Credential::totp(Secret::from_bytes(seed.to_vec())));
            record.serial = Some(format!("T2{i:08}"));
            record.user = Some(format!("user{i:06}@contoso.com"));
            record.manufacturer = Some("Token2".into());
            record.model = Some("C202".into());
            record
        })
        .collect()
}

fn convert(c: &mut Criterion) {
    let plain = WriteOptions::default();
    let psk = WriteOptions {
        key: Some(Zeroizing::new(vec![0x42; 16])),
        ..WriteOptions::default()
    };
    let keys = Keys {
        key: Some(Zeroizing::new(vec![0x42; 16])),
        password: None,
    };
    let entra_csv = format::write(Format::EntraCsv, &records(), &plain)
        .unwrap()
        .bytes;
    let pskc = format::write(Format::Pskc, &records(), &psk).unwrap().bytes;

    let mut group = c.benchmark_group("convert 100k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("entra-csv -> pskc (AES-128-CBC + HMAC-SHA256)", |b| {
        b.iter(|| {
            let records =
                format::read(Format::EntraCsv, black_box(&entra_csv), &Keys::default()).unwrap();
            format::write(Format::Pskc, &records, &psk)
                .unwrap()
                .bytes
                .len()
        })
    });
    group.bench_function("pskc (AES-128-CBC + HMAC-SHA256) -> entra-csv", |b| {
        b.iter(|| {
            let records = format::read(Format::Pskc, black_box(&pskc), &keys).unwrap();
            format::write(Format::EntraCsv, &records, &plain)
                .unwrap()
                .bytes
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, convert);
criterion_main!(benches);
