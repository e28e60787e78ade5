#!/usr/bin/env bash
# Generates the book's two reference chapters from the oathdesk binary, so they
# always describe the version that was built:
#   src/reference/cli.md  every command and subcommand's --help, recursively;
#   src/reference/api.md  the OpenAPI document, rendered by openapi-to-md.py.
# The binary has no command that prints the OpenAPI document, so this starts a
# throw-away demo console on a free loopback port, fetches
# /api/v1/openapi.json and stops it again (the demo deletes its own vault).
#
# OATHDESK_BIN names the binary (default: target/debug/oathdesk).
set -euo pipefail
docs="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$docs")"
bin="${OATHDESK_BIN:-$root/target/debug/oathdesk}"
if [ ! -x "$bin" ]; then
    echo "gen-reference.sh: no oathdesk binary at $bin: build it with 'cargo build -p oathdesk'" >&2
    echo "or point OATHDESK_BIN at one" >&2
    exit 1
fi
out="$docs/src/reference"
mkdir -p "$out"

# --- CLI reference -----------------------------------------------------------
# The subcommands of a command, from the "Commands:" section of its help.
subcommands() {
    "$bin" "$@" --help | awk '
        /^Commands:/ { inside = 1; next }
        inside && /^[^ ]/ { inside = 0 }
        inside && /^  [a-z0-9][a-z0-9-]* / { print $1 }
        inside && /^  [a-z0-9][a-z0-9-]*$/ { print $1 }' | grep -vx help || true
}

# One section per command, depth first, so the page reads like the command tree.
document_command() {
    local depth=$1; shift
    local hashes
    hashes=$(printf '%*s' "$((depth < 5 ? depth : 5))" '' | tr ' ' '#')
    printf '%s `oathdesk%s`\n\n```text\n' "$hashes" "$(printf ' %s' "$@")"
    "$bin" "$@" --help
    printf '```\n\n'
    local sub
    for sub in $(subcommands "$@"); do
        document_command "$((depth + 1))" "$@" "$sub"
    done
}

{
    printf '# CLI reference\n\n'
    printf 'Generated from `%s` by `docs/gen-reference.sh`: the help of every command and\n' "$("$bin" --version)"
    printf 'subcommand, as `oathdesk COMMAND --help` prints it. Exit codes and how secrets are given\n'
    printf 'are explained in [The command line](../command-line.md).\n\n'
    printf '## `oathdesk`\n\n```text\n'
    "$bin" --help
    printf '```\n\n'
    for command in $(subcommands); do
        document_command 3 "$command"
    done
} > "$out/cli.md.tmp"
mv "$out/cli.md.tmp" "$out/cli.md"
echo "wrote $out/cli.md ($(grep -c '^#' "$out/cli.md") commands)"

# --- API reference -----------------------------------------------------------
scratch=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -INT "$server_pid" 2>/dev/null || true   # Ctrl-C: the demo deletes its vault
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
trap cleanup EXIT
"$bin" serve --demo --listen 127.0.0.1:0 >"$scratch/serve.out" 2>"$scratch/serve.err" &
server_pid=$!
url=
for _ in $(seq 1 600); do
    url=$(sed -n 's/^oathdesk console on \(http:[^ ]*\)$/\1/p' "$scratch/serve.out")
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$scratch/serve.err" >&2; echo "gen-reference.sh: the demo console did not start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "gen-reference.sh: the demo console printed no address within 60 s" >&2; exit 1; }
python3 - "$url/api/v1/openapi.json" "$scratch/openapi.json" <<'PY'
import sys, time, urllib.request
for attempt in range(50):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:
            open(sys.argv[2], "wb").write(answer.read())
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit(f"gen-reference.sh: could not fetch {sys.argv[1]}")
PY
python3 "$docs/openapi-to-md.py" "$scratch/openapi.json" > "$out/api.md.tmp"
mv "$out/api.md.tmp" "$out/api.md"
echo "wrote $out/api.md ($(grep -c '^### `' "$out/api.md") operations)"
