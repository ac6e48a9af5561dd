#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, the offline tests, and the integration
# tests against a real control plane, once on the newest and once on the oldest
# Kubernetes version pinned under scripts/k8s/ (built from Go modules on a fresh machine;
# see scripts/control-plane.sh). Installs what it needs itself. Every control plane it
# starts is stopped when it ends, pass or fail.
#
#   scripts/test.sh                 newest and oldest version
#   CUSTOMER_OPERATOR_K8S_VERSION=1.33 scripts/test.sh    that version only
#   CUSTOMER_OPERATOR_TEST_CLUSTER=existing scripts/test.sh   the cluster $KUBECONFIG names
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo is needed (rustup toolchain)" >&2
  exit 1
fi
say() { echo "test.sh: $*" >&2; }
existing() { [ "${CUSTOMER_OPERATOR_TEST_CLUSTER:-}" = existing ]; }

if existing; then
  versions=(existing)
elif [ -n "${CUSTOMER_OPERATOR_K8S_VERSION:-}" ]; then
  versions=("$CUSTOMER_OPERATOR_K8S_VERSION")
else
  mapfile -t pinned < <(bash scripts/control-plane.sh versions)
  versions=("${pinned[0]}")
  if [ "${#pinned[@]}" -gt 1 ]; then versions+=("${pinned[-1]}"); fi
fi

# The test control planes: ports and state apart from the demo's, a fresh etcd each run,
# so tests start from a known state and never meet the demo's operator.
base_state=${CUSTOMER_OPERATOR_STATE:-$HOME/.cache/customer-operator/test-cluster}
export CUSTOMER_OPERATOR_ETCD_PORT=${CUSTOMER_OPERATOR_ETCD_PORT:-22379}
export CUSTOMER_OPERATOR_APISERVER_PORT=${CUSTOMER_OPERATOR_APISERVER_PORT:-26443}
export CUSTOMER_OPERATOR_KCM_PORT=${CUSTOMER_OPERATOR_KCM_PORT:-26457}
started=()
stop_all() {
  local state
  for state in "${started[@]}"; do
    CUSTOMER_OPERATOR_STATE=$state bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true
  done
}
trap stop_all EXIT

# The binaries first (a cold machine builds them here), so a build failure is reported
# before anything else runs.
if ! existing; then
  for version in "${versions[@]}"; do
    CUSTOMER_OPERATOR_K8S_VERSION=$version bash scripts/control-plane.sh build
  done
fi
bash scripts/helm.sh setup
bash scripts/control-plane.sh test-deps

rm -f target/reliability-figures.txt
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The shape of src/ (tests/offline/shape.rs): no import circle between modules, no
# function of src/controller/ longer than 80 lines, converge at most 40.
cargo test --locked --test offline shape::
# The offline tests (tests/offline/, one binary) alone first, so that their failures show
# before any control plane starts. The run per version below runs them again (cheap).
cargo test --locked --test offline
# The image (tests/offline/image.rs): built with umoci from a static release binary,
# unpacked and run from its own root; once, it does not depend on the Kubernetes version.
cargo test --locked --test offline image:: -- --ignored
cargo test --locked --no-run --all-targets

for version in "${versions[@]}"; do
  if ! existing; then
    export CUSTOMER_OPERATOR_K8S_VERSION=$version
    export CUSTOMER_OPERATOR_STATE=$base_state-$version
    started+=("$CUSTOMER_OPERATOR_STATE")
    bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true
  fi
  bash scripts/control-plane.sh up >/dev/null
  eval "$(bash scripts/control-plane.sh env)"
  server=$(kubectl version -o json | jq -r .serverVersion.gitVersion)
  say "control plane ready: Kubernetes $server, KUBECONFIG=$KUBECONFIG"

  # A real Helm release (install, upgrade, uninstall) first, while no test has created the
  # CRDs or the customer roles yet: Helm takes over no object it did not create. Only on
  # the fresh control plane started above, never on an existing cluster.
  if ! existing; then
    cargo test --locked --test helm_release -- --ignored
  fi
  cargo test --all-targets --locked

  # On the newest version only (the first run; on the oldest the suite above runs once,
  # which keeps a cold machine inside CI's 90 minutes): the integration tests that run the
  # operator, again, with the operator holding only the RBAC the Helm chart grants its
  # ServiceAccount (impersonated; see tests/cluster/support), those that start the shared
  # one and those that configure their own like it; then the fault, compaction, flood
  # and upgrade runs of scripts/reliability.sh, CI-sized.
  if [ "$version" = "${versions[0]}" ]; then
    mapfile -t with_operator < <(grep -lE 'support::(operator\(\)|operator_config\(|as_configured_operator\()' tests/cluster/*.rs | xargs -n1 basename | sed 's/\.rs$//')
    say "again under the chart's RBAC on $server: ${with_operator[*]}"
    test_args=()
    for name in "${with_operator[@]}"; do test_args+=(--test "$name"); done
    CUSTOMER_OPERATOR_TEST_RBAC=chart cargo test --locked "${test_args[@]}"

    # The apiserver fault test (tests/cluster/faults.rs), the etcd compaction test, the
    # API priority flood and the chart upgrade, CI-sized, on control planes of their own
    # beside this one (ports and state derived from it). The longer crash and fault runs:
    # scripts/reliability.sh (see RELIABILITY.md).
    if ! existing; then
      CUSTOMER_OPERATOR_RELIABILITY_STATE="$CUSTOMER_OPERATOR_STATE-faults" \
      CUSTOMER_OPERATOR_RELIABILITY_ETCD_PORT=$((CUSTOMER_OPERATOR_ETCD_PORT + 1000)) \
      CUSTOMER_OPERATOR_RELIABILITY_APISERVER_PORT=$((CUSTOMER_OPERATOR_APISERVER_PORT + 2000)) \
      CUSTOMER_OPERATOR_RELIABILITY_KCM_PORT=$((CUSTOMER_OPERATOR_KCM_PORT + 2000)) \
        bash scripts/reliability.sh --no-crash --faults apiserver
    fi
  fi
  if ! existing; then
    bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true
  fi
  say "suite passed on Kubernetes $server"
done
say "reliability figures (RELIABILITY.md):"
cat target/reliability-figures.txt >&2 || true
say "passed on: ${versions[*]}"
