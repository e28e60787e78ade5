//! PostgreSQL imports written before the writers' lock (issue 19): while
//! an import's rows are being written, other sessions get helpdesk codes
//! and append audit entries without waiting for it; a console's identify
//! index, refreshed while the import is in flight, finds the imported
//! tokens after the commit; a writer whose row collides with the import's
//! leaves one of the two whole and the vault verifying.
//!
//! The waits are bounded ([`BOUND`]): a regression fails instead of hanging.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use oathdesk_otp::Window;
use oathdesk_vault::model::State;
use oathdesk_vault::store::{CredentialFilter, Store, StoreTx};
use oathdesk_vault::testing::ScratchSchema;
use oathdesk_vault::{AnyStore, Error, FactsUpdate, IdentifyCache, Location, Session};

/// More than a COPY's threshold, and than the late lock's.
const MANY: usize = 300;

/// How long anything here may wait; far more than it needs.
const BOUND: Duration = Duration::from_secs(30);

fn seed_of(i: usize) -> Vec<u8> {
    format!("late seed {i:013}").into_bytes()
}

fn batch(first: usize, count: usize) -> Vec<oathdesk_vault::NewToken> {
    (first..first + count)
        .map(|i| {
            token(
                &format!("LATE{i:06}"),
                None,
                &seed_of(i),
                Some(&format!("late{i}@contoso.com")),
            )
        })
        .collect()
}

/// `work` on a thread of its own; its answer, or a failure of the test if
/// it took longer than [`BOUND`] (it waited for the import).
fn without_waiting<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(work());
    });
    receive
        .recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("{what} waited for the import in flight"))
}

/// Dana (token DESK1, seed `SEED`) gets her helpdesk code without waiting.
fn dana_gets_a_code(location: &Location) {
    let at = location.clone();
    let grant = without_waiting("a helpdesk code", move || {
        session(&at).helpdesk_code(&helpdesk("dana@contoso.com"), NOW)
    });
    assert_eq!(grant.unwrap().code, code_at(SEED, NOW));
}

fn postgres() -> Fixture {
    fixture(Backend::Postgres)
}

#[test]
fn helpdesk_codes_and_audit_entries_do_not_wait_for_an_import_in_flight() {
    let f = postgres();
    let mut s = session(&f.location);
    s.add_token(token("DESK1", None, SEED, Some("dana@contoso.com")), NOW)
        .unwrap();
    let location = f.location.clone();
    let added = s
        .add_tokens_with_a_change_in_flight(batch(0, MANY), NOW, || {
            dana_gets_a_code(&location);
            // The import's rows are nobody else's business until it commits.
            let at = location.clone();
            let unseen = without_waiting("a code for a user being imported", move || {
                session(&at).helpdesk_code(&helpdesk("late7@contoso.com"), NOW)
            });
            assert!(unseen.is_err(), "{unseen:?}");
            let at = location.clone();
            without_waiting("a user added", move || {
                session(&at).add_user("erin@contoso.com", None, NOW)
            })
            .unwrap();
        })
        .unwrap();
    assert_eq!(added.len(), MANY);
    // The import's entry came after the entries appended while it was in
    // flight: it took the chain's tail under the lock.
    let last = last_entry(&f.location);
    assert_eq!(last.action, "token.add");
    assert!(last.detail.contains(&format!("{MANY}")), "{}", last.detail);

    let grant = s
        .helpdesk_code(&helpdesk("late7@contoso.com"), NOW)
        .unwrap();
    assert_eq!(grant.code, code_at(&seed_of(7), NOW));
    assert_eq!(
        s.tokens(&CredentialFilter::default()).unwrap().len(),
        MANY + 1
    );
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}

/// The audit chain's last entry, read as another process would.
fn last_entry(location: &Location) -> oathdesk_vault::store::AuditRow {
    let mut store = AnyStore::open(location).unwrap();
    let tx = store.read().unwrap();
    tx.audit_last().unwrap().unwrap()
}

/// The vault's identify generation, read as another process would.
fn marker(location: &Location) -> i64 {
    let mut store = AnyStore::open(location).unwrap();
    let tx = store.read().unwrap();
    tx.identify_generation().unwrap()
}

