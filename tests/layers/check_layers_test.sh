#!/usr/bin/env bash
# Tests scripts/check-layers on small throwaway trees (git repositories in a temporary
# folder): an allowed tree passes, each kind of violation fails with file:line, the include
# and the rule, the allow-list turns a violation into a known one, a stale entry fails.
#   tests/layers/check_layers_test.sh [path of check-layers]
set -euo pipefail
check=${1:-"$(cd "$(dirname "$0")/../.." && pwd)/scripts/check-layers"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# A tree that keeps every rule: a source per layer, each including what it may.
make_tree() {
  local root=$1
  rm -rf "$root"; mkdir -p "$root"
  put "$root" base/src/clock.cpp 'clearing/base/clock.hpp'
  put "$root" eventstore/src/store.cpp 'clearing/base/clock.hpp' 'clearing/eventstore/types.hpp'
  put "$root" sagas/src/transfer.cpp 'clearing/eventstore/decider.hpp' 'clearing/base/strong.hpp'
  put "$root" http/src/server.cpp 'clearing/base/asio.hpp' 'clearing/http/server.hpp'
  put "$root" clearing_client/src/client.cpp 'clearing/http/client.hpp'
  put "$root" clearing_client/tests/client_mock_test.cpp 'clearing/clearing_mock/mock_server.hpp'
  put "$root" external_streams/src/relay.cpp 'clearing/eventstore/event_store.hpp' 'clearing/http/client.hpp'
  put "$root" adapter/src/service.cpp 'clearing/external_streams/relay.hpp' 'clearing/sagas/transfer_decider.hpp'
  put "$root" adapter/cli/demo.cpp 'clearing/core_sim/core_sim.hpp' 'clearing/adapter/service.hpp'
  put "$root" tools/core_sim/src/core_sim.cpp 'clearing/http/server.hpp' 'clearing/external_streams/catch_up.hpp'
  put "$root" tests/e2e/e2e_pgtest.cpp 'clearing/support/wait.hpp' 'clearing/processes/process.hpp'
  put "$root" adapter/tests/saga/saga_pgtest.cpp 'clearing/adapter/testing/saga_fixture.hpp' 'clearing/support/wait.hpp'
  put "$root" adapter/testing/src/saga_fixture.cpp 'clearing/adapter/service.hpp' 'clearing/clearing_mock/mock_state.hpp'
  put "$root" adapter/bench/saga_bench.cpp 'clearing/adapter/dispatcher.hpp' 'clearing/support/bench.hpp'
  git -C "$root" init -q
  git -C "$root" add -A
}

# put ROOT FILE INCLUDE...: a source with a comment line, then one #include per argument.
put() {
  local root=$1 file=$2; shift 2
  mkdir -p "$root/$(dirname "$file")"
  { echo "// $file"; for include in "$@"; do echo "#include \"$include\""; done; } > "$root/$file"
}

# expect NAME STATUS PATTERN...: check-layers on $tree exits with STATUS and prints every PATTERN.
expect() {
  local name=$1 want=$2; shift 2
  local status=0
  "$check" --root "$tree" > "$work/out" 2>&1 || status=$?
  if [ "$status" -ne "$want" ]; then
    echo "FAIL $name: exit $status, want $want"; sed 's/^/  | /' "$work/out"; failures=$((failures + 1)); return
  fi
  for pattern in "$@"; do
    if ! grep -qF -- "$pattern" "$work/out"; then
      echo "FAIL $name: no line with: $pattern"; sed 's/^/  | /' "$work/out"; failures=$((failures + 1)); return
    fi
  done
  echo "ok   $name"
}

tree=$work/tree

make_tree "$tree"
expect "a tree that keeps every rule passes" 0 "0 violations, 0 known"

make_tree "$tree"
put "$tree" eventstore/src/store.cpp 'clearing/base/clock.hpp' 'clearing/adapter/service.hpp'
git -C "$tree" add -A
expect "an upward include fails with file:line, include and rule" 1 \
  "layer violation: eventstore/src/store.cpp:3: includes clearing/adapter/service.hpp, but eventstore/ may include only clearing/{base/,eventstore/}" \
  "1 violations"

make_tree "$tree"
put "$tree" tools/core_sim/src/core_sim.cpp 'clearing/adapter/http_server.hpp'
git -C "$tree" add -A
expect "tools never include adapter/" 1 \
  "tools/core_sim/src/core_sim.cpp:2: includes clearing/adapter/http_server.hpp, but tools/ may include only"

make_tree "$tree"
put "$tree" tests/e2e/e2e_pgtest.cpp 'clearing/adapter/service.hpp'
put "$tree" bench/e2e_bench.cpp 'clearing/adapter/service.hpp'
put "$tree" support/src/fixture.cpp 'clearing/adapter/service.hpp'
git -C "$tree" add -A
expect "no include of clearing/adapter/ outside adapter/" 1 \
  "tests/e2e/e2e_pgtest.cpp:2: includes clearing/adapter/service.hpp, but tests/ may include only" \
  "bench/e2e_bench.cpp:2: includes clearing/adapter/service.hpp, but bench/ may include only" \
  "support/src/fixture.cpp:2: includes clearing/adapter/service.hpp, but support/ may include only" "3 violations"

make_tree "$tree"
put "$tree" sagas/src/transfer.cpp 'clearing/eventstore/event_store.hpp' 'clearing/base/logging.hpp'
git -C "$tree" add -A
expect "sagas/ take only the eventstore's types and no logging" 1 \
  "sagas/src/transfer.cpp:2: includes clearing/eventstore/event_store.hpp" \
  "sagas/src/transfer.cpp:3: includes clearing/base/logging.hpp" "2 violations"

make_tree "$tree"
put "$tree" base/src/clock.cpp 'clearing/http/server.hpp'
put "$tree" config/src/load.cpp 'clearing/clearing_mock/mock_server.hpp'
git -C "$tree" add -A
expect "http/ is above base/, test doubles only in tests" 1 \
  "base/src/clock.cpp:2: includes clearing/http/server.hpp" \
  "config/src/load.cpp:2: includes clearing/clearing_mock/mock_server.hpp" "2 violations"

make_tree "$tree"
put "$tree" adapter/src/service.cpp 'clearing/kafka_mock/broker.hpp'
put "$tree" docs/example.cpp 'clearing/base/clock.hpp'
git -C "$tree" add -A
expect "an unknown module and a file outside every module fail" 1 \
  "adapter/src/service.cpp:2: includes clearing/kafka_mock/broker.hpp, but clearing/kafka_mock/ is no module" \
  "docs/example.cpp: is in no module of the layer table"

make_tree "$tree"
put "$tree" eventstore/src/untracked.cpp 'clearing/adapter/service.hpp'
expect "only tracked sources are read" 0 "0 violations"

make_tree "$tree"
put "$tree" tools/core_sim/src/core_sim.cpp 'clearing/adapter/http_server.hpp'
git -C "$tree" add -A
mkdir -p "$tree/scripts"
printf '# moving to http/\ntools/core_sim/src/core_sim.cpp clearing/adapter/http_server.hpp\n' > "$tree/scripts/layers-allowlist"
expect "an allow-listed violation is reported as known and passes" 0 \
  "known violation (scripts/layers-allowlist): tools/core_sim/src/core_sim.cpp:2: includes clearing/adapter/http_server.hpp" \
  "0 violations, 1 known"

make_tree "$tree"
mkdir -p "$tree/scripts"
printf 'tools/core_sim/src/core_sim.cpp clearing/adapter/http_server.hpp\n' > "$tree/scripts/layers-allowlist"
expect "a stale allow-list entry fails" 1 \
  "scripts/layers-allowlist:1: tools/core_sim/src/core_sim.cpp no longer includes clearing/adapter/http_server.hpp: remove the entry"

if [ "$failures" -ne 0 ]; then
  echo "$failures case(s) failed"; exit 1
fi
echo "all cases passed"
