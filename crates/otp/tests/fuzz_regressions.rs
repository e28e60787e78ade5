//! Inputs found by the fuzz targets in `fuzz/` (and by the property tests),
//! replayed as plain tests: no panic, and the outcome each should have.
//!
//! The `uri` and `base32` targets take `&str`: libFuzzer bytes that are not
//! UTF-8 reach them cut at the first invalid byte, as [`fuzz_str`] does.

use oathdesk_otp::migration::{self, MigrationBatch, MigrationError};
use oathdesk_otp::uri::{self, UriError};
use oathdesk_otp::{CharClass, Credential, Kind, Secret, SecretError, TimeStep};

/// What `fuzz_target!(|text: &str| ...)` receives for `bytes`.
fn fuzz_str(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap(),
    }
}

/// The `uri` target's check: parse, and when that works, format and parse
/// back to the same credential (or be refused by `format`).
fn uri_round_trip(text: &str) -> Result<Credential, UriError> {
    let credential = uri::parse(text)?;
    if let Ok(written) = uri::format(&credential) {
        assert_eq!(uri::parse(&written).as_ref(), Ok(&credential), "{written}");
    }
    Ok(credential)
}

// ------------------------------------------------------------ crashes found

/// uri crash 1: `parse_label` sliced `label[i + 1..i + 3]` after a '%' by
/// bytes, panicking when a multi-byte character followed ("end byte index 7
/// is not a char boundary"). Fixed by comparing bytes.
#[test]
fn uri_percent_before_multibyte_character() {
    let input = fuzz_str(
        b"OTPAUTH://HOTP/ACME%2\xc9\xbco:%(0bob?SECRET=gezdgnbvgy3tqojq&alACME%20Co:%(0bob?SECRET=gezdter=42&image=x",
    );
    let c = uri_round_trip(input).unwrap();
    // A broken escape stays literal; the ':' still separates.
    assert_eq!(c.issuer.as_deref(), Some("ACME%2ɼo"));
    assert_eq!(c.account, "%(0bob");
    assert_eq!(c.label_issuer, None);
    assert_eq!(c.kind, Kind::Hotp { counter: 0 });

    for (input, account) in [
        ("otpauth://totp/x%aé?secret=AA", "x%aé"),
        ("otpauth://totp/%é?secret=AA", "%é"),
        ("otpauth://totp/x%3?secret=AA", "x%3"),
        ("otpauth://totp/x%?secret=AA", "x%"),
    ] {
        let c = uri_round_trip(input).unwrap();
        assert_eq!(c.account, account, "{input}");
        assert_eq!(c.issuer, None, "{input}");
    }
    // '%3A' in any case still separates, next to non-ASCII text.
    let c = uri_round_trip("otpauth://totp/é%3aü?secret=AA").unwrap();
    assert_eq!(c.issuer.as_deref(), Some("é"));
    assert_eq!(c.account, "ü");
}

/// uri crash 2 (round trip): `issuer=` with a trailing space and a label
/// without issuer. Formatting put "ExaounteDPECME " in the label, whose
/// prefix the parser trims, so the re-read credential grew a label issuer.
/// Fixed by trimming `issuer=` (and the account) like the label prefix.
#[test]
fn uri_issuer_with_surrounding_space() {
    let input = fuzz_str(
        b"OTPAUTH://HOTP/.com?secret=JBSWY3DPEHPK3PXP&issuer=ExaounteDPECME%20#o\xcf\xda\x8b\x9a\xff\xff\xff\xff\xff\xff\xff\x09r=i20ge=x",
    );
    let c = uri_round_trip(input).unwrap();
    assert_eq!(c.issuer.as_deref(), Some("ExaounteDPECME"));
    assert_eq!(c.label_issuer, None);
    assert_eq!(c.account, ".com");

    let c = uri_round_trip("otpauth://totp/%20bob%20?secret=AA&issuer=%20Acme").unwrap();
    assert_eq!(c.issuer.as_deref(), Some("Acme"));
    assert_eq!(c.account, "bob");
    let c = uri_round_trip("otpauth://totp/Acme:bob%20?secret=AA&issuer=+").unwrap();
    assert_eq!(c.issuer.as_deref(), Some("Acme"));
    assert_eq!(c.account, "bob");
}

/// Property-test find: an account with ':' and no issuer was written as a
/// label the reader splits ("a:b" came back as issuer "a", account "b").
/// Both writers now put an empty issuer prefix in front.
#[test]
fn account_with_colon_and_no_issuer() {
    let mut c = Credential::totp(Secret::from_bytes(vec![0x5a; 10]));
    c.account = "corp:alice".into();
    let written = uri::format(&c).unwrap();
    assert_eq!(
        written,
        "otpauth://totp/:corp%3Aalice?secret=LJNFUWS2LJNFUWS2"
    );
    assert_eq!(uri::parse(&written), Ok(c.clone()));

    let batch = MigrationBatch {
        credentials: vec![c],
        version: 1,
        batch_size: 1,
        batch_index: 0,
        batch_id: 7,
    };
    assert_eq!(
        migration::parse(&migration::format(&batch).unwrap()),
        Ok(batch)
    );
}

