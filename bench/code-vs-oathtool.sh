#!/usr/bin/env bash
# One-shot `oathdesk code` against `oathtool --totp -b`, timed by hyperfine.
# Both print the current code of the same Base32 secret; hyperfine runs each
# without a shell (-N) so only the programs themselves are timed.
#
#   bash bench/code-vs-oathtool.sh            # results on stdout, markdown in target/bench-code.md
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

# The release binary as shipped: statically linked and not position-independent,
# so the loader has no shared libraries to map and no relocations to apply
# (about 50 fewer page faults per run than a default PIE build; BENCHMARKS.md).
target=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C relocation-model=static -C target-feature=+crt-static" \
    CARGO_TARGET_DIR=target/static cargo build --release -q -p oathdesk --target "$target"
cargo build --release -q -p oathdesk
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
oathdesk=target/static/$target/release/oathdesk
pie=target/release/oathdesk

# Same answer first: a benchmark of wrong output is worthless.
at=1234567890
ours=$($oathdesk code "$secret" --at $at)
theirs=$(oathtool --totp -b -N "@$at" "$secret")
[ "$ours" = "$theirs" ] || { echo "outputs differ: oathdesk $ours, oathtool $theirs" >&2; exit 1; }

hyperfine -N --warmup 50 --runs 1000 \
    --export-markdown target/bench-code.md \
    -n "oathdesk code" "$oathdesk code $secret" \
    -n "oathdesk code (default PIE build)" "$pie code $secret" \
    -n "oathtool --totp -b" "oathtool --totp -b $secret" \
    -n "oathdesk code --past 5 --future 5 --json" "$oathdesk code $secret --past 5 --future 5 --json" \
    -n "oathtool --totp -b -w 10" "oathtool --totp -b -w 10 $secret"
