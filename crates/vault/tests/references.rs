//! PostgreSQL without the foreign keys of `credentials` and `events`
//! (migration 14): an import proves its rows' parents before it commits,
//! and triggers keep a device, user or credential with children from being
//! deleted — also by a transaction that runs beside an import. SQLite keeps
//! its foreign keys; these tests are PostgreSQL's.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;

use ::postgres::error::SqlState;
use oathdesk_vault::Error;
use oathdesk_vault::model::{CredentialRow, Custody, State};
use oathdesk_vault::postgres::PgStore;
use oathdesk_vault::store::{CredentialFilter, Store, StoreTx};

fn client(f: &Fixture) -> ::postgres::Client {
    f.schema.as_ref().expect("a PostgreSQL fixture").client()
}

fn url(f: &Fixture) -> String {
    f.schema.as_ref().expect("a PostgreSQL fixture").url()
}

fn id_of(client: &mut ::postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get(0)
}

fn count(client: &mut ::postgres::Client, sql: &str) -> i64 {
    id_of(client, sql)
}

/// The SQLSTATE a statement failed with (it must fail).
fn refusal(client: &mut ::postgres::Client, sql: &str) -> SqlState {
    let error = client
        .batch_execute(sql)
        .expect_err(&format!("{sql} should be refused"));
    error.code().cloned().unwrap_or_else(|| panic!("{error}"))
}

