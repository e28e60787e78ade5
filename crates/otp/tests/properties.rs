//! Property tests of the OTP engine: secret encodings, otpauth URIs and
//! migration payloads round-trip, verification finds the offset a code was
//! made at, and TOTP intervals tile time.

use migration::MigrationBatch;
use oathdesk_otp::{
    Algorithm, Credential, Digits, Encoding, Hotp, Kind, Secret, TimeStep, Totp, Window, migration,
    uri,
};
use proptest::prelude::*;

// ---------------------------------------------------------------- strategies

fn secret_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..=max)
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

fn digits() -> impl Strategy<Value = Digits> {
    (u64::from(Digits::MIN)..=u64::from(Digits::MAX)).prop_map(|d| Digits::new(d).unwrap())
}

/// Characters for labels and issuers: mostly plain, often the ones URIs
/// must escape, sometimes anything printable (never a control character).
fn label_char(colon: bool) -> impl Strategy<Value = char> {
    let specials = vec![
        ' ', '+', '&', '=', '%', '?', '#', '/', '@', '.', '-', '_', '~', '!', '\'', '"', '[', ']',
        '\\', ';', ',', '*', 'é', 'ß', 'Ω', '中', '😀', '\u{a0}', '\u{3000}', '’',
    ];
    prop_oneof![
        4 => prop::char::range('a', 'z'),
        1 => prop::char::range('A', 'Z'),
        1 => prop::char::range('0', '9'),
        3 => prop::sample::select(specials),
        1 => Just(':'),
        1 => any::<char>(),
    ]
    // Mapped rather than filtered: rejections would starve large runs.
    .prop_map(move |c| match c {
        c if c.is_control() => '^',
        ':' if !colon => ';',
        c => c,
    })
}

/// A string without control characters or surrounding whitespace (the
/// parsers trim label parts); `min` 0 allows the empty string.
fn label_text(colon: bool, min: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(label_char(colon), min..=24)
        .prop_map(|chars| chars.into_iter().collect::<String>().trim().to_owned())
        .prop_filter("long enough after trimming", move |s| {
            s.chars().count() >= min
        })
}

/// Issuer and label issuer: `label_issuer` only with an issuer, and then
/// different from it.
fn issuers() -> impl Strategy<Value = (Option<String>, Option<String>)> {
    prop_oneof![
        Just((None, None)),
        label_text(false, 1).prop_map(|issuer| (Some(issuer), None)),
        (label_text(false, 1), label_text(false, 1))
            .prop_filter("label issuer differs", |(issuer, label)| issuer != label)
            .prop_map(|(issuer, label)| (Some(issuer), Some(label))),
    ]
}

fn uri_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<u64>().prop_map(|counter| Kind::Hotp { counter }),
        (1u64..=3600).prop_map(|period| Kind::Totp {
            step: TimeStep::new(period, 0).unwrap()
        }),
    ]
}

fn credential(
    kind: impl Strategy<Value = Kind>,
    digits: impl Strategy<Value = Digits>,
) -> impl Strategy<Value = Credential> {
    (
        secret_bytes(64),
        kind,
        algorithm(),
        digits,
        issuers(),
        label_text(true, 0),
    )
        .prop_map(
            |(secret, kind, algorithm, digits, (issuer, label_issuer), account)| Credential {
                secret: Secret::from_bytes(secret),
                kind,
                algorithm,
                digits,
                issuer,
                account,
                label_issuer,
            },
        )
}

fn migration_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (0..=i64::MAX as u64).prop_map(|counter| Kind::Hotp { counter }),
        Just(Kind::Totp {
            step: TimeStep::DEFAULT
        }),
    ]
}

fn migration_digits() -> impl Strategy<Value = Digits> {
    prop::sample::select(vec![Digits::SIX, Digits::EIGHT])
}

/// A window and an offset inside it.
fn window_and_offset() -> impl Strategy<Value = (Window, i64)> {
    (0u64..=10, 0u64..=10).prop_flat_map(|(behind, ahead)| {
        (
            Just(Window { behind, ahead }),
            -(behind as i64)..=(ahead as i64),
        )
    })
}

/// The offsets of a window in the order verification prefers them:
/// 0, -1, +1, -2, +2, ...
fn nearest_first(window: Window) -> Vec<i64> {
    let reach = window.behind.max(window.ahead) as i64;
    let mut order = vec![0];
    for distance in 1..=reach {
        if distance as u64 <= window.behind {
            order.push(-distance);
        }
        if distance as u64 <= window.ahead {
            order.push(distance);
        }
    }
    order
}

