"""Load driver for bench/peers.sh: N concurrent loopback clients for a fixed
time against one endpoint, each request a real code of a token picked in
turn; prints requests/s and p50/p99 latency. Standard library plus pyotp.

  python3 peers_load.py KIND BASE SEEDS SECONDS CONNECTIONS [AUTH]

KIND: oathdesk-helpdesk (POST /api/v1/helpdesk/code, AUTH = API token),
privacyidea-check (POST /validate/check by serial with the token's current
code), privacyidea-getserial (GET /token/getserial/<otp>, AUTH = admin JWT),
oathdesk-identify (POST /api/v1/identify, AUTH = API token).
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

import pyotp

kind, base, seeds_file, seconds, connections = sys.argv[1:6]
auth = sys.argv[6] if len(sys.argv) > 6 else ""
seconds, connections = float(seconds), int(connections)
seeds = [line.strip() for line in open(seeds_file) if line.strip()]
host = urllib.parse.urlsplit(base)
lock = threading.Lock()
latencies, failures, turn = [], [], [0]


def next_token():
    with lock:
        turn[0] += 1
        return turn[0] % len(seeds)


def request(conn, i):
    """One request for token i; returns True when the peer accepted it."""
    serial = "S%07d" % (i + 1)
    code = pyotp.TOTP(seeds[i]).now()
    if kind == "oathdesk-helpdesk":
        body = json.dumps({"user": "user%07d@contoso.com" % (i + 1), "ticket": "BENCH-%07d" % i,
                           "verifications": [{"method": "call-back", "confirmed": [True, True],
                                              "evidence": "called the mobile on file, the user answered"}]})
        conn.request("POST", "/api/v1/helpdesk/code", body,
                     {"Content-Type": "application/json", "Authorization": "Bearer " + auth})
        reply = conn.getresponse().read()
        return b'"code"' in reply
    if kind == "oathdesk-identify":
        body = json.dumps({"codes": [code], "window": 1})
        conn.request("POST", "/api/v1/identify", body,
                     {"Content-Type": "application/json", "Authorization": "Bearer " + auth})
        reply = conn.getresponse().read()
        return b'"credential' in reply
    if kind == "privacyidea-check":
        body = urllib.parse.urlencode({"serial": serial, "pass": code})
        conn.request("POST", "/validate/check", body, {"Content-Type": "application/x-www-form-urlencoded"})
        reply = json.loads(conn.getresponse().read())
        # A code already used in this step is refused (replay): still a
        # full check, counted, but not as a failure of the bench.
        return reply.get("result", {}).get("status") is True
    if kind == "privacyidea-getserial":
        conn.request("GET", "/token/getserial/%s?window=1" % code, headers={"Authorization": auth})
        reply = json.loads(conn.getresponse().read())
        # The token found (any match counts: by chance another token may
        # give the same code, as with oathdesk's identify).
        return bool(reply.get("result", {}).get("value", {}).get("serial"))
    raise SystemExit("unknown kind " + kind)


def client(deadline):
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    while time.monotonic() < deadline:
        i = next_token()
        start = time.monotonic()
        try:
            ok = request(conn, i)
        except Exception as error:  # a dropped connection: count it, reconnect
            ok = False
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
            failures.append(repr(error))
        with lock:
            latencies.append(time.monotonic() - start)
            if not ok:
                failures.append(i)


deadline = time.monotonic() + seconds
threads = [threading.Thread(target=client, args=(deadline,)) for _ in range(connections)]
began = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - began
latencies.sort()
n = len(latencies)
if n == 0:
    raise SystemExit(kind + ": no request finished")
print("%s: %d requests in %.1f s = %.1f req/s, p50 %.1f ms, p99 %.1f ms, refused %d"
      % (kind, n, elapsed, n / elapsed, 1000 * latencies[n // 2], 1000 * latencies[min(n - 1, n * 99 // 100)],
         len(failures)))
