#!/usr/bin/env bash
# `oathdesk entra users sync --create` of a directory of N simulated users
# (default 10,000) with phones, employee ids, departments and managers,
# into a fresh SQLite vault: the first run creates the users and their
# data on file, the second finds nothing changed. Release builds; the
# simulator runs as its own process on loopback.
#
#   bash bench/users-sync.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
runs=${2:-2}

cargo build --release -q -p oathdesk -p oathdesk-entra-sim
bin=$PWD/target/release
work=$(mktemp -d)
sim_pid=
trap '[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"' EXIT

export OATHDESK_ENTRA_CLIENT_SECRET=bench-secret
"$bin/oathdesk-entra-sim" --directory "$n" >"$work/env" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 1 600); do grep -q CLIENT_ID "$work/env" 2>/dev/null && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/env"
export OATHDESK_VAULT=$work/vault.db OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase
export OATHDESK_ENTRA_TOKEN_CACHE=$work/tokens.json

for run in $(seq 1 "$runs"); do
    rm -f "$work/vault.db" "$work/tokens.json"
    "$bin/oathdesk" vault init 2>/dev/null
    for pass in first again; do
        start=$(date +%s.%N)
        "$bin/oathdesk" entra users sync --create >"$work/out" 2>&1
        end=$(date +%s.%N)
        printf 'run %d, %-5s sync of %d users: %.2f s wall — %s\n' "$run" "$pass" "$n" \
            "$(echo "$end - $start" | bc)" "$(tail -1 "$work/out")"
    done
done
