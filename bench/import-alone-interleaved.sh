#!/usr/bin/env bash
# The lone 100,000-token import on SQLite (criterion's "sqlite/import 100k
# credentials (one transaction)" in crates/vault/benches/vault.rs), several
# builds interleaved round by round, with the load average before each run:
# on a shared machine, one build's runs back to back would each meet a
# different load.
#
# Build each bench binary first (e.g. in a `git worktree` of the commit to
# compare): `cargo bench -p oathdesk-vault --bench vault --no-run` prints
# its path (target/release/deps/vault-HASH). Then:
#
#   BENCHES="0cf4caf=/tmp/vault-0cf4caf before=/tmp/vault-before after=/tmp/vault-after" \
#       ROUNDS=3 bash bench/import-alone-interleaved.sh
set -euo pipefail
rounds=${ROUNDS:-3}
filter=${FILTER:-sqlite/import 100k}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
for round in $(seq "$rounds"); do
    for pair in $BENCHES; do
        name=${pair%%=*}
        bin=${pair#*=}
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        start=$(date -u +%H:%M:%S)
        # Each build its own criterion directory: no comparison across builds.
        CARGO_TARGET_DIR=$work/$name "$bin" --bench "$filter" > "$work/out" 2>&1 || true
        time=$(grep 'time:' "$work/out" | head -1 | sed 's/^ *//')
        echo "round $round | $name | $start UTC | load $load | $time"
    done
done
