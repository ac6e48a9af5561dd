#!/usr/bin/env bash
# Prints the path of sig-network's ClusterNetworkPolicy CRD (the standard channel),
# fetched with the Go tooling from the sigs.k8s.io/network-policy-api module pinned in
# scripts/k8s/network-policy-api/go.mod. The CRD is never copied into this repository:
# the tests install it from the module cache, and the chart's packaging copies it into
# the chart only when asked (scripts/cluster-network-policy-crd.sh --into DIR).
#
#   scripts/cluster-network-policy-crd.sh             print the CRD's path
#   scripts/cluster-network-policy-crd.sh --into DIR  copy it to DIR/clusternetworkpolicies.yaml
set -euo pipefail
pin=$(cd "$(dirname "$0")" && pwd)/k8s/network-policy-api
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { echo "cluster-network-policy-crd.sh: Go is needed" >&2; exit 1; }
module=sigs.k8s.io/network-policy-api
version=$(awk -v m="$module" '$1 == "require" && $2 == m { print $3 }' "$pin/go.mod")
dir=$(cd "$pin" && GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local} go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
crd=$dir/config/crd/standard/policy.networking.k8s.io_clusternetworkpolicies.yaml
[ -f "$crd" ] || { echo "cluster-network-policy-crd.sh: $crd is missing from $module@$version" >&2; exit 1; }
case "${1:-}" in
  --into)
    mkdir -p "$2"
    cp "$crd" "$2/clusternetworkpolicies.yaml"
    chmod u+w "$2/clusternetworkpolicies.yaml"
    echo "$2/clusternetworkpolicies.yaml"
    ;;
  "") echo "$crd" ;;
  *) echo "usage: $0 [--into DIR]" >&2; exit 2 ;;
esac