fn find(s: &mut Session, cache: &IdentifyCache, seed: &[u8]) -> Vec<(String, State)> {
    let first = code_at(seed, NOW);
    let second = code_at(seed, NOW + 30);
    s.identify_cached(cache, &[&first, &second], NOW, Window::symmetric(1), NOW)
        .unwrap()
        .into_iter()
        .map(|hit| (hit.credential, hit.state))
        .collect()
}

/// The import's rows are copied before the lock and published under it:
/// a console that refreshed its index while the import was in flight (to
/// a generation other writers raised meanwhile, past any the import could
/// have drawn then) loads them at its next refresh.
#[test]
fn an_index_refreshed_while_an_import_is_in_flight_finds_the_import_after_it() {
    let f = postgres();
    let mut console = session(&f.location);
    console
        .add_token(token("ID-KEPT", None, &seed_of(100_000), None), NOW)
        .unwrap();
    console
        .add_token(token("ID-PURGED", None, &seed_of(100_001), None), NOW)
        .unwrap();
    let cache = IdentifyCache::new();
    assert_eq!(find(&mut console, &cache, &seed_of(100_000)).len(), 1);
    let before = marker(&f.location);

    let mut importer = session(&f.location);
    let location = f.location.clone();
    let mut during = None;
    let added = importer
        .add_tokens_with_a_change_in_flight(batch(0, MANY), NOW, || {
            // Writers that move the marker, under the lock the import has
            // not taken yet: a purge (a trigger bumps the marker) and a
            // token added.
            let at = location.clone();
            without_waiting("a purge", move || {
                session(&at).purge(&serial("ID-PURGED"), NOW)
            })
            .unwrap();
            let at = location.clone();
            without_waiting("a token added", move || {
                session(&at).add_token(token("ID-MEANWHILE", None, &seed_of(100_002), None), NOW)
            })
            .unwrap();
            // The console refreshes now: it sees those, not the import.
            assert_eq!(find(&mut console, &cache, &seed_of(100_002)).len(), 1);
            assert!(find(&mut console, &cache, &seed_of(100_001)).is_empty());
            assert!(find(&mut console, &cache, &seed_of(5)).is_empty());
            during = cache.generation();
        })
        .unwrap();
    assert_eq!(added.len(), MANY);
    let during = during.unwrap();
    assert!(during > before, "the console refreshed in flight");
    assert!(marker(&f.location) > during, "the import raised the marker");

    for i in [0, 5, MANY - 1] {
        assert_eq!(
            find(&mut console, &cache, &seed_of(i)),
            vec![(format!("LATE{i:06}"), State::Assigned)],
            "token {i}"
        );
    }
    let mut kept = cache.credential_ids();
    let mut fresh = console.identify_index().unwrap().credential_ids();
    kept.sort_unstable();
    fresh.sort_unstable();
    assert_eq!(kept, fresh);
    assert_eq!(kept.len(), MANY + 2);
    assert_eq!(cache.generation(), Some(marker(&f.location)));
    // A later change is loaded on its own: the import's batch is not
    // loaded again.
    let opened = cache.secrets_opened();
    session(&f.location)
        .add_token(token("ID-LATER", None, &seed_of(100_003), None), NOW)
        .unwrap();
    assert_eq!(find(&mut console, &cache, &seed_of(100_003)).len(), 1);
    assert_eq!(cache.secrets_opened(), opened + 1);
    assert!(console.verify_vault().unwrap().intact);
}

