#!/usr/bin/env bash
# A first look: brings up the local control plane, installs the CRDs, applies examples/,
# and shows what the operator makes of them (the offline render of every object).
# The controller itself (`customer-operator run`) is not built yet.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/control-plane.sh up >/dev/null
eval "$(bash scripts/control-plane.sh env)"
if ! command -v kubectl >/dev/null; then
  # Debian's kubectl, from the same source package as the test control plane.
  apt-get install -y -qq kubernetes-client >/dev/null
fi
cargo build --quiet --locked
bin=target/debug/customer-operator

# Apiservers before 1.25 refuse CEL rules in a CRD; the operator checks them itself there.
minor=$(kubectl version -o json 2>/dev/null | jq -r '.serverVersion.minor' | tr -dc '0-9')
if [ "${minor:-0}" -lt 25 ]; then
  "$bin" crds --without-cel | kubectl apply -f -
else
  "$bin" crds | kubectl apply -f -
fi
kubectl wait --for condition=established --timeout=60s crd/customers.customers.dev crd/customergroups.customers.dev
kubectl apply -f examples/
echo
kubectl get customergroups,customers
echo
echo "# What the operator will create for examples/ (customer-operator render -f examples/):"
"$bin" render -f examples/
echo
echo "KUBECONFIG=$KUBECONFIG   (eval \"\$(scripts/control-plane.sh env)\" to use it; scripts/control-plane.sh down to stop)"
