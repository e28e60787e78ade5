#!/usr/bin/env bash
# `oathdesk export entra-csv` of 100,000 credentials from a vault: unlock
# (default Argon2id), read and open every secret, write the CSV, audit.
#
#   bash bench/export-100k.sh           # needs hyperfine
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)" >&2; exit 1; }

cargo build --release -q -p oathdesk
oathdesk=$PWD/target/release/oathdesk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OATHDESK_VAULT=$work/vault.db OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase

"$oathdesk" seed new --count 100000 > "$work/seeds.txt"
awk 'BEGIN { print "upn,serial number,secret key,time interval,manufacturer,model" }
     { printf "user%06d@contoso.com,T2%08d,%s,30,Token2,C202\n", NR, NR, $0 }' "$work/seeds.txt" > "$work/entra.csv"
"$oathdesk" vault init
/usr/bin/time -f "import entra-csv 100k: %e s" "$oathdesk" import entra-csv "$work/entra.csv" >/dev/null

hyperfine --warmup 1 --runs 5 --export-markdown target/bench-export.md \
    -n "oathdesk export entra-csv (100k credentials)" \
    "$oathdesk export entra-csv --plaintext --out $work/out.csv"
cmp <(sort "$work/entra.csv") <(sort "$work/out.csv") && echo "export matches the imported file"
