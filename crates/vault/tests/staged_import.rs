//! Staged imports (SQLite): a large import written in short transactions
//! is seen by no reader until its last transaction, then by every reader
//! at once; one that fails half-way removes its rows, and one that crashed
//! is removed by the next open. Small parts here stand for the 2,000
//! credentials of a real one.

mod common;

use common::*;
use oathdesk_otp::Window;
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{IdentifyCache, NewToken, Session};

/// Credentials per transaction in these tests.
const PART: usize = 10;
const BATCH: u32 = 50;

fn seed(n: u32) -> Vec<u8> {
    let mut seed = n.to_be_bytes().to_vec();
    seed.resize(20, 0x3c);
    seed
}

fn staged(n: u32) -> NewToken {
    token(
        &format!("STAGED-{n:03}"),
        None,
        &seed(n),
        Some(&format!("staged{n}@contoso.com")),
    )
}

fn batch() -> Vec<NewToken> {
    (1..=BATCH).map(staged).collect()
}

/// What identify finds for two consecutive codes of `seed`.
fn find(s: &mut Session, cache: &IdentifyCache, seed: &[u8]) -> Vec<String> {
    let first = code_at(seed, NOW);
    let second = code_at(seed, NOW + 30);
    s.identify_cached(cache, &[&first, &second], NOW, Window::symmetric(1), NOW)
        .unwrap()
        .into_iter()
        .map(|hit| hit.credential)
        .collect()
}

/// A count read straight from the file, past the vault's reads.
fn raw_count(f: &Fixture, sql: &str) -> i64 {
    rusqlite::Connection::open(f.path().unwrap())
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn all(s: &mut Session) -> usize {
    s.tokens(&CredentialFilter::default()).unwrap().len()
}

#[test]
fn a_staged_import_is_unseen_until_published_then_seen_by_every_reader() {
    let f = fixture(Backend::Sqlite);
    let mut importer = session(&f.location);
    importer
        .add_token(token("OLD-1", None, &seed(0), Some("old@contoso.com")), NOW)
        .unwrap();
    let mut reader = session(&f.location);
    let cache = IdentifyCache::new();
    assert_eq!(find(&mut reader, &cache, &seed(0)), ["OLD-1"]);

    let mut parts_seen = 0;
    let mut others: i64 = 0;
    let added = importer
        .add_tokens_staged(batch(), NOW, PART, |_| {
            parts_seen += 1;
            // Written, and hidden: the rows are in the file...
            assert!(raw_count(&f, "SELECT count(*) FROM credentials") > 1 + others);
            // ...and no reader sees any of them.
            assert_eq!(all(&mut reader), 1 + others as usize);
            assert_eq!(reader.users().unwrap().len(), 1, "OTHER-1 has no user");
            assert_eq!(reader.devices().unwrap().len(), 1 + others as usize);
            assert!(find(&mut reader, &cache, &seed(7)).is_empty());
            assert!(find(&mut reader, &cache, &seed(BATCH)).is_empty());
            assert!(
                reader
                    .helpdesk_code(&helpdesk("staged7@contoso.com"), NOW)
                    .is_err()
            );
            let report = reader.verify_vault().unwrap();
            assert!(report.intact, "{report:?}");
            // Other writers get their turn between the parts, and their
            // rows take ids above the whole batch's.
            if others == 0 {
                reader
                    .add_token(token("OTHER-1", None, &seed(900), None), NOW)
                    .unwrap();
                others += 1;
            }
            true
        })
        .unwrap();
    assert_eq!(added.len(), BATCH as usize);
    assert!(
        parts_seen > BATCH as usize / PART,
        "written in parts: {parts_seen}"
    );

    // Published: every reader sees all of it at once.
    assert_eq!(all(&mut reader), BATCH as usize + 2);
    assert_eq!(reader.users().unwrap().len(), BATCH as usize + 1);
    assert_eq!(find(&mut reader, &cache, &seed(7)), ["STAGED-007"]);
    assert_eq!(find(&mut reader, &cache, &seed(BATCH)), ["STAGED-050"]);
    assert_eq!(find(&mut reader, &cache, &seed(900)), ["OTHER-1"]);
    let grant = reader
        .helpdesk_code(&helpdesk("staged7@contoso.com"), NOW)
        .unwrap();
    assert_eq!(grant.code, code_at(&seed(7), NOW));
    let other = reader
        .tokens(&CredentialFilter {
            device_serial: Some("OTHER-1".into()),
            ..CredentialFilter::default()
        })
        .unwrap();
    assert!(added.iter().all(|row| row.id < other[0].id));
    let report = reader.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(
        raw_count(
            &f,
            "SELECT count(*) FROM import_batches WHERE visible_gen IS NULL"
        ),
        0
    );
}

#[test]
fn a_crashed_staged_import_stays_unseen_and_the_next_open_removes_it() {
    let f = fixture(Backend::Sqlite);
    let mut importer = session(&f.location);
    importer
        .add_token(token("OLD-1", None, &seed(0), Some("old@contoso.com")), NOW)
        .unwrap();
    let events_before = raw_count(&f, "SELECT count(*) FROM events");

    // It dies after its third transaction.
    let crashed = importer.add_tokens_staged(batch(), NOW, PART, |part| part < 3);
    assert!(crashed.is_err());
    assert!(raw_count(&f, "SELECT count(*) FROM credentials") > 1);
    assert_eq!(
        raw_count(
            &f,
            "SELECT count(*) FROM import_batches WHERE visible_gen IS NULL"
        ),
        1
    );
    assert_eq!(all(&mut importer), 1, "nothing of it is seen");
    assert!(importer.verify_vault().unwrap().intact);

    // The next open finds no import running and removes its rows.
    let mut next = session(&f.location);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM credentials"), 1);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM users"), 1);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM devices"), 1);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM events"), events_before);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_batches"), 0);
    assert!(next.verify_vault().unwrap().intact);

    // Its serials and users are free again: the same batch goes in whole.
    let added = next
        .add_tokens_staged(batch(), NOW, PART, |_| true)
        .unwrap();
    assert_eq!(added.len(), BATCH as usize);
    assert_eq!(all(&mut next), BATCH as usize + 1);
    assert!(next.verify_vault().unwrap().intact);
}

