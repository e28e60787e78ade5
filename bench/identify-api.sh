#!/usr/bin/env bash
# `POST /api/v1/identify` through `oathdesk serve` (release build) over a
# vault of COUNT credentials (default 1,000,000): the first request (which
# builds the console's identify index) and then REQUESTS more, one at a
# time, each two consecutive codes of a credential picked from the vault;
# prints the first request's time, p50 / p99 / max of the others, and the
# time of the request after `oathdesk token purge` changed the vault.
#
# The vault takes minutes to make, so it is made once into BENCH_DATA
# (default target/bench-data) and copied for each run: a run writes audit
# rows and migrates the copy to its binary's schema.
#
#   bash bench/identify-api.sh                          # ~5 minutes the first time
#   COUNT=100000 REQUESTS=200 bash bench/identify-api.sh
#   OATHDESK_BIN=/tmp/oathdesk-before bash bench/identify-api.sh   # another build
#
# Make the vault with the OLDEST binary you compare (a newer one migrates
# the copy it serves; an older one refuses a vault of a newer schema).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-1000000}
requests=${REQUESTS:-100}
port=${PORT:-18444}
data=${BENCH_DATA:-target/bench-data}
case $data in /*) ;; *) data=$PWD/$data ;; esac
mkdir -p "$data"

. bench/lib.sh
oathdesk=$(bench_oathdesk)
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; true; }
trap cleanup EXIT
export OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase-123
unset OATHDESK_DATABASE_URL

vault=$data/identify-$count.db
seeds=$data/identify-$count.seeds
if [ ! -f "$vault" ]; then
    echo "making a vault of $count credentials in $vault (once) ..."
    "$oathdesk" seed new --count "$count" > "$seeds"
    awk 'BEGIN { print "username,secret,serial" } { printf "user%07d@contoso.com,%s,S%07d\n", NR, $0, NR }' \
        "$seeds" > "$work/sheet.csv"
    OATHDESK_VAULT=$vault "$oathdesk" vault init --kdf-memory-mib 64 >/dev/null
    /usr/bin/time -f "import: %e s, %M KiB max RSS" \
        env OATHDESK_VAULT="$vault" "$oathdesk" import spreadsheet "$work/sheet.csv" >/dev/null 2>"$work/import.log" \
        || { cat "$work/import.log"; exit 1; }
    grep '^import:' "$work/import.log"
fi
cp "$vault" "$work/vault.db"
export OATHDESK_VAULT=$work/vault.db

# Codes of 20 credentials spread over the vault, at a fixed time.
at=1750000000
bodies=()
for i in $(seq 20); do
    line=$(( (i * 48611) % count + 1 ))
    secret=$(sed -n "${line}p" "$seeds")
    first=$("$oathdesk" code "$secret" --at $at)
    second=$("$oathdesk" code "$secret" --at $((at + 30)))
    bodies+=("{\"codes\":[\"$first\",\"$second\"],\"at\":$at,\"window\":2}")
done

"$oathdesk" serve --listen "127.0.0.1:$port" > "$work/serve.out" 2> "$work/serve.log" &
server=$!
for _ in $(seq 600); do grep -q "console on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$port
# The command-line operator becomes the console's first admin (which
# unseals it), then makes an API token for identify.
curl -sf -c "$work/jar" -H 'Content-Type: application/json' \
    -d '{"operator":"bench","passphrase":"bench-passphrase-123"}' "$base/api/v1/setup" > "$work/me.json"
csrf=$(sed -E 's/.*"csrf":"([^"]+)".*/\1/' "$work/me.json")
token=$(curl -sf -b "$work/jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
    -d '{"name":"bench","scopes":["identify"],"days":1}' "$base/api/v1/me/tokens" \
    | sed -E 's/.*"token":"([^"]+)".*/\1/')

identify() {
    curl -s -o "$work/answer.json" -w '%{time_total}\n' -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "$1" "$base/api/v1/identify"
}
echo "== POST /api/v1/identify over $count credentials ($oathdesk)"
echo "first request (builds the index if the console keeps one): $(identify "${bodies[0]}") s"
grep -q '"credential"' "$work/answer.json" || { echo "no hit: $(cat "$work/answer.json")"; exit 1; }
for n in $(seq "$requests"); do
    identify "${bodies[$(( n % 20 ))]}"
done > "$work/times"
grep -q '"credential"' "$work/answer.json" || { echo "no hit: $(cat "$work/answer.json")"; exit 1; }
sort -n "$work/times" | awk -v n="$requests" '
    { t[NR] = $1 }
    END {
        p50 = t[int((n + 1) * 0.50)]; p99 = t[int(n * 0.99) < 1 ? 1 : int(n * 0.99)]
        printf "next %d requests, one at a time: p50 %.3f s, p99 %.3f s, max %.3f s\n", n, p50, p99, t[n]
    }'
echo "console memory: $(grep VmRSS /proc/$server/status)"
# Another process changes the vault: the next request patches the index.
"$oathdesk" token purge "$(printf 'S%07d' $(( 2 * 48611 % count + 1 )))" >/dev/null 2>&1
echo "first request after a purge by the command line: $(identify "${bodies[1]}") s"
[ "$(cat "$work/answer.json")" = "[]" ] || { echo "the purged token was still found: $(cat "$work/answer.json")"; exit 1; }
