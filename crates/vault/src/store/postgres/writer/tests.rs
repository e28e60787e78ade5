//! Group commit on PostgreSQL, through the store's own API: one process's
//! stores of a vault write in groups, keep one audit chain, and lose only
//! what a member gave up.

use std::sync::Barrier;

use super::*;
use crate::store::postgres::PgStore;
use crate::store::{Store, StoreTx};
use crate::testing::ScratchSchema;

/// The next entry of the chain after `last`, by worker `who` (its user).
fn entry(last: Option<&AuditRow>, who: usize, n: usize) -> AuditRow {
    AuditRow {
        seq: last.map_or(1, |l| l.seq + 1),
        at: 1,
        operator: "test".into(),
        action: "group.test".into(),
        outcome: "ok".into(),
        user: Some(format!("w{who}")),
        credential: None,
        ticket: None,
        detail: n.to_string(),
        epoch: 0,
        prev_hash: last.map(|l| l.hash.clone()).unwrap_or_default(),
        hash: format!("{who}/{n}").into_bytes(),
    }
}

/// Appends one entry in a write transaction; `keep` false gives it up.
fn append(store: &mut PgStore, who: usize, n: usize, keep: bool) {
    let tx = store.write().unwrap();
    let last = tx.audit_last().unwrap();
    tx.audit_insert(&entry(last.as_ref(), who, n)).unwrap();
    if keep {
        tx.commit().unwrap();
    }
}

fn entries_of(store: &mut PgStore, who: usize) -> u64 {
    let tx = store.read().unwrap();
    tx.audit_count("group.test", "ok", &format!("w{who}"), 0)
        .unwrap()
}

/// Every entry follows the one before it: seq by seq, hash by hash.
fn assert_one_chain(store: &mut PgStore, expected: usize) {
    let rows = store.read().unwrap().audit_all().unwrap();
    assert_eq!(rows.len(), expected);
    for (i, pair) in rows.windows(2).enumerate() {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "seq after entry {i}");
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "entry {} links to its predecessor",
            pair[1].seq
        );
    }
}

#[test]
fn the_stores_of_one_process_write_in_groups_and_keep_one_chain() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for who in 0..THREADS {
            let (url, start) = (&url, &start);
            scope.spawn(move || {
                let mut store = PgStore::open(url).unwrap();
                start.wait();
                for n in 0..ROUNDS {
                    append(&mut store, who, n, true);
                    // Answered only once committed: its own connection,
                    // outside the group, sees the entry.
                    assert_eq!(entries_of(&mut store, who), n as u64 + 1, "w{who}/{n}");
                }
            });
        }
    });
    assert_one_chain(&mut first, THREADS * ROUNDS);
    let commits = first.writer.commits();
    assert!(
        commits > 0 && commits < THREADS * ROUNDS,
        "queued writers share commits: {commits} commits for {} members",
        THREADS * ROUNDS
    );
}

#[test]
fn a_member_that_gives_up_or_fails_loses_only_its_own_changes() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    const THREADS: usize = 6;
    const ROUNDS: usize = 20;
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for who in 0..THREADS {
            let (url, start) = (&url, &start);
            scope.spawn(move || {
                let mut store = PgStore::open(url).unwrap();
                start.wait();
                for n in 0..ROUNDS {
                    match (who % 3, n % 2) {
                        // Gives up after appending (dropped, not committed).
                        (1, 1) => append(&mut store, who, n, false),
                        // A statement fails (the first entry's seq again),
                        // which aborts the database's transaction.
                        (2, 1) => {
                            let tx = store.write().unwrap();
                            assert!(tx.audit_insert(&entry(None, who, n)).is_err());
                        }
                        _ => append(&mut store, who, n, true),
                    }
                }
            });
        }
    });
    let mut kept = 0;
    for who in 0..THREADS {
        let expected = if who % 3 == 0 { ROUNDS } else { ROUNDS / 2 };
        assert_eq!(entries_of(&mut first, who), expected as u64, "worker {who}");
        kept += expected;
    }
    // The chain's tail handed from member to member skips what was undone.
    assert_one_chain(&mut first, kept);
}

#[test]
fn a_lone_store_writes_on_its_own_connection() {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    for n in 0..3 {
        append(&mut store, 0, n, true);
    }
    assert_one_chain(&mut store, 3);
    assert_eq!(store.writer.commits(), 0, "no writer connection was opened");
    // A second store of the vault in this process: from now on both write
    // through the shared writer.
    let mut other = PgStore::open(&schema.url()).unwrap();
    append(&mut other, 1, 0, true);
    append(&mut store, 0, 3, true);
    assert_eq!(store.writer.commits(), 2);
    assert_one_chain(&mut store, 5);
}

#[test]
fn a_member_that_commits_an_aborted_transaction_fails_its_whole_group() {
    // A member that meets an error must give up (drop its transaction). One
    // that commits anyway, with the database's transaction aborted, must not
    // be told its change was saved — nor may the members before it in the
    // group, whose changes the database has thrown away with it.
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    let mut second = PgStore::open(&url).unwrap();
    let writer = first.writer.clone();
    let outcomes = std::thread::scope(|scope| {
        let tx = first.write().unwrap();
        let bad = scope.spawn(|| {
            let tx = second.write().unwrap();
            assert!(tx.audit_insert(&entry(None, 9, 0)).is_err());
            tx.commit()
        });
        while writer.queued() == 0 {
            std::thread::yield_now();
        }
        tx.audit_insert(&entry(None, 1, 0)).unwrap();
        let good = tx.commit();
        (good, bad.join().unwrap())
    });
    assert!(
        outcomes.0.is_err(),
        "the first member was told: {outcomes:?}"
    );
    assert!(outcomes.1.is_err());
    assert_eq!(entries_of(&mut first, 1), 0);
    // The writer goes on with a new group.
    append(&mut first, 2, 0, true);
    assert_one_chain(&mut first, 1);
}