/// Waits until the backend `pid` waits for a lock another holds (at most
/// a minute: the test fails rather than hang).
fn wait_until_blocked(monitor: &mut ::postgres::Client, pid: i32) {
    for _ in 0..6000 {
        let blocked: bool = monitor
            .query_one("SELECT cardinality(pg_blocking_pids($1)) > 0", &[&pid])
            .unwrap()
            .get(0);
        if blocked {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("backend {pid} never waited for a lock");
}

/// Waits until some backend waits for a lock that `pid` holds.
fn wait_until_someone_waits_for(monitor: &mut ::postgres::Client, pid: i32) {
    for _ in 0..6000 {
        let waiting: i64 = monitor
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                &[&pid],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nobody waited for backend {pid}");
}

fn pid_of(client: &mut ::postgres::Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0)
}

/// A vault with one token in slot 0 of the 100-slot device MOLTO for bob,
/// and one on device SOLO for carol.
fn vault_with_tokens() -> Fixture {
    let f = fixture(Backend::Postgres);
    let mut s = session(&f.location);
    s.add_tokens(
        vec![
            token("MOLTO", Some(0), SEED, Some("bob@contoso.com")),
            token("SOLO", None, SEED, Some("carol@contoso.com")),
        ],
        NOW,
        "test",
    )
    .unwrap();
    f
}

/// Removes MOLTO's credential (and its event) by hand, so that MOLTO is a
/// device without children; returns MOLTO's id.
fn empty_molto(client: &mut ::postgres::Client) -> i64 {
    let device = id_of(client, "SELECT id FROM devices WHERE serial = 'MOLTO'");
    client
        .batch_execute(&format!(
            "DELETE FROM events WHERE credential_id IN (SELECT id FROM credentials WHERE device_id = {device}); \
             DELETE FROM credentials WHERE device_id = {device};"
        ))
        .unwrap();
    device
}

#[test]
fn the_foreign_keys_of_credentials_and_events_are_gone_and_the_triggers_are_there() {
    let f = vault_with_tokens();
    let mut c = client(&f);
    let keys: Vec<String> = c
        .query(
            "SELECT conrelid::regclass::text || ' -> ' || confrelid::regclass::text FROM pg_constraint \
             WHERE contype = 'f' AND connamespace = current_schema()::regnamespace ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("credentials ->") || k.starts_with("events ->")),
        "{keys:?}"
    );
    // The other references to credentials keep their keys.
    assert!(
        keys.contains(&"released_steps -> credentials".to_owned()),
        "{keys:?}"
    );
    for (table, trigger) in [
        ("devices", "reference_lock"),
        ("devices", "reference_gone"),
        ("devices", "reference_key"),
        ("users", "reference_lock"),
        ("credentials", "reference_gone"),
        ("credentials", "reference_parents"),
        ("events", "reference_parents"),
    ] {
        let found = count(
            &mut c,
            &format!(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = '{table}'::regclass \
                 AND tgname = '{trigger}'"
            ),
        );
        assert_eq!(found, 1, "{table}.{trigger}");
    }
}

#[test]
fn a_parent_with_children_is_not_deleted_nor_renumbered_by_hand() {
    let f = vault_with_tokens();
    let mut c = client(&f);
    let credential = id_of(
        &mut c,
        "SELECT c.id FROM credentials c JOIN devices d ON d.id = c.device_id WHERE d.serial = 'MOLTO'",
    );
    for sql in [
        "DELETE FROM devices WHERE serial = 'MOLTO'".to_owned(),
        "DELETE FROM devices".to_owned(),
        "DELETE FROM users WHERE lower(upn) = 'bob@contoso.com'".to_owned(),
        format!("DELETE FROM credentials WHERE id = {credential}"),
        "UPDATE devices SET id = id + 1000 WHERE serial = 'MOLTO'".to_owned(),
        "UPDATE users SET id = id + 1000".to_owned(),
        format!("UPDATE credentials SET id = id + 1000 WHERE id = {credential}"),
        "TRUNCATE devices".to_owned(),
        "TRUNCATE users".to_owned(),
        // A child pointed at a parent that does not exist, as the key refused.
        format!("UPDATE credentials SET user_id = 999999 WHERE id = {credential}"),
        format!("UPDATE credentials SET device_id = 999999, slot = 5 WHERE id = {credential}"),
        format!("UPDATE events SET credential_id = 999999 WHERE credential_id = {credential}"),
    ] {
        assert_eq!(
            refusal(&mut c, &sql),
            SqlState::FOREIGN_KEY_VIOLATION,
            "{sql}"
        );
    }
    let mut s = session(&f.location);
    assert_eq!(s.tokens(&CredentialFilter::default()).unwrap().len(), 2);
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");

    // Without its children a parent goes, as it did with the keys; a
    // child may move to a parent that exists.
    let solo_user = id_of(
        &mut c,
        "SELECT id FROM users WHERE lower(upn) = 'carol@contoso.com'",
    );
    c.batch_execute(&format!(
        "UPDATE credentials SET user_id = {solo_user} WHERE id = {credential}"
    ))
    .unwrap();
    c.batch_execute("DELETE FROM users WHERE lower(upn) = 'bob@contoso.com'")
        .unwrap();
    let device = empty_molto(&mut c);
    c.batch_execute(&format!("DELETE FROM devices WHERE id = {device}"))
        .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM devices WHERE serial = 'MOLTO'"
        ),
        0
    );
}

