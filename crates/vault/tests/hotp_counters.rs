//! HOTP counters: `token resync` by two consecutive codes within the
//! look-ahead, `token set-counter` for admins only; both signed and
//! audited. On both databases.

mod common;

use common::*;

use oathdesk_otp::{Algorithm, Digits, Hotp, Kind, Secret};
use oathdesk_vault::{Error, RESYNC_LOOK_AHEAD, Role, Unlock, Vault};

fn hotp_code(counter: u64) -> String {
    Hotp::new(
        &Secret::from_bytes(SEED.to_vec()),
        Algorithm::Sha1,
        Digits::SIX,
    )
    .generate(counter)
    .to_string()
}

fn audit_details(
    session: &mut oathdesk_vault::Session,
    action: &str,
) -> Vec<(String, serde_json::Value)> {
    session
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| (e.outcome, serde_json::from_str(&e.detail).unwrap()))
        .collect()
}

on_both_backends!(
    resync_finds_two_consecutive_codes_within_the_look_ahead,
    only_admins_set_counters_and_moving_back_is_said
);

fn hotp_token(serial: &str) -> oathdesk_vault::NewToken {
    let mut t = token(serial, None, SEED, None);
    t.credential.kind = Kind::Hotp { counter: 10 };
    t
}

fn resync_finds_two_consecutive_codes_within_the_look_ahead(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(hotp_token("HOTP0001"), NOW).unwrap();
    s.add_token(token("TOTP0001", None, SEED, None), NOW)
        .unwrap();

    // Pressed 500 times unseen: codes 510 and 511.
    let info = s
        .resync_hotp(&serial("HOTP0001"), &hotp_code(510), &hotp_code(511), NOW)
        .unwrap();
    assert_eq!(info.counter, Some(512));
    assert_eq!(
        audit_details(&mut s, "token.resync"),
        vec![("ok".to_owned(), serde_json::json!({"from": 10, "to": 512}))]
    );

    // Not consecutive, behind the counter, or past the look-ahead: refused,
    // the counter unchanged, the refusal audited.
    for (first, second) in [
        (520, 522),
        (400, 401),
        (512 + RESYNC_LOOK_AHEAD + 1, 512 + RESYNC_LOOK_AHEAD + 2),
    ] {
        let refused = s.resync_hotp(
            &serial("HOTP0001"),
            &hotp_code(first),
            &hotp_code(second),
            NOW,
        );
        assert!(
            matches!(refused, Err(Error::CodeMismatch { steps: 1000, .. })),
            "{first}/{second}: {refused:?}"
        );
    }
    assert_eq!(s.token(&serial("HOTP0001")).unwrap().0.counter, Some(512));
    let refusals = audit_details(&mut s, "token.resync")
        .into_iter()
        .filter(|(outcome, _)| outcome == "refused")
        .count();
    assert_eq!(refusals, 3);
    // The edge of the look-ahead is inside it.
    let edge = 512 + RESYNC_LOOK_AHEAD;
    let info = s
        .resync_hotp(
            &serial("HOTP0001"),
            &hotp_code(edge),
            &hotp_code(edge + 1),
            NOW,
        )
        .unwrap();
    assert_eq!(info.counter, Some(edge + 2));

    let totp = s.resync_hotp(&serial("TOTP0001"), "000000", "000001", NOW);
    assert!(matches!(totp, Err(Error::Invalid(m)) if m.contains("TOTP")));
    // The rows stay signed: a fresh session checks them.
    assert!(session(&f.location).verify_rows().unwrap().bad.is_empty());
}

fn only_admins_set_counters_and_moving_back_is_said(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(hotp_token("HOTP0002"), NOW).unwrap();
    s.add_operator(
        "pat",
        oathdesk_vault::NewOperator::Passphrase(b"pat pass", TEST_KDF),
        Role::Provisioner,
        NOW,
    )
    .unwrap();
    assert_eq!(
        s.set_hotp_counter(&serial("HOTP0002"), 40, NOW)
            .unwrap()
            .counter,
        Some(40)
    );
    s.set_hotp_counter(&serial("HOTP0002"), 7, NOW).unwrap();
    assert_eq!(
        audit_details(&mut s, "token.set-counter"),
        vec![
            (
                "ok".to_owned(),
                serde_json::json!({"from": 10, "to": 40, "backwards": false})
            ),
            (
                "ok".to_owned(),
                serde_json::json!({"from": 40, "to": 7, "backwards": true})
            ),
        ]
    );
    let mut pat = Vault::open_at(&f.location)
        .unwrap()
        .unlock("pat", Unlock::Passphrase(b"pat pass"))
        .unwrap();
    assert!(matches!(
        pat.set_hotp_counter(&serial("HOTP0002"), 99, NOW),
        Err(Error::Forbidden { .. })
    ));
    assert_eq!(s.token(&serial("HOTP0002")).unwrap().0.counter, Some(7));
}
