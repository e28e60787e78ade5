#!/usr/bin/env bash
# One-shot `oathdesk identify` on a vault of 1,000,000 credentials, including
# unlock (default Argon2id) and loading every secret: what an operator waits
# for at the command line. Run on SQLite and, copied there with
# `vault copy`, on PostgreSQL. (The in-memory scan alone, as the web console
# holds it, is the criterion bench `identify` in crates/vault/benches.)
#
#   bash bench/identify-1m.sh          # needs hyperfine and psql; ~3 minutes to build the vaults
#
# PostgreSQL: OATHDESK_BENCH_DATABASE_URL (default: the test database on
# 127.0.0.1:5432); the vault goes into a schema of its own, dropped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)" >&2; exit 1; }

cargo build --release -q -p oathdesk
oathdesk=$PWD/target/release/oathdesk
work=$(mktemp -d)
database=${OATHDESK_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
schema=bench_identify_$$
pg_url="$database?schema=$schema"
trap 'rm -rf "$work"; psql "$database" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true' EXIT
export OATHDESK_VAULT=$work/vault.db OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase

echo "building a vault of 1,000,000 credentials in $work ..."
"$oathdesk" seed new --count 1000000 > "$work/seeds.txt"
awk 'BEGIN { print "username,secret,serial" } { printf "user%07d@contoso.com,%s,S%07d\n", NR, $0, NR }' \
    "$work/seeds.txt" > "$work/sheet.csv"
"$oathdesk" vault init
/usr/bin/time -f "import: %e s, %M KiB max RSS" "$oathdesk" import spreadsheet "$work/sheet.csv" >/dev/null 2>"$work/import.log" \
    || { cat "$work/import.log"; exit 1; }
grep '^import:' "$work/import.log"
/usr/bin/time -f "copy to PostgreSQL: %e s, %M KiB max RSS" "$oathdesk" vault copy --to "$pg_url" 2>"$work/copy.log" \
    || { cat "$work/copy.log"; exit 1; }
grep '^copy' "$work/copy.log"

# Two consecutive codes of credential 777,777 at a fixed time.
secret=$(sed -n 777777p "$work/seeds.txt")
at=1750000000
first=$("$oathdesk" code "$secret" --at $at)
second=$("$oathdesk" code "$secret" --at $((at + 30)))
"$oathdesk" identify "$first" "$second" --at $at
"$oathdesk" identify "$first" "$second" --at $at --database "$pg_url"

hyperfine --warmup 1 --runs 5 --export-markdown target/bench-identify.md \
    -n "sqlite: oathdesk identify (1M credentials, unlock + load + scan)" \
    "$oathdesk identify $first $second --at $at" \
    -n "postgres: oathdesk identify (1M credentials, unlock + load + scan)" \
    "$oathdesk identify $first $second --at $at --database '$pg_url'"
