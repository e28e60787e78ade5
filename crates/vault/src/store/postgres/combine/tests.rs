//! Releases written together on PostgreSQL: in order, one chain, a release
//! at its limit or one that fails costs nothing to the others, and under
//! concurrency the writers write for each other and the limit is exact.

use super::*;
use crate::store::postgres::PgStore;
use crate::store::postgres::writer::tests::{
    TestRelease, a_credential, assert_one_chain, entries_of, entry, on_threads,
};
use crate::store::{Store, StoreTx};
use crate::testing::ScratchSchema;

const KEY: [u8; 32] = [7; 32];

/// Worker `who`'s `n`th release of `credential`, with this limit.
fn job(who: usize, n: usize, credential: i64, limit: u64) -> Arc<Job> {
    let mut unchained = entry(None, who, n);
    unchained.seq = 0;
    let release = TestRelease::new(who, n);
    Arc::new(Job::of(&Release {
        count: release.count(),
        limit,
        entry: &unchained,
        key: &KEY,
        step: release.step(credential),
    }))
}

/// Writes `batch` in one turn on the store's writer and commits it.
fn write_in_one_turn(
    store: &PgStore,
    batch: &[Arc<Job>],
) -> Vec<std::result::Result<Released, String>> {
    write_in_one_turn_with(store, batch, true)
}

/// [`write_in_one_turn`]; `prepared` false: as on a connection where the
/// release statement could not be prepared (each written alone).
fn write_in_one_turn_with(
    store: &PgStore,
    batch: &[Arc<Job>],
    prepared: bool,
) -> Vec<std::result::Result<Released, String>> {
    write_and_count_begins(store, batch, prepared).0
}

/// [`write_in_one_turn_with`], and how many times the writer connection
/// has sent a group's `BEGIN` in a round trip of its own so far.
fn write_and_count_begins(
    store: &PgStore,
    batch: &[Arc<Job>],
    prepared: bool,
) -> (Vec<std::result::Result<Released, String>>, usize) {
    let (config, schema, shown) = (&store.config, store.schema.as_deref(), &store.shown);
    let mut member = store
        .writer
        .begin(|| PgConn::open(config, schema, shown))
        .unwrap();
    let was = member.release_prepared;
    if !prepared {
        member.release_prepared = Some(false);
    }
    let answers = write_batch(&mut member, batch, true);
    member.release_prepared = was;
    let begins_alone = member.begins_alone;
    member.commit().unwrap();
    (answers, begins_alone)
}

fn appended(answer: &std::result::Result<Released, String>) -> Option<u64> {
    match answer {
        Ok(Released {
            found,
            entry: Some(_),
        }) => Some(*found),
        _ => None,
    }
}

#[test]
fn a_release_at_its_limit_in_a_batch_leaves_no_gap_in_the_chain() {
    at_the_limit_in_a_batch(true, false);
}

#[test]
fn without_the_prepared_statement_a_batch_is_written_one_by_one_alike() {
    at_the_limit_in_a_batch(false, false);
}

/// The batch sends the group's BEGIN and COMMIT with it: the releases
/// before the refused one are committed in that round trip, and those
/// after it written in a transaction of their own.
#[test]
fn a_release_at_its_limit_in_a_batch_that_commits_leaves_no_gap_in_the_chain() {
    at_the_limit_in_a_batch(true, true);
}

fn at_the_limit_in_a_batch(prepared: bool, after_a_commit: bool) {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let credential = a_credential(&mut store);
    let mut before = Vec::new();
    if after_a_commit {
        // Worker 3's release leaves the writer connection's tail known.
        before = write_in_one_turn(&store, &[job(3, 0, credential, 2)]);
        assert_eq!(appended(&before[0]), Some(0));
    }
    // Worker 1 may have two; its third, in the middle, is at the limit.
    let batch = [
        job(1, 0, credential, 2),
        job(1, 1, credential, 2),
        job(1, 2, credential, 2),
        job(2, 0, credential, 2),
        job(2, 1, credential, 2),
    ];
    let answers = write_in_one_turn_with(&store, &batch, prepared);
    let found: Vec<Option<u64>> = answers.iter().map(appended).collect();
    assert_eq!(found, [Some(0), Some(1), None, Some(0), Some(1)]);
    assert_eq!(
        answers[2],
        Ok(Released {
            found: 2,
            entry: None
        })
    );
    // The entries after the refused one were chained again, after the
    // last that is there.
    assert_one_chain(&mut store, 4 + before.len());
    assert_eq!(
        (entries_of(&mut store, 1), entries_of(&mut store, 2)),
        (2, 2)
    );
    let steps = store.read().unwrap().released(credential).unwrap();
    assert_eq!(
        steps.len(),
        4 + before.len(),
        "no step for the refused release"
    );
    // Each entry is the one its answer gave, hashed with its writer's key.
    let rows = store.read().unwrap().audit_all().unwrap();
    let given: Vec<AuditRow> = before
        .into_iter()
        .chain(answers)
        .filter_map(|answer| answer.unwrap().entry)
        .collect();
    assert_eq!(rows, given);
    for row in &rows {
        assert_eq!(row.hash, audit::entry_hash(&KEY, row));
    }
}

