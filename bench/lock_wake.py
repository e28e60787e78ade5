"""How late a writer waiting for SQLite's write lock wakes after the lock is
released: SQLite's own busy timeout (the backing-off sleeps of
sqlite3_busy_timeout: 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms)
against a try every millisecond (what oathdesk's busy handler does since
issue 19, item 2). One process holds the lock for HOLD ms; a waiter in
another process asks for it; printed is the time from the release to the
waiter's lock, over ROUNDS rounds (median, p90, max), for each way.

    python3 bench/lock_wake.py [--hold-ms 500] [--rounds 20]
"""
import argparse
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import time


def waiter(path, mode, ready, released_at, woke_at):
    if mode == "sqlite-timeout":
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        ready.set()
        connection.execute("BEGIN IMMEDIATE")
    else:
        connection = sqlite3.connect(path, timeout=0, isolation_level=None)
        ready.set()
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                time.sleep(0.001)
    woke_at.value = time.monotonic()
    connection.execute("ROLLBACK")


def main():
    # Spawned, not forked: a forked child would inherit the holder's SQLite
    # connection and its lock bookkeeping.
    multiprocessing.set_start_method("spawn")
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold-ms", type=float, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "lock.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x)")
    setup.close()
    for mode in ("sqlite-timeout", "poll-1ms"):
        late = []
        for _ in range(args.rounds):
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            ready = multiprocessing.Event()
            released_at = multiprocessing.Value("d", 0.0)
            woke_at = multiprocessing.Value("d", 0.0)
            process = multiprocessing.Process(
                target=waiter, args=(path, mode, ready, released_at, woke_at))
            process.start()
            ready.wait()
            # The waiter has asked for the lock and is waiting on it.
            time.sleep(0.05)
            time.sleep(args.hold_ms / 1000)
            holder.execute("ROLLBACK")
            released = time.monotonic()
            process.join()
            holder.close()
            late.append((woke_at.value - released) * 1000)
        late.sort()
        p90 = late[min(len(late) - 1, int(len(late) * 0.9))]
        print(f"{mode:15} held {args.hold_ms:g} ms: woke after the release "
              f"median {statistics.median(late):6.1f} ms, p90 {p90:6.1f} ms, max {late[-1]:6.1f} ms "
              f"({args.rounds} rounds)")


if __name__ == "__main__":
    main()
