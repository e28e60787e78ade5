#!/usr/bin/env bash
# SQLite and PostgreSQL side by side, and one build against another, in one
# window: criterion runs of the vault bench (crates/vault/benches/vault.rs)
# interleaved as PG, SQLite, PG, SQLite… for each build in turn, each run
# preceded by the load average, so that the ratio PG/SQLite of one build is
# taken from neighbouring runs. (`cargo bench` builds with the bench
# profile: thin LTO, one codegen unit.)
#
#   bash bench/pg-sqlite-interleaved.sh ROUNDS 'import 100k' BENCH_BINARY...
#   bash bench/pg-sqlite-interleaved.sh 2 'helpdesk code \(' target/release/deps/vault-*
#
# A bench binary comes from `cargo bench -p oathdesk-vault --bench vault
# --no-run` (it prints the path); build the one of another commit in a
# worktree of its own with its own CARGO_TARGET_DIR. PostgreSQL: the test
# database (OATHDESK_TEST_DATABASE_URL), a scratch schema per vault.
set -euo pipefail
rounds=${1:?rounds}
filter=${2:?a criterion filter, e.g. 'import 100k'}
shift 2
[ $# -gt 0 ] || { echo "give one or more bench binaries" >&2; exit 1; }
for round in $(seq "$rounds"); do
    for binary in "$@"; do
        for database in postgres sqlite; do
            load=$(cut -d' ' -f1-3 /proc/loadavg)
            result=$("$binary" --bench "^$database/$filter" --noplot --discard-baseline 2>/dev/null \
                | grep -A1 "^$database/" | grep -o 'time: *\[[^]]*\]' || true)
            printf '%s\tround %s\t%s\t%s\tload %s\n' "$(basename "$binary")" "$round" "$database" \
                "${result:-no result}" "$load"
        done
    done
done