#[test]
fn an_import_whose_device_is_deleted_meanwhile_fails_and_writes_nothing() {
    let f = vault_with_tokens();
    let mut deleter = client(&f);
    let mut monitor = client(&f);
    let device = id_of(
        &mut deleter,
        "SELECT id FROM devices WHERE serial = 'MOLTO'",
    );
    let credentials_before = count(&mut monitor, "SELECT count(*) FROM credentials");
    let audit_before = count(&mut monitor, "SELECT count(*) FROM audit");
    // Someone deletes MOLTO by hand, its credential first, and has not
    // committed yet when an import that adds slot 1 of MOLTO plans.
    let deleter_pid = pid_of(&mut deleter);
    deleter
        .batch_execute(&format!(
            "BEGIN; \
             DELETE FROM events WHERE credential_id IN (SELECT id FROM credentials WHERE device_id = {device}); \
             DELETE FROM credentials WHERE device_id = {device}; \
             DELETE FROM devices WHERE id = {device};"
        ))
        .unwrap();
    let location = f.location.clone();
    let (done, result) = mpsc::channel();
    let importer = std::thread::spawn(move || {
        let mut s = session(&location);
        let outcome = s.add_tokens(
            vec![token("MOLTO", Some(1), b"another seed 1234567", None)],
            NOW + 10,
            "test",
        );
        done.send(outcome.map(|rows| rows.len())).unwrap();
    });
    // The import saw MOLTO (the delete was not committed) and now waits
    // for the deleter; the deleter commits.
    wait_until_someone_waits_for(&mut monitor, deleter_pid);
    deleter.batch_execute("COMMIT").unwrap();
    let outcome = result
        .recv_timeout(Duration::from_secs(120))
        .expect("the import ends");
    importer.join().unwrap();
    match outcome {
        Err(Error::MissingReference { row, parent }) => {
            assert!(row.starts_with("credential "), "{row}");
            assert_eq!(parent, format!("device {device}"));
        }
        other => panic!("expected a missing device, got {other:?}"),
    }
    // Nothing of the import stayed: no credential, no event, no audit entry.
    assert_eq!(
        count(&mut monitor, "SELECT count(*) FROM credentials"),
        credentials_before - 1
    );
    assert_eq!(
        count(
            &mut monitor,
            &format!("SELECT count(*) FROM credentials WHERE device_id = {device}")
        ),
        0
    );
    assert_eq!(
        count(&mut monitor, "SELECT count(*) FROM audit"),
        audit_before
    );
}

