//! The web console's storage: accounts, grants, throttling, on both databases.

mod common;

use common::{Backend, Fixture, NOW, TEST_KDF as KDF};
use oathdesk_vault::crypto::VaultKey;
use oathdesk_vault::web::{GrantKind, SETUP_OPERATOR, ThrottlePolicy};
use oathdesk_vault::{Error, Session, Unlock, Vault};

const DAY: u64 = 86_400;

on_both_backends!(
    setup_makes_the_first_admin_and_ends_the_setup_code,
    grants_end_by_lifetime_idleness_logout_and_revocation,
    accounts_roles_passwords_and_the_last_admin,
    a_role_written_into_the_database_without_the_key_is_caught,
    rekey_ends_grants_and_keeps_accounts,
    failed_logins_lock_a_key_out_and_a_success_clears_it,
    a_command_line_operator_becomes_the_first_admin,
    bulk_transitions_are_all_or_nothing_and_devices_are_listed,
    a_password_an_admin_set_opens_nothing_but_its_own_change,
    a_burst_of_attempts_reserves_no_more_than_the_limit,
);

/// A vault made the way `oathdesk serve` makes one, set up with admin "ada".
fn set_up(backend: Backend) -> (Fixture, [u8; 32]) {
    let fixture = Fixture::empty(backend);
    Vault::create_at(&fixture.location, SETUP_OPERATOR, b"setup-code", KDF, NOW).unwrap();
    let mut setup = Vault::open_at(&fixture.location)
        .unwrap()
        .unlock(SETUP_OPERATOR, Unlock::Passphrase(b"setup-code"))
        .unwrap();
    let (secret, grant) = setup
        .complete_setup("ada", b"ada's long password", KDF, DAY, NOW)
        .unwrap();
    assert_eq!(grant.kind, GrantKind::Session);
    assert_eq!(grant.role, "admin");
    (fixture, *secret)
}

fn open(fixture: &Fixture, secret: &[u8; 32], now: u64) -> Result<Session, Error> {
    Vault::open_at(&fixture.location)
        .unwrap()
        .open_grant(secret, Some(1800), now, None)
        .map(|(session, _)| session)
}

/// As a console that holds the vault key (unsealed) opens a grant.
fn open_via(
    fixture: &Fixture,
    secret: &[u8; 32],
    now: u64,
    console: &VaultKey,
) -> Result<Session, Error> {
    Vault::open_at(&fixture.location)
        .unwrap()
        .open_grant(secret, Some(1800), now, Some(console))
        .map(|(session, _)| session)
}

/// hal, a helpdesk account, signs in at a console holding `console`.
fn hal_signs_in(fixture: &Fixture, password: &[u8], console: &VaultKey) -> Session {
    // Without the console, hal's password opens nothing (promise 2).
    assert!(matches!(
        Vault::open_at(&fixture.location)
            .unwrap()
            .unlock("hal", Unlock::Passphrase(password)),
        Err(Error::NoKeySlot { .. })
    ));
    Vault::open_at(&fixture.location)
        .unwrap()
        .unlock_with("hal", Unlock::Passphrase(password), console)
        .unwrap()
}

fn setup_makes_the_first_admin_and_ends_the_setup_code(backend: Backend) {
    let (fixture, secret) = set_up(backend);
    let mut vault = Vault::open_at(&fixture.location).unwrap();
    assert!(vault.web_accounts_exist().unwrap());
    let operators: Vec<String> = vault
        .operators()
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(operators, ["ada"]);
    assert!(matches!(
        vault.unlock(SETUP_OPERATOR, Unlock::Passphrase(b"setup-code")),
        Err(Error::UnknownOperator(_))
    ));
    // The session the setup started opens the vault, as ada.
    let mut session = open(&fixture, &secret, NOW + 10).unwrap();
    assert_eq!(session.operator(), "ada");
    assert_eq!(session.web_account().unwrap().role, "admin");
    let report = session.audit_verify().unwrap();
    assert_eq!(report.first_bad, None);
    // ada's password opens her slot like any operator's.
    Vault::open_at(&fixture.location)
        .unwrap()
        .unlock("ada", Unlock::Passphrase(b"ada's long password"))
        .unwrap();
}