/// A migration entry's name is "issuer:account", so a label issuer with ':'
/// cannot be carried (it used to be written and read back split wrongly).
#[test]
fn migration_refuses_issuer_with_colon() {
    let mut c = Credential::totp(Secret::from_bytes(vec![1; 10]));
    c.issuer = Some("a:b".into());
    c.account = "c".into();
    let batch = MigrationBatch {
        credentials: vec![c.clone()],
        version: 1,
        batch_size: 1,
        batch_index: 0,
        batch_id: 0,
    };
    assert!(matches!(
        migration::format(&batch),
        Err(MigrationError::Unrepresentable { entry: 1, .. })
    ));
    // With a separate label issuer the ':' stays in the issuer field.
    c.label_issuer = Some("ab".into());
    let batch = MigrationBatch {
        credentials: vec![c],
        ..batch
    };
    assert_eq!(
        migration::parse(&migration::format(&batch).unwrap()),
        Ok(batch)
    );
}

/// Reading found while replaying the corpus: hex error positions counted
/// bytes of leading whitespace, Base32 ones count characters.
#[test]
fn hex_error_positions_count_characters() {
    assert_eq!(
        Secret::from_hex("\u{a0}\u{a0}3g"),
        Err(SecretError::HexCharacter {
            position: 4,
            class: CharClass::OtherAlphanumeric
        })
    );
    assert_eq!(
        Secret::from_base32("\u{a0}"),
        Err(SecretError::Base32Character {
            position: 1,
            class: CharClass::NonAscii
        })
    );
}

// --------------------------------------------------------- corpus replays

#[test]
fn uri_corpus() {
    // The label's own '%3b' is a ';', not a separator.
    let c = uri_round_trip("OTPAUTH://HOTP/CME%3bob?SECRET=ge56&d&image=x").unwrap();
    assert_eq!((c.issuer.as_deref(), c.account.as_str()), (None, "CME;ob"));
    // A lone '%' before the ':' stays literal.
    let c = uri_round_trip("OTPAUTH://HOTP/ACME%:0Cbo\"?SECRET=ge").unwrap();
    assert_eq!(c.issuer.as_deref(), Some("ACME%"));
    assert_eq!(c.account, "0Cbo\"");
    // '%2b' in the account is a '+'.
    let c = uri_round_trip("OTPAUTH://HOTP/I:%2b0ob?SECRET=gezdgnvgy3tqojq&alvg=x").unwrap();
    assert_eq!(c.account, "+0ob");
    // Everything after the first ':' is the account, '/' included.
    let c = uri_round_trip("OTPAUTH://HOTP/ļMET://?secret=abcd").unwrap();
    assert_eq!(c.issuer.as_deref(), Some("ļMET"));
    assert_eq!(c.account, "//");
    // Carriage returns inside a secret are cosmetic; a fragment is dropped.
    let c = uri_round_trip("otpauth://totp/goom?secret=JB\r\r\rWXP&issuOTPAt$hpUer=").unwrap();
    assert_eq!(c.secret, Secret::from_base32("JBWXP").unwrap());
    let c = uri_round_trip("otpauth://totp/x?secret=GEZDGNBV&period=60#frag&period=1").unwrap();
    assert_eq!(
        c.kind,
        Kind::Totp {
            step: TimeStep::new(60, 0).unwrap()
        }
    );

    for (input, expected) in [
        ("otpauth://", UriError::Type(String::new())),
        ("otpauth://totp", UriError::MissingSecret),
        (
            "OTPAUTH://HOTP/ACME%20Co:%(0bob?SECRET=ge&secret=ge",
            UriError::Duplicate("secret".into()),
        ),
        (
            "otpauth://totp/x?secret=AAAAAAAAA",
            UriError::Secret(SecretError::Base32Length { chars: 9 }),
        ),
        ("otpauth://totp/%ff?secret=AA", UriError::LabelEncoding),
        ("otpauth-migration://offline", UriError::IsMigration),
        ("\u{a0}otpauth:/totp/x", UriError::Scheme),
    ] {
        assert_eq!(uri_round_trip(input), Err(expected), "{input:?}");
    }
    assert!(matches!(
        uri_round_trip("otpauth://hotp/x?secret=AA&counter=18446744073709551616"),
        Err(UriError::Parameter {
            name: "counter",
            ..
        })
    ));
    // The largest counter is fine.
    let c = uri_round_trip("otpauth://hotp/x?secret=AA&counter=18446744073709551615").unwrap();
    assert_eq!(c.kind, Kind::Hotp { counter: u64::MAX });
}

