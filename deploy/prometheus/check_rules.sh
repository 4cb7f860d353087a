#!/bin/sh
# CI (CTest prometheus_rules_test): alerts.yml is valid (promtool check rules), every alert
# has a severity, a `for:`, a runbook and a unit test, and the unit tests pass (promtool
# test rules alerts_test.yml). promtool comes from Debian's `prometheus` package, which
# scripts/setup installs: without it this fails (set PROMTOOL to use another binary).
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
promtool=${PROMTOOL:-$(command -v promtool || true)}
if [ -z "$promtool" ] || [ ! -x "$promtool" ]; then
  echo "FAIL: promtool not found: run scripts/setup (Debian package prometheus) or set PROMTOOL"
  exit 1
fi
cd "$dir"
"$promtool" check rules alerts.yml

rules=$(grep -c '^      - alert: ' alerts.yml)
for field in '        for: ' '          severity: ' '          runbook: '; do
  found=$(grep -c "^$field" alerts.yml || true)
  if [ "$found" -ne "$rules" ]; then
    echo "FAIL: $rules alerts, $found with '$(echo "$field" | tr -d ' ')'"
    exit 1
  fi
done

alerts=$(sed -n 's/^      - alert: *//p' alerts.yml | sort -u)
tested=$(sed -n 's/^ *alertname: *//p' alerts_test.yml | sort -u)
untested=$(printf '%s\n' "$alerts" | while read -r a; do printf '%s\n' "$tested" | grep -qx "$a" || echo "$a"; done)
if [ -n "$untested" ]; then
  echo "FAIL: alerts without a unit test in alerts_test.yml:" $untested
  exit 1
fi

"$promtool" test rules alerts_test.yml
echo "prometheus rules: $rules alerts, each with severity, for, runbook and a unit test: OK"
