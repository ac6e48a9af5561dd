#!/usr/bin/env bash
# Longer reliability runs on a control plane of their own (never the one of the other
# tests or the demo): the crash-safety test with bigger sizes, and the fault tests that
# stop the apiserver or etcd for a while. Prints the figures at the end.
#
#   scripts/reliability.sh [--customers N] [--deletes N] [--rounds N] [--kills N] [--seed N]
#                          [--faults apiserver,etcd,apiserver+leader] [--outage SECONDS]
#                          [--fault-customers N] [--fault-standing N]
#                          [--upgrade-customers N]
#                          [--no-crash] [--no-faults] [--no-compaction] [--no-flood] [--no-upgrade]
#                          [--keep]
#
# Defaults: 300 customers, 100 deletions, 5 rounds, 3 kills per round, seed 1;
# faults apiserver, etcd, and apiserver with the operator's leader election on (it may
# exit once, when its Lease lapses, and is started again as the kubelet would), 30 s
# each, while 40 customers are being created (--fault-customers) and --fault-standing
# more (0) stand, created and converged before (issue 22's size: --fault-customers 50
# --fault-standing 950); then etcd compacted and the apiserver restarted
# (tests/cluster/compaction.rs: watches answered 410 Gone, what they list again, nothing
# lost); then the API priority test (tests/cluster/flood.rs): another client floods an
# apiserver of few seats while customers are created; then the chart upgrade
# (tests/cluster/chart_upgrade.rs): the previous chart installed with Helm, its examples
# and 40 customers (--upgrade-customers) live, upgraded to this commit's chart, 0 writes
# after, every stored object valid under the new CRDs. --keep leaves the control plane
# running afterwards (state in ~/.cache/customer-operator/reliability).
# scripts/test.sh runs `--no-crash --faults apiserver` (CI sizes: one apiserver fault,
# compaction, flood and upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."

customers=300 deletes=100 rounds=5 kills=3 seed=1
faults=apiserver,etcd,apiserver+leader outage=30 fault_customers=40 fault_standing=0
upgrade_customers=40
crash=true fault=true compaction=true flood=true upgrade=true keep=false
while (($#)); do
  case $1 in
    --customers) customers=$2; shift ;;
    --deletes) deletes=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --kills) kills=$2; shift ;;
    --seed) seed=$2; shift ;;
    --faults) faults=$2; shift ;;
    --outage) outage=$2; shift ;;
    --fault-customers) fault_customers=$2; shift ;;
    --fault-standing) fault_standing=$2; shift ;;
    --no-crash) crash=false ;;
    --no-faults) fault=false ;;
    --no-flood) flood=false ;;
    --no-compaction) compaction=false ;;
    --upgrade-customers) upgrade_customers=$2; shift ;;
    --no-upgrade) upgrade=false ;;
    --keep) keep=true ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "reliability.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Its own control plane: other ports and state than scripts/test.sh and the demo.
export CUSTOMER_OPERATOR_TEST_CLUSTER=
export CUSTOMER_OPERATOR_STATE=${CUSTOMER_OPERATOR_RELIABILITY_STATE:-$HOME/.cache/customer-operator/reliability}
export CUSTOMER_OPERATOR_ETCD_PORT=${CUSTOMER_OPERATOR_RELIABILITY_ETCD_PORT:-63379}
export CUSTOMER_OPERATOR_APISERVER_PORT=${CUSTOMER_OPERATOR_RELIABILITY_APISERVER_PORT:-63443}
export CUSTOMER_OPERATOR_KCM_PORT=${CUSTOMER_OPERATOR_RELIABILITY_KCM_PORT:-63457}
log=target/reliability.log
failed=false

down() { bash scripts/control-plane.sh down --purge >/dev/null 2>&1 || true; }
fresh_control_plane() {
  down
  bash scripts/control-plane.sh up >/dev/null
  eval "$(bash scripts/control-plane.sh env)"
}
$keep || trap down EXIT

mkdir -p target
: >"$log"
start=$SECONDS
if $crash; then
  fresh_control_plane
  echo "reliability.sh: crash safety, $customers customers, $deletes deletions, $rounds rounds, seed $seed" >&2
  CUSTOMER_OPERATOR_CRASH_CUSTOMERS=$customers CUSTOMER_OPERATOR_CRASH_DELETES=$deletes \
  CUSTOMER_OPERATOR_CRASH_ROUNDS=$rounds CUSTOMER_OPERATOR_CRASH_KILLS=$kills \
  CUSTOMER_OPERATOR_CRASH_SEED=$seed \
    cargo test --locked --test crash -- --nocapture >>"$log" 2>&1 || failed=true
fi
if $fault; then
  IFS=, read -ra list <<<"$faults"
  for component in "${list[@]}"; do
    # A fresh control plane for each fault: an outage leaves nothing behind for the next.
    fresh_control_plane
    echo "reliability.sh: $component stopped for ${outage}s during work" >&2
    CUSTOMER_OPERATOR_FAULT=$component CUSTOMER_OPERATOR_OUTAGE_SECONDS=$outage \
    CUSTOMER_OPERATOR_FAULT_CUSTOMERS=$fault_customers CUSTOMER_OPERATOR_FAULT_STANDING=$fault_standing \
      cargo test --locked --test faults -- --ignored --nocapture >>"$log" 2>&1 || failed=true
  done
fi
if $compaction; then
  # No watch cache (watches resume from etcd, which answers a compacted revision with 410
  # Gone; the test compacts etcd itself) and an audit log of every list and watch, to
  # show the operator's watches answered 410 after a restart and what they list again.
  audit_log=$CUSTOMER_OPERATOR_STATE-audit.log
  rm -f "$audit_log"
  CUSTOMER_OPERATOR_APISERVER_ARGS="--watch-cache=false --audit-policy-file=$PWD/tests/fixtures/audit-policy.yaml --audit-log-path=$audit_log" \
    fresh_control_plane
  echo "reliability.sh: etcd compaction and an apiserver restart, watches answered 410" >&2
  CUSTOMER_OPERATOR_APISERVER_ARGS="--watch-cache=false --audit-policy-file=$PWD/tests/fixtures/audit-policy.yaml --audit-log-path=$audit_log" \
  CUSTOMER_OPERATOR_AUDIT_LOG=$audit_log \
    cargo test --locked --test compaction -- --ignored --nocapture >>"$log" 2>&1 || failed=true
fi
if $flood; then
  # Few seats (10 in all), so that one test process can fill the level that every
  # ServiceAccount shares by default.
  CUSTOMER_OPERATOR_APISERVER_ARGS="--max-requests-inflight=6 --max-mutating-requests-inflight=4" \
    fresh_control_plane
  echo "reliability.sh: API priority, a flood from another client while customers are created" >&2
  cargo test --locked --test flood -- --ignored --nocapture >>"$log" 2>&1 || failed=true
fi
if $upgrade; then
  fresh_control_plane
  echo "reliability.sh: chart upgrade from the previous chart, $upgrade_customers customers and the examples live" >&2
  CUSTOMER_OPERATOR_UPGRADE_CUSTOMERS=$upgrade_customers \
    cargo test --locked --test chart_upgrade -- --ignored --nocapture >>"$log" 2>&1 || failed=true
fi
grep -E '^(crash safety|[a-z+]+ fault|compaction|API priority|chart upgrade):' "$log" || true
if $failed; then
  grep -E -B2 -A20 '^---- |panicked' "$log" >&2 || true
  echo "reliability.sh: FAILED after $((SECONDS - start)) s (output: $log)" >&2
  exit 1
fi
echo "reliability.sh: passed in $((SECONDS - start)) s" >&2
