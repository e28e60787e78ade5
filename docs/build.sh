#!/usr/bin/env bash
# Builds the book into docs/book: generates the CLI and API references from the
# oathdesk binary (OATHDESK_BIN, default target/debug/oathdesk), runs mdbook,
# then checks every link and anchor. Exits non-zero at the first failing step.
set -euo pipefail
docs="$(cd "$(dirname "$0")" && pwd)"
mdbook="${MDBOOK:-mdbook}"
command -v "$mdbook" >/dev/null || {
    echo "build.sh: mdbook not found: 'cargo install mdbook' (or set MDBOOK to its path)" >&2
    exit 1
}
"$docs/gen-reference.sh"
"$mdbook" build "$docs"
python3 "$docs/check-links.py" "$docs"
