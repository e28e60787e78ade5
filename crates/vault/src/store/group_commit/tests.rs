use std::sync::Barrier;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::*;
use crate::store::sqlite::writer::writer_of;

/// A scratch vault-like file with one table, and its writer.
fn scratch(dir: &tempfile::TempDir) -> (PathBuf, Arc<Writer<Connection>>) {
    let path = dir.path().join("group.db");
    let connection = Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE rows (id INTEGER PRIMARY KEY, who INTEGER NOT NULL, n INTEGER NOT NULL);",
        )
        .unwrap();
    let writer = writer_of(&path);
    (path, writer)
}

fn open(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(30))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    Ok(connection)
}

fn rows_of(path: &Path, who: usize) -> usize {
    let reader = Connection::open(path).unwrap();
    reader
        .query_row(
            "SELECT count(*) FROM rows WHERE who = ?",
            [who as i64],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn members_run_one_at_a_time_share_commits_and_are_answered_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let (path, writer) = scratch(&dir);
    const THREADS: usize = 8;
    const ROUNDS: usize = 40;
    let inside = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for who in 0..THREADS {
            let (writer, path, inside, most, start) = (&writer, &path, &inside, &most, &start);
            scope.spawn(move || {
                start.wait();
                for n in 0..ROUNDS {
                    let member = writer.begin(|| open(path)).unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Each member sees the rows of those before it in its group.
                    let mine: usize = member
                        .query_row(
                            "SELECT count(*) FROM rows WHERE who = ?",
                            [who as i64],
                            |r| r.get(0),
                        )
                        .unwrap();
                    assert_eq!(mine, n);
                    member
                        .execute("INSERT INTO rows (who, n) VALUES (?, ?)", [who, n])
                        .unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    member.commit().unwrap();
                    // Answered only once committed: another connection sees it.
                    assert_eq!(
                        rows_of(path, who),
                        n + 1,
                        "member {who}/{n} answered before its commit"
                    );
                }
            });
        }
    });
    assert_eq!(most.load(Ordering::SeqCst), 1, "one member at a time");
    let total = THREADS * ROUNDS;
    let commits = writer.commits();
    assert!(
        commits < total,
        "queued writers share commits: {commits} commits for {total} members"
    );
    assert!(commits >= total / MAX_MEMBERS);
}

#[test]
fn a_member_that_gives_up_loses_only_its_own_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, writer) = scratch(&dir);
    const THREADS: usize = 6;
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for who in 0..THREADS {
            let (writer, start, path) = (&writer, &start, &path);
            scope.spawn(move || {
                start.wait();
                for n in 0..30 {
                    let member = writer.begin(|| open(path)).unwrap();
                    member
                        .execute("INSERT INTO rows (who, n) VALUES (?, ?)", [who, n])
                        .unwrap();
                    // Odd workers give up on every other change (dropped, not committed).
                    if who % 2 == 1 && n % 2 == 1 {
                        drop(member);
                    } else {
                        member.commit().unwrap();
                    }
                }
            });
        }
    });
    for who in 0..THREADS {
        let kept = if who % 2 == 1 { 15 } else { 30 };
        assert_eq!(rows_of(&path, who), kept, "worker {who}");
    }
    let reader = Connection::open(&path).unwrap();
    let odd_given_up: i64 = reader
        .query_row(
            "SELECT count(*) FROM rows WHERE who % 2 = 1 AND n % 2 = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(odd_given_up, 0);
}

#[test]
fn a_failed_commit_is_reported_to_every_member_of_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (path, writer) = scratch(&dir);
    // A deferred foreign key fails at COMMIT, not at the statement: the
    // whole group is refused, and each member hears so.
    let setup = Connection::open(&path).unwrap();
    setup
        .execute_batch(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY,
               parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
    let open_fk = |path: &Path| -> Result<Connection> {
        let connection = open(path)?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(connection)
    };
    // Hold the turn so that both writers below queue into one group.
    let first = writer.begin(|| open_fk(&path)).unwrap();
    let outcomes = std::thread::scope(|scope| {
        let bad = scope.spawn(|| {
            let member = writer.begin(|| open_fk(&path)).unwrap();
            member
                .execute("INSERT INTO child (parent) VALUES (42)", [])
                .unwrap();
            member.commit()
        });
        while writer.queued.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        first
            .execute("INSERT INTO rows (who, n) VALUES (1, 1)", [])
            .unwrap();
        let good = first.commit();
        (good, bad.join().unwrap())
    });
    assert!(outcomes.0.is_err(), "the first member's commit failed too");
    assert!(outcomes.1.is_err());
    assert_eq!(rows_of(&path, 1), 0, "nothing of the failed group was kept");
    // The writer goes on with a fresh transaction.
    let member = writer.begin(|| open_fk(&path)).unwrap();
    member
        .execute("INSERT INTO rows (who, n) VALUES (2, 1)", [])
        .unwrap();
    member.commit().unwrap();
    assert_eq!(rows_of(&path, 2), 1);
}

#[test]
fn one_writer_per_file_and_a_new_file_at_the_same_path_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (path, writer) = scratch(&dir);
    assert!(Arc::ptr_eq(&writer, &writer_of(&path)));
    let other = dir.path().join("other.db");
    Connection::open(&other).unwrap();
    assert!(!Arc::ptr_eq(&writer, &writer_of(&other)));
    // A vault restored over the path is another file.
    let moved = dir.path().join("moved.db");
    std::fs::rename(&path, &moved).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert!(!Arc::ptr_eq(&writer, &writer_of(&path)));
}

#[test]
fn the_first_writer_works_without_a_savepoint_and_a_later_one_in_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (path, writer) = scratch(&dir);
    let wait_for_a_queued_writer = || {
        while writer.queued.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    // The first writer gives up with another queued: its change is rolled
    // back, and the other starts a group of its own.
    let first = writer.begin(|| open(&path)).unwrap();
    // No savepoint is open for the first writer (SQLite writes each page
    // twice inside one): rolling back to one fails.
    assert!(first.execute_batch("ROLLBACK TO member").is_err());
    first
        .execute("INSERT INTO rows (who, n) VALUES (1, 1)", [])
        .unwrap();
    std::thread::scope(|scope| {
        let next = scope.spawn(|| {
            let member = writer.begin(|| open(&path)).unwrap();
            member
                .execute("INSERT INTO rows (who, n) VALUES (2, 1)", [])
                .unwrap();
            member.commit().unwrap();
        });
        wait_for_a_queued_writer();
        drop(first);
        next.join().unwrap();
    });
    assert_eq!((rows_of(&path, 1), rows_of(&path, 2)), (0, 1));

    // The first writer commits with another queued: the other joins the
    // same transaction in a savepoint, and giving up undoes only its own.
    let first = writer.begin(|| open(&path)).unwrap();
    first
        .execute("INSERT INTO rows (who, n) VALUES (3, 1)", [])
        .unwrap();
    std::thread::scope(|scope| {
        let later = scope.spawn(|| {
            let member = writer.begin(|| open(&path)).unwrap();
            // Its savepoint is open (rolling back to it, with nothing done
            // yet, keeps it).
            member.execute_batch("ROLLBACK TO member").unwrap();
            member
                .execute("INSERT INTO rows (who, n) VALUES (4, 1)", [])
                .unwrap();
            drop(member);
        });
        wait_for_a_queued_writer();
        first.commit().unwrap();
        later.join().unwrap();
    });
    assert_eq!((rows_of(&path, 3), rows_of(&path, 4)), (1, 0));
}
