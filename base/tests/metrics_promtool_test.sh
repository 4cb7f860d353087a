#!/bin/sh
# Checks that the registry's output passes `promtool check metrics` (the Prometheus linter).
# Usage: metrics_promtool_test.sh <path to base_metrics_test>
# promtool comes from Debian's `prometheus` package, which scripts/setup installs; set
# PROMTOOL to use another binary. Fails when promtool is absent: a lint that is skipped on a
# fresh machine checks nothing (issue 17).
set -eu
test_binary=$1
promtool=${PROMTOOL:-$(command -v promtool || true)}
if [ -z "$promtool" ] || [ ! -x "$promtool" ]; then
  echo "FAIL: promtool not found: run scripts/setup (Debian package prometheus) or set PROMTOOL"
  exit 1
fi
sample=$(mktemp)
trap 'rm -f "$sample"' EXIT
CLEARING_METRICS_SAMPLE_PATH=$sample "$test_binary" --test-case='sample for promtool' >/dev/null
if [ ! -s "$sample" ]; then
  echo "FAIL: no sample written"
  exit 1
fi
# check metrics prints lint problems and exits non-zero on any of them.
"$promtool" check metrics <"$sample"
echo "promtool check metrics: OK"
