#!/usr/bin/env bash
# Scale benchmark: builds the benchmark in release mode, measures the floor (the writes
# the design requires, sent with no operator) on a fresh control plane of its own, stops
# it, then runs everything else against a second fresh control plane (ports apart from
# the demo's and the tests'). Prints one table and writes it into BENCHMARKS.md (one
# section per N). Arguments go to the benchmark:
#
#   bench/run.sh                       # N = 1000
#   bench/run.sh --customers 10000     # the 10,000-customer mark (about 30 min on 2 cores)
#   bench/run.sh --customers 200       # smaller
#   bench/run.sh --help                # every option
set -euo pipefail
cd "$(dirname "$0")/.."
export CUSTOMER_OPERATOR_BENCH_STARTED=$(date +%s)

if [ "${1:-}" = --help ]; then
  exec cargo bench --locked --bench scale -- --help
fi

cargo bench --locked --bench scale --no-run
scratch=$(mktemp -d)
cleanup() {
  for state in floor main; do
    CUSTOMER_OPERATOR_STATE=$scratch/$state bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

# Starts a fresh control plane in $scratch/$1 on the given ports and exports its settings.
plane() {
  export CUSTOMER_OPERATOR_STATE=$scratch/$1 CUSTOMER_OPERATOR_ETCD_PORT=$2 \
    CUSTOMER_OPERATOR_APISERVER_PORT=$3 CUSTOMER_OPERATOR_KCM_PORT=$4
  bash scripts/control-plane.sh up >/dev/null
  eval "$(bash scripts/control-plane.sh env)"
}

plane floor 24479 28543 28557
cargo bench --locked --bench scale -- --floor-only "$scratch/floor.json" "$@"
bash scripts/control-plane.sh down --purge >/dev/null
plane main 24379 28443 28457
cargo bench --locked --bench scale -- --floor "$scratch/floor.json" --output BENCHMARKS.md "$@"
