//! Round trips: for every writable format, what a writer writes its reader
//! reads back as the same credentials (within what the format can carry;
//! what it cannot carry is reported as skipped, never altered).

use oathdesk_formats::format::{self, Format, WriteOptions};
use oathdesk_formats::{Keys, Record};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Printable text without the separators CSV dialects cannot quote.
    "[A-Za-z0-9@._+][A-Za-z0-9@._+ -]{0,20}[A-Za-z0-9@._+]"
}

fn record() -> impl Strategy<Value = Record> {
    (
        prop::collection::vec(any::<u8>(), 10..64),
        prop_oneof![
            Just(Algorithm::Sha1),
            Just(Algorithm::Sha256),
            Just(Algorithm::Sha512)
        ],
        prop_oneof![Just(6u64), Just(8u64), 4u64..=10],
        prop_oneof![
            (prop_oneof![Just(30u64), Just(60u64), 1u64..=300]).prop_map(|p| Kind::Totp {
                step: TimeStep::new(p, 0).unwrap()
            }),
            (0u64..1_000_000).prop_map(|counter| Kind::Hotp { counter }),
        ],
        "[A-Z0-9]{4,12}",
        prop::option::of(0u32..100),
        text(),
        prop::option::of(text()),
    )
        .prop_map(
            |(secret, algorithm, digits, kind, serial, slot, user, maker)| {
                let mut credential = Credential::totp(Secret::from_bytes(secret));
                credential.algorithm = algorithm;
                credential.digits = Digits::new(digits).unwrap();
                credential.kind = kind;
                credential.account = user.clone();
                let mut record = Record::new(credential);
                record.serial = Some(serial);
                record.slot = slot;
                record.user = Some(user);
                record.manufacturer = maker.clone();
                record.model = maker;
                record
            },
        )
}

/// Distinct serials (several formats refuse duplicates).
fn records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(record(), 1..8).prop_map(|mut records| {
        for (i, r) in records.iter_mut().enumerate() {
            r.serial = r.serial.take().map(|s| format!("{s}{i}"));
        }
        records
    })
}

/// Checks that every record not skipped comes back with the same secret,
/// hash, digits and kind, in order.
fn check(format: Format, records: &[Record]) {
    let options = WriteOptions::default();
    let written = format::write(format, records, &options).unwrap();
    let back = format::read(format, &written.bytes, &Keys::default())
        .unwrap_or_else(|e| panic!("{format}: {e}\n{}", String::from_utf8_lossy(&written.bytes)));
    let kept: Vec<&Record> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !written.skipped.iter().any(|s| s.index == *i))
        .map(|(_, r)| r)
        .collect();
    assert_eq!(back.len(), kept.len(), "{format}");
    for (original, read) in kept.iter().zip(&back) {
        let (a, b) = (&original.credential, &read.credential);
        assert_eq!(a.secret, b.secret, "{format}");
        assert_eq!(a.algorithm, b.algorithm, "{format}");
        assert_eq!(a.digits, b.digits, "{format}");
        assert_eq!(a.kind, b.kind, "{format}");
    }
    // What was skipped says why.
    assert!(written.skipped.iter().all(|s| !s.reason.is_empty()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn entra_csv(records in records()) { check(Format::EntraCsv, &records) }

    #[test]
    fn entra_json(records in records()) { check(Format::EntraJson, &records) }

    #[test]
    fn privacyidea(records in records()) { check(Format::PrivacyIdea, &records) }

    #[test]
    fn privacyidea_v2(records in records()) { check(Format::PrivacyIdeaV2, &records) }

    #[test]
    fn linotp(records in records()) { check(Format::LinOtp, &records) }

    #[test]
    fn otpauth(records in records()) { check(Format::Otpauth, &records) }

    #[test]
    fn google(records in records()) { check(Format::Google, &records) }

    #[test]
    fn oathdesk_json(records in records()) {
        check(Format::Oathdesk, &records);
        // The canonical form carries everything.
        let written = format::write(Format::Oathdesk, &records, &WriteOptions::default()).unwrap();
        prop_assert!(written.skipped.is_empty());
        let back = format::read(Format::Oathdesk, &written.bytes, &Keys::default()).unwrap();
        for (a, b) in records.iter().zip(&back) {
            prop_assert_eq!(&a.serial, &b.serial);
            prop_assert_eq!(a.slot, b.slot);
            prop_assert_eq!(&a.user, &b.user);
            prop_assert_eq!(&a.manufacturer, &b.manufacturer);
        }
    }

    #[test]
    fn readers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for format in Format::ALL {
            let _ = format::read(format, &bytes, &Keys::default());
        }
        let _ = format::detect(&bytes);
        let _ = oathdesk_formats::lint::lint(&bytes, None, &Keys::default(), None);
    }
}