/// Checks a match against the codes of the window: the matching counter has
/// the code, the offset is the first of the preferred order with that code,
/// and when no two counters of the window share a code it is `k` itself.
fn check_match(
    code_of: impl Fn(u64) -> u32,
    expected: u64,
    window: Window,
    k: i64,
    found: Option<oathdesk_otp::Match>,
) -> Result<(), TestCaseError> {
    let found = found.ok_or_else(|| TestCaseError::fail("the code made at offset k not found"))?;
    let wanted = code_of(expected.checked_add_signed(k).unwrap());
    prop_assert_eq!(code_of(found.counter), wanted);
    prop_assert_eq!(
        expected.checked_add_signed(found.offset),
        Some(found.counter)
    );
    let order = nearest_first(window);
    let first_with_code = order
        .iter()
        .copied()
        .find(|&o| code_of(expected.checked_add_signed(o).unwrap()) == wanted);
    prop_assert_eq!(Some(found.offset), first_with_code);
    let mut codes: Vec<u32> = order
        .iter()
        .map(|&o| code_of(expected.checked_add_signed(o).unwrap()))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    if codes.len() == order.len() {
        prop_assert_eq!(found.offset, k);
    }
    Ok(())
}

// ----------------------------------------------------------------- secrets

proptest! {
    #[test]
    fn secret_encodings_round_trip(bytes in secret_bytes(128)) {
        let secret = Secret::from_bytes(bytes.clone());
        for encoding in [Encoding::Base32, Encoding::Hex, Encoding::Base64] {
            let text = secret.encode(encoding);
            let decoded = Secret::decode(&text, encoding)
                .map_err(|e| TestCaseError::fail(format!("{encoding:?}: {e}")))?;
            prop_assert_eq!(decoded.as_bytes(), &bytes[..], "{:?}", encoding);
        }
    }

    #[test]
    fn base32_survives_cosmetics(
        bytes in secret_bytes(128),
        lower in any::<bool>(),
        separators in prop::collection::vec(prop::sample::select(vec!["", "", "", " ", "-", "  ", " - "]), 0..256),
        pad in any::<bool>(),
    ) {
        let secret = Secret::from_bytes(bytes.clone());
        let plain = secret.to_base32();
        let mut text = String::new();
        for (i, c) in plain.chars().enumerate() {
            if i > 0 {
                text.push_str(separators.get(i).copied().unwrap_or(""));
            }
            text.push(if lower { c.to_ascii_lowercase() } else { c });
        }
        if pad {
            let symbols = plain.len();
            text.extend(std::iter::repeat_n('=', (8 - symbols % 8) % 8));
        }
        let decoded = Secret::from_base32(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(decoded.as_bytes(), &bytes[..], "{}", text);
    }
}

// -------------------------------------------------------------- text forms

proptest! {
    // Cheap cases: at least 1024, more when PROPTEST_CASES asks for more.
    #![proptest_config(ProptestConfig::with_cases(ProptestConfig::default().cases.max(1024)))]

    #[test]
    fn otpauth_uri_round_trips(c in credential(uri_kind(), digits())) {
        let text = uri::format(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = uri::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, c, "{}", text);
    }

    #[test]
    fn migration_round_trips(
        credentials in prop::collection::vec(credential(migration_kind(), migration_digits()), 1..5),
        version in any::<i32>(),
        batch_size in any::<i32>(),
        batch_index in any::<i32>(),
        batch_id in any::<i32>(),
    ) {
        let batch = MigrationBatch { credentials, version, batch_size, batch_index, batch_id };
        let link = migration::format(&batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = migration::parse(&link).map_err(|e| TestCaseError::fail(format!("{link}: {e}")))?;
        prop_assert_eq!(back, batch, "{}", link);
    }
}

// ------------------------------------------------------------ verification

/// RFC 4226 §5.3 over the `hmac` crate's ordinary `Mac` API: the reference
/// for the engine, which drives the HMAC cores directly.
fn reference_truncated(key: &[u8], algorithm: Algorithm, counter: u64) -> u32 {
    use hmac::{Hmac, Mac};
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], counter: u64) -> Vec<u8> {
        let mut mac = <M as Mac>::new_from_slice(key).unwrap();
        mac.update(&counter.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }
    let hmac = match algorithm {
        Algorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(key, counter),
        Algorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(key, counter),
        Algorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(key, counter),
    };
    let offset = usize::from(hmac[hmac.len() - 1] & 0x0f);
    u32::from_be_bytes(hmac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff
}

proptest! {
    /// Keys shorter than, equal to and longer than the hash block (64 or
    /// 128 bytes; longer keys are hashed first).
    #[test]
    fn hotp_matches_reference_hmac(
        key in prop_oneof![secret_bytes(300), prop::sample::select(vec![64usize, 65, 128, 129])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))],
        algorithm in algorithm(),
        digits in digits(),
        counter in any::<u64>(),
    ) {
        let hotp = Hotp::new(&Secret::from_bytes(key.clone()), algorithm, digits);
        let reference = reference_truncated(&key, algorithm, counter);
        prop_assert_eq!(hotp.truncated_value(counter), reference);
        let code = hotp.generate(counter);
        let expected = if digits.get() == 10 { reference } else { reference % 10u32.pow(u32::from(digits.get())) };
        prop_assert_eq!(code.value(), expected);
        prop_assert_eq!(code.to_string(), format!("{:0width$}", expected, width = usize::from(digits.get())));
    }

    #[test]
    fn hotp_verify_finds_offset(
        secret in secret_bytes(64),
        algorithm in algorithm(),
        digits in digits(),
        counter in 10u64..u64::MAX / 2,
        (window, k) in window_and_offset(),
    ) {
        let hotp = Hotp::new(&Secret::from_bytes(secret), algorithm, digits);
        let code = hotp.generate(counter.checked_add_signed(k).unwrap()).to_string();
        let found = hotp.verify(&code, counter, window).unwrap();
        check_match(|c| hotp.generate(c).value(), counter, window, k, found)?;
    }

    #[test]
    fn totp_verify_at_finds_offset(
        secret in secret_bytes(64),
        algorithm in algorithm(),
        digits in digits(),
        period in 1u64..=3600,
        t0 in prop_oneof![Just(0u64), 0u64..=2_000_000_000],
        elapsed in 0u64..=1 << 40,
        (window, k) in window_and_offset(),
    ) {
        let step = TimeStep::new(period, t0).unwrap();
        let totp = Totp::new(&Secret::from_bytes(secret), algorithm, digits, step);
        // Far enough from T0 that every offset of the window has a time.
        let time = t0 + 10 * period + elapsed;
        let made_at = time.checked_add_signed(k * period as i64).unwrap();
        let code = totp.generate_at(made_at).unwrap().to_string();
        let found = totp.verify_at(&code, time, window).unwrap();
        let expected = step.counter_at(time).unwrap();
        prop_assert_eq!(step.counter_at(made_at).unwrap(), expected.checked_add_signed(k).unwrap());
        check_match(|c| totp.hotp().generate(c).value(), expected, window, k, found)?;
    }

    #[test]
    fn totp_current_interval_holds_the_code(
        secret in secret_bytes(32),
        algorithm in algorithm(),
        period in prop_oneof![1u64..=3600, 1u64..=u64::MAX / 4],
        t0 in prop_oneof![Just(0u64), any::<u64>()],
        into in prop_oneof![any::<u64>(), 0u64..100_000, Just(u64::MAX)],
        past in 0u64..=5,
        future in 0u64..=5,
    ) {
        let step = TimeStep::new(period, t0).unwrap();
        // Any time from T0 on, except u64::MAX itself: a half-open interval
        // of u64 seconds cannot contain the last second.
        let time = t0.saturating_add(into).min(u64::MAX - 1);
        let totp = Totp::new(&Secret::from_bytes(secret), algorithm, Digits::SIX, step);
        let code = totp.generate_at(time).unwrap();
        let table = totp.codes_around(time, past, future).unwrap();
        let containing: Vec<_> = table.iter().filter(|t| t.current.contains(time)).collect();
        prop_assert_eq!(containing.len(), 1, "{:?}", table);
        let current = containing[0];
        prop_assert_eq!(current.code, code);
        prop_assert_eq!(current.offset, 0);
        prop_assert_eq!(current.counter, step.counter_at(time).unwrap());
        prop_assert_eq!(current.current, step.interval(current.counter));
        for pair in table.windows(2) {
            prop_assert_eq!(pair[0].counter + 1, pair[1].counter);
            prop_assert_eq!(pair[0].offset + 1, pair[1].offset);
            prop_assert_eq!(pair[0].current.until, pair[1].current.from, "{:?}", pair);
        }
        for entry in &table {
            prop_assert_eq!(entry.code, totp.hotp().generate(entry.counter));
        }
    }
}
