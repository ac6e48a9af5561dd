#!/usr/bin/env bash
# A first look: brings up the local control plane (the newest Kubernetes pinned under
# scripts/k8s/, built from Go modules on first use), installs the CRDs and the customer
# ClusterRoles as a user would, starts the operator in the background, applies examples/
# and shows the result.
#   scripts/demo.sh        start (idempotent) and show
#   scripts/demo.sh stop   stop the operator (scripts/control-plane.sh down stops the rest)
#   CUSTOMER_OPERATOR_ISOLATION_BACKEND=ClusterNetworkPolicy scripts/demo.sh
#                          the same with the ClusterNetworkPolicy backend: installs that CRD
#                          from its Go module, and roles that let customers write
#                          NetworkPolicies
set -euo pipefail
cd "$(dirname "$0")/.."

state=${CUSTOMER_OPERATOR_STATE:-$HOME/.cache/customer-operator/cluster}
pidfile=$state/operator.pid

if [ "${1:-}" = stop ]; then
  # Stopping never starts anything.
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then echo "operator stopped"; fi
  rm -f "$pidfile"
  exit 0
fi

bash scripts/control-plane.sh up >/dev/null
# KUBECONFIG, and kubectl of the control plane's own version first on PATH.
eval "$(bash scripts/control-plane.sh env)"
state=$CUSTOMER_OPERATOR_STATE
pidfile=$state/operator.pid
echo "Kubernetes $(kubectl version -o json | jq -r .serverVersion.gitVersion) at $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"

cargo build --quiet --locked
bin=${CARGO_TARGET_DIR:-$PWD/target}/debug/customer-operator

# The CRDs as crds/ holds them, and the customer ClusterRoles as the chart ships them.
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for condition=established --timeout=60s \
  crd/customers.customers.dev crd/customergroups.customers.dev crd/partners.customers.dev \
  crd/customerclaims.customers.dev crd/customerusers.customers.dev >/dev/null
roles=()
if [ "${CUSTOMER_OPERATOR_ISOLATION_BACKEND:-NetworkPolicy}" = ClusterNetworkPolicy ]; then
  kubectl apply --server-side -f "$(bash scripts/cluster-network-policy-crd.sh)" >/dev/null
  kubectl wait --for condition=established --timeout=60s \
    crd/clusternetworkpolicies.policy.networking.k8s.io >/dev/null
  roles=(--set operator.isolationBackend=ClusterNetworkPolicy --set customerRoles.allowNetworkPolicies=true)
fi
bash scripts/helm.sh template customer-operator charts/customer-operator "${roles[@]}" \
  --show-only templates/rbac-customer-roles.yaml | kubectl apply --server-side -f - >/dev/null

if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
  setsid "$bin" run --platform-namespaces ingress-nginx,monitoring \
    >"$state/operator.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "operator started (pid $(cat "$pidfile"), log $state/operator.log)"
fi

# The claims of examples/self-service.yaml need namespaces the operator makes (the
# partner's, galactic-holdings'): the first apply makes those, the second the claims.
kubectl apply -f examples/ >/dev/null 2>&1 || true
kubectl wait --for condition=Ready --timeout=120s \
  partner/acme-integrations customer/galactic-holdings >/dev/null
kubectl apply -f examples/ >/dev/null
kubectl wait --for condition=Ready --timeout=120s \
  customer/nova-bakery customer/astral-voyage customer/orbital-freight \
  customer/galactic-holdings customer/galactic-labs customer/quiet-vault \
  customer/comet-coffee customer/meteor-mail customer/galactic-studio >/dev/null
kubectl wait --for condition=Ready --timeout=60s -n partner-acme-integrations \
  customerclaim/comet-coffee customerclaim/meteor-mail >/dev/null
echo
# The category `customers` lists both kinds: groups and customers.
kubectl get customers
echo
echo "# What the operator made for astral-voyage:"
kubectl get namespaces,networkpolicies,rolebindings,resourcequotas,limitranges \
  --all-namespaces -l customers.dev/customer=astral-voyage
echo
echo "# Its admin may work there (the chart's customer roles):"
echo "kubectl auth can-i create deployments -n astral-voyage-prod --as alice@astral-voyage.example: $(
  kubectl auth can-i create deployments -n astral-voyage-prod --as alice@astral-voyage.example || true)"
echo
echo "# Offline, the same objects in full: $bin render -f examples/"
echo "KUBECONFIG=$KUBECONFIG   (eval \"\$(scripts/control-plane.sh env)\" to use it;"
echo "scripts/demo.sh stop, then scripts/control-plane.sh down, to stop everything)"
