#!/usr/bin/env bash
# Installs the package built by build-deb.sh on this machine and checks it as
# an admin would meet it: the unit verifies, the service user and the config
# file's permissions are right, completions and man pages are in place, the
# installed `oathdesk selftest` passes, and the installed binary serves the
# console as the service user from the installed config against a scratch
# vault. Then removes and purges the package. Needs root (dpkg); CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=$(ls -t target/debian/oathdesk_*.deb | head -1)
fail() { echo "test-deb: $*" >&2; exit 1; }
step() { printf -- '-- %s\n' "$*"; }

step "install $deb"
dpkg -i "$deb" >/dev/null
trap 'dpkg -P oathdesk >/dev/null 2>&1 || true' EXIT

unit=$(dpkg -L oathdesk | grep -E '/systemd/system/oathdesk\.service$') || fail "no unit installed"
step "systemd-analyze verify $unit"
systemd-analyze verify "$unit"
step "systemd-analyze security (exposure must stay at or below 2.0)"
systemd-analyze security --offline=yes --threshold=20 "$unit" | tail -1

step "service user and config"
getent passwd oathdesk >/dev/null || fail "no oathdesk user"
[ "$(stat -c %U:%G:%a /etc/oathdesk/oathdesk.toml)" = root:oathdesk:640 ] \
    || fail "/etc/oathdesk/oathdesk.toml is $(stat -c %U:%G:%a /etc/oathdesk/oathdesk.toml), not root:oathdesk:640"

step "completions and man pages"
[ -s /usr/share/bash-completion/completions/oathdesk ] || fail "no bash completion"
[ -s /usr/share/zsh/vendor-completions/_oathdesk ] || fail "no zsh completion"
[ -s /usr/share/fish/vendor_completions.d/oathdesk.fish ] || fail "no fish completion"
bash -c 'source /usr/share/bash-completion/completions/oathdesk && complete -p oathdesk' >/dev/null \
    || fail "the bash completion does not register"
for page in oathdesk oathdesk-serve oathdesk-token; do
    ls /usr/share/man/man1/"$page".1* >/dev/null 2>&1 || fail "no man page $page"
done
man -l /usr/share/man/man1/oathdesk-serve.1* 2>/dev/null | grep -q -- '--listen' || fail "oathdesk-serve(1) does not render"

step "the packaged binary starts without relocating itself"
# crates/cli/build.rs links it non-PIE (the one-shot `oathdesk code` starts as
# fast as oathtool; BENCHMARKS.md): a PIE here means that link flag was lost.
readelf -h /usr/bin/oathdesk | grep -q 'Type:.*EXEC' \
    || { echo "/usr/bin/oathdesk is position-independent; crates/cli/build.rs should link it -no-pie"; exit 1; }

step "the packaged binary has the functions of 'code' placed together"
# crates/cli/build.rs inserts them in a section of their own before .text
# where the linker takes its script (rust-lld and GNU ld do); without it the
# build printed a warning saying why, and the one-shot code starts slower.
readelf -SW /usr/bin/oathdesk | grep -q '\.text\.oathdesk_code' \
    || fail "/usr/bin/oathdesk has no .text.oathdesk_code; see crates/cli/build.rs's warning in the build log"

step "the packaged binary loads no unwinder or libm and starts 'code' short"
# crates/cli/build.rs links the unwinder in (libgcc_eh), src/math.rs defines the
# libm functions the build uses, and main is wrapped so that `code` skips std's
# start-up (src/start.rs): two libraries fewer to load at each start. The
# short start-up leaves SIGPIPE at its default: a reader that leaves early ends
# `code` quietly with 141, where std's start-up would make it panic (101).
! readelf -d /usr/bin/oathdesk | grep -q 'NEEDED.*libgcc_s' \
    || fail "/usr/bin/oathdesk loads libgcc_s; crates/cli/build.rs should link libgcc_eh"
! readelf -d /usr/bin/oathdesk | grep -q 'NEEDED.*libm\.so' \
    || fail "/usr/bin/oathdesk loads libm.so.6: a dependency now calls a libm function that crates/cli/src/math.rs does not define (nm -D --undefined-only names it); add it there"
set +o pipefail
/usr/bin/oathdesk code GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ --at 2000000000 --past 5000 2>/dev/null \
    | head -c1 >/dev/null
status=${PIPESTATUS[0]}
set -o pipefail
[ "$status" = 141 ] \
    || fail "'oathdesk code | head -c1' exited $status, not 141; is main still wrapped (crates/cli/build.rs)?"

step "installed selftest"
/usr/bin/oathdesk selftest

step "installed serve, as the service user, from the installed config"
scratch=$(mktemp -d)
chown oathdesk:oathdesk "$scratch"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$scratch/serve.log
runuser -u oathdesk -- /usr/bin/oathdesk serve --config /etc/oathdesk/oathdesk.toml \
    --vault "$scratch/vault.db" --listen "127.0.0.1:$port" >"$log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null || true; dpkg -P oathdesk >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 $serve 2>/dev/null || { cat "$log"; fail "serve ended"; }
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$log"; fail "/healthz does not answer"; }
curl -fsS "http://127.0.0.1:$port/login" | grep -qi '<html' || fail "the console's login page does not load"
grep -q '/setup' "$log" || { cat "$log"; fail "the first start printed no setup link"; }
[ "$(stat -c %U:%a "$scratch/vault.db")" = oathdesk:600 ] \
    || fail "the new vault is $(stat -c %U:%a "$scratch/vault.db"), not oathdesk:600"
kill $serve
wait $serve 2>/dev/null || true
rm -rf "$scratch"

step "remove and purge"
dpkg -r oathdesk >/dev/null
dpkg -P oathdesk >/dev/null
! getent passwd oathdesk >/dev/null || fail "purge left the oathdesk user"
trap - EXIT
echo "package: installed, served, removed"