/// What a store-level import of one credential in slot 1 of `device`
/// writes (the store does not look into the secret or the MAC).
fn row_for(device: i64, id: i64) -> CredentialRow {
    CredentialRow {
        id,
        device_id: Some(device),
        slot: Some(1),
        kind: "totp".into(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: Some(30),
        t0: Some(0),
        counter: None,
        issuer: None,
        label: None,
        state: State::Burned,
        custody: Custody::Held,
        sealed_secret: Some(vec![7; 60]),
        user_id: None,
        drift_steps: None,
        purge_after: None,
        created_at: NOW,
        updated_at: NOW,
        serial: None,
        upn: None,
        manufacturer: None,
        model: None,
    }
}

#[test]
fn a_delete_waits_for_an_uncommitted_import_and_is_then_refused() {
    let f = vault_with_tokens();
    let mut c = client(&f);
    let device = empty_molto(&mut c);
    let mut deleter = client(&f);
    let deleter_pid = pid_of(&mut deleter);
    let mut monitor = client(&f);

    let mut store = PgStore::open(&url(&f)).unwrap();
    let tx = store.write().unwrap();
    let id = tx.credential_ids(1).unwrap()[0];
    tx.credentials_insert(&[row_for(device, id)], &[vec![1; 32]])
        .unwrap();
    // The import has written and checked its row, and not committed: a
    // delete of its device by hand waits for it...
    let delete = std::thread::spawn(move || {
        deleter
            .batch_execute(&format!("DELETE FROM devices WHERE id = {device}"))
            .map_err(|e| e.code().cloned())
    });
    wait_until_blocked(&mut monitor, deleter_pid);
    assert!(!delete.is_finished());
    tx.commit().unwrap();
    // ... and then sees the new credential, and is refused.
    let refused = delete.join().unwrap();
    assert_eq!(refused, Err(Some(SqlState::FOREIGN_KEY_VIOLATION)));
    assert_eq!(
        count(
            &mut monitor,
            &format!("SELECT count(*) FROM credentials WHERE device_id = {device}")
        ),
        1
    );
    assert_eq!(
        count(
            &mut monitor,
            &format!("SELECT count(*) FROM devices WHERE id = {device}")
        ),
        1
    );
}

#[test]
fn a_delete_waits_for_children_being_written_even_before_their_check() {
    // A transaction writes a credential of MOLTO by hand (no check, no
    // lock of MOLTO's row) and has not committed: the delete of MOLTO
    // waits for it all the same (the trigger's table lock), then sees the
    // credential and is refused.
    let f = vault_with_tokens();
    let mut c = client(&f);
    let device = empty_molto(&mut c);
    let mut writer = client(&f);
    writer
        .batch_execute(&format!(
            "BEGIN; INSERT INTO credentials (device_id, slot, kind, algorithm, digits, state, \
             custody, created_at, updated_at) VALUES ({device}, 3, 'totp', 'SHA1', 6, 'burned', \
             'held', 0, 0)"
        ))
        .unwrap();
    let mut deleter = client(&f);
    let deleter_pid = pid_of(&mut deleter);
    let delete = std::thread::spawn(move || {
        deleter
            .batch_execute(&format!("DELETE FROM devices WHERE id = {device}"))
            .map_err(|e| e.code().cloned())
    });
    let mut monitor = client(&f);
    wait_until_blocked(&mut monitor, deleter_pid);
    writer.batch_execute("COMMIT").unwrap();
    assert_eq!(
        delete.join().unwrap(),
        Err(Some(SqlState::FOREIGN_KEY_VIOLATION))
    );
    assert_eq!(
        count(
            &mut monitor,
            &format!("SELECT count(*) FROM devices WHERE id = {device}")
        ),
        1
    );
}

#[test]
fn a_delete_in_a_repeatable_read_transaction_is_refused() {
    let f = vault_with_tokens();
    let mut c = client(&f);
    let device = empty_molto(&mut c);
    // A REPEATABLE READ transaction takes its snapshot, then an import adds
    // a credential to MOLTO and commits: the snapshot does not see it, so a
    // delete checked against it would leave the credential without its
    // device. Such a delete is refused outright.
    let mut deleter = client(&f);
    deleter
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM credentials")
        .unwrap();
    let mut s = session(&f.location);
    s.add_tokens(
        vec![token("MOLTO", Some(1), b"another seed 1234567", None)],
        NOW + 10,
        "test",
    )
    .unwrap();
    assert_eq!(
        refusal(
            &mut deleter,
            &format!("DELETE FROM devices WHERE id = {device}")
        ),
        SqlState::FEATURE_NOT_SUPPORTED
    );
    deleter.batch_execute("ROLLBACK").unwrap();
    // Also without an import beside it; READ COMMITTED sees the credential.
    assert_eq!(
        refusal(
            &mut deleter,
            &format!("BEGIN ISOLATION LEVEL SERIALIZABLE; DELETE FROM devices WHERE id = {device}")
        ),
        SqlState::FEATURE_NOT_SUPPORTED
    );
    deleter.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        refusal(
            &mut deleter,
            &format!("DELETE FROM devices WHERE id = {device}")
        ),
        SqlState::FOREIGN_KEY_VIOLATION
    );
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}

fn seed_of(i: usize) -> Vec<u8> {
    format!("refs seed {i:011}").into_bytes()
}

#[test]
fn imports_onto_existing_devices_and_users_verify_clean() {
    let f = vault_with_tokens();
    let mut s = session(&f.location);
    // New devices and users, in bulk (COPY), beside existing ones: bob and
    // carol, and MOLTO's free slots.
    let mut tokens: Vec<oathdesk_vault::NewToken> = (0..300)
        .map(|i| {
            token(
                &format!("REFS{i:06}"),
                None,
                &seed_of(i),
                Some(&format!("refs{i}@contoso.com")),
            )
        })
        .collect();
    for slot in 1..80 {
        let user = if slot % 2 == 0 {
            "bob@contoso.com"
        } else {
            "carol@contoso.com"
        };
        tokens.push(token(
            "MOLTO",
            Some(slot),
            &seed_of(1000 + slot as usize),
            Some(user),
        ));
    }
    let added = s.add_tokens(tokens, NOW, "test").unwrap();
    assert_eq!(added.len(), 379);
    // And a few, below the COPY threshold, onto existing users only.
    s.add_tokens(
        vec![
            token("FEW1", None, &seed_of(2001), Some("refs7@contoso.com")),
            token("FEW2", None, &seed_of(2002), Some("bob@contoso.com")),
        ],
        NOW,
        "test",
    )
    .unwrap();
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(s.tokens(&CredentialFilter::default()).unwrap().len(), 383);
    // Every event has its credential, every credential its device and user.
    let mut c = client(&f);
    for sql in [
        "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM credentials c WHERE c.id = e.credential_id)",
        "SELECT count(*) FROM credentials c WHERE c.device_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = c.device_id)",
        "SELECT count(*) FROM credentials c WHERE c.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id)",
    ] {
        assert_eq!(count(&mut c, sql), 0, "{sql}");
    }
    // A state change writes its event through the checked single insert.
    let molto5 = serial("MOLTO:5");
    s.transition(&molto5, State::Lost, Some("left on a train"), NOW + 60)
        .unwrap();
    let (_, history) = s.token(&molto5).unwrap();
    assert_eq!(history.len(), 2);
}

