#!/usr/bin/env bash
# A 100k Entra CSV import alone into a fresh PostgreSQL vault, by the CLI,
# for one build against another: the builds take turns over ROUNDS rounds,
# each run preceded by the load average (the machine may be shared).
#
#   POSTGRES=postgres://postgres@127.0.0.1:5432/test ROUNDS=2 COUNT=100000 \
#       bash bench/pg-import-lone.sh /tmp/oathdesk-before /tmp/oathdesk-after
set -euo pipefail
: "${POSTGRES:?a PostgreSQL URL}"
rounds=${ROUNDS:-2}
count=${COUNT:-100000}
[ $# -gt 0 ] || { echo "give one or more oathdesk binaries" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase-123
"$1" seed new --count "$count" |
    awk 'BEGIN { print "upn,serial number,secret key,time interval,manufacturer,model" }
         { printf "bulk%07d@contoso.com,T2%08d,%s,30,Token2,C202\n", NR, NR, $0 }' > "$work/bulk.csv"
case $POSTGRES in *\?*) sep='&' ;; *) sep='?' ;; esac
for round in $(seq "$rounds"); do
    for binary in "$@"; do
        schema=oathdesk_lone_$$_$round
        export OATHDESK_DATABASE_URL="$POSTGRES${sep}schema=$schema"
        "$binary" vault init --kdf-memory-mib 64 >/dev/null
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        start=$(date +%s.%N)
        "$binary" import entra-csv "$work/bulk.csv" >/dev/null 2>&1
        took=$(echo "$(date +%s.%N) - $start" | bc)
        printf '%s\tround %s\t%.2f s\tload %s\n' "$binary" "$round" "$took" "$load"
        psql -q "$POSTGRES" -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"
    done
done
