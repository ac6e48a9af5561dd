#!/usr/bin/env bash
# Prints the path of Argo CD's AppProject CRD (manifests/crds/appproject-crd.yaml),
# fetched with the Go tooling from the github.com/argoproj/argo-cd/v3 module pinned in
# scripts/k8s/argo-cd/go.mod, its hash in scripts/k8s/argo-cd/go.sum. The CRD is never
# copied into this repository: the tests install it from the module cache.
#
# Argo CD v3.6's go.mod asks for Go 1.27 and the machines have Go 1.26. Go 1.26's
# `go mod download -json` of a module that needs a newer Go still downloads the module
# (checked against the checksum database), unpacks it into the module cache, and only
# then reports "requires go >= 1.27.0" in the JSON's Error. Nothing is compiled from the
# module, so the script runs it outside any module with GOTOOLCHAIN=local (no toolchain is
# fetched), accepts exactly that error, checks the reported hash against the pin's
# go.sum, and reads the file from the unpacked module.
#
#   scripts/argocd-crd.sh             print the CRD's path
#   scripts/argocd-crd.sh --into DIR  copy it to DIR/appprojects.yaml
set -euo pipefail
pin=$(cd "$(dirname "$0")" && pwd)/k8s/argo-cd
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { echo "argocd-crd.sh: Go is needed" >&2; exit 1; }
module=github.com/argoproj/argo-cd/v3
version=$(awk -v m="$module" '$1 == "require" && $2 == m { print $3 }' "$pin/go.mod")
want=$(awk -v m="$module" -v v="$version" '$1 == m && $2 == v { print $3 }' "$pin/go.sum")
[ -n "$version" ] && [ -n "$want" ] || { echo "argocd-crd.sh: no pin of $module in $pin" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
json=$(cd "$scratch" && GO111MODULE=on GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "$module@$version" || true)
field() { printf '%s\n' "$json" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p"; }
error=$(field Error)
case "$error" in
  "" | *" requires go "*) ;;
  *) echo "argocd-crd.sh: go mod download $module@$version: $error" >&2; exit 1 ;;
esac
sum=$(field Sum)
[ "$sum" = "$want" ] || { echo "argocd-crd.sh: $module@$version has hash ${sum:-none}, the pin says $want" >&2; exit 1; }
crd=$(go env GOMODCACHE)/$module@$version/manifests/crds/appproject-crd.yaml
[ -f "$crd" ] || { echo "argocd-crd.sh: $crd is missing from $module@$version" >&2; exit 1; }
case "${1:-}" in
  --into)
    mkdir -p "$2"
    cp "$crd" "$2/appprojects.yaml"
    chmod u+w "$2/appprojects.yaml"
    echo "$2/appprojects.yaml"
    ;;
  "") echo "$crd" ;;
  *) echo "usage: $0 [--into DIR]" >&2; exit 2 ;;
esac