#[test]
fn the_migration_applies_to_a_vault_that_has_data() {
    // A vault with data, taken back to schema version 13 by hand: the
    // foreign keys as migration 1 made them, no migration 14 (and none of
    // migration 15, the staged records' tables).
    let f = fixture(Backend::Postgres);
    let mut s = session(&f.location);
    s.add_tokens(
        (0..100)
            .map(|i| {
                token(
                    &format!("OLD{i:04}"),
                    None,
                    &seed_of(i),
                    Some(&format!("old{i}@contoso.com")),
                )
            })
            .collect(),
        NOW,
        "test",
    )
    .unwrap();
    drop(s);
    let mut c = client(&f);
    c.batch_execute(
        "DROP TRIGGER reference_lock ON devices; DROP TRIGGER reference_gone ON devices; \
         DROP TRIGGER reference_key ON devices; DROP TRIGGER reference_lock ON users; \
         DROP TRIGGER reference_gone ON users; DROP TRIGGER reference_key ON users; \
         DROP TRIGGER reference_lock ON credentials; DROP TRIGGER reference_gone ON credentials; \
         DROP TRIGGER reference_key ON credentials; DROP TRIGGER reference_parents ON credentials; \
         DROP TRIGGER reference_parents ON events; \
         DROP FUNCTION reference_lock_children(); DROP FUNCTION reference_refuse_orphans(); \
         DROP FUNCTION reference_check_parents(); \
         ALTER TABLE credentials ADD CONSTRAINT credentials_device_id_fkey \
             FOREIGN KEY (device_id) REFERENCES devices (id); \
         ALTER TABLE credentials ADD CONSTRAINT credentials_user_id_fkey \
             FOREIGN KEY (user_id) REFERENCES users (id); \
         ALTER TABLE events ADD CONSTRAINT events_credential_id_fkey \
             FOREIGN KEY (credential_id) REFERENCES credentials (id); \
         DROP TABLE import_records; DROP TABLE import_generations; \
         ALTER TABLE import_batches DROP COLUMN records; \
         DELETE FROM schema_migrations WHERE version >= 14;",
    )
    .unwrap();
    let keys = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
                AND conrelid IN ('credentials'::regclass, 'events'::regclass)";
    assert_eq!(count(&mut c, keys), 3);
    assert_eq!(
        count(&mut c, "SELECT max(version) FROM schema_migrations"),
        13
    );

    let mut s = session(&f.location);
    assert_eq!(count(&mut c, keys), 0);
    assert_eq!(
        count(&mut c, "SELECT max(version) FROM schema_migrations"),
        oathdesk_vault::migrations::LATEST
    );
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(s.tokens(&CredentialFilter::default()).unwrap().len(), 100);
    s.add_tokens(
        vec![token("NEW1", None, &seed_of(500), Some("old3@contoso.com"))],
        NOW,
        "test",
    )
    .unwrap();
    assert_eq!(
        refusal(
            &mut c,
            "DELETE FROM users WHERE lower(upn) = 'old3@contoso.com'"
        ),
        SqlState::FOREIGN_KEY_VIOLATION
    );
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}
