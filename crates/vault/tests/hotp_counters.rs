//! HOTP counters: `token resync` by two consecutive codes within the
//! look-ahead, `token set-counter` for admins only; both signed and
//! audited; helpdesk codes of HOTP tokens. On both databases.

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
    only_admins_set_counters_and_moving_back_is_said,
    hotp_helpdesk_codes_are_ahead_of_the_counter_and_never_prove_delivery
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

/// The helpdesk gives an HOTP token the code at its stored counter and
/// moves the counter past it; each code shown is a released counter, so a
/// delivery with it is refused and the next, never-shown code proves it.
fn hotp_helpdesk_codes_are_ahead_of_the_counter_and_never_prove_delivery(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let mut t = token("HOTP0003", None, SEED, Some("bob@contoso.com"));
    t.credential.kind = Kind::Hotp { counter: 10 };
    s.add_token(t, NOW).unwrap();

    let first = s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW).unwrap();
    assert_eq!(first.code, hotp_code(10), "RFC 4226 HOTP at the counter");
    assert_eq!(first.counter, 10);
    assert!(first.event_based);
    assert_eq!(s.token(&serial("HOTP0003")).unwrap().0.counter, Some(11));

    let second = s
        .helpdesk_code(&helpdesk("bob@contoso.com"), NOW + 1)
        .unwrap();
    assert_eq!(
        (second.code.as_str(), second.counter),
        (hotp_code(11).as_str(), 11)
    );
    assert_eq!(s.token(&serial("HOTP0003")).unwrap().0.counter, Some(12));
    // Audited like a TOTP helpdesk code, with the counter released.
    let granted: Vec<u64> = audit_details(&mut s, "helpdesk.code")
        .into_iter()
        .filter(|(outcome, _)| outcome == "granted")
        .map(|(_, detail)| detail["counter"].as_u64().unwrap())
        .collect();
    assert_eq!(granted, vec![10, 11]);

    for released in [10, 11] {
        let refused = s.deliver(&serial("HOTP0003"), &hotp_code(released), NOW + 2);
        assert!(
            matches!(refused, Err(Error::CodeReleased { .. })),
            "counter {released}: {refused:?}"
        );
    }
    let delivered = s
        .deliver(&serial("HOTP0003"), &hotp_code(12), NOW + 3)
        .unwrap();
    assert_eq!(delivered.drift_steps, 0);
    assert!(session(&f.location).verify_rows().unwrap().bad.is_empty());
}
