#!/usr/bin/env bash
# The clearing-mock executable as scripts use it: --help, --port 0 with the bound port on the
# first stdout line, the bearer token, and a graceful stop on SIGTERM with exit status 0.
# Plain bash (/dev/tcp), so it needs no curl.
set -euo pipefail
mock="$1"
# Read whole before grep: `grep -q` stops at the first match, and with pipefail the mock's
# SIGPIPE on the rest of a long --help failed the test now and then.
help="$("$mock" --help)"
grep -q -- '--fault-timeout-after-execute' <<<"$help"

out="$(mktemp)"
pid=""
# Never leave the mock behind, whatever check fails.
trap 'rm -f "$out"; [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true' EXIT
"$mock" --port 0 --seed 7 >"$out" &
pid=$!
for _ in $(seq 1 100); do  # bounded wait for the first line (10 s)
  [[ -s "$out" ]] && break
  sleep 0.1
done
line="$(head -n 1 "$out")"
[[ "$line" =~ ^listening\ 127\.0\.0\.1:([0-9]+)$ ]] || { echo "bad first line: $line"; exit 1; }
port="${BASH_REMATCH[1]}"

request() {  # request <authorization header or empty>
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET /admin/stats HTTP/1.1\r\nHost: mock\r\n%bConnection: close\r\n\r\n' "$1" >&3
  head -n 1 <&3
  exec 3>&-
}
request 'Authorization: Bearer mock-token\r\n' | grep -q ' 200 '
request '' | grep -q ' 401 '

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[[ "$status" -eq 0 ]] || { echo "exit status $status after SIGTERM"; exit 1; }
echo "clearing-mock CLI ok (port $port)"
