#!/usr/bin/env bash
# A first look: brings up the local control plane, installs the CRDs, starts the
# operator in the background, applies examples/ and shows the result.
#   scripts/demo.sh        start (idempotent) and show
#   scripts/demo.sh stop   stop the operator (scripts/control-plane.sh down stops the rest)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/control-plane.sh up >/dev/null
eval "$(bash scripts/control-plane.sh env)"
state=$CUSTOMER_OPERATOR_STATE
pidfile=$state/operator.pid

if [ "${1:-}" = stop ]; then
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then echo "operator stopped"; fi
  rm -f "$pidfile"
  exit 0
fi

if ! command -v kubectl >/dev/null; then
  # Debian's kubectl, from the same source package as the test control plane.
  apt-get install -y -qq kubernetes-client >/dev/null
fi
cargo build --quiet --locked
bin=$PWD/target/debug/customer-operator

# Apiservers before 1.25 refuse CEL rules in a CRD; the operator checks them itself there.
minor=$(kubectl version -o json 2>/dev/null | jq -r '.serverVersion.minor' | tr -dc '0-9')
if [ "${minor:-0}" -lt 25 ]; then
  "$bin" crds --without-cel | kubectl apply -f - >/dev/null
else
  "$bin" crds | kubectl apply -f - >/dev/null
fi
kubectl wait --for condition=established --timeout=60s \
  crd/customers.customers.dev crd/customergroups.customers.dev >/dev/null

if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
  setsid "$bin" run --platform-namespaces ingress-nginx,monitoring \
    >"$state/operator.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "operator started (pid $(cat "$pidfile"), log $state/operator.log)"
fi

kubectl apply -f examples/ >/dev/null
kubectl wait --for condition=Ready --timeout=120s \
  customer/nova-bakery customer/astral-voyage customer/orbital-freight \
  customer/galactic-holdings customer/galactic-labs customer/quiet-vault >/dev/null
echo
# The category `customers` lists both kinds: groups and customers.
kubectl get customers
echo
echo "# What the operator made for astral-voyage:"
kubectl get namespaces,networkpolicies,rolebindings,resourcequotas,limitranges \
  --all-namespaces -l customers.dev/customer=astral-voyage
echo
echo "# Offline, the same objects in full: $bin render -f examples/"
echo "KUBECONFIG=$KUBECONFIG   (eval \"\$(scripts/control-plane.sh env)\" to use it;"
echo "scripts/demo.sh stop, then scripts/control-plane.sh down, to stop everything)"