fn grants_end_by_lifetime_idleness_logout_and_revocation(backend: Backend) {
    let (fixture, secret) = set_up(backend);
    assert!(open(&fixture, &secret, NOW + 1799).is_ok());
    // Used at NOW+1799 (written: more than a minute after the last write),
    // so idle counts from there.
    assert!(open(&fixture, &secret, NOW + 1799 + 1799).is_ok());
    assert!(matches!(
        open(&fixture, &secret, NOW + 1799 + 1799 + 1800),
        Err(Error::Unauthenticated(_))
    ));
    let mut wrong = secret;
    wrong[0] ^= 1;
    assert!(matches!(
        open(&fixture, &wrong, NOW),
        Err(Error::Unauthenticated(_))
    ));

    // A token outlives idleness but not its lifetime, and can be revoked.
    let mut session = open(&fixture, &secret, NOW + 60).unwrap();
    let (token, grant) = session
        .create_api_token("ci", &["helpdesk.code".into()], 7 * DAY, NOW + 60)
        .unwrap();
    assert_eq!(grant.scopes, ["helpdesk.code"]);
    let (_, opened) = Vault::open_at(&fixture.location)
        .unwrap()
        .open_grant(&token, Some(1800), NOW + 5 * DAY, None)
        .unwrap();
    assert_eq!(opened.kind, GrantKind::Token);
    assert_eq!(opened.handle, grant.handle);
    assert!(matches!(
        Vault::open_at(&fixture.location)
            .unwrap()
            .open_grant(&token, None, NOW + 8 * DAY, None),
        Err(Error::Unauthenticated(_))
    ));
    session
        .revoke_grant(&grant.handle, Some("ada"), NOW + 61)
        .unwrap();
    assert!(matches!(
        Vault::open_at(&fixture.location)
            .unwrap()
            .open_grant(&token, None, NOW + 62, None),
        Err(Error::Unauthenticated(_))
    ));
    // Deleting ended grants leaves the live ones.
    assert_eq!(
        Vault::open_at(&fixture.location)
            .unwrap()
            .end_expired_grants(NOW + 100)
            .unwrap(),
        0,
        "the session lasts a day, the revoked token is gone already"
    );
    session.end_grant(&secret, NOW + 63).unwrap();
    assert!(matches!(
        open(&fixture, &secret, NOW + 64),
        Err(Error::Unauthenticated(_))
    ));
}

fn accounts_roles_passwords_and_the_last_admin(backend: Backend) {
    let (fixture, secret) = set_up(backend);
    let mut admin = open(&fixture, &secret, NOW).unwrap();
    admin
        .add_web_account("hal", b"hal's initial pw", KDF, "helpdesk", true, NOW)
        .unwrap();
    assert!(matches!(
        admin.add_web_account("hal", b"another password", KDF, "auditor", false, NOW),
        Err(Error::Exists(_))
    ));
    assert!(matches!(
        admin.add_web_account("eve", b"short", KDF, "auditor", false, NOW),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        admin.add_web_account("eve", b"long enough pw", KDF, "root", false, NOW),
        Err(Error::Invalid(_))
    ));
    let console = admin.unseal_key("test", NOW).unwrap();
    // hal logs in with the password the admin set and must change it.
    let mut hal = hal_signs_in(&fixture, b"hal's initial pw", &console);
    let (hal_secret, grant) = hal.start_web_session(DAY, 2, NOW).unwrap();
    assert_eq!(grant.role, "helpdesk");
    assert!(hal.web_account().unwrap().must_change_password);
    hal.set_web_password("hal", b"hal's own password", KDF, false, NOW)
        .unwrap();
    // The password change ended hal's grants; the new password opens the slot.
    assert!(open_via(&fixture, &hal_secret, NOW + 1, &console).is_err());
    assert!(matches!(
        Vault::open_at(&fixture.location).unwrap().unlock_with(
            "hal",
            Unlock::Passphrase(b"hal's initial pw"),
            &console
        ),
        Err(Error::WrongPassphrase(_))
    ));
    let mut hal = hal_signs_in(&fixture, b"hal's own password", &console);
    assert!(!hal.web_account().unwrap().must_change_password);
    let (hal_secret, _) = hal.start_web_session(DAY, 0, NOW).unwrap();
    // hal's session opens only at a console that holds the key: the
    // session's secret and the database together open nothing.
    assert!(matches!(
        open(&fixture, &hal_secret, NOW + 1),
        Err(Error::Sealed)
    ));
    assert!(open_via(&fixture, &hal_secret, NOW + 1, &console).is_ok());
    // Nor does a console holding another vault's key.
    let stranger = VaultKey::generate().unwrap();
    assert!(open_via(&fixture, &hal_secret, NOW + 1, &stranger).is_err());

    // Changing a role ends the account's sessions.
    let mut admin = open(&fixture, &secret, NOW + 2).unwrap();
    admin
        .update_web_account("hal", Some("auditor"), None, NOW + 2)
        .unwrap();
    assert!(open_via(&fixture, &hal_secret, NOW + 3, &console).is_err());

    // The last enabled admin stays.
    assert!(matches!(
        admin.update_web_account("ada", Some("helpdesk"), None, NOW + 4),
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        admin.update_web_account("ada", None, Some(true), NOW + 4),
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        admin.remove_web_account("ada", true, NOW + 4),
        Err(Error::Refused(_))
    ));
    admin.remove_web_account("hal", true, NOW + 5).unwrap();
    let names: Vec<String> = admin
        .web_accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["ada"]);
    assert_eq!(admin.operators().unwrap().len(), 1);
}

