#!/usr/bin/env bash
# Throughput and latency of the REST API's helpdesk-code endpoint on loopback,
# with wrk: a release build of `oathdesk serve` over a vault of USERS users
# with one token each and a mobile number on file (the spreadsheet's Mobile
# column), the default verification policy (every request a call-back with
# both steps confirmed, evidence and a ticket id that matches the pattern),
# the rate limit raised so that every request is granted, an API token with
# the helpdesk.code scope, and a toolset request for comparison (no vault
# access, no write).
#
# The vault is a SQLite file, or with POSTGRES=URL a scratch schema of that
# PostgreSQL database (dropped afterwards with psql).
#
#   bash bench/helpdesk-wrk.sh          # needs wrk (apt-get install wrk); ~1 minute
#   USERS=10000 DURATION=30s CONNECTIONS=32 bash bench/helpdesk-wrk.sh
#   POSTGRES=postgres://postgres@127.0.0.1:5432/test bash bench/helpdesk-wrk.sh
#   OATHDESK_BIN=/tmp/oathdesk-before bash bench/helpdesk-wrk.sh   # another build
#   OLD_API=1 OATHDESK_BIN=…   # a build from before the verification protocol (verified_by)
#   DURATION=60s ALONGSIDE_IMPORT=100000 bash bench/helpdesk-wrk.sh
#       # a spreadsheet import of that many new users into the same vault by
#       # another process, started 10 s into the helpdesk run (its time is
#       # printed): the helpdesk's tail while the file's write lock is taken
#       # from outside
#   ALONGSIDE_FORMAT=entra-csv   # the import alongside is an Entra CSV
#               # (tokens only) instead of the spreadsheet, whose import
#               # also writes every user's data on file (its Mobile column)
#   TOOLSET=0   # skip the toolset comparison run
#   PROBE=1     # also one helpdesk request every 100 ms by curl, alongside
#               # wrk: prints the seconds in which one took over 50 ms (a
#               # timeline of any stall, which wrk's percentiles do not show)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
users=${USERS:-1000}
duration=${DURATION:-20s}
connections=${CONNECTIONS:-16}
port=${PORT:-18443}
threads=$(( connections < 2 ? connections : 2 ))

. bench/lib.sh
oathdesk=$(bench_oathdesk)
work=$(mktemp -d)
server=
schema=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"
    [ -n "$schema" ] && psql -q "$POSTGRES" -c "DROP SCHEMA IF EXISTS $schema CASCADE" 2>/dev/null
    true
}
trap cleanup EXIT
export OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase-123
if [ -n "${POSTGRES:-}" ]; then
    schema=oathdesk_wrk_$$
    case $POSTGRES in *\?*) sep='&' ;; *) sep='?' ;; esac
    export OATHDESK_DATABASE_URL="$POSTGRES${sep}schema=$schema"
    where="PostgreSQL schema $schema"
else
    export OATHDESK_VAULT=$work/vault.db
    where=$work/vault.db
fi

echo "vault of $users users with a token and a mobile number on file each in $where"
"$oathdesk" seed new --count "$users" > "$work/seeds.txt"
# The Mobile column becomes each user's data on file, which a call-back needs.
awk 'BEGIN { print "username,secret,serial,mobile" }
     { printf "user%07d@contoso.com,%s,S%07d,+44 7700 %07d\n", NR, $0, NR, NR }' \
    "$work/seeds.txt" > "$work/sheet.csv"
"$oathdesk" vault init --kdf-memory-mib 64 >/dev/null
"$oathdesk" import spreadsheet "$work/sheet.csv" >/dev/null 2>&1
"$oathdesk" vault set helpdesk.codes_per_hour 1000000000 >/dev/null

"$oathdesk" serve --listen "127.0.0.1:$port" > "$work/serve.out" 2> "$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q "console on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$port
# The command-line operator becomes the console's first admin, then makes a token.
curl -sf -c "$work/jar" -H 'Content-Type: application/json' \
    -d '{"operator":"bench","passphrase":"bench-passphrase-123"}' "$base/api/v1/setup" > "$work/me.json"
