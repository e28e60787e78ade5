//! Issue 15 items 6, 8, 13 and 14 in the vault, on both databases: writes
//! to a token after its burn recorded in its history (and its codes
//! following a new configuration), the display time-out a later clock write
//! keeps, a secret already held on another credential, and the rule that
//! no enrolment code goes out with under 10 s left.

mod common;

use common::*;

use oathdesk_otp::{Algorithm, Secret};
use oathdesk_vault::model::{State, TokenRef};
use oathdesk_vault::{DeviceWrite, NewToken, enrolment_wait};

on_both_backends!(
    a_configuration_write_is_recorded_and_the_codes_follow,
    the_display_timeout_of_the_last_write_is_recorded,
    a_secret_on_another_credential_is_found_without_comparing_secrets,
    a_classic_token_takes_no_recorded_write,
);

/// A classic (pre-seeded) token cannot be written: a clock or settings
/// write recorded for it would restart its drift fit at a re-sync that
/// never happened. Refused, and nothing is recorded.
fn a_classic_token_takes_no_recorded_write(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let classic = NewToken {
        device_kind: oathdesk_vault::model::DeviceKind::Classic,
        model: Some("C202".into()),
        state: State::Stock,
        ..token("2100000777", None, SEED, Some("bob@contoso.com"))
    };
    s.add_token(classic, NOW).unwrap();
    let before = s.audit_entries().unwrap().len();
    for write in [
        DeviceWrite::Clock { time: NOW },
        DeviceWrite::Config {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            display_timeout: 30,
        },
    ] {
        let error = s
            .record_device_write(&serial("2100000777"), &write, NOW + 5)
            .unwrap_err();
        assert!(
            matches!(error, oathdesk_vault::Error::Refused(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains("classic"), "{error}");
    }
    let drift = s
        .token_drift(
            &serial("2100000777"),
            oathdesk_otp::Verifier::Entra,
            86_400,
            NOW + 10,
        )
        .unwrap();
    assert!(drift.line.is_none_or(|l| l.resynced_at.is_none()));
    // Only the refusals were audited, no write.
    let after = s.audit_entries().unwrap();
    assert!(
        after[before..]
            .iter()
            .all(|e| !e.action.starts_with("device.") || e.outcome != "ok"),
        "{:?}",
        &after[before..]
    );
}

fn burned(serial: &str, slot: Option<u32>, seed: &[u8]) -> NewToken {
    NewToken {
        state: State::Burning,
        ..token(serial, slot, seed, Some("bob@contoso.com"))
    }
}

fn a_configuration_write_is_recorded_and_the_codes_follow(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let begun = s
        .begin_burn(burned("826658719844499", Some(3), SEED), false, NOW)
        .unwrap();
    s.finish_burn_with(begun.id, "ok", Some(30), NOW).unwrap();
    let write = DeviceWrite::Config {
        algorithm: Algorithm::Sha256,
        digits: 8,
        period: 60,
        display_timeout: 120,
    };
    let info = s
        .record_device_write(&TokenRef::Id(begun.id), &write, NOW + 5)
        .unwrap();
    assert_eq!(
        (info.algorithm.as_str(), info.digits, info.period),
        ("sha256", 8, Some(60))
    );
    // The row is signed again: it still verifies, and its code is the
    // token's (RFC 6238 vector shape: SHA-256, 8 digits, 60 s).
    assert!(s.verify_vault().unwrap().intact);
    let (_, credential) = s.reveal(&TokenRef::Id(begun.id)).unwrap();
    assert_eq!(credential.algorithm, Algorithm::Sha256);
    assert_eq!(credential.digits.get(), 8);
    s.record_device_write(
        &TokenRef::Id(begun.id),
        &DeviceWrite::Title {
            title: "Fabrikam".into(),
        },
        NOW + 6,
    )
    .unwrap();
    let actions: Vec<String> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|r| r.action.starts_with("device."))
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            "device.burn.begin",
            "device.burn",
            "device.config",
            "device.title"
        ]
    );
    assert_eq!(s.audit_verify().unwrap().first_bad, None);
}

fn the_display_timeout_of_the_last_write_is_recorded(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let begun = s
        .begin_burn(burned("86596220000001", None, SEED), false, NOW)
        .unwrap();
    assert_eq!(s.recorded_display_timeout(begun.id).unwrap(), None);
    s.finish_burn_with(begun.id, "ok", Some(60), NOW).unwrap();
    assert_eq!(s.recorded_display_timeout(begun.id).unwrap(), Some(60));
    // Another credential's record is not this one's.
    let other = s
        .begin_burn(
            burned("86596220000002", None, b"another secret here!"),
            false,
            NOW,
        )
        .unwrap();
    s.finish_burn_with(other.id, "ok", Some(15), NOW).unwrap();
    assert_eq!(s.recorded_display_timeout(begun.id).unwrap(), Some(60));
    s.record_device_write(
        &TokenRef::Id(begun.id),
        &DeviceWrite::Config {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            display_timeout: 120,
        },
        NOW + 1,
    )
    .unwrap();
    assert_eq!(s.recorded_display_timeout(begun.id).unwrap(), Some(120));
    // A clock write records no time-out: the last one stays.
    s.record_device_write(
        &TokenRef::Id(begun.id),
        &DeviceWrite::Clock { time: NOW },
        NOW + 2,
    )
    .unwrap();
    assert_eq!(s.recorded_display_timeout(begun.id).unwrap(), Some(120));
}

fn a_secret_on_another_credential_is_found_without_comparing_secrets(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let first = s
        .add_token(token("826658719844499", Some(1), SEED, None), NOW)
        .unwrap();
    s.add_token(
        token("826658719844499", Some(2), b"a different secret!!", None),
        NOW,
    )
    .unwrap();
    let holders = s
        .secret_holders(&Secret::from_bytes(SEED.to_vec()), Algorithm::Sha1)
        .unwrap();
    let references: Vec<String> = holders.iter().map(|h| h.reference()).collect();
    assert_eq!(references, ["826658719844499:1"]);
    assert_eq!(holders[0].id, first.id);
    assert!(
        s.secret_holders(
            &Secret::from_bytes(b"nobody holds this one".to_vec()),
            Algorithm::Sha1
        )
        .unwrap()
        .is_empty()
    );
    // A retired credential is no longer a holder.
    s.transition(&TokenRef::Id(first.id), State::Retired, None, NOW + 1)
        .unwrap();
    assert!(
        s.secret_holders(&Secret::from_bytes(SEED.to_vec()), Algorithm::Sha1)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn no_enrolment_code_with_under_ten_seconds_left() {
    // 30 s steps: 21 s into the step, 9 s are left: wait 9.
    assert_eq!(enrolment_wait(30, 1_700_000_010 + 21), 9);
    assert_eq!(
        enrolment_wait(30, 1_700_000_010 + 20),
        0,
        "10 s left is enough"
    );
    assert_eq!(enrolment_wait(30, 1_700_000_010 + 29), 1);
    assert_eq!(enrolment_wait(60, 1_700_000_040 + 51), 9);
    assert_eq!(enrolment_wait(60, 1_700_000_040), 0);
}
