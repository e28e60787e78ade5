//! Imports large enough to go in bulk (binary COPY on PostgreSQL): the rows
//! they write verify, and one that fails half-way leaves nothing behind. A
//! batch prepared before its write transaction (SQLite) is planned again
//! when another writer added rows in between.

mod common;

use common::*;

use oathdesk_otp::Kind;
use oathdesk_vault::Error;
use oathdesk_vault::store::CredentialFilter;

on_both_backends!(
    a_bulk_import_writes_rows_that_verify,
    an_import_failing_half_way_leaves_nothing_behind,
    a_duplicate_serial_in_the_batch_leaves_nothing_behind,
    a_token_added_while_a_batch_is_prepared_moves_the_batch_on,
    a_serial_taken_while_a_batch_is_prepared_refuses_the_batch,
);

/// More rows than the PostgreSQL store sends in one INSERT: devices, users
/// and credentials all go in a COPY.
const MANY: usize = 300;

fn seed_of(i: usize) -> Vec<u8> {
    format!("bulk seed {i:011}").into_bytes()
}

fn batch(first: usize, count: usize) -> Vec<oathdesk_vault::NewToken> {
    (first..first + count)
        .map(|i| {
            token(
                &format!("BULK{i:06}"),
                None,
                &seed_of(i),
                Some(&format!("bulk{i}@contoso.com")),
            )
        })
        .collect()
}

fn a_bulk_import_writes_rows_that_verify(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    // One user and one device the vault has already: the batch reuses the
    // user and adds a slot's credential to nobody else's device.
    s.add_tokens(batch(0, 1), NOW, "test").unwrap();
    let mut tokens = batch(1, MANY);
    tokens.push(token(
        "BULKX",
        None,
        b"one more seed 123456",
        Some("BULK0@contoso.com"),
    ));
    let added = s.add_tokens(tokens, NOW, "test").unwrap();
    assert_eq!(added.len(), MANY + 1);

    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
    // Every credential, user and device row was checked, and more.
    assert!(report.rows.checked >= 3 * (MANY as u64 + 1), "{report:?}");
    let listed = s.tokens(&CredentialFilter::default()).unwrap();
    assert_eq!(listed.len(), MANY + 2);
    assert_eq!(
        s.users().unwrap().len(),
        MANY + 1,
        "the existing user was reused"
    );

    // The rows read back as written: a helpdesk code from a copied row is
    // the code of its seed, and the user given in another case has both.
    let grant = s
        .helpdesk_code(&helpdesk("bulk123@contoso.com"), NOW)
        .unwrap();
    assert_eq!(grant.serial.as_deref(), Some("BULK000123"));
    assert_eq!(grant.code, code_at(&seed_of(123), NOW));
    let both = s
        .tokens(&CredentialFilter {
            user_upn: Some("bulk0@contoso.com".into()),
            ..CredentialFilter::default()
        })
        .unwrap();
    assert_eq!(both.len(), 2);
    assert!(s.verify_vault().unwrap().intact);
}

fn an_import_failing_half_way_leaves_nothing_behind(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_tokens(batch(0, 5), NOW, "test").unwrap();
    let before = f.dump();

    // A counter past what the database holds, two thirds into the batch:
    // devices and users are written by then, and part of the credentials.
    let mut tokens = batch(5, MANY);
    tokens[MANY * 2 / 3].credential.kind = Kind::Hotp { counter: u64::MAX };
    let failed = s.add_tokens(tokens, NOW, "test");
    assert!(failed.is_err(), "a counter past i64 is refused: {failed:?}");
    assert_eq!(f.dump(), before, "nothing of the batch stays");

    // The connection is fine afterwards, and the same batch without the bad
    // row goes in whole.
    let added = s.add_tokens(batch(5, MANY), NOW, "test").unwrap();
    assert_eq!(added.len(), MANY);
    assert_eq!(
        s.tokens(&CredentialFilter::default()).unwrap().len(),
        MANY + 5
    );
    assert!(s.verify_vault().unwrap().intact);
}

fn a_duplicate_serial_in_the_batch_leaves_nothing_behind(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let before = f.dump();
    let mut tokens = batch(0, MANY);
    let again = tokens[10].serial.clone();
    tokens[MANY - 1].serial = again;
    let failed = s.add_tokens(tokens, NOW, "test");
    assert!(matches!(failed, Err(Error::Exists(_))), "{failed:?}");
    assert_eq!(f.dump(), before);
    assert!(s.verify_vault().unwrap().intact);
}

/// Another writer adds a token after the batch was prepared (ids taken
/// after the highest, secrets sealed to them) and before it is written:
/// the batch must not take the other token's ids, and both stay whole.
fn a_token_added_while_a_batch_is_prepared_moves_the_batch_on(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_tokens(batch(0, 1), NOW, "test").unwrap();
    let location = f.location.clone();
    let meanwhile_seed = b"meanwhile seed 12345";
    let added = s
        .add_tokens_with_a_change_between(batch(1, MANY), NOW, || {
            session(&location)
                .add_token(
                    token(
                        "MEANWHILE1",
                        None,
                        meanwhile_seed,
                        Some("meanwhile@contoso.com"),
                    ),
                    NOW,
                )
                .unwrap();
        })
        .unwrap();
    assert_eq!(added.len(), MANY);

    let listed = s.tokens(&CredentialFilter::default()).unwrap();
    assert_eq!(listed.len(), MANY + 2);
    let ids: std::collections::HashSet<i64> = listed.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), MANY + 2, "every credential has an id of its own");
    assert_eq!(s.users().unwrap().len(), MANY + 2);
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
    // Each secret opens under its own row: the batch was sealed to the ids
    // it was written with.
    let grant = s
        .helpdesk_code(&helpdesk("bulk77@contoso.com"), NOW)
        .unwrap();
    assert_eq!(grant.code, code_at(&seed_of(77), NOW));
    let grant = s
        .helpdesk_code(&helpdesk("meanwhile@contoso.com"), NOW)
        .unwrap();
    assert_eq!(grant.code, code_at(meanwhile_seed, NOW));
}

/// Another writer takes one of the batch's serials after the batch was
/// prepared: the write finds the vault changed, plans again, and refuses
/// the whole batch; the other writer's token stays.
fn a_serial_taken_while_a_batch_is_prepared_refuses_the_batch(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let location = f.location.clone();
    let failed = s.add_tokens_with_a_change_between(batch(0, MANY), NOW, || {
        session(&location)
            .add_token(
                token("BULK000007", None, b"first come seed 1234", None),
                NOW,
            )
            .unwrap();
    });
    assert!(matches!(failed, Err(Error::Exists(_))), "{failed:?}");
    let listed = s.tokens(&CredentialFilter::default()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].serial.as_deref(), Some("BULK000007"));
    assert!(s.users().unwrap().is_empty(), "no user of the batch stays");
    assert!(s.verify_vault().unwrap().intact);
}
