#!/usr/bin/env bash
# How long a 100k Entra CSV import holds the writers' lock (`LOCK TABLE audit`): polls
# pg_locks (one psql session, ~7 ms a poll) while the import runs alone. Needs BULK=FILE,
# an Entra CSV of 100k rows (upn,serial number,secret key,…; bench/helpdesk-wrk.sh shows how).
#   bash bench/pg-import-lock-hold.sh BINARY
set -euo pipefail
bin=$1
export OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase-123
schema=oathdesk_hold_$$
base=postgres://postgres@127.0.0.1:5432/test
export OATHDESK_DATABASE_URL="$base?schema=$schema"
"$bin" vault init --kdf-memory-mib 64 >/dev/null 2>&1
load=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s.%N)
"$bin" import entra-csv "${BULK:?an Entra CSV file}" >/dev/null 2>&1 &
imp=$!
python3 - "$schema" "$imp" <<'PY'
import subprocess, sys, time, os
schema, pid = sys.argv[1], int(sys.argv[2])
q = f"SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'audit' AND c.relnamespace = '{schema}'::regnamespace AND l.mode = 'ExclusiveLock' AND l.granted"
p = subprocess.Popen(["psql", "-qAt", "postgres://postgres@127.0.0.1:5432/test"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
held_first = held_last = None; polls = held = 0
t0 = time.time()
while True:
    try:
        os.kill(pid, 0)
        done = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
        if done.startswith("Z") or done == "": break
    except ProcessLookupError:
        break
    p.stdin.write(q + ";\n"); line = p.stdout.readline().strip()
    now = time.time() - t0; polls += 1
    if line == "1":
        held += 1
        held_first = now if held_first is None else held_first
        held_last = now
print(f"polls {polls}, lock seen held in {held} (first {held_first}, last {held_last}), import ran {time.time()-t0:.2f} s")
PY
wait $imp || true
echo "load before: $load"
psql -qAt "$base" -c "SELECT count(*) FROM $schema.credentials"
psql -q "$base" -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"