#[test]
fn migration_corpus() {
    for input in [
        "otpauth-migration://",
        "otpauth-migration://of?",
        "otpauth-migration://ofie?d&&",
        "otpauth-migration://of?dtaa=",
    ] {
        assert_eq!(
            migration::parse(input),
            Err(MigrationError::MissingData),
            "{input:?}"
        );
    }
    for input in [
        "otpauth-migration://o?data=\u{f5475}",
        "otpauth-migration://?data=C%%C",
        "otpauth-migration://?data=aa==a",
        "otpauth-migration://e?data=1",
    ] {
        assert_eq!(
            migration::parse(input),
            Err(MigrationError::Base64),
            "{input:?}"
        );
    }
    // An empty payload is an empty batch; a truncated one is refused.
    assert_eq!(
        migration::parse("otpauth-migration://o\u{0}?data=").map(|b| b.credentials.len()),
        Err(MigrationError::Base64)
    );
    assert_eq!(migration::decode_payload(&[]).unwrap().credentials.len(), 0);
    assert!(matches!(
        migration::parse("otpauth-migration://o?data=CjEK"),
        Err(MigrationError::Protobuf(_))
    ));
    // Payload bytes the fuzzer kept: unknown fields and odd varints.
    for bytes in [
        &[40, 216, 44][..],
        &[16, 200, 44],
        &[16, 201, 200, 49],
        &[16, 232, 32, 200, 7, 0],
    ] {
        let batch = migration::decode_payload(bytes).unwrap();
        assert!(batch.credentials.is_empty(), "{bytes:?}");
        assert_eq!(
            migration::decode_payload(&migration::encode_payload(&batch).unwrap()),
            Ok(batch)
        );
    }
    // One entry: secret [0xff], name "x", type 1 (HOTP), counter -1.
    let negative = [
        0x0a, 0x13, 0x0a, 0x01, 0xff, 0x12, 0x01, b'x', 0x30, 0x01, 0x38, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    assert!(matches!(
        migration::decode_payload(&negative),
        Err(MigrationError::Entry { entry: 1, .. })
    ));
    // The same with digits = 3 (unknown) instead of a counter.
    let digits = [
        0x0a, 0x09, 0x0a, 0x01, 0xff, 0x12, 0x01, b'x', 0x28, 0x03, 0x30,
    ];
    assert!(matches!(
        migration::decode_payload(&digits),
        Err(MigrationError::Protobuf(_))
    ));
    let digits = [0x0a, 0x08, 0x0a, 0x01, 0xff, 0x12, 0x01, b'x', 0x28, 0x03];
    assert!(matches!(
        migration::decode_payload(&digits),
        Err(MigrationError::Entry { entry: 1, .. })
    ));
}

#[test]
fn base32_corpus() {
    type Lens = (
        Result<usize, SecretError>,
        Result<usize, SecretError>,
        Result<usize, SecretError>,
    );
    let lens = |text: &str| -> Lens {
        (
            Secret::from_base32(text).map(|s| s.len()),
            Secret::from_hex(text).map(|s| s.len()),
            Secret::from_base64(text).map(|s| s.len()),
        )
    };
    assert_eq!(
        lens("\r\r\r"),
        (
            Err(SecretError::Empty),
            Err(SecretError::Empty),
            Err(SecretError::Empty)
        )
    );
    assert_eq!(
        lens("aaaaaaaaaaAAaAAa\t\t\t\t\t\t\t\t"),
        (Ok(10), Ok(8), Ok(12))
    );
    assert_eq!(
        lens("B G"),
        (
            Ok(1),
            Err(SecretError::HexCharacter {
                position: 3,
                class: CharClass::OtherAlphanumeric
            }),
            Err(SecretError::Base64)
        )
    );
    assert_eq!(
        lens("_1-p"),
        (
            Err(SecretError::Base32Character {
                position: 1,
                class: CharClass::Symbol
            }),
            Err(SecretError::HexCharacter {
                position: 1,
                class: CharClass::Symbol
            }),
            Ok(3)
        )
    );
    assert_eq!(
        lens("F\t\t\u{8}").0,
        Err(SecretError::Base32Character {
            position: 4,
            class: CharClass::Control
        })
    );
    assert_eq!(
        lens(&format!("{}X", " ".repeat(66))).0,
        Err(SecretError::Base32Length { chars: 1 })
    );
    assert_eq!(
        lens("D-GMGZGEZD-GlllllllllllllllllllllllllllllllllllllZD").0,
        Err(SecretError::Base32Length { chars: 49 })
    );
    assert_eq!(
        lens("\u{a0}\u{a0}\u{a0}\u{a0}"),
        (
            Err(SecretError::Base32Character {
                position: 1,
                class: CharClass::NonAscii
            }),
            Err(SecretError::Empty),
            Err(SecretError::Empty)
        )
    );
    assert_eq!(
        Secret::from_unspecified("0000 0000 0000 0000"),
        Err(SecretError::LooksLikeHex)
    );
    assert_eq!(Secret::from_base32("MZXW6=== ").unwrap().as_bytes(), b"foo");
}
