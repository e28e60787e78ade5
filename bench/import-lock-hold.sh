#!/usr/bin/env bash
# How long an import holds a SQLite vault's write lock (the time every other
# writer, such as the console's helpdesk codes, waits): a vault of 1,000
# users as bench/helpdesk-wrk.sh makes it, then a spreadsheet import and an
# Entra CSV import of ROWS new tokens each, while bench/write_lock_probe.py
# tries the write lock every millisecond from another process and prints
# each stretch it found the lock held (5 ms or more) and the import's time.
#
#   bash bench/import-lock-hold.sh                       # release build here
#   OATHDESK_BIN=/tmp/oathdesk-before ROWS=100000 bash bench/import-lock-hold.sh
#   SIGNAL=1 …   # the probe waits as an oathdesk writer does (it says so
#                # by the vault's wait file; see bench/write_lock_probe.py)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${ROWS:-100000}
. bench/lib.sh
oathdesk=$(bench_oathdesk)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase-123
export OATHDESK_VAULT=$work/vault.db

"$oathdesk" seed new --count 1000 |
    awk 'BEGIN { print "username,secret,serial,mobile" }
         { printf "user%07d@contoso.com,%s,S%07d,+44 7700 %07d\n", NR, $0, NR, NR }' > "$work/sheet.csv"
"$oathdesk" seed new --count "$rows" > "$work/seeds.txt"
awk 'BEGIN { print "username,secret,serial,mobile" }
     { printf "bulk%07d@contoso.com,%s,B%07d,+44 7700 %07d\n", NR, $0, NR, NR }' \
    "$work/seeds.txt" > "$work/bulk.csv"
awk 'BEGIN { print "upn,serial number,secret key,time interval,manufacturer,model" }
     { printf "entra%07d@contoso.com,T2%08d,%s,30,Token2,C202\n", NR, NR, $0 }' \
    "$work/seeds.txt" > "$work/entra.csv"
"$oathdesk" vault init --kdf-memory-mib 64 >/dev/null
"$oathdesk" import spreadsheet "$work/sheet.csv" >/dev/null 2>&1

measure() {
    local what=$1; shift
    rm -f "$work/stop"
    python3 bench/write_lock_probe.py "$work/vault.db" --stop "$work/stop" ${SIGNAL:+--signal} > "$work/probe.out" &
    local probe=$!
    sleep 0.5
    local start end
    start=$(date +%s.%N)
    "$@" > "$work/import.out" 2>&1 || { cat "$work/import.out"; exit 1; }
    end=$(date +%s.%N)
    sleep 0.2
    touch "$work/stop"
    wait "$probe"
    echo "== $what of $rows rows: $(echo "$end - $start" | bc) s in all (unlock, read, plan, seal, sign, write)"
    cat "$work/probe.out"
}
echo "load: $(cat /proc/loadavg)"
measure "import spreadsheet" "$oathdesk" import spreadsheet "$work/bulk.csv"
measure "import entra-csv" "$oathdesk" import entra-csv "$work/entra.csv"
echo "load: $(cat /proc/loadavg)"
"$oathdesk" vault verify >/dev/null && echo "vault verify: intact"
