//! Group commit on PostgreSQL, through the store's own API: one process's
//! stores of a vault write in groups, keep one audit chain, and lose only
//! what a member gave up.

use std::sync::Barrier;

use super::*;
use crate::store::postgres::PgStore;
use crate::store::{Store, StoreTx};
use crate::testing::ScratchSchema;

/// The next entry of the chain after `last`, by worker `who` (its user).
pub(in crate::store::postgres) fn entry(last: Option<&AuditRow>, who: usize, n: usize) -> AuditRow {
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

pub(in crate::store::postgres) fn entries_of(store: &mut PgStore, who: usize) -> u64 {
    let tx = store.read().unwrap();
    tx.audit_count("group.test", "ok", &format!("w{who}"), 0)
        .unwrap()
}

/// Every entry follows the one before it: seq by seq, hash by hash.
pub(in crate::store::postgres) fn assert_one_chain(store: &mut PgStore, expected: usize) {
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

/// `work(store, who)` on `threads` threads at once, each with a store of
/// its own on `url` (so that they write in groups on one writer).
pub(in crate::store::postgres) fn on_threads(
    url: &str,
    threads: usize,
    work: impl Fn(&mut PgStore, usize) + Sync,
) {
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        for who in 0..threads {
            let (start, work) = (&start, &work);
            scope.spawn(move || {
                let mut store = PgStore::open(url).unwrap();
                start.wait();
                work(&mut store, who);
            });
        }
    });
}

#[test]
fn the_stores_of_one_process_write_in_groups_and_keep_one_chain() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    on_threads(&url, THREADS, |store, who| {
        for n in 0..ROUNDS {
            append(store, who, n, true);
            // Answered only once committed: its own connection,
            // outside the group, sees the entry.
            assert_eq!(entries_of(store, who), n as u64 + 1, "w{who}/{n}");
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
    on_threads(&url, THREADS, |store, who| {
        for n in 0..ROUNDS {
            match (who % 3, n % 2) {
                // Gives up after appending (dropped, not committed).
                (1, 1) => append(store, who, n, false),
                // A statement fails (the first entry's seq again),
                // which aborts the database's transaction.
                (2, 1) => {
                    let tx = store.write().unwrap();
                    assert!(tx.audit_insert(&entry(None, who, n)).is_err());
                }
                _ => append(store, who, n, true),
            }
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

#[test]
fn a_member_that_sent_nothing_undoes_nothing_of_the_others() {
    // A later member's savepoint is sent with its first statement: one
    // that gives up before any must not roll back to the savepoint before
    // it (another member's), nor fail the group with one that is not there.
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    let mut keeps = PgStore::open(&url).unwrap();
    let mut gives_up = PgStore::open(&url).unwrap();
    let writer = first.writer.clone();
    std::thread::scope(|scope| {
        let tx = first.write().unwrap();
        let kept = scope.spawn(|| append(&mut keeps, 1, 0, true));
        let given_up = scope.spawn(|| drop(gives_up.write().unwrap()));
        while writer.queued() < 2 {
            std::thread::yield_now();
        }
        let last = tx.audit_last().unwrap();
        tx.audit_insert(&entry(last.as_ref(), 0, 0)).unwrap();
        tx.commit().unwrap();
        kept.join().unwrap();
        given_up.join().unwrap();
    });
    assert_eq!(entries_of(&mut first, 0), 1);
    assert_eq!(entries_of(&mut first, 1), 1);
    assert_one_chain(&mut first, 2);
    assert_eq!(writer.commits(), 1, "one group");
}

/// A held TOTP credential with this id and no user, device or serial.
pub(in crate::store::postgres) fn credential_row(id: i64) -> crate::model::CredentialRow {
    crate::model::CredentialRow {
        id,
        device_id: None,
        slot: None,
        kind: "totp".into(),
        algorithm: "sha1".into(),
        digits: 6,
        period: Some(30),
        t0: Some(0),
        counter: None,
        issuer: None,
        label: None,
        state: crate::model::State::Shipped,
        custody: crate::model::Custody::Held,
        sealed_secret: Some(vec![0]),
        user_id: None,
        drift_steps: None,
        purge_after: None,
        created_at: 0,
        updated_at: 0,
        serial: None,
        upn: None,
        manufacturer: None,
        model: None,
    }
}

/// A credential for released steps to refer to.
pub(in crate::store::postgres) fn a_credential(store: &mut PgStore) -> i64 {
    let tx = store.write().unwrap();
    let id = tx.credential_ids(1).unwrap()[0];
    let row = credential_row(id);
    tx.credentials_insert(&[row], &[vec![1]]).unwrap();
    tx.commit().unwrap();
    id
}

/// Worker `who`'s `n`th helpdesk-like release: what it counts (the
/// worker's entries) and the step it records.
pub(in crate::store::postgres) struct TestRelease {
    user: String,
    step_id: String,
    counter: u64,
}

impl TestRelease {
    pub(in crate::store::postgres) fn new(who: usize, n: usize) -> TestRelease {
        TestRelease {
            user: format!("w{who}"),
            step_id: format!("{who}/{n}"),
            counter: (who * 1000 + n) as u64,
        }
    }

    pub(in crate::store::postgres) fn count(&self) -> crate::store::AuditCount<'_> {
        crate::store::AuditCount {
            action: "group.test",
            outcome: "ok",
            user: &self.user,
            since: 0,
        }
    }

    pub(in crate::store::postgres) fn step(
        &self,
        credential: i64,
    ) -> crate::store::ReleasedStep<'_> {
        crate::store::ReleasedStep {
            credential_id: credential,
            counter: self.counter,
            at: 1,
            mac_kind: "released_step",
            mac_id: &self.step_id,
            mac: b"mac",
            below: 0,
            mac_range: ("", ""),
        }
    }
}

/// A helpdesk-like release: the recount, the entry and the released step
/// of `credential` in one call.
fn release(store: &mut PgStore, who: usize, n: usize, credential: i64) -> Result<u64> {
    let tx = store.write()?;
    let last = tx.audit_last()?;
    let release = TestRelease::new(who, n);
    let found = tx.audit_append_if_below(
        &release.count(),
        1_000_000,
        &entry(last.as_ref(), who, n),
        &release.step(credential),
    )?;
    tx.commit()?;
    Ok(found)
}

#[test]
fn a_release_in_a_group_that_fails_loses_only_its_own() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    let credential = a_credential(&mut first);
    const THREADS: usize = 6;
    const ROUNDS: usize = 20;
    on_threads(&url, THREADS, |store, who| {
        for n in 0..ROUNDS {
            if who % 3 == 2 && n % 2 == 1 {
                // No such credential: the statement fails inside
                // the database (a foreign key), after the savepoint.
                assert!(release(store, who, n, credential + 1000).is_err());
            } else {
                // The count found is this worker's entries so far.
                let found = release(store, who, n, credential).unwrap();
                assert_eq!(found, entries_of(store, who) - 1, "w{who}/{n}");
            }
        }
    });
    let mut kept = 0;
    for who in 0..THREADS {
        let expected = if who % 3 == 2 { ROUNDS / 2 } else { ROUNDS };
        assert_eq!(entries_of(&mut first, who), expected as u64, "worker {who}");
        kept += expected;
    }
    assert_one_chain(&mut first, kept);
    let steps = first.read().unwrap().released(credential).unwrap();
    assert_eq!(steps.len(), kept, "one released step per kept release");
}
