"""Watches a SQLite vault's write lock from outside: every millisecond it
tries `BEGIN IMMEDIATE` (and rolls back at once) without waiting, and
records each stretch in which the lock was held by somebody else. Prints
the stretches longer than --min-ms, then their count and sum, when the file
named by --stop appears.

    python3 bench/write_lock_probe.py VAULT.db --stop FILE [--min-ms 5] [--signal]

With --signal it waits as an oathdesk writer does: while the lock is
refused it holds VAULT.db-wait.lock shared (see
crates/vault/src/store/sqlite/waiting.rs), so that a staged import sees a
writer waiting and lets it in; without, it is a writer the import cannot
see (an older oathdesk, the sqlite3 shell), which waits for the import's
quiet limit.
"""
import argparse
import fcntl
import os
import sqlite3
import time

parser = argparse.ArgumentParser()
parser.add_argument("vault")
parser.add_argument("--stop", required=True)
parser.add_argument("--min-ms", type=float, default=5.0)
parser.add_argument("--signal", action="store_true")
args = parser.parse_args()
wait_file = open(args.vault + "-wait.lock", "a+") if args.signal else None

connection = sqlite3.connect(args.vault, timeout=0, isolation_level=None)
start = time.monotonic()
held_since = None
stretches = []
while not os.path.exists(args.stop):
    now = time.monotonic()
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        if held_since is not None:
            stretches.append((held_since - start, now - held_since))
            held_since = None
            if wait_file:
                fcntl.flock(wait_file, fcntl.LOCK_UN)
    except sqlite3.OperationalError as error:
        if "locked" not in str(error) and "busy" not in str(error):
            raise
        if held_since is None:
            held_since = now
            if wait_file:
                fcntl.flock(wait_file, fcntl.LOCK_SH)
    time.sleep(0.001)
if held_since is not None:
    stretches.append((held_since - start, time.monotonic() - held_since))

long = [(at, took) for at, took in stretches if took * 1000 >= args.min_ms]
for at, took in long:
    print(f"  write lock held from {at:7.3f} s for {took * 1000:8.1f} ms")
total = sum(took for _, took in long)
longest = max((took for _, took in long), default=0.0)
print(f"  {len(long)} stretches of {args.min_ms:g} ms or more: {total * 1000:.1f} ms in all, "
      f"longest {longest * 1000:.1f} ms")
