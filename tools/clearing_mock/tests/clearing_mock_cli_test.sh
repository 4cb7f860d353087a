#!/usr/bin/env bash
# The clearing-mock executable as scripts use it: --help, --port 0 with the bound port on the
# first stdout line, the bearer token, and a graceful stop on SIGTERM with exit status 0.
# Plain bash (/dev/tcp), so it needs no curl.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../../cli_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../cli_test_lib.sh"
mock="$1"
help_mentions "$mock" '--fault-timeout-after-execute'
help_mentions "$mock" '--capacity'
help_mentions "$mock" '--thrash-permille'

out="$(mktemp)"
pid=""
# Never leave the mock behind, whatever check fails.
trap 'rm -f "$out"; [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true' EXIT
"$mock" --port 0 --seed 7 >"$out" &
pid=$!
line="$(first_line "$out" 100)"  # a bounded wait (10 s)
[[ "$line" =~ ^listening\ 127\.0\.0\.1:([0-9]+)$ ]] || { echo "bad first line: $line"; exit 1; }
port="${BASH_REMATCH[1]}"

request() { http_get_status "$port" /admin/stats mock "$1"; }  # request <authorization or empty>
request 'Authorization: Bearer mock-token\r\n' | grep -q ' 200 '
request '' | grep -q ' 401 '

status=0
terminate "$pid" || status=$?
pid=""
[[ "$status" -eq 0 ]] || { echo "exit status $status after SIGTERM"; exit 1; }
echo "clearing-mock CLI ok (port $port)"
