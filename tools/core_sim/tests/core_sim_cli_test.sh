#!/usr/bin/env bash
# The core-sim executable as scripts use it (needs scripts/with-postgres): --help, the
# catch-up address on the first stdout line, the catch-up API behind its token, SIGTERM
# -> graceful stop, a report, exit 0; --timeout-s with transfers still open -> exit 1 and
# a JSON report that says so. Kafka is the process's own embedded cluster (no adapter
# answers), so every requested transfer stays open. Plain bash (/dev/tcp): no curl needed.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../../cli_test_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../cli_test_lib.sh"
sim="$1"
help_mentions "$sim" '--invalid-share'
help_mentions "$sim" '--outcomes-version'
: "${CLEARING_TEST_DATABASE_URL:?run under scripts/with-postgres}"
: "${CLEARING_PG_BIN:?run under scripts/with-postgres}"
db="core_sim_cli_$$"
"$CLEARING_PG_BIN/psql" -q "$CLEARING_TEST_DATABASE_URL" -c "create database $db"
url="${CLEARING_TEST_DATABASE_URL%/*}/$db"

out="$(mktemp)"
pid=""
trap 'rm -f "$out"; [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true' EXIT

# An option out of range is refused before anything starts, and the message names it.
if "$sim" --database-url "$url" --kafka embedded --relay-round-interval-ms 1001 >"$out" 2>&1; then
  echo "--relay-round-interval-ms 1001 was accepted"; exit 1
fi
grep -q -- '--relay-round-interval-ms: Value 1001 not in range' "$out" || { echo "not refused as out of range:"; cat "$out"; exit 1; }
if "$sim" --database-url "$url" --kafka embedded --outcomes-version v3 >"$out" 2>&1; then
  echo "--outcomes-version v3 was accepted"; exit 1
fi
grep -q -- '--outcomes-version: v3 not in' "$out" || { echo "v3 not refused:"; cat "$out"; exit 1; }
: >"$out"  # emptied here: the background job's own redirection may come after the wait looks
"$sim" --database-url "$url" --kafka embedded --transfers 20 --seed 3 --api-token core-token \
  --log-level warn >"$out" &
pid=$!
line="$(first_line "$out" 300)"  # a bounded wait (30 s)
[[ "$line" =~ ^catch-up\ 127\.0\.0\.1:([0-9]+)$ ]] || { echo "bad first line: $line"; exit 1; }
port="${BASH_REMATCH[1]}"

request() {  # request <authorization header or empty>
  http_get_status "$port" /streams/core.dk.payments.v1/partitions/0/events core "$1"
}
request 'Authorization: Bearer core-token\r\n' | grep -q ' 200 '
request '' | grep -q ' 401 '

status=0
terminate "$pid" || status=$?
pid=""
[[ "$status" -eq 0 ]] || { echo "exit status $status after SIGTERM"; cat "$out"; exit 1; }
grep -q 'resolved exactly once' "$out" || { echo "no report after SIGTERM"; cat "$out"; exit 1; }

# Same database again, switched to adapter.dk.payments.v2 (its embedded topic): nothing new
# to request, all still open: the timeout fails the run.
status=0
"$sim" --database-url "$url" --kafka embedded --transfers 20 --seed 3 --timeout-s 2 --json \
  --outcomes-version v2 --log-level warn >"$out" || status=$?
[[ "$status" -eq 1 ]] || { echo "exit status $status after the timeout, wanted 1"; cat "$out"; exit 1; }
grep -q '"resolved_exactly_once": false' "$out" || { echo "JSON report missing"; cat "$out"; exit 1; }
grep -q '"requested": 20' "$out" || { echo "wanted 20 requested"; cat "$out"; exit 1; }
echo "core-sim CLI ok (port $port)"