fn a_role_written_into_the_database_without_the_key_is_caught(backend: Backend) {
    let (fixture, secret) = set_up(backend);
    let mut admin = open(&fixture, &secret, NOW).unwrap();
    admin
        .add_web_account("hal", b"hal's initial pw", KDF, "helpdesk", false, NOW)
        .unwrap();
    let console = admin.unseal_key("test", NOW).unwrap();
    let mut hal = hal_signs_in(&fixture, b"hal's initial pw", &console);
    let (hal_secret, _) = hal.start_web_session(DAY, 0, NOW).unwrap();
    fixture.execute("UPDATE web_accounts SET role = 'admin' WHERE name = 'hal'");
    let error = open_via(&fixture, &hal_secret, NOW + 1, &console)
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("changed outside oathdesk"),
        "{error}"
    );
    // An admin repairs it by setting the role again.
    let mut admin = open(&fixture, &secret, NOW + 2).unwrap();
    assert!(admin.web_accounts().is_err());
    admin
        .update_web_account("hal", Some("helpdesk"), None, NOW + 2)
        .unwrap();
    assert_eq!(admin.web_accounts().unwrap().len(), 2);
}

fn rekey_ends_grants_and_keeps_accounts(backend: Backend) {
    let (fixture, secret) = set_up(backend);
    let mut admin = open(&fixture, &secret, NOW).unwrap();
    admin.rekey(NOW + 1).unwrap();
    assert_eq!(admin.web_accounts().unwrap().len(), 1);
    assert!(matches!(
        open(&fixture, &secret, NOW + 2),
        Err(Error::Unauthenticated(_))
    ));
}

fn failed_logins_lock_a_key_out_and_a_success_clears_it(backend: Backend) {
    let (fixture, _) = set_up(backend);
    let mut vault = Vault::open_at(&fixture.location).unwrap();
    let policy = ThrottlePolicy {
        max_failures: 3,
        window: 900,
        lockout: 600,
    };
    let keys = vec![("account:ada".to_owned(), policy)];
    let names = vec!["account:ada".to_owned()];
    assert_eq!(vault.login_failed(&keys, NOW).unwrap(), None);
    assert_eq!(vault.login_failed(&keys, NOW + 1).unwrap(), None);
    assert_eq!(vault.login_locked(&names, NOW + 2).unwrap(), None);
    assert_eq!(vault.login_failed(&keys, NOW + 2).unwrap(), Some(NOW + 602));
    assert_eq!(
        vault.login_locked(&names, NOW + 3).unwrap(),
        Some(NOW + 602)
    );
    assert_eq!(vault.login_locked(&names, NOW + 602).unwrap(), None);
    // Failures spread beyond the window do not add up.
    let mut vault = Vault::open_at(&fixture.location).unwrap();
    for i in 0..5 {
        assert_eq!(
            vault.login_failed(&keys, NOW + 2000 + i * 1000).unwrap(),
            None
        );
    }
    vault.login_failed(&keys, NOW + 6500).unwrap();
    assert_eq!(vault.login_succeeded("account:ada").unwrap(), 2);
    assert_eq!(vault.login_succeeded("account:ada").unwrap(), 0);
}

