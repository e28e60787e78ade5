#!/usr/bin/env bash
# Makes crates/cli/code-order.txt: the functions the one-shot `oathdesk code`
# runs, which crates/cli/build.rs places together at the start of the
# executable's code (build/code_order.rs; BENCHMARKS.md, "placing code's
# functions together").
#
# From a profile: callgrind runs the release binary's plain forms of `code`
# (SECRET as an argument, '-' from standard input, OATHDESK_SECRET), and every
# function of the executable that ran becomes a pattern, hottest first. A
# legacy mangled name's hash (`17h` + 16 hex digits + `E`, and any `.llvm.N`
# suffix of LTO) becomes `*`, as do the crate hashes of a v0 name (std's) and
# its `.llvm.N`, so the list stays right when a new compiler or a
# changed dependency moves the hashes; a name whose pattern would also catch
# many other instances of a generic function keeps its hash instead (it then
# places nothing once the hash moves: run this again). Then it builds with the
# list and checks where the functions landed, and drops the patterns that
# placed nothing because the function has no section of its own (C objects).
#
#   bash bench/code-order.sh             # builds, profiles, writes, checks
#   bash bench/code-order.sh BIN         # profiles BIN instead of building first
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind python3 nm readelf; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

list=crates/cli/code-order.txt
target=${CARGO_TARGET_DIR:-target}
bin=${1:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p oathdesk
    bin=$target/release/oathdesk
fi
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

profile() {
    valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
        --dump-instr=no --callgrind-out-file="$work/$1.cg" "${@:2}" >/dev/null 2>"$work/$1.log" \
        || { cat "$work/$1.log" >&2; exit 1; }
}
profile argument "$bin" code "$secret"
echo "$secret" | profile stdin "$bin" code -
OATHDESK_SECRET=$secret profile environment "$bin" code
nm --defined-only -S "$bin" >"$work/symbols"

python3 - "$bin" "$work" "$list" "$(rustc --version)" <<'EOF'
import collections, datetime, fnmatch, os, re, sys
binary, work, out, rustc = sys.argv[1:5]
binary = os.path.realpath(binary)

# Self cost per function of the executable, over the three profiles. The
# cost line after a `calls=` line is the call's inclusive cost: not this one's.
cost = collections.Counter()
for name in ("argument", "stdin", "environment"):
    ob = fn = None
    call_cost_next = False
    for line in open(f"{work}/{name}.cg"):
        line = line.strip()
        if line.startswith("ob="):
            ob = os.path.realpath(line[3:]) if line[3:] else None
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("calls="):
            call_cost_next = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if call_cost_next:
                call_cost_next = False
            elif ob == binary and fn:
                parts = line.split()
                if len(parts) >= 2:
                    cost[fn] += int(parts[1])

# Defined code symbols of the executable: name -> size.
sizes = {}
for line in open(f"{work}/symbols"):
    parts = line.split()
    if len(parts) == 4 and parts[2] in "tTwW":
        sizes[parts[3]] = int(parts[1], 16)

legacy = re.compile(r"^(_ZN.*17h)[0-9a-f]{16}E(\.llvm\.\d+)?$")
v0_crate = re.compile(r"Cs[0-9A-Za-z]+_")
lto_suffix = re.compile(r"\.llvm\.\d+$")

def glob_of(name):
    """The name with what a new compiler or build changes as `*`."""
    m = legacy.match(name)
    if m:
        return m.group(1) + "*"
    glob = lto_suffix.sub("*", name)
    if name.startswith("_R"):
        # v0 mangling (std's): each crate's disambiguator hash.
        glob = v0_crate.sub("Cs*_", glob)
    return glob

def regex_of(glob):
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")) + r"\Z")

names = [n for n, c in cost.most_common() if n in sizes]
lines, kept_hash = [], 0
seen = set()
for name in names:
    pattern = glob_of(name)
    if pattern != name:
        prefix = pattern.split("*")[0]
        regex = regex_of(pattern)
        caught = [s for s in sizes if s.startswith(prefix) and regex.match(s)]
        # A glob that also catches many other instances of a generic function
        # would fill the section with code `code` never runs.
        if len(caught) > 4:
            pattern = name
            kept_hash += 1
    if pattern in seen or not re.fullmatch(r"[A-Za-z0-9_.$*]+", pattern):
        continue
    seen.add(pattern)
    lines.append(pattern)

demangled = {}
try:
    import subprocess
    text = subprocess.run(["c++filt"], input="\n".join(n for n in names), capture_output=True,
                          text=True, check=True).stdout.splitlines()
    demangled = dict(zip(names, text))
except Exception:
    pass

def label(pattern):
    for name in names:
        if fnmatch.fnmatchcase(name, pattern):
            return re.sub(r"::h[0-9a-f]{16}$", "", demangled.get(name, name))
    return ""

with open(out, "w") as f:
    f.write("# The functions the one-shot `oathdesk code` runs, hottest first: crates/cli/build.rs\n")
    f.write("# places them together before the rest of the code (build/code_order.rs).\n")
    f.write("# Made by bench/code-order.sh from a callgrind profile; do not edit by hand.\n")
    f.write(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {rustc}; "
            f"{len(lines)} patterns ({kept_hash} with their hash kept: generic).\n")
    for pattern in lines:
        f.write(f"{pattern}  # {label(pattern)}\n")
total = sum(sizes[n] for n in names)
print(f"{len(names)} functions of the executable ran ({total} bytes); {len(lines)} patterns, "
      f"{kept_hash} with their hash kept")
EOF

# Where the functions landed in a build with the list.
cargo build --release -q -p oathdesk
built=$target/release/oathdesk
python3 - "$built" "$list" <<'EOF'
import fnmatch, re, subprocess, sys
binary, listing = sys.argv[1:3]
sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                          check=True).stdout
m = re.search(r"\]\s+\.text\.oathdesk_code\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", sections)
if not m:
    sys.exit(f"{binary} has no .text.oathdesk_code: see the build's warning")
start, size = int(m.group(1), 16), int(m.group(2), 16)
symbols = []
for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW":
        symbols.append((parts[2], int(parts[0], 16)))
lines = open(listing).read().splitlines()
kept, dropped = [], []
for line in lines:
    pattern = line.split("#")[0].strip()
    if not pattern:
        kept.append(line)
        continue
    caught = [a for n, a in symbols if fnmatch.fnmatchcase(n, pattern)]
    if caught and all(start <= a < start + size for a in caught):
        kept.append(line)
    else:
        dropped.append(pattern)
if dropped:
    with open(listing, "w") as f:
        f.write("\n".join(kept) + "\n")
    print(f"dropped {len(dropped)} patterns that placed nothing (no section of their own, "
          f"or gone): {' '.join(dropped)}")
print(f".text.oathdesk_code: {size} bytes at {start:#x} ({(size + 4095) // 4096} pages), "
      f"{len(lines) - len(dropped) - sum(1 for l in lines if l.startswith('#'))} patterns placed")
EOF
echo "wrote $list; rebuild (cargo build --release) if patterns were dropped"
