#!/usr/bin/env bash
# Scale benchmark: starts a control plane of its own (fresh etcd, ports apart from the
# demo's and the tests'), builds the benchmark in release mode and runs it. Prints one
# table and writes it into BENCHMARKS.md. Arguments go to the benchmark:
#
#   bench/run.sh                       # N = 1000
#   bench/run.sh --customers 200       # smaller
#   bench/run.sh --help                # every option
set -euo pipefail
cd "$(dirname "$0")/.."

export CUSTOMER_OPERATOR_STATE=${CUSTOMER_OPERATOR_STATE:-$HOME/.cache/customer-operator/bench-cluster}
export CUSTOMER_OPERATOR_ETCD_PORT=${CUSTOMER_OPERATOR_ETCD_PORT:-24379}
export CUSTOMER_OPERATOR_APISERVER_PORT=${CUSTOMER_OPERATOR_APISERVER_PORT:-28443}
export CUSTOMER_OPERATOR_KCM_PORT=${CUSTOMER_OPERATOR_KCM_PORT:-28457}

if [ "${1:-}" = --help ]; then
  exec cargo bench --locked --bench scale -- --help
fi

cargo bench --locked --bench scale --no-run
bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true
trap 'bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true' EXIT
bash scripts/control-plane.sh up >/dev/null
eval "$(bash scripts/control-plane.sh env)"
cargo bench --locked --bench scale -- --output BENCHMARKS.md "$@"