#[test]
fn a_release_that_fails_in_a_batch_fails_alone() {
    a_failing_release_in_a_batch(false);
}

/// The group's BEGIN goes with the batch, whose second statement fails in
/// the database: the whole round trip is undone and begun again.
#[test]
fn a_release_that_fails_in_a_batch_sent_with_the_begin_fails_alone() {
    a_failing_release_in_a_batch(true);
}

fn a_failing_release_in_a_batch(after_a_commit: bool) {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let credential = a_credential(&mut store);
    let mut before = 0;
    if after_a_commit {
        let first = write_in_one_turn(&store, &[job(1, 0, credential, 10)]);
        assert_eq!(appended(&first[0]), Some(0));
        before = 1;
    }
    // No such credential: the second statement fails in the database.
    let batch = [
        job(2, 0, credential, 10),
        job(3, 0, credential + 1000, 10),
        job(4, 0, credential, 10),
    ];
    let answers = write_in_one_turn(&store, &batch);
    assert_eq!(appended(&answers[0]), Some(0));
    assert!(answers[1].is_err(), "{:?}", answers[1]);
    assert_eq!(appended(&answers[2]), Some(0));
    assert_one_chain(&mut store, before + 2);
    assert_eq!(entries_of(&mut store, 3), 0);
    // And the next turn goes on from the tail that group left.
    let next = write_in_one_turn(&store, &[job(2, 1, credential, 10)]);
    assert_eq!(appended(&next[0]), Some(1));
    assert_one_chain(&mut store, before + 3);
}

#[test]
fn concurrent_releases_are_written_for_each_other_and_the_limit_is_exact() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    let credential = a_credential(&mut first);
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    const LIMIT: u64 = 37;
    let shared = std::sync::atomic::AtomicU64::new(0);
    on_threads(&url, THREADS, |store, who| {
        for n in 0..ROUNDS {
            // One release of the worker's own, one of a shared user
            // (worker 99) whose limit the workers race for.
            let own = job(who, n, credential, u64::MAX);
            let own = store.release(&own_release(&own)).unwrap();
            assert!(own.entry.is_some(), "w{who}/{n}");
            let limited = job(99, who * 1000 + n, credential, LIMIT);
            let answer = store.release(&own_release(&limited)).unwrap();
            if answer.entry.is_some() {
                shared.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            } else {
                assert!(answer.found >= LIMIT, "{answer:?}");
            }
        }
    });
    assert_eq!(shared.into_inner(), LIMIT, "exactly the limit");
    for who in 0..THREADS {
        assert_eq!(entries_of(&mut first, who), ROUNDS as u64, "worker {who}");
    }
    let kept = THREADS * ROUNDS + LIMIT as usize;
    assert_one_chain(&mut first, kept);
    let steps = first.read().unwrap().released(credential).unwrap();
    assert_eq!(steps.len(), kept);
    assert!(
        first.combiner.written_together() > 0,
        "some releases were written in a batch with others"
    );
}

