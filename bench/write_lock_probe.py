"""Watches a SQLite vault's write lock from outside: every millisecond it
tries `BEGIN IMMEDIATE` (and rolls back at once) without waiting, and
records each stretch in which the lock was held by somebody else. Prints
the stretches longer than --min-ms, then their count and sum, when the file
named by --stop appears.

    python3 bench/write_lock_probe.py VAULT.db --stop FILE [--min-ms 5]
"""
import argparse
import os
import sqlite3
import time

parser = argparse.ArgumentParser()
parser.add_argument("vault")
parser.add_argument("--stop", required=True)
parser.add_argument("--min-ms", type=float, default=5.0)
args = parser.parse_args()

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
    except sqlite3.OperationalError as error:
        if "locked" not in str(error) and "busy" not in str(error):
            raise
        if held_since is None:
            held_since = now
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