csrf=$(sed -E 's/.*"csrf":"([^"]+)".*/\1/' "$work/me.json")
TOKEN=$(curl -sf -b "$work/jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
    -d '{"name":"wrk","scopes":["helpdesk.code","toolset"],"days":1}' "$base/api/v1/me/tokens" \
    | sed -E 's/.*"token":"([^"]+)".*/\1/')
export TOKEN USERS=$users
# One request by hand, to see that it is granted (the same body as bench/helpdesk.lua's).
check='{"user":"user0000001@contoso.com","ticket":"CHECK-0001","verifications":[{"method":"call-back","confirmed":[true,true],"evidence":"called the mobile on file, the user answered"}]}'
[ -n "${OLD_API:-}" ] && check='{"user":"user0000001@contoso.com","verified_by":"check","ticket":"CHECK-0001"}'
answer=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "$check" "$base/api/v1/helpdesk/code")
case $answer in
    *'"code"'*) ;;
    *) echo "helpdesk code refused: $answer"; cat "$work/serve.log"; exit 1 ;;
esac

alongside=
if [ -n "${ALONGSIDE_IMPORT:-}" ]; then
    format=${ALONGSIDE_FORMAT:-spreadsheet}
    if [ "$format" = entra-csv ]; then
        "$oathdesk" seed new --count "$ALONGSIDE_IMPORT" |
            awk 'BEGIN { print "upn,serial number,secret key,time interval,manufacturer,model" }
                 { printf "bulk%07d@contoso.com,T2%08d,%s,30,Token2,C202\n", NR, NR, $0 }' \
            > "$work/bulk.csv"
    else
        "$oathdesk" seed new --count "$ALONGSIDE_IMPORT" |
            awk 'BEGIN { print "username,secret,serial,mobile" }
                 { printf "bulk%07d@contoso.com,%s,B%07d,+44 7700 %07d\n", NR, $0, NR, NR }' \
            > "$work/bulk.csv"
    fi
    ( sleep 10; start=$(date +%s.%N)
      "$oathdesk" import "$format" "$work/bulk.csv" > "$work/bulk.out" 2>&1 || cat "$work/bulk.out"
      echo "alongside: import of $ALONGSIDE_IMPORT rows by another process took $(echo "$(date +%s.%N) - $start" | bc) s" ) &
    alongside=$!
fi

probe=
if [ -n "${PROBE:-}" ]; then
    ( t0=$(date +%s.%N); i=0
      while kill -0 "$server" 2>/dev/null; do
          i=$((i + 1))
          body=${check//CHECK-0001/PROBE-$i}
          took=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" \
              -H 'Content-Type: application/json' -d "$body" "$base/api/v1/helpdesk/code")
          echo "$(echo "$(date +%s.%N) - $t0" | bc) $took"
          sleep 0.1
      done > "$work/probe.log" ) &
    probe=$!
fi

echo
echo "== POST /api/v1/helpdesk/code ($connections connections, $duration)"
API_PATH=/api/v1/helpdesk/code wrk -t"$threads" -c"$connections" -d"$duration" --latency -s bench/helpdesk.lua "$base"
[ -n "$alongside" ] && wait "$alongside"
if [ -n "$probe" ]; then
    kill "$probe" 2>/dev/null; wait "$probe" 2>/dev/null || true
    echo "probe: $(wc -l < "$work/probe.log") requests; those over 50 ms (second of the run, seconds taken):"
    awk '$2 > 0.05 { printf "  %5.1f s  %.3f s\n", $1, $2 }' "$work/probe.log"
fi
if [ "${TOOLSET:-1}" != 0 ]; then
    echo
    echo "== POST /api/v1/toolset/codes ($connections connections, $duration)"
    API_PATH=/api/v1/toolset/codes wrk -t"$threads" -c"$connections" -d"$duration" --latency -s bench/helpdesk.lua "$base"
fi
echo
kill "$server"; wait "$server" 2>/dev/null || true; server=
# Every granted code is in the audit chain, and the chain is intact.
"$oathdesk" audit verify
