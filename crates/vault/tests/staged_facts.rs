//! A large update of users' data on file, staged (SQLite): written in
//! parts that no other session sees until one publishing transaction, all
//! of it at once; one that crashes or fails half-way leaves nothing seen
//! (and the next open removes what it wrote); one published and not yet
//! moved into the records table is read right from where it is. On
//! PostgreSQL it is one transaction, as before. Small parts here stand for
//! the 2,000 records of a real one.

mod common;

use common::*;
use oathdesk_vault::{FactsUpdate, Session};

/// Records per part in these tests.
const PART: usize = 5;
const USERS: u32 = 23;

fn upn(n: u32) -> String {
    format!("person{n}@contoso.com")
}

fn seed(n: u32) -> Vec<u8> {
    let mut seed = n.to_be_bytes().to_vec();
    seed.resize(20, 0x5a);
    seed
}

/// A vault of `USERS` users, each with a mobile number `+1 555 0100 n` on
/// file.
fn people(backend: Backend) -> Fixture {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_tokens(
        (1..=USERS)
            .map(|n| token(&format!("P-{n:03}"), None, &seed(n), Some(&upn(n))))
            .collect(),
        NOW,
        "test",
    )
    .unwrap();
    s.update_user_facts(mobiles("0100"), "hr", false, NOW)
        .unwrap();
    f
}

/// Every user's mobile number `+1 555 <block> n`.
fn mobiles(block: &str) -> Vec<FactsUpdate> {
    (1..=USERS)
        .map(|n| FactsUpdate {
            upn: upn(n),
            display_name: None,
            values: [("mobile".to_owned(), Some(format!("+1 555 {block} {n}")))].into(),
        })
        .collect()
}

fn mobile(s: &mut Session, n: u32) -> Option<String> {
    s.user_facts(&upn(n), NOW)
        .unwrap()
        .get("mobile")
        .map(|f| f.value.clone())
}

