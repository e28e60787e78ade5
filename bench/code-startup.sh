#!/usr/bin/env bash
# The start-up of the one-shot `oathdesk code` against `oathtool --totp -b`
# (BENCHMARKS.md, "the loader and the runtime"): for each binary the shared
# libraries it loads, the symbols the loader binds, the loader's relocations
# (LD_DEBUG=statistics), instructions (callgrind: the same under any load),
# page faults (median of 9 runs) and wall time, with the commands taking
# turns over several hyperfine rounds so that a change of load falls on all.
#
#   bash bench/code-startup.sh                     # the release build
#   bash bench/code-startup.sh OLD_BIN NEW_BIN     # binaries side by side
#   ROUNDS=10 RUNS=100 bash bench/code-startup.sh  # the defaults
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in oathtool hyperfine valgrind python3 nm; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

if [ $# = 0 ]; then
    cargo build --release -q -p oathdesk
    set -- "${CARGO_TARGET_DIR:-target}/release/oathdesk"
fi
rounds=${ROUNDS:-10}
runs=${RUNS:-100}
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Same answer first: a benchmark of wrong output is worthless.
theirs=$(oathtool --totp -b -N @1234567890 "$secret")
for bin in "$@"; do
    ours=$("$bin" code "$secret" --at 1234567890)
    [ "$ours" = "$theirs" ] || { echo "$bin prints $ours, oathtool $theirs" >&2; exit 1; }
done

names=()
commands=()
for bin in "$@"; do
    names+=("$bin")
    commands+=("$bin code $secret")
done
names+=("oathtool")
commands+=("$(command -v oathtool) --totp -b $secret")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\t%s\t%s\t%s\t%s\t%s\n' command libraries imports relocations instructions page-faults
for i in "${!commands[@]}"; do
    read -ra cmd <<<"${commands[$i]}"
    # Shared libraries besides the loader and the vDSO.
    libs=$(LD_TRACE_LOADED_OBJECTS=1 "${cmd[0]}" | grep -c '=>' || true)
    # The executable's imports plus those of every library it loads.
    imports=$(for f in "${cmd[0]}" $(LD_TRACE_LOADED_OBJECTS=1 "${cmd[0]}" | awk '/=>/ {print $3}'); do
        nm -D --undefined-only "$f" | grep -vc ' w ' || true
    done | awk '{s += $1} END {print s}')
    relocations=$(LD_DEBUG=statistics "${cmd[@]}" 2>&1 >/dev/null \
        | awk -F: '/number of relocations:/ {gsub(/ /, "", $3); print $3; exit}')
    instructions=$(valgrind --tool=callgrind --callgrind-out-file="$work/cg" "${cmd[@]}" 2>&1 >/dev/null \
        | awk '/Collected/ {print $NF}')
    faults=$(for _ in 1 2 3 4 5 6 7 8 9; do
        /usr/bin/time -f %R "${cmd[@]}" 2>&1 >/dev/null | tail -1
    done | median)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${names[$i]}" "$libs" "$imports" "$relocations" "$instructions" "$faults"
done

for round in $(seq 1 "$rounds"); do
    for i in "${!commands[@]}"; do
        hyperfine -N --warmup 20 --runs "$runs" --style none \
            --export-json "$work/r$round-c$i.json" "${commands[$i]}" >/dev/null 2>&1
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work" "$rounds" "${#commands[@]}" "${names[@]}" <<'EOF'
import json, statistics, sys
work, rounds, count, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
rows = []
for i in range(count):
    times, user, system = [], [], []
    for r in range(1, rounds + 1):
        with open(f"{work}/r{r}-c{i}.json") as f:
            result = json.load(f)["results"][0]
        times += result["times"]
        user.append(result["user"])
        system.append(result["system"])
    rows.append((statistics.median(times), statistics.mean(times), statistics.stdev(times),
                 statistics.mean(user), statistics.mean(system), len(times)))
base = rows[-1][0]
print("command\tmedian\tmean ± σ\tuser\tsys\truns\tratio to oathtool")
for name, (med, mean, sd, user, system, n) in zip(names, rows):
    print(f"{name}\t{med*1e3:.3f} ms\t{mean*1e3:.3f} ± {sd*1e3:.3f} ms\t{user*1e3:.3f} ms\t"
          f"{system*1e3:.3f} ms\t{n}\t{med/base:.2f}×")
EOF
