#!/usr/bin/env bash
# Peers measured in the repo (issue 19, item 6): oathdesk against privacyIDEA
# on the same N TOTP tokens (default 2,000), and one-shot codes against
# oathtool and pyotp. A benchmark, never a test: bounded, loopback only.
#
#   bash bench/peers.sh                       # N=2000, 15 s per load run
#   N=10000 SECONDS_PER_RUN=20 bash bench/peers.sh
#
# privacyIDEA and pyotp are installed from PyPI into a virtual environment
# under PEERS_CACHE (default ~/.cache/oathdesk-peers; reused by later runs).
# privacyIDEA runs under gunicorn (2 workers, 127.0.0.1, no worker timeout
# so its bulk load can finish) on SQLite, which is
# its simplest set-up, not its production one (say so next to the figures).
# oathtool comes from apt (`apt-get install oathtool`); wrk and hyperfine too.
#
# What is compared, interleaved (oathdesk, privacyIDEA, oathdesk again):
#   helpdesk code   oathdesk POST /api/v1/helpdesk/code (wrk, 16 connections)
#                   vs privacyIDEA POST /validate/check with a real code
#                   (bench/peers_load.py, 16 connections)
#   bulk import     `oathdesk import spreadsheet` vs POST /token/load (oathcsv)
#   identify        oathdesk POST /api/v1/identify vs GET /token/getserial/<otp>
#                   (one request at a time)
#   one-shot code   oathdesk code vs oathtool --totp vs pyotp (hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-2000}
run=${SECONDS_PER_RUN:-15}
port=${PORT:-18445}
pi_port=${PI_PORT:-18446}
cache=${PEERS_CACHE:-$HOME/.cache/oathdesk-peers}
for tool in wrk hyperfine oathtool curl python3; do
    command -v $tool >/dev/null || { echo "install $tool (apt-get install $tool)" >&2; exit 1; }
done

. bench/lib.sh
oathdesk=$(bench_oathdesk)

venv=$cache/venv
if [ ! -x "$venv/bin/gunicorn" ] || [ ! -x "$venv/bin/pi-manage" ]; then
    echo "installing privacyIDEA, gunicorn and pyotp into $venv (once) ..."
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "privacyidea${PI_VERSION:+==$PI_VERSION}" gunicorn pyotp
fi
pi_version=$("$venv/bin/pip" show privacyidea 2>/dev/null | sed -n 's/^Version: //p')

work=$(mktemp -d)
server=
pi_server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    [ -n "$pi_server" ] && kill "$pi_server" 2>/dev/null
    wait 2>/dev/null; rm -rf "$work"; true
}
trap cleanup EXIT
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('%.0f' % (a / b) if b else 'n/a')" "$1" "$2"; }

# The same N secrets for both: base32 for oathdesk's sheet and pyotp, hex
# for privacyIDEA's OATH CSV.
"$oathdesk" seed new --count "$n" > "$work/seeds.txt"
awk 'BEGIN { print "username,secret,serial,mobile" }
     { printf "user%07d@contoso.com,%s,S%07d,+44 7700 %07d\n", NR, $0, NR, NR }' \
    "$work/seeds.txt" > "$work/sheet.csv"
"$venv/bin/python" - "$work/seeds.txt" > "$work/pi.csv" <<'PY'
import base64, sys
for i, line in enumerate(open(sys.argv[1]), 1):
    print("S%07d, %s, totp, 6, 30" % (i, base64.b32decode(line.strip()).hex()))
PY

# ---- oathdesk
export OATHDESK_OPERATOR=bench OATHDESK_PASSPHRASE=bench-passphrase-123 OATHDESK_VAULT=$work/vault.db
unset OATHDESK_DATABASE_URL
"$oathdesk" vault init --kdf-memory-mib 64 >/dev/null
start=$(date +%s.%N)
"$oathdesk" import spreadsheet "$work/sheet.csv" >/dev/null 2>&1
od_import=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$(date +%s.%N)" "$start")
"$oathdesk" vault set helpdesk.codes_per_hour 1000000000 >/dev/null
"$oathdesk" serve --listen "127.0.0.1:$port" > "$work/serve.out" 2> "$work/serve.log" &
server=$!
for _ in $(seq 300); do grep -q "console on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$port
curl -sf -c "$work/jar" -H 'Content-Type: application/json' \
    -d '{"operator":"bench","passphrase":"bench-passphrase-123"}' "$base/api/v1/setup" > "$work/me.json"
csrf=$(sed -E 's/.*"csrf":"([^"]+)".*/\1/' "$work/me.json")
token=$(curl -sf -b "$work/jar" -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
    -d '{"name":"peers","scopes":["helpdesk.code","identify"],"days":1}' "$base/api/v1/me/tokens" \
    | sed -E 's/.*"token":"([^"]+)".*/\1/')