fn a_command_line_operator_becomes_the_first_admin(backend: Backend) {
    let fixture = Fixture::empty(backend);
    Vault::create_at(&fixture.location, "alice", b"alice pass", KDF, NOW).unwrap();
    assert!(
        !Vault::open_at(&fixture.location)
            .unwrap()
            .web_accounts_exist()
            .unwrap()
    );
    let mut session = Vault::open_at(&fixture.location)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"alice pass"))
        .unwrap();
    // Not a web account yet: no browser session.
    assert!(matches!(
        session.start_web_session(DAY, 0, NOW),
        Err(Error::Unauthenticated(_))
    ));
    session.claim_first_admin(NOW).unwrap();
    assert!(matches!(
        session.claim_first_admin(NOW),
        Err(Error::Refused(_))
    ));
    let (secret, grant) = session.start_web_session(DAY, 0, NOW).unwrap();
    assert_eq!(grant.role, "admin");
    open(&fixture, &secret, NOW + 1).unwrap();
    // Once it has ended, the sweep deletes it.
    let mut vault = Vault::open_at(&fixture.location).unwrap();
    assert_eq!(vault.end_expired_grants(NOW + DAY - 1).unwrap(), 0);
    assert_eq!(vault.end_expired_grants(NOW + DAY).unwrap(), 1);
}

fn bulk_transitions_are_all_or_nothing_and_devices_are_listed(backend: Backend) {
    use oathdesk_otp::{Credential, Secret};
    use oathdesk_vault::NewToken;
    use oathdesk_vault::model::{DeviceKind, State, TokenRef};

    let (fixture, secret) = set_up(backend);
    let mut admin = open(&fixture, &secret, NOW).unwrap();
    let token = |serial: &str, user: Option<&str>| NewToken {
        serial: Some(serial.into()),
        slot: None,
        device_kind: DeviceKind::Classic,
        manufacturer: Some("Token2".into()),
        model: Some("C202".into()),
        device_slots: 1,
        credential: Credential::totp(Secret::from_bytes(b"12345678901234567890".to_vec())),
        label: None,
        user: user.map(str::to_owned),
        state: State::Stock,
    };
    admin
        .add_tokens(
            vec![
                token("A1", Some("u1@x")),
                token("A2", Some("u2@x")),
                token("A3", None),
            ],
            NOW,
            "token.add",
        )
        .unwrap();
    let refs = |serials: &[&str]| -> Vec<TokenRef> {
        serials.iter().map(|s| s.parse().unwrap()).collect()
    };
    // A3 is in stock and cannot be shipped: nothing moves.
    let error = admin
        .transition_all(&refs(&["A1", "A2", "A3"]), State::Shipped, Some("DHL"), NOW)
        .unwrap_err();
    assert!(error.to_string().contains("A3"), "{error}");
    let states: Vec<State> = admin
        .tokens(&Default::default())
        .unwrap()
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(states, [State::Assigned, State::Assigned, State::Stock]);
    let moved = admin
        .transition_all(&refs(&["A1", "A2"]), State::Shipped, Some("DHL"), NOW)
        .unwrap();
    assert_eq!(moved.len(), 2);
    assert!(moved.iter().all(|t| t.state == State::Shipped));
    let last = admin.audit_entries().unwrap().pop().unwrap();
    assert_eq!(last.action, "token.shipped");
    assert!(last.detail.contains("A1") && last.detail.contains("DHL"));
    let devices: Vec<String> = admin
        .devices()
        .unwrap()
        .into_iter()
        .map(|d| d.serial)
        .collect();
    assert_eq!(devices, ["A1", "A2", "A3"]);
}

