#!/usr/bin/env bash
# `oathdesk device provision` of all 100 slots of a simulated Molto-2, with
# 5 ms added to every APDU (a USB round trip is in that range), against the
# vendor script's 7 APDUs per profile. Each run starts from a fresh vault
# and a factory-fresh simulated token; the default Argon2id unlock is in
# the time (about 0.6 s).
#
#   bash bench/provision-100.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}

cargo build --release -q -p oathdesk
oathdesk=$PWD/target/release/oathdesk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OATHDESK_VAULT=$work/vault.db OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase

for i in $(seq 0 99); do printf 'user%03d@contoso.com\n' "$i"; done > "$work/users.txt"
for run in $(seq 1 "$runs"); do
    rm -f "$work/vault.db" "$work/molto.json"
    "$oathdesk" vault init 2>/dev/null
    "$oathdesk" device sim new "$work/molto.json" >/dev/null
    start=$(date +%s.%N)
    "$oathdesk" device provision --users "$work/users.txt" --factory-key \
        --transport "sim:$work/molto.json?latency-ms=5" >/dev/null 2>"$work/log"
    end=$(date +%s.%N)
    apdus=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['apdus_received'])" "$work/molto.json")
    used=$("$oathdesk" device slots --transport "sim:$work/molto.json" 2>&1 | grep -c ' yes ' || true)
    printf 'run %d: %s s wall, %d APDUs (%.2f per profile; vendor script: 7), %d slots hold a seed\n' \
        "$run" "$(echo "$end - $start" | bc)" "$apdus" "$(echo "$apdus / 100" | bc -l)" "$used"
    tail -1 "$work/log"
done