#[test]
fn a_turn_after_a_commit_sends_the_groups_begin_with_its_batch() {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let credential = a_credential(&mut store);
    // The writer connection's first group reads the tail first.
    let (first, begins) = write_and_count_begins(&store, &[job(1, 0, credential, 10)], true);
    assert_eq!((appended(&first[0]), begins), (Some(0), 1));
    // Its commit left the tail known: the next groups' BEGIN, lock and
    // tail read travel with their batches.
    for n in 1..4 {
        let batch = [job(1, n, credential, 10), job(2, n, credential, 10)];
        let (answers, begins) = write_and_count_begins(&store, &batch, true);
        let found: Vec<Option<u64>> = answers.iter().map(appended).collect();
        assert_eq!(found, [Some(n as u64), Some(n as u64 - 1)]);
        assert_eq!(begins, 1, "turn {n}: no round trip of its own for BEGIN");
    }
    assert_one_chain(&mut store, 7);
}

#[test]
fn a_batch_that_sends_the_groups_begin_commits_with_it_unless_a_writer_waits() {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let credential = a_credential(&mut store);
    write_in_one_turn(&store, &[job(1, 0, credential, 10)]);
    let (config, schema_name, shown) = (&store.config, store.schema.as_deref(), &store.shown);
    let open = || PgConn::open(config, schema_name, shown);
    let mut other = PgStore::open(&schema.url()).unwrap();
    for (n, commit) in [(1, true), (2, false)] {
        let mut member = store.writer.begin(open).unwrap();
        let answers = write_batch(&mut member, &[job(1, n, credential, 10)], commit);
        assert_eq!(appended(&answers[0]), Some(n as u64));
        // Another connection sees the release before the member's turn
        // ends only if its batch committed.
        let seen = other.read().unwrap().audit_all().unwrap().len();
        assert_eq!(seen, if commit { n + 1 } else { n }, "commit: {commit}");
        member.commit().unwrap();
    }
    assert_one_chain(&mut store, 3);
    assert_eq!(store.writer.commits(), 3, "each turn a group of its own");
}

#[test]
fn a_batch_chained_on_a_tail_another_process_moved_is_chained_again() {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let credential = a_credential(&mut store);
    let first = write_in_one_turn(&store, &[job(1, 0, credential, 10)]);
    assert_eq!(appended(&first[0]), Some(0));
    // Another writer appends on a connection of its own (the store alone
    // writes on its own, as another process would): the tail the writer
    // connection's commit left is stale.
    let tx = store.write().unwrap();
    let last = tx.audit_last().unwrap();
    tx.audit_insert(&entry(last.as_ref(), 9, 0)).unwrap();
    tx.commit().unwrap();
    let batch = [
        job(2, 0, credential, 10),
        job(3, 0, credential, 10),
        job(2, 1, credential, 10),
    ];
    let answers = write_in_one_turn(&store, &batch);
    let found: Vec<Option<u64>> = answers.iter().map(appended).collect();
    assert_eq!(found, [Some(0), Some(0), Some(1)], "{answers:?}");
    // Chained again after the other writer's entry.
    assert_one_chain(&mut store, 5);
    assert_eq!(entries_of(&mut store, 9), 1);
}

#[test]
fn one_step_released_twice_in_a_batch_is_written_once_with_both_entries() {
    let schema = ScratchSchema::new();
    let mut store = PgStore::create(&schema.url()).unwrap();
    let credential = a_credential(&mut store);
    // The same person asks twice for the same step, between two others.
    let batch = [
        job(2, 0, credential, 10),
        job(1, 0, credential, 10),
        job(1, 0, credential, 10),
        job(3, 0, credential, 10),
    ];
    let answers = write_in_one_turn(&store, &batch);
    let found: Vec<Option<u64>> = answers.iter().map(appended).collect();
    assert_eq!(found, [Some(0), Some(0), Some(1), Some(0)]);
    assert_one_chain(&mut store, 4);
    let steps = store.read().unwrap().released(credential).unwrap();
    assert_eq!(steps.len(), 3, "one step each for workers 1, 2 and 3");
}

/// The [`Release`] a job was made of.
fn own_release(job: &Job) -> Release<'_> {
    Release {
        count: job.count(),
        limit: job.limit,
        entry: &job.entry,
        key: &job.key,
        step: job.step(),
    }
}