#[test]
fn an_open_while_a_staged_import_runs_leaves_its_rows() {
    let f = fixture(Backend::Sqlite);
    let mut importer = session(&f.location);
    let mut opened = false;
    let added = importer
        .add_tokens_staged(batch(), NOW, PART, |part| {
            if part == 2 {
                // Another process opens the vault mid-import: the import
                // is alive, so its rows stay.
                let mut other = session(&f.location);
                assert_eq!(all(&mut other), 0);
                opened = true;
            }
            true
        })
        .unwrap();
    assert!(opened);
    assert_eq!(added.len(), BATCH as usize);
    assert_eq!(all(&mut session(&f.location)), BATCH as usize);
}

#[test]
fn a_staged_import_that_fails_half_way_removes_its_rows() {
    let f = fixture(Backend::Sqlite);
    let mut importer = session(&f.location);
    importer
        .add_token(token("OLD-1", None, &seed(0), Some("old@contoso.com")), NOW)
        .unwrap();
    let mut other = session(&f.location);
    // Between two parts another writer takes a serial of a later part
    // (the batch's rows are hidden, so nothing stops it); that part then
    // fails on the vault's unique serials.
    let failed = importer.add_tokens_staged(batch(), NOW, PART, |part| {
        if part == 2 {
            other
                .add_token(token("STAGED-045", None, &seed(99), None), NOW)
                .unwrap();
        }
        true
    });
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(raw_count(&f, "SELECT count(*) FROM credentials"), 2);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM users"), 1);
    assert_eq!(raw_count(&f, "SELECT count(*) FROM import_batches"), 0);
    let listed = importer.tokens(&CredentialFilter::default()).unwrap();
    let serials: Vec<_> = listed.iter().filter_map(|t| t.serial.as_deref()).collect();
    assert_eq!(serials, ["OLD-1", "STAGED-045"]);
    assert!(importer.verify_vault().unwrap().intact);
}

/// Whether another connection could take the write lock right now.
fn lock_free(f: &Fixture) -> bool {
    let c = rusqlite::Connection::open(f.path().unwrap()).unwrap();
    c.busy_timeout(std::time::Duration::ZERO).unwrap();
    let free = c.execute_batch("BEGIN IMMEDIATE").is_ok();
    if free {
        c.execute_batch("ROLLBACK").unwrap();
    }
    free
}

#[test]
fn an_import_nobody_waits_for_is_one_transaction_and_one_somebody_waits_for_lets_them_in() {
    // Alone: the parts share one transaction (the lock is never free
    // between them), and the batch is published whole.
    let f = fixture(Backend::Sqlite);
    let mut importer = session(&f.location);
    let mut free = Vec::new();
    let (added, transactions) = importer
        .add_tokens_adaptively(batch(), NOW, PART, |_| {
            free.push(lock_free(&f));
            true
        })
        .unwrap();
    assert_eq!(added.len(), BATCH as usize);
    assert_eq!(transactions, 1);
    // The first part is the batch's last credential alone (it holds the
    // highest ids), then parts of PART.
    let parts = 1 + (BATCH as usize - 1).div_ceil(PART);
    // Before each part after the first: held; before publishing: free.
    assert_eq!(free.len(), parts);
    assert!(free[..parts - 1].iter().all(|free| !free), "{free:?}");
    assert!(free[parts - 1]);
    assert_eq!(all(&mut importer), BATCH as usize);

    // Somebody waits from part 2 to part 4 (another process's writer in
    // its busy handler holds the vault's wait file shared): the import
    // commits after each part while they wait, and lets them in.
    let f = fixture(Backend::Sqlite);
    let mut importer = session(&f.location);
    let wait_file = {
        let mut name = f.path().unwrap().as_os_str().to_owned();
        name.push("-wait.lock");
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(name)
            .unwrap()
    };
    let mut free = Vec::new();
    let (added, transactions) = importer
        .add_tokens_adaptively(batch(), NOW, PART, |part| {
            free.push((part, lock_free(&f)));
            match part {
                2 => wait_file.lock_shared().unwrap(),
                4 => wait_file.unlock().unwrap(),
                _ => {}
            }
            true
        })
        .unwrap();
    assert_eq!(added.len(), BATCH as usize);
    // Parts 0–2 in one transaction, let in after it; part 3 in its own,
    // let in after it; then 4 and 5 in one.
    assert_eq!(transactions, 3);
    let free_at: Vec<usize> = free.iter().filter(|(_, f)| *f).map(|(p, _)| *p).collect();
    assert_eq!(free_at, [3, 4, parts], "{free:?}");
    assert_eq!(all(&mut importer), BATCH as usize);
    assert!(importer.verify_vault().unwrap().intact);
}