# ---- privacyIDEA (SQLite, gunicorn with 2 workers, loopback)
mkdir -p "$work/pi"
cat > "$work/pi/pi.cfg" <<CFG
SQLALCHEMY_DATABASE_URI = 'sqlite:///$work/pi/pi.sqlite'
SECRET_KEY = '$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')'
PI_PEPPER = '$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')'
PI_ENCFILE = '$work/pi/enckey'
PI_AUDIT_KEY_PRIVATE = '$work/pi/private.pem'
PI_AUDIT_KEY_PUBLIC = '$work/pi/public.pem'
PI_LOGFILE = '$work/pi/pi.log'
PI_LOGLEVEL = 30
CFG
export PRIVACYIDEA_CONFIGFILE=$work/pi/pi.cfg
pim() { "$venv/bin/pi-manage" "$@" >> "$work/pi/manage.log" 2>&1; }
# pi-manage moved its set-up commands under `setup` in 3.10; try both.
pim setup create_enckey || pim create_enckey
pim setup create_audit_keys || pim create_audit_keys
pim setup create_tables || pim createdb
pim admin add admin -p bench-admin-password || { cat "$work/pi/manage.log"; exit 1; }
"$venv/bin/gunicorn" -w 2 --timeout 7200 -b "127.0.0.1:$pi_port" \
    "privacyidea.app:create_app(config_name='production', config_file='$work/pi/pi.cfg', silent=True)" \
    > "$work/pi/gunicorn.log" 2>&1 &
pi_server=$!
pi=http://127.0.0.1:$pi_port
for _ in $(seq 600); do curl -sf "$pi/" >/dev/null 2>&1 && break; sleep 0.2; done
jwt=$(curl -sf -d username=admin -d password=bench-admin-password "$pi/auth" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["value"]["token"])') \
    || { echo "privacyIDEA did not start:"; tail -20 "$work/pi/gunicorn.log"; exit 1; }
start=$(date +%s.%N)
curl -sf -H "Authorization: $jwt" -F type=oathcsv -F "file=@$work/pi.csv" "$pi/token/load/tokens.csv" > "$work/pi/load.json" \
    || { echo "privacyIDEA token load failed"; exit 1; }
pi_import=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) - float(sys.argv[2])))" "$(date +%s.%N)" "$start")
loaded=$(curl -sf -H "Authorization: $jwt" "$pi/token/?pagesize=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["value"]["count"])')
[ "$loaded" = "$n" ] || { echo "privacyIDEA holds $loaded tokens, not $n"; exit 1; }

echo "== $n TOTP tokens; oathdesk $("$oathdesk" --version | awk '{print $2}'), privacyIDEA $pi_version (SQLite, gunicorn -w 2)"
echo "bulk import: oathdesk $od_import s, privacyIDEA $pi_import s (×$(ratio "$pi_import" "$od_import"))"

# ---- helpdesk code vs validate/check, interleaved
helpdesk() {
    TOKEN=$token USERS=$n API_PATH=/api/v1/helpdesk/code \
        wrk -t2 -c16 -d"${run}s" --latency -s bench/helpdesk.lua "$base" \
        | awk '/Requests\/sec/ { print $2 }'
}
check() {
    "$venv/bin/python" bench/peers_load.py privacyidea-check "$pi" "$work/seeds.txt" "$run" 16 | tee -a "$work/pi-runs.txt" \
        | sed -E 's/.* = ([0-9.]+) req\/s.*/\1/'
}
h1=$(helpdesk); c1=$(check); h2=$(helpdesk); c2=$(check)
echo "helpdesk code: oathdesk $h1, $h2 req/s; privacyIDEA validate/check $c1, $c2 req/s (×$(ratio "$h1" "$c1"), ×$(ratio "$h2" "$c2"))"
cat "$work/pi-runs.txt"

# ---- identify vs getserial, one at a time
identify() { "$venv/bin/python" bench/peers_load.py oathdesk-identify "$base" "$work/seeds.txt" "$run" 1 "$token"; }
getserial() { "$venv/bin/python" bench/peers_load.py privacyidea-getserial "$pi" "$work/seeds.txt" "$run" 1 "$jwt"; }
i1=$(identify); g1=$(getserial); i2=$(identify)
printf '%s\n%s\n%s\n' "$i1" "$g1" "$i2"
p50() { echo "$1" | sed -E 's/.*p50 ([0-9.]+) ms.*/\1/'; }
echo "identify p50: oathdesk $(p50 "$i1"), $(p50 "$i2") ms; privacyIDEA getserial $(p50 "$g1") ms (×$(ratio "$(p50 "$g1")" "$(p50 "$i1")"))"
kill "$server" "$pi_server" 2>/dev/null; wait 2>/dev/null || true; server= pi_server=

# ---- one-shot codes
secret=$(head -1 "$work/seeds.txt")
hyperfine -N -w 20 -r 300 --export-json "$work/oneshot.json" \
    "$oathdesk code $secret" "oathtool --totp -b $secret" \
    "$venv/bin/python -c 'import pyotp; print(pyotp.TOTP(\"$secret\").now())'" > /dev/null
python3 - "$work/oneshot.json" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
base = statistics.median(results[0]["times"])
for r in results:
    m = statistics.median(r["times"])
    print("one-shot %-28s median %.2f ms (×%.2f of oathdesk)" % (r["command"].split()[0].split("/")[-1], 1000 * m, m / base))
PY
