#!/usr/bin/env bash
# HOTP-SHA-1 codes against the machine's SHA-1 limit (issue 19, item 5): the
# machine's best from `openssl speed` on 16 KiB buffers (user CPU time of one
# core; a compression per 64 bytes), then crates/otp's `sha1_limit` bench
# (thread CPU time; see its header), each group as compressions per second
# and as a fraction of openssl's.
#
#   bash bench/sha1-limit.sh          # about a minute after the bench's build
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { echo "install openssl" >&2; exit 1; }
echo "machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores, sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
# "sha1 … 2050452.14k": thousands of bytes a second, 16 KiB buffers last.
best=$(openssl speed -seconds 3 -bytes 16384 -evp sha1 2>/dev/null \
    | awk '/^sha1 / { sub(/k$/, "", $NF); printf "%.2f", $NF * 1000 / 64 / 1e6 }')
echo "openssl speed -evp sha1, 16 KiB: $best M compressions/s"
cargo bench -q -p oathdesk-otp --bench sha1_limit -- --warm-up-time 1 --measurement-time 3 2>/dev/null \
    | awk -v best="$best" '
        /^sha1-limit\// { name = $1 }
        /thrpt:/ && name != "" {
            # the middle estimate, in Melem/s (an element is a compression)
            value = $4
            printf "%-22s %6.2f M compressions/s  %5.1f %% of openssl\n", name, value, 100 * value / best
            name = ""
        }'