/// Returns once a session of the scratch database waits for another's
/// uncommitted row (fails the test after [`BOUND`]).
fn until_a_writer_waits_for_a_row(schema: &ScratchSchema) {
    let mut client = schema.client();
    let started = Instant::now();
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event = 'transactionid'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            started.elapsed() < BOUND,
            "the writer never met the import's row"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A writer adds a token with one of the import's serials after the
/// import copied its rows: it waits for the import's row while holding the
/// writers' lock. The import, which would wait for the lock in turn, sees
/// that and gives way rather than leave PostgreSQL to fail one of the two:
/// it rolls back, the writer's token is added, and the import, written
/// again under the lock, finds the serial taken and refuses as it always
/// did. The vault verifies.
#[test]
fn a_writer_colliding_with_an_import_in_flight_leaves_one_of_them_whole() {
    // A database of its own: the test watches its locks.
    let f = Fixture::empty_in_own_database(Backend::Postgres);
    oathdesk_vault::Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    session(&f.location)
        .set_helpdesk_policy(&desk_policy(), NOW)
        .unwrap();
    let schema = f.schema.as_ref().unwrap();
    let mut s = session(&f.location);
    let location = f.location.clone();
    let mut writer = None;
    let imported = s.add_tokens_with_a_change_in_flight(batch(0, MANY), NOW, || {
        let at = location.clone();
        writer = Some(std::thread::spawn(move || {
            session(&at).add_token(
                token("LATE000007", None, b"first come seed 1234", None),
                NOW,
            )
        }));
        until_a_writer_waits_for_a_row(schema);
    });
    let written = writer.unwrap().join().unwrap();
    let listed = s.tokens(&CredentialFilter::default()).unwrap();
    let holders: Vec<_> = listed
        .iter()
        .filter(|t| t.serial.as_deref() == Some("LATE000007"))
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    match (&imported, &written) {
        (Err(Error::Exists(_)), Ok(_)) => {
            assert_eq!(listed.len(), 1);
            assert!(s.users().unwrap().is_empty(), "no user of the batch stays");
        }
        (imported, written) => panic!(
            "the writer should have won, the import refused: import {:?}, writer {:?}",
            imported.as_ref().map(Vec::len),
            written.as_ref().map(|_| ())
        ),
    }
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}

// A large update of users' data on file (a spreadsheet import's second
// step) is written the same way.

fn person(i: usize) -> String {
    format!("late{i}@contoso.com")
}

/// Every one of `count` users' `name`, `value i`.
fn facts(count: usize, name: &str, value: &str) -> Vec<FactsUpdate> {
    (0..count)
        .map(|i| FactsUpdate {
            upn: person(i),
            display_name: None,
            values: [(name.to_owned(), Some(format!("{value} {i}")))].into(),
        })
        .collect()
}

fn fact(s: &mut Session, i: usize, name: &str) -> Option<String> {
    s.user_facts(&person(i), NOW)
        .unwrap()
        .get(name)
        .map(|f| f.value.clone())
}

/// A vault with `MANY` users (added by a large update, itself written
/// before the lock) and dana's token; in a database of its own.
fn people() -> Fixture {
    let f = Fixture::empty_in_own_database(Backend::Postgres);
    oathdesk_vault::Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    let mut s = session(&f.location);
    s.set_helpdesk_policy(&desk_policy(), NOW).unwrap();
    s.add_token(token("DESK1", None, SEED, Some("dana@contoso.com")), NOW)
        .unwrap();
    let report = s
        .update_user_facts(facts(MANY, "mobile", "+1 555 0100"), "hr", true, NOW)
        .unwrap();
    assert_eq!(report.created, MANY as u64);
    f
}

#[test]
fn a_large_update_of_data_on_file_does_not_hold_up_the_helpdesk() {
    let f = people();
    let mut s = session(&f.location);
    let location = f.location.clone();
    let (report, late) = s
        .update_user_facts_with_a_change_in_flight(
            facts(MANY, "mobile", "+1 555 0199"),
            "csv:sheet",
            NOW,
            || {
                dana_gets_a_code(&location);
                // The update is nobody else's business until it commits.
                let at = location.clone();
                let before = without_waiting("a read of data on file", move || {
                    fact(&mut session(&at), 7, "mobile")
                });
                assert_eq!(before.as_deref(), Some("+1 555 0100 7"));
            },
        )
        .unwrap();
    assert!(late, "written before the writers' lock");
    assert_eq!(report.updated, MANY as u64);
    // Its entry came after the helpdesk's: it took the chain's tail under
    // the lock.
    let last = last_entry(&f.location);
    assert_eq!(last.action, "user.facts_update");
    assert_eq!(fact(&mut s, 7, "mobile").as_deref(), Some("+1 555 0199 7"));
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}

/// Another user's data on file written while the update is in flight: the
/// update read the data on file before that write, so it is planned again
/// under the lock, and both stay.
#[test]
fn data_on_file_written_meanwhile_is_kept() {
    let f = people();
    let mut s = session(&f.location);
    let location = f.location.clone();
    let (report, late) = s
        .update_user_facts_with_a_change_in_flight(
            facts(MANY - 1, "mobile", "+1 555 0199"),
            "csv:sheet",
            NOW,
            || {
                let at = location.clone();
                without_waiting("a small update of data on file", move || {
                    let last = vec![FactsUpdate {
                        upn: person(MANY - 1),
                        display_name: None,
                        values: [("mobile".to_owned(), Some("+1 555 0777".to_owned()))].into(),
                    }];
                    session(&at).update_user_facts(last, "admin", false, NOW)
                })
                .unwrap();
            },
        )
        .unwrap();
    assert!(!late, "planned again under the lock");
    assert_eq!(report.updated, MANY as u64 - 1);
    assert_eq!(fact(&mut s, 0, "mobile").as_deref(), Some("+1 555 0199 0"));
    assert_eq!(
        fact(&mut s, MANY - 1, "mobile").as_deref(),
        Some("+1 555 0777")
    );
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}

/// A writer that holds the lock and meets a record the update in flight
/// wrote waits for it; the update gives way (PostgreSQL never has to fail
/// one of the two), and is planned again after the writer: the writer's
/// value and the update's both stay.
#[test]
fn a_writer_meeting_the_updates_record_goes_first() {
    let f = people();
    let schema = f.schema.as_ref().unwrap();
    let mut s = session(&f.location);
    let location = f.location.clone();
    let mut writer = None;
    let (report, late) = s
        .update_user_facts_with_a_change_in_flight(
            facts(MANY, "mobile", "+1 555 0199"),
            "csv:sheet",
            NOW,
            || {
                let at = location.clone();
                writer = Some(std::thread::spawn(move || {
                    let one = vec![FactsUpdate {
                        upn: person(7),
                        display_name: None,
                        values: [("employee_id".to_owned(), Some("E-7".to_owned()))].into(),
                    }];
                    session(&at).update_user_facts(one, "admin", false, NOW)
                }));
                until_a_writer_waits_for_a_row(schema);
            },
        )
        .unwrap();
    let written = writer.unwrap().join().unwrap();
    assert_eq!(written.unwrap().updated, 1, "the writer was not failed");
    assert!(!late, "the update gave way and was written again");
    assert_eq!(report.updated, MANY as u64);
    assert_eq!(fact(&mut s, 7, "employee_id").as_deref(), Some("E-7"));
    assert_eq!(fact(&mut s, 7, "mobile").as_deref(), Some("+1 555 0199 7"));
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}

/// A writer adds a token (a device, a user, a credential, an event) while
/// an import is in flight: its ids come after the blocks drawn for the
/// import, so neither waits for the other's rows and the import is
/// published as written, before the lock (a row of `import_batches`), not
/// written again under it.
#[test]
fn ids_drawn_for_an_import_are_nobody_elses() {
    let f = Fixture::empty_in_own_database(Backend::Postgres);
    oathdesk_vault::Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    let schema = f.schema.as_ref().unwrap();
    let mut s = session(&f.location);
    let location = f.location.clone();
    let added = s
        .add_tokens_with_a_change_in_flight(batch(0, MANY), NOW, || {
            let at = location.clone();
            without_waiting("a token added", move || {
                session(&at).add_token(
                    token("MEANWHILE1", None, SEED, Some("erin@contoso.com")),
                    NOW,
                )
            })
            .unwrap();
        })
        .unwrap();
    assert_eq!(added.len(), MANY);
    let mut client = schema.client();
    let published: i64 = client
        .query_one("SELECT count(*) FROM import_batches", &[])
        .unwrap()
        .get(0);
    assert_eq!(published, 1, "the import was written again under the lock");
    let meanwhile: i64 = client
        .query_one(
            "SELECT c.id FROM credentials c JOIN devices d ON d.id = c.device_id \
             WHERE d.serial = 'MEANWHILE1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        added.iter().all(|row| row.id < meanwhile),
        "the writer's credential came after the import's block"
    );
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
}
