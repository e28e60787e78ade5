#!/usr/bin/env bash
# One-shot `oathdesk code` against `oathtool --totp -b`, timed by hyperfine.
# Both print the current code of the same Base32 secret; hyperfine runs each
# without a shell (-N) so only the programs themselves are timed.
#
#   bash bench/code-vs-oathtool.sh            # results on stdout, markdown in $CARGO_TARGET_DIR/bench-code.md
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null && return
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y "$2" >/dev/null
    else
        echo "install $2 (apt-get install $2)" >&2
        exit 1
    fi
}
need oathtool oathtool
need hyperfine hyperfine

# The release binary as shipped: `cargo build --release` links it non-PIE on
# Linux (crates/cli/build.rs), so the loader applies no relocations to it.
# With BENCH_PIE=1 a position-independent build (OATHDESK_PIE=1) runs beside
# it, to show what that costs.
cargo build --release -q -p oathdesk
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
oathdesk=${CARGO_TARGET_DIR:-target}/release/oathdesk
pie_runs=()
if [ "${BENCH_PIE:-0}" = 1 ]; then
    OATHDESK_PIE=1 CARGO_TARGET_DIR=target/pie cargo build --release -q -p oathdesk
    pie_runs=(-n "oathdesk code (PIE build)" "target/pie/release/oathdesk code $secret")
fi

# Same answer first: a benchmark of wrong output is worthless.
at=1234567890
ours=$($oathdesk code "$secret" --at $at)
theirs=$(oathtool --totp -b -N "@$at" "$secret")
[ "$ours" = "$theirs" ] || { echo "outputs differ: oathdesk $ours, oathtool $theirs" >&2; exit 1; }

hyperfine -N --warmup 50 --runs 1000 \
    --export-markdown "${CARGO_TARGET_DIR:-target}/bench-code.md" \
    -n "oathdesk code" "$oathdesk code $secret" \
    "${pie_runs[@]}" \
    -n "oathtool --totp -b" "oathtool --totp -b $secret" \
    -n "oathdesk code --past 5 --future 5 --json" "$oathdesk code $secret --past 5 --future 5 --json" \
    -n "oathtool --totp -b -w 10" "oathtool --totp -b -w 10 $secret"