fn a_password_an_admin_set_opens_nothing_but_its_own_change(backend: Backend) {
    use oathdesk_vault::Permission;
    let (fixture, secret) = set_up(backend);
    let mut admin = open(&fixture, &secret, NOW).unwrap();
    admin
        .add_web_account("hal", b"hal's initial pw", KDF, "helpdesk", true, NOW)
        .unwrap();
    let console = admin.unseal_key("test", NOW).unwrap();
    // A session and a token of the account, both from before the change.
    let mut hal = hal_signs_in(&fixture, b"hal's initial pw", &console);
    let (session, _) = hal.start_web_session(DAY, 0, NOW).unwrap();
    let (token, _) = hal
        .create_api_token("script", &["inventory.read".to_owned()], DAY, NOW)
        .unwrap();
    for grant in [&session, &token] {
        let mut opened = open_via(&fixture, grant, NOW + 1, &console).unwrap();
        assert!(opened.password_change_pending());
        assert!(!opened.may(Permission::InventoryRead));
        assert!(matches!(
            opened.authorize(Permission::InventoryRead),
            Err(Error::PasswordChangeRequired)
        ));
        assert!(matches!(opened.users(), Err(Error::PasswordChangeRequired)));
        assert!(matches!(
            opened.create_api_token("more", &["inventory.read".to_owned()], DAY, NOW),
            Err(Error::PasswordChangeRequired)
        ));
        assert!(matches!(
            opened.web_grants(Some("hal")),
            Err(Error::PasswordChangeRequired)
        ));
    }
    // A token has no 'account' scope: it cannot even change the password.
    let mut by_token = open_via(&fixture, &token, NOW + 1, &console).unwrap();
    assert!(by_token.authorize_password_change().is_err());
    // The session may read its account and change its password, and then
    // start a session that works.
    let mut opened = open_via(&fixture, &session, NOW + 1, &console).unwrap();
    opened.authorize_password_change().unwrap();
    assert!(opened.web_account().unwrap().must_change_password);
    opened
        .set_web_password("hal", b"hal's own password", KDF, false, NOW + 2)
        .unwrap();
    assert!(!opened.password_change_pending());
    let (fresh, _) = opened.start_web_session(DAY, 0, NOW + 2).unwrap();
    let mut fresh = open_via(&fixture, &fresh, NOW + 3, &console).unwrap();
    assert!(fresh.users().is_ok());
    // The change ended the token made before it.
    assert!(open_via(&fixture, &token, NOW + 3, &console).is_err());
}

fn a_burst_of_attempts_reserves_no_more_than_the_limit(backend: Backend) {
    let (fixture, _) = set_up(backend);
    let policy = ThrottlePolicy {
        max_failures: 5,
        window: 900,
        lockout: 600,
    };
    let keys = vec![
        ("account:ada".to_owned(), policy),
        (
            "client:127.0.0.1".to_owned(),
            ThrottlePolicy {
                max_failures: 20,
                ..policy
            },
        ),
    ];
    // 21 attempts at once: five are let through to the password check,
    // from as many threads as there are attempts.
    let granted: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..21)
            .map(|_| {
                let location = fixture.location.clone();
                let keys = keys.clone();
                scope.spawn(move || {
                    let mut vault = Vault::open_at(&location).unwrap();
                    vault.login_attempt(&keys, NOW).unwrap().is_none()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| usize::from(w.join().unwrap()))
            .sum()
    });
    assert_eq!(granted, 5);
    let mut vault = Vault::open_at(&fixture.location).unwrap();
    // A failure while the limit is taken locks the account at once (the
    // attempts still being checked count)...
    for _ in 0..4 {
        assert_eq!(
            vault.login_attempt_failed(&keys, NOW + 1).unwrap(),
            Some(NOW + 1 + 600)
        );
    }
    assert!(vault.login_attempt(&keys, NOW + 1).unwrap().is_some());
    // ...but the fifth, with the right password, still signs in: the
    // account's failures and lock end, the client's attempt is taken back.
    vault
        .login_attempt_succeeded("account:ada", &["client:127.0.0.1".to_owned()])
        .unwrap();
    assert!(vault.login_attempt(&keys, NOW + 2).unwrap().is_none());
    // Five wrong ones in a row lock the account.
    vault.login_attempt_failed(&keys, NOW + 2).unwrap();
    for _ in 0..4 {
        assert!(vault.login_attempt(&keys, NOW + 3).unwrap().is_none());
        vault.login_attempt_failed(&keys, NOW + 3).unwrap();
    }
    assert_eq!(
        vault.login_attempt(&keys, NOW + 4).unwrap(),
        Some(NOW + 3 + 600)
    );
    // An attempt that checked no password does not count.
    let other = vec![("account:hal".to_owned(), policy)];
    for _ in 0..10 {
        assert!(vault.login_attempt(&other, NOW).unwrap().is_none());
        vault
            .login_attempt_void(&["account:hal".to_owned()])
            .unwrap();
    }
}
