//! `Session::copy_to`: a vault moved between SQLite and PostgreSQL (every
//! direction) keeps its secrets sealed, its ids, its operators and its
//! audit chain, and goes on working where it arrives.

mod common;

use common::*;
use oathdesk_otp::{Kind, Window};
use oathdesk_vault::model::State;
use oathdesk_vault::store::{CredentialFilter, Store, StoreTx};
use oathdesk_vault::{AnyStore, Error, IdentifyCache, NewOperator, Session, Unlock, Vault};

#[test]
fn sqlite_to_postgres() {
    copy_between(Backend::Sqlite, Backend::Postgres);
}

#[test]
fn postgres_to_sqlite() {
    copy_between(Backend::Postgres, Backend::Sqlite);
}

#[test]
fn sqlite_to_sqlite() {
    copy_between(Backend::Sqlite, Backend::Sqlite);
}

#[test]
fn postgres_to_postgres() {
    copy_between(Backend::Postgres, Backend::Postgres);
}

on_both_backends!(
    a_vault_at_the_target_is_kept_unless_replaced,
    a_broken_chain_is_not_copied
);

/// A vault with a bit of everything: two operators (passphrase and age
/// identity), two key epochs, devices with profiles, HOTP, a delivered and
/// purged token, a lost one, settings, granted and refused helpdesk codes.
/// Returns carl's identity file.
fn populate(s: &mut Session) -> String {
    let identity = age::x25519::Identity::generate();
    let carl = identity.to_public().to_string();
    s.add_operator(
        "carl",
        NewOperator::Recipient(&carl),
        oathdesk_vault::Role::Admin,
        NOW,
    )
    .unwrap();
    s.set_setting("helpdesk.codes_per_hour", 2, NOW).unwrap();
    s.add_user("bob@contoso.com", Some("Bob"), NOW).unwrap();
    for slot in 0..3u32 {
        s.add_token(
            token("MOLTO-1", Some(slot), &[slot as u8 + 1; 20], None),
            NOW,
        )
        .unwrap();
    }
    let mut hotp = token("EVT-1", None, b"an hotp secret seed!", None);
    hotp.credential.kind = Kind::Hotp { counter: 7 };
    s.add_token(hotp, NOW).unwrap();
    s.add_token(token("SHIP-1", None, SEED, Some("bob@contoso.com")), NOW)
        .unwrap();
    s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW).unwrap();
    s.rekey(NOW + 1).unwrap();
    s.add_token(
        token(
            "DONE-1",
            None,
            b"delivered and purged",
            Some("dave@contoso.com"),
        ),
        NOW + 2,
    )
    .unwrap();
    s.deliver(
        &serial("DONE-1"),
        &code_at(b"delivered and purged", NOW + 2),
        NOW + 2,
    )
    .unwrap();
    s.add_token(
        token("LOST-1", None, b"lost token seed.....", None),
        NOW + 3,
    )
    .unwrap();
    s.transition(
        &serial("LOST-1"),
        State::Lost,
        Some("left on a train"),
        NOW + 3,
    )
    .unwrap();
    s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW + 4)
        .unwrap();
    assert!(
        s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW + 5)
            .is_err()
    );
    use age::secrecy::ExposeSecret;
    identity.to_string().expose_secret().to_owned()
}

fn sealed_secrets(location: &oathdesk_vault::Location) -> Vec<(i64, Option<Vec<u8>>)> {
    let mut store = AnyStore::open(location).unwrap();
    let tx = store.read().unwrap();
    tx.credentials(&CredentialFilter::default())
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row.sealed_secret))
        .collect()
}