#[test]
fn a_later_members_batch_with_a_failing_release_loses_only_that_release() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    let credential = a_credential(&mut first);
    let later = PgStore::open(&url).unwrap();
    let writer = first.writer.clone();
    let batch = [
        job(1, 0, credential, 10),
        job(2, 0, credential + 1000, 10),
        job(3, 0, credential, 10),
    ];
    let answers = std::thread::scope(|scope| {
        // The group's first member appends an entry and, with the batch's
        // turn queued behind it, hands the open transaction on: the batch
        // is written by a later member, in the savepoint it owes.
        let tx = first.write().unwrap();
        let last = tx.audit_last().unwrap();
        tx.audit_insert(&entry(last.as_ref(), 0, 0)).unwrap();
        let batch = &batch;
        let turn = scope.spawn(move || write_in_one_turn(&later, batch));
        while writer.queued() < 1 {
            std::thread::yield_now();
        }
        tx.commit().unwrap();
        turn.join().unwrap()
    });
    assert_eq!(appended(&answers[0]), Some(0));
    assert!(answers[1].is_err(), "{:?}", answers[1]);
    assert_eq!(appended(&answers[2]), Some(0));
    assert_eq!(writer.commits(), 1, "one group");
    // The first member's entry is kept, and the two good releases after it.
    assert_eq!(entries_of(&mut first, 0), 1);
    assert_eq!(entries_of(&mut first, 2), 0);
    assert_one_chain(&mut first, 3);
}

#[test]
fn a_turn_that_panics_answers_its_batch_and_the_writer_thread_goes_on() {
    let combiner = Combiner::default();
    let batch = [job(1, 0, 1, 10), job(2, 0, 1, 10)];
    let next = job(3, 0, 1, 10);
    {
        let mut pending = lock(&combiner.pending);
        pending.running = true;
        pending.jobs.extend(batch.iter().cloned());
    }
    let kept = Released {
        found: 5,
        entry: None,
    };
    let mut turns = 0;
    combiner.write_queued(Duration::from_millis(20), |combiner| {
        turns += 1;
        let taken: Vec<Arc<Job>> = lock(&combiner.pending).jobs.drain(..).collect();
        let _answers = Answers(&taken);
        if turns == 1 {
            // The second is answered before the turn stops: that answer
            // stays. A release comes meanwhile, for the next turn.
            taken[1].set(done(Ok(kept.clone()), None));
            lock(&combiner.pending).jobs.push_back(next.clone());
            panic!("a turn that stops half-way");
        }
        for job in &taken {
            job.set(done(Ok(kept.clone()), None));
        }
    });
    assert_eq!(turns, 2, "the thread went on after the panic");
    let stopped = batch[0].finish().unwrap_err();
    assert!(stopped.to_string().contains("stopped before"), "{stopped}");
    assert_eq!(batch[1].finish().unwrap(), kept);
    assert_eq!(next.finish().unwrap(), kept, "written by the next turn");
    // Nothing more came: the run ended, for the next release to start one.
    assert!(!lock(&combiner.pending).running);
}

#[test]
fn a_writer_thread_that_stops_in_a_panic_answers_the_queued_releases() {
    let combiner = Combiner::default();
    let queued = job(1, 0, 1, 10);
    {
        let mut pending = lock(&combiner.pending);
        pending.running = true;
        pending.jobs.push_back(queued.clone());
    }
    // Ended in order, the run leaves the queue to the next one.
    drop(Running(&combiner));
    assert_eq!(lock(&combiner.pending).jobs.len(), 1);
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _running = Running(&combiner);
        panic!("the writer thread stops");
    }));
    assert!(stopped.is_err());
    let pending = lock(&combiner.pending);
    assert!(!pending.running && pending.jobs.is_empty());
    drop(pending);
    let error = queued.finish().unwrap_err();
    assert!(error.to_string().contains("writer stopped"), "{error}");
}

#[test]
fn the_writer_thread_ends_when_idle_and_the_next_release_starts_another() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    let mut first = PgStore::create(&url).unwrap();
    let credential = a_credential(&mut first);
    // A second store of the vault: releases go to the writer thread.
    let mut second = PgStore::open(&url).unwrap();
    for n in 0..3 {
        let release = job(1, n, credential, 10);
        let answer = second.release(&own_release(&release)).unwrap();
        assert_eq!(answer.found, n as u64);
        assert!(answer.entry.is_some());
        std::thread::sleep(LINGER + Duration::from_millis(100));
        assert!(
            !lock(&second.combiner.pending).running,
            "release {n}: the thread ended"
        );
    }
    assert_one_chain(&mut first, 3);
}
