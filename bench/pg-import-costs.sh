#!/usr/bin/env bash
# Where the 100k import's time goes inside PostgreSQL, statement by
# statement, and what a change to the schema would save, without the
# client: builds a scratch schema from the migrations in
# crates/vault/src/store/migrations.rs, writes N devices, users,
# credentials and first events shaped like the import's (one device and one
# user per token, 60-byte sealed secrets, 32-byte MACs) to binary COPY files,
# then per variant loads them in one transaction as the import does — COPY
# devices, users, credentials, events, COMMIT — and prints each statement's
# time. The files are read by the server (COPY FROM a file), so the client's
# sealing, signing and streaming are not in these figures.
#
#   bash bench/pg-import-costs.sh [ROUNDS] [VARIANT...]
#
# Variants (default: v13 latest checked keep-device keep-user keep-event,
# in this order, ROUNDS times):
#   v10       the schema at migration 10: migration 7's identify insert
#             triggers (a PL/pgSQL row trigger, a transition table)
#   v13       the schema at migration 13: no insert trigger, the rows
#             stamped by COPY, the foreign keys of credentials (to devices
#             and users) and events (to credentials)
#   latest    every migration: since 14, none of those foreign keys on
#             PostgreSQL (triggers guard the parents' deletes)
#   checked   latest, and before COMMIT the import's checks at their worst:
#             every parent sent back to the server and locked FOR KEY SHARE,
#             one statement per reference (the store sends only parents it
#             did not write itself, none in this import)
#   keep-device, keep-user, keep-event
#             latest with that one foreign key back (credentials.device_id,
#             credentials.user_id, events.credential_id): each key's cost
#   deferred  v13, with the foreign keys of credentials and events
#             DEFERRABLE INITIALLY DEFERRED (checked at COMMIT)
#   staging   v13, each table copied into a TEMP table first, then one
#             INSERT … SELECT
#   no-fk     v13 without those foreign keys (and without 14's triggers)
#   no-index  v13 without the secondary indexes of credentials and
#             events: to measure their share, not a proposal
#
# ROWS=N (default 100000); DATABASE (default the test database);
# PERF=DIR: `perf record --call-graph dwarf` of the server backend, one file per variant
# and round, in DIR (read with `perf report -i FILE --no-children`).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
shift || true
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(v13 latest checked keep-device keep-user keep-event)
rows=${ROWS:-100000}
database=${DATABASE:-postgres://postgres@127.0.0.1:5432/test}
work=$(mktemp -d /tmp/pg-import-costs.XXXXXX)
chmod 777 "$work" # the server writes and reads the COPY files
trap 'rm -rf "$work"' EXIT

# The PostgreSQL half of each migration up to VERSION, as one script.
migrations() {
    python3 - "$1" <<'EOF'
import re, sys
upto = int(sys.argv[1])
text = open("crates/vault/src/store/migrations.rs").read()
pattern = re.compile(
    r'version: (\d+),.*?postgres: (?:r#"(.*?)"#|"(.*?)(?<!\\)"),', re.S)
for version, raw, plain in pattern.findall(text):
    if int(version) <= upto:
        print(raw if raw else plain.replace('\\"', '"'))
EOF
}
latest=$(grep -o 'version: [0-9][0-9]*' crates/vault/src/store/migrations.rs | tail -1 | cut -d' ' -f2)

psql_run() { psql "$database" -X -q -v ON_ERROR_STOP=1 "$@"; }

# The rows, written once.
psql_run <<EOF
COPY (SELECT i::int8, 'T' || lpad(i::text, 7, '0'), NULL::text, NULL::text, 'classic'::text,
        1::int8, 1764800000::int8, sha256(int8send(i))
      FROM generate_series(1, $rows) i) TO '$work/devices' (FORMAT binary);
COPY (SELECT i::int8, 'user' || i || '@contoso.com', NULL::text, 1764800000::int8,
        sha256(int8send(-i))
      FROM generate_series(1, $rows) i) TO '$work/users' (FORMAT binary);
COPY (SELECT i::int8, i::int8, NULL::int8, 'totp'::text, 'SHA1'::text, 6::int8, 30::int8,
        0::int8, NULL::int8, NULL::text, NULL::text, 'assigned'::text, 'held'::text,
        substr(sha256(int8send(i)) || sha256(int8send(i + $rows)), 1, 60), i::int8,
        NULL::int8, NULL::int8, 1764800000::int8, 1764800000::int8,
        sha256(int8send(i + 2 * $rows)), 1::int8
      FROM generate_series(1, $rows) i) TO '$work/credentials' (FORMAT binary);
COPY (SELECT i::int8, i::int8, NULL::text, 'assigned'::text, ''::text, 1764800000::int8,
        NULL::text
      FROM generate_series(1, $rows) i) TO '$work/events' (FORMAT binary);
EOF

declare -A columns=(
    [devices]="id, serial, manufacturer, model, kind, slots, created_at, mac"
    [users]="id, upn, display_name, created_at, mac"
    [credentials]="id, device_id, slot, kind, algorithm, digits, period, t0, counter, issuer, \
label, state, custody, sealed_secret, user_id, drift_steps, purge_after, created_at, \
updated_at, mac, changed_gen"
    [events]="id, credential_id, from_state, to_state, operator, at, note"
)
foreign_keys="credentials credentials_device_id_fkey
credentials credentials_user_id_fkey
events events_credential_id_fkey"

# The load of one table, as the variant makes it.
load() {
    local variant=$1 table=$2
    echo "\\echo step $table"
    if [ "$variant" = staging ]; then
        echo "CREATE TEMP TABLE staged_$table (LIKE $table) ON COMMIT DROP;"
        echo "COPY staged_$table (${columns[$table]}) FROM '$work/$table' (FORMAT binary);"
        echo "\\echo step $table (INSERT … SELECT)"
        echo "INSERT INTO $table (${columns[$table]}) SELECT ${columns[$table]} FROM staged_$table;"
    else
        echo "COPY $table (${columns[$table]}) FROM '$work/$table' (FORMAT binary);"
    fi
}

script() {
    local variant=$1 schema=$2 perf_file=$3
    echo "SET client_min_messages = warning;"
    echo "CREATE SCHEMA $schema; SET search_path = $schema;"
    case $variant in
    v10) migrations 10 ;;
    v13 | deferred | staging | no-fk | no-index) migrations 13 ;;
    *) migrations "$latest" ;;
    esac
    case $variant in
    keep-device)
        echo "ALTER TABLE credentials ADD FOREIGN KEY (device_id) REFERENCES devices (id);" ;;
    keep-user)
        echo "ALTER TABLE credentials ADD FOREIGN KEY (user_id) REFERENCES users (id);" ;;
    keep-event)
        echo "ALTER TABLE events ADD FOREIGN KEY (credential_id) REFERENCES credentials (id);" ;;
    deferred)
        while read -r table name; do
            echo "ALTER TABLE $table ALTER CONSTRAINT $name DEFERRABLE INITIALLY DEFERRED;"
        done <<<"$foreign_keys" ;;
    no-fk)
        while read -r table name; do
            echo "ALTER TABLE $table DROP CONSTRAINT $name;"
        done <<<"$foreign_keys" ;;
    no-index)
        echo "DROP INDEX credentials_user, credentials_changed_gen, events_credential;" ;;
    esac
    echo "CHECKPOINT;" # each variant starts from clean buffers
    if [ -n "$perf_file" ]; then
        echo "SELECT pg_backend_pid() AS backend \\gset"
        echo "\\setenv BACKEND :backend"
        echo "\\! perf record -F 999 --call-graph dwarf,16384 -p \$BACKEND -o $perf_file >/dev/null 2>&1 & echo \$! > $work/perf.pid; sleep 1"
    fi
    echo "SELECT pg_current_wal_lsn() AS wal_start \\gset"
    echo "\\timing on"
    echo "BEGIN;"
    for table in devices users credentials events; do load "$variant" "$table"; done
    if [ "$variant" = checked ]; then
        echo "\\echo step check"
        for parent in devices users credentials; do
            echo "SELECT count(*) FROM (SELECT p.id FROM $parent p WHERE p.id = ANY(ARRAY(SELECT i::int8 \
FROM generate_series(1, $rows) i)) FOR KEY SHARE OF p) AS present;"
        done
    fi
    echo "\\echo step COMMIT"
    echo "COMMIT;"
    echo "\\timing off"
    echo "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), :'wal_start') / 1048576) AS wal_mb \\gset"
    echo "\\echo wal :wal_mb"
    if [ -n "$perf_file" ]; then
        echo "\\! kill -INT \$(cat $work/perf.pid); sleep 2"
    fi
    echo "DROP SCHEMA $schema CASCADE;"
}

for round in $(seq "$rounds"); do
    for variant in "${variants[@]}"; do
        perf_file=
        if [ -n "${PERF:-}" ]; then
            mkdir -p "$PERF"
            perf_file=$(realpath "$PERF")/$variant-$round.data
        fi
        load_avg=$(cut -d' ' -f1-3 /proc/loadavg)
        schema="import_costs_$$_${variant//-/_}_$round"
        script "$variant" "$schema" "$perf_file" | psql_run 2>&1 | awk -v variant="$variant" \
            -v round="$round" -v loadavg="$load_avg" '
            /^step / { step = substr($0, 6) }
            /^wal / { wal = $2 }
            /ERROR|FATAL/ { print > "/dev/stderr" }
            /^Time: / && step != "" { ms[step] += $2; total += $2; if (!(step in seen)) { order[++n] = step; seen[step] = 1 } }
            END {
                line = sprintf("%-9s round %s  total %7.0f ms", variant, round, total)
                for (i = 1; i <= n; i++) line = line sprintf("  %s %.0f", order[i], ms[order[i]])
                print line "  WAL " wal " MB  (load " loadavg ")"
            }'
        # Also when a statement failed and psql stopped before its own DROP.
        psql_run -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $schema CASCADE"
    done
done