fn copy_between(from: Backend, to: Backend) {
    let source = fixture(from);
    let target = Fixture::empty(to);
    let mut s = session(&source.location);
    let carl_identity = populate(&mut s);
    let report = s.copy_to(&target.location, false, NOW + 10).unwrap();
    assert_eq!(report.to, target.location.to_string());
    let rows = |name: &str| report.tables.iter().find(|(t, _)| t == name).unwrap().1;
    assert_eq!(rows("credentials"), 7);
    assert_eq!(rows("operators"), 2);
    assert_eq!(rows("audit_keys"), 2, "both key epochs");
    // Parents before children.
    let order: Vec<&str> = report.tables.iter().map(|(t, _)| t.as_str()).collect();
    let at = |name: &str| order.iter().position(|t| *t == name).unwrap();
    assert!(at("users") < at("credentials") && at("credentials") < at("events"));

    // The copy holds the same rows: the source's audit log ends with the
    // copy itself, and the copy's log is the same, entry for entry.
    let source_log = s.audit_entries().unwrap();
    assert_eq!(source_log.last().unwrap().action, "vault.copy");
    assert_eq!(report.audit_entries, source_log.len() as u64);
    let mut c = session(&target.location);
    assert_eq!(c.audit_entries().unwrap(), source_log);
    let verified = c.audit_verify().unwrap();
    assert_eq!(verified.first_bad, None);
    assert_eq!(verified.head, report.head);
    // Every signed row of the copy still carries a valid signature (ids
    // and row MACs travel together), and the copy acts on its rows.
    let rows = c.verify_rows().unwrap();
    assert!(rows.signed && rows.bad.is_empty(), "{rows:?}");
    assert_eq!(rows.checked, s.verify_rows().unwrap().checked);
    let all = CredentialFilter::default();
    assert_eq!(c.tokens(&all).unwrap(), s.tokens(&all).unwrap());
    assert_eq!(c.users().unwrap(), s.users().unwrap());
    assert_eq!(c.operators().unwrap(), s.operators().unwrap());
    assert_eq!(
        c.token(&serial("LOST-1")).unwrap(),
        s.token(&serial("LOST-1")).unwrap()
    );
    // Secrets were not opened and sealed again: the bytes are the same.
    assert_eq!(
        sealed_secrets(&target.location),
        sealed_secrets(&source.location)
    );

    // It works where it arrived: secrets open, the rate limit remembers
    // the codes granted in the source, the other operator gets in, and new
    // rows get new ids.
    let (_, credential) = c.reveal(&serial("EVT-1")).unwrap();
    assert_eq!(credential.secret.as_bytes(), b"an hotp secret seed!");
    assert_eq!(credential.kind, Kind::Hotp { counter: 7 });
    let err = c
        .helpdesk_code(&helpdesk("bob@contoso.com"), NOW + 6)
        .unwrap_err();
    assert!(err.to_string().starts_with("rate limit"), "{err}");
    // The copy's identify index: built whole on the copy, then kept current
    // by the copy's own marker (the copied rows keep the source's change
    // numbers) — a token added after the copy is found by the same index.
    let cache = IdentifyCache::new();
    let codes = [code_at(SEED, NOW + 11), code_at(SEED, NOW + 41)];
    let found = |c: &mut Session| -> Vec<String> {
        let mut hits: Vec<String> = c
            .identify_cached(
                &cache,
                &[&codes[0], &codes[1]],
                NOW + 11,
                Window::symmetric(1),
                NOW + 11,
            )
            .unwrap()
            .into_iter()
            .map(|hit| hit.credential)
            .collect();
        hits.sort();
        hits
    };
    assert_eq!(found(&mut c), ["SHIP-1"]);
    let added = c
        .add_token(
            token("NEW-1", None, SEED, Some("erin@contoso.com")),
            NOW + 11,
        )
        .unwrap();
    assert_eq!(added.id, 8);
    assert_eq!(found(&mut c), ["NEW-1", "SHIP-1"]);
    c.add_user("frank@contoso.com", None, NOW + 11).unwrap();
    assert_eq!(c.audit_verify().unwrap().first_bad, None);
    let mut as_carl = Vault::open_at(&target.location)
        .unwrap()
        .unlock("carl", Unlock::Identity(&carl_identity))
        .unwrap();
    assert!(as_carl.reveal(&serial("MOLTO-1:2")).is_ok());
    assert!(
        as_carl.reveal(&serial("DONE-1")).is_err(),
        "purged stays purged"
    );
}

fn a_vault_at_the_target_is_kept_unless_replaced(backend: Backend) {
    let source = fixture(Backend::Sqlite);
    let target = Fixture::empty(backend);
    Vault::create_at(&target.location, "mallory", b"other pass", TEST_KDF, NOW).unwrap();
    let mut s = session(&source.location);
    s.add_user("bob@contoso.com", None, NOW).unwrap();
    let err = s.copy_to(&target.location, false, NOW).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} already holds a vault: pass --replace to overwrite it with this one",
            target.location
        )
    );
    // Nothing was recorded for a copy that did not start (init, signing
    // of the new vault's rows, the tests' policy, the user).
    assert_eq!(s.audit_entries().unwrap().len(), 4);
    let report = s.copy_to(&target.location, true, NOW).unwrap();
    assert_eq!(report.audit_entries, 5);
    let err = Vault::open_at(&target.location)
        .unwrap()
        .unlock("mallory", Unlock::Passphrase(b"other pass"))
        .err()
        .unwrap();
    assert!(matches!(err, Error::UnknownOperator(_)), "{err}");
    let mut c = session(&target.location);
    assert_eq!(c.users().unwrap().len(), 1);
    assert_eq!(c.audit_verify().unwrap().entries, 5);
}

fn a_broken_chain_is_not_copied(backend: Backend) {
    let source = fixture(backend);
    let target = Fixture::empty(Backend::Sqlite);
    session(&source.location)
        .add_user("bob@contoso.com", None, NOW)
        .unwrap();
    source.execute("UPDATE audit SET \"user\" = 'mallory@contoso.com' WHERE seq = 2");
    let mut s = session(&source.location);
    let err = s.copy_to(&target.location, false, NOW).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the audit chain of this vault is broken at entry 2"),
        "{err}"
    );
    assert!(!target.path().unwrap().exists(), "no target was made");
}
