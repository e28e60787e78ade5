#!/usr/bin/env bash
# Builds the oathdesk binary that ships (the Debian package's /usr/bin/oathdesk)
# and prints its absolute path.
#
#   bash packaging/build-release.sh        # about 10 minutes on two cores, once
#   install -m 755 "$(bash packaging/build-release.sh)" /usr/local/bin/oathdesk
#
# It is `cargo build --release -p oathdesk` with every crate compiled for a fixed
# address (`-C relocation-model=static`): the executable is not position-independent
# anyway (crates/cli/build.rs links it with -no-pie), and code compiled as if it were
# reaches its own statics through a global offset table that the loader fills at
# every start — 29 KB of it and 536 KB of relocated read-only data, against 4 KB and
# 11 KB compiled for a fixed address. The one-shot `oathdesk code` starts 4–7 % faster
# (BENCHMARKS.md). The flag is given with an explicit --target so that it reaches
# only the binary's crates: build scripts and procedural macros are loaded as shared
# objects and must stay position-independent (with a plain `cargo build` they would
# not link). So the binary lands in target/<host triple>/release/, not
# target/release/. OATHDESK_RELOCATION=pic builds the plain way instead.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
if [ "${OATHDESK_RELOCATION:-static}" = pic ]; then
    cargo build --locked --release -p oathdesk >&2
    echo "$target_dir/release/oathdesk"
    exit 0
fi
host=$(rustc -vV | sed -n 's/^host: //p')
case $host in
    *-linux-gnu) ;;
    *) # Only the GNU/Linux link is non-PIE (crates/cli/build.rs).
        cargo build --locked --release -p oathdesk >&2
        echo "$target_dir/release/oathdesk"
        exit 0 ;;
esac
# Its symbol table stripped as the package's is (cargo-deb strips): measured, the
# one-shot `oathdesk code` started 3 % slower with it (BENCHMARKS.md), though no
# loaded segment holds it. Panic messages keep their file and line.
RUSTFLAGS="${RUSTFLAGS:-} -C relocation-model=static -C strip=symbols" \
    cargo build --locked --release -p oathdesk --target "$host" >&2
echo "$target_dir/$host/release/oathdesk"
