#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests, and the integration tests
# against the local control plane (started here, and built once from Debian's sources
# on a fresh machine; see scripts/control-plane.sh). Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo is needed (rustup toolchain)" >&2
  exit 1
fi

# A control plane of its own, started from an empty etcd each time, beside (not instead
# of) the one scripts/demo.sh uses: tests start from a known state and never meet the
# demo's operator.
if [ "${CUSTOMER_OPERATOR_TEST_CLUSTER:-}" != existing ]; then
  export CUSTOMER_OPERATOR_STATE=${CUSTOMER_OPERATOR_STATE:-$HOME/.cache/customer-operator/test-cluster}
  export CUSTOMER_OPERATOR_ETCD_PORT=${CUSTOMER_OPERATOR_ETCD_PORT:-22379}
  export CUSTOMER_OPERATOR_APISERVER_PORT=${CUSTOMER_OPERATOR_APISERVER_PORT:-26443}
  export CUSTOMER_OPERATOR_KCM_PORT=${CUSTOMER_OPERATOR_KCM_PORT:-26457}
  bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true
fi
bash scripts/control-plane.sh up >/dev/null
eval "$(bash scripts/control-plane.sh env)"
echo "test.sh: control plane ready, KUBECONFIG=$KUBECONFIG" >&2

rm -f target/reliability-figures.txt
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The Helm engine of the chart checks (tests/chart.rs), installed once into the cache.
bash scripts/helm.sh setup
# A real Helm release (install, upgrade, uninstall) first, while no test has created the
# CRDs or the customer roles yet: Helm takes over no object it did not create. Only on
# the fresh control plane started above, never on an existing cluster.
if [ "${CUSTOMER_OPERATOR_TEST_CLUSTER:-}" != existing ]; then
  cargo test --locked --test helm_release -- --ignored
fi
cargo test --all-targets --locked

# The integration tests that run the operator, again, with the operator holding only the
# RBAC the Helm chart grants its ServiceAccount (impersonated; see tests/support).
mapfile -t with_operator < <(grep -l 'support::operator()' tests/*.rs | xargs -n1 basename | sed 's/\.rs$//')
echo "test.sh: again under the chart's RBAC: ${with_operator[*]}" >&2
CUSTOMER_OPERATOR_TEST_RBAC=chart cargo test --locked $(printf -- '--test %s ' "${with_operator[@]}")

# The apiserver fault test (tests/faults.rs), CI-sized, on a control plane of its own
# beside this one (ports and state derived from it): it stops that apiserver for 30 s.
# The longer crash and fault runs: scripts/reliability.sh (see RELIABILITY.md).
if [ "${CUSTOMER_OPERATOR_TEST_CLUSTER:-}" != existing ]; then
  CUSTOMER_OPERATOR_RELIABILITY_STATE="$CUSTOMER_OPERATOR_STATE-faults" \
  CUSTOMER_OPERATOR_RELIABILITY_ETCD_PORT=$((CUSTOMER_OPERATOR_ETCD_PORT + 1000)) \
  CUSTOMER_OPERATOR_RELIABILITY_APISERVER_PORT=$((CUSTOMER_OPERATOR_APISERVER_PORT + 2000)) \
  CUSTOMER_OPERATOR_RELIABILITY_KCM_PORT=$((CUSTOMER_OPERATOR_KCM_PORT + 2000)) \
    bash scripts/reliability.sh --no-crash --faults apiserver
fi
echo "test.sh: reliability figures (RELIABILITY.md):" >&2
cat target/reliability-figures.txt >&2 || true