/// Which block every user's mobile number is in, as another session sees
/// it: one block for all, or a mix.
fn blocks(s: &mut Session) -> Vec<String> {
    let mut seen: Vec<String> = (1..=USERS)
        .map(|n| {
            let number = mobile(s, n).expect("a mobile on file");
            number.split(' ').nth(2).unwrap().to_owned()
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

fn raw_count(f: &Fixture, sql: &str) -> i64 {
    rusqlite::Connection::open(f.path().unwrap())
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn updates_audited(f: &Fixture) -> i64 {
    raw_count(
        f,
        "SELECT count(*) FROM audit WHERE action = 'user.facts_update'",
    )
}

#[test]
fn a_staged_update_is_unseen_until_published_then_seen_whole_with_one_audit_entry() {
    let f = people(Backend::Sqlite);
    let mut importer = session(&f.location);
    let mut other = session(&f.location);
    let audited = updates_audited(&f);
    let parts = USERS as usize / PART + 1;
    let mut asked = Vec::new();
    let mut others = 0;
    let (report, transactions) = importer
        .update_user_facts_staged_for_tests(mobiles("0199"), "csv:sheet", NOW, PART, true, |n| {
            asked.push(n);
            // Before the publishing transaction (numbered `parts`): written
            // and unseen, the records are in the file and another session
            // reads every user's old number. After it: the new ones, all.
            let published = n > parts;
            assert!(raw_count(&f, "SELECT count(*) FROM import_records") > 0);
            let expected = if published { "0199" } else { "0100" };
            assert_eq!(blocks(&mut other), [expected], "part {n}");
            assert!(other.verify_vault().unwrap().intact);
            assert_eq!(
                updates_audited(&f),
                audited + others + i64::from(published),
                "audited with its publication"
            );
            // Other writers get their turn between the parts.
            other
                .update_user_facts(
                    vec![FactsUpdate {
                        upn: "nobody@contoso.com".into(),
                        display_name: None,
                        values: Default::default(),
                    }],
                    "other",
                    false,
                    NOW,
                )
                .unwrap();
            others += 1;
            true
        })
        .unwrap();
    // (The other writer's updates wrote no record: the batch was published
    // on its first try, every part in its own transaction.)
    assert_eq!(transactions, parts);
    assert_eq!(asked, (1..=parts + 1).collect::<Vec<_>>());
    assert_eq!(report.updated, u64::from(USERS));
    assert_eq!(report.unchanged, 0);
    assert_eq!(blocks(&mut other), ["0199"]);
    assert_eq!(updates_audited(&f), audited + 1 + others);
    // Moved into the records table, nothing left aside.
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_records"), 0);
    assert_eq!(
        raw_count(&f, "SELECT count(*) FROM import_batches WHERE records = 1"),
        0
    );
    assert!(other.verify_vault().unwrap().intact);
    assert!(other.verify_rows().unwrap().bad.is_empty());
}

#[test]
fn a_staged_update_that_crashes_half_way_leaves_nothing_seen_and_the_next_open_removes_it() {
    let f = people(Backend::Sqlite);
    let audited = updates_audited(&f);
    for always_let_in in [true, false] {
        let mut importer = session(&f.location);
        // It dies before its third part.
        let crashed = importer.update_user_facts_staged_for_tests(
            mobiles("0199"),
            "csv:sheet",
            NOW,
            PART,
            always_let_in,
            |n| n < 2,
        );
        assert!(crashed.is_err());
        if always_let_in {
            // Two parts committed, hidden.
            assert_eq!(
                raw_count(&f, "SELECT count(*) FROM import_records"),
                2 * PART as i64
            );
        } else {
            // One transaction, never committed: the crash took it all.
            assert_eq!(raw_count(&f, "SELECT count(*) FROM import_records"), 0);
        }
        assert_eq!(blocks(&mut importer), ["0100"]);
        assert_eq!(updates_audited(&f), audited);
        assert!(importer.verify_vault().unwrap().intact);
        drop(importer);
        // The next open finds no import running and removes its records.
        let mut next = session(&f.location);
        assert_eq!(raw_count(&f, "SELECT count(*) FROM import_records"), 0);
        assert_eq!(raw_count(&f, "SELECT count(*) FROM import_batches"), 0);
        assert_eq!(blocks(&mut next), ["0100"]);
        assert!(next.verify_rows().unwrap().bad.is_empty());
    }
    // And the same update then goes in whole.
    let mut s = session(&f.location);
    let (report, _) = s
        .update_user_facts_staged_for_tests(mobiles("0199"), "csv:sheet", NOW, PART, false, |_| {
            true
        })
        .unwrap();
    assert_eq!(report.updated, u64::from(USERS));
    assert_eq!(blocks(&mut s), ["0199"]);
    assert_eq!(updates_audited(&f), audited + 1);
}

#[test]
fn a_staged_update_whose_part_fails_removes_its_records() {
    let f = people(Backend::Sqlite);
    let audited = updates_audited(&f);
    let mut importer = session(&f.location);
    let failed = importer.update_user_facts_staged_for_tests(
        mobiles("0199"),
        "csv:sheet",
        NOW,
        PART,
        true,
        |n| {
            if n == 2 {
                // Behind the vault's back, a record where the next part
                // writes one: that part fails on the table's key.
                f.execute(
                    "INSERT INTO import_records (batch, kind, id, state, body, updated_at, mac) \
                     SELECT batch, kind, printf('%020d', 1 + (SELECT max(CAST(id AS INTEGER)) \
                     FROM import_records)), state, body, updated_at, mac \
                     FROM import_records LIMIT 1",
                );
            }
            true
        },
    );
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_records"), 0);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_batches"), 0);
    assert_eq!(blocks(&mut importer), ["0100"]);
    assert_eq!(updates_audited(&f), audited);
    assert!(importer.verify_rows().unwrap().bad.is_empty());
}

#[test]
fn published_records_not_moved_yet_are_read_from_where_they_are() {
    let f = people(Backend::Sqlite);
    let mut importer = session(&f.location);
    let parts = USERS as usize / PART + 1;
    // It dies after publishing, before moving the records.
    let (report, _) = importer
        .update_user_facts_staged_for_tests(mobiles("0199"), "csv:sheet", NOW, PART, false, |n| {
            n <= parts
        })
        .unwrap();
    assert_eq!(report.updated, u64::from(USERS));
    assert_eq!(
        raw_count(&f, "SELECT count(*) FROM import_records"),
        i64::from(USERS)
    );
    drop(importer);
    // Every session sees the update whole, signed.
    let mut other = session(&f.location);
    assert_eq!(blocks(&mut other), ["0199"]);
    assert!(other.verify_rows().unwrap().bad.is_empty());
    assert!(other.verify_vault().unwrap().intact);
    // A usual write of one user's data on file is newer than the batch's.
    other
        .update_user_facts(
            vec![FactsUpdate {
                upn: upn(7),
                display_name: None,
                values: [
                    ("mobile".to_owned(), Some("+1 555 0777 7".to_owned())),
                    ("mail".to_owned(), Some("p7@example.com".to_owned())),
                ]
                .into(),
            }],
            "admin",
            false,
            NOW,
        )
        .unwrap();
    assert_eq!(mobile(&mut other, 7).as_deref(), Some("+1 555 0777 7"));
    assert_eq!(mobile(&mut other, 8).as_deref(), Some("+1 555 0199 8"));
    assert!(other.verify_rows().unwrap().bad.is_empty());
    // A copy would miss them: refused until they are moved.
    let target = Fixture::empty(Backend::Sqlite);
    assert!(other.copy_to(&target.location, false, NOW).is_err());
    // The next large update moves them first, then writes its own.
    let mut next = session(&f.location);
    let mut updates = mobiles("0299");
    updates.retain(|u| u.upn != upn(7));
    next.update_user_facts_staged_for_tests(updates, "csv:sheet2", NOW, PART, false, |_| true)
        .unwrap();
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_records"), 0);
    assert_eq!(mobile(&mut next, 7).as_deref(), Some("+1 555 0777 7"));
    let facts = next.user_facts(&upn(7), NOW).unwrap();
    assert_eq!(facts["mail"].value, "p7@example.com");
    assert_eq!(mobile(&mut next, 8).as_deref(), Some("+1 555 0299 8"));
    assert!(next.verify_rows().unwrap().bad.is_empty());
}

#[test]
fn data_on_file_written_since_the_snapshot_makes_the_update_plan_again() {
    let f = people(Backend::Sqlite);
    let audited = updates_audited(&f);
    let mut importer = session(&f.location);
    let mut other = session(&f.location);
    let mut written = false;
    let (report, _) = importer
        .update_user_facts_staged_for_tests(mobiles("0199"), "csv:sheet", NOW, PART, true, |_| {
            if !written {
                // Another operator adds user 3's mail meanwhile.
                other
                    .update_user_facts(
                        vec![FactsUpdate {
                            upn: upn(3),
                            display_name: None,
                            values: [("mail".to_owned(), Some("p3@example.com".to_owned()))].into(),
                        }],
                        "admin",
                        false,
                        NOW,
                    )
                    .unwrap();
                written = true;
            }
            true
        })
        .unwrap();
    assert_eq!(report.updated, u64::from(USERS));
    // Both: the update was planned again on what the other wrote.
    let facts = other.user_facts(&upn(3), NOW).unwrap();
    assert_eq!(facts["mail"].value, "p3@example.com");
    assert_eq!(facts["mobile"].value, "+1 555 0199 3");
    assert_eq!(blocks(&mut other), ["0199"]);
    assert_eq!(
        updates_audited(&f),
        audited + 2,
        "the other's and the import's"
    );
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_records"), 0);
    // The first try's batch is gone; the second's is published.
    assert_eq!(
        raw_count(
            &f,
            "SELECT count(*) FROM import_batches WHERE visible_gen IS NULL"
        ),
        0
    );
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_batches"), 1);
}

/// PostgreSQL (and SQLite for a small one): one transaction, as before.
#[test]
fn on_postgres_a_large_update_is_one_transaction() {
    let f = people(Backend::Postgres);
    let mut s = session(&f.location);
    let (report, transactions) = s
        .update_user_facts_staged_for_tests(mobiles("0199"), "csv:sheet", NOW, PART, true, |_| {
            panic!("not staged: no part is asked for")
        })
        .unwrap();
    assert_eq!(transactions, 0);
    assert_eq!(report.updated, u64::from(USERS));
    assert_eq!(blocks(&mut s), ["0199"]);
    assert!(s.verify_rows().unwrap().bad.is_empty());
}
