#!/usr/bin/env bash
# Writes the wrapper Go modules that scripts/control-plane.sh builds the test control
# plane and helm from, and pins their dependencies (go.mod and go.sum, kept in the repo).
#
#   scripts/k8s/pin.sh kubernetes 1.37.2 3.7.3   kube-apiserver, kube-controller-manager and
#                                                kubectl 1.37.2 into scripts/k8s/1.37/kubernetes,
#                                                etcd 3.7.3 into scripts/k8s/1.37/etcd
#   scripts/k8s/pin.sh helm 4.3.1                the helm CLI into scripts/k8s/helm
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at
# v0.0.0 and replaces them with its own ./staging directory, which a module download
# does not have: the wrapper replaces each with the published v0.<minor>.<patch>. The
# wrapper also takes over k8s.io/kubernetes's `go` and `godebug` lines. etcd has a
# wrapper of its own so that its dependencies cannot move the ones Kubernetes pins.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=mod

die() { echo "pin.sh: $*" >&2; exit 1; }

pin_kubernetes() {
  local version=${1#v} etcd=${2#v} minor dir gomod
  [[ $version =~ ^1\.([0-9]+)\.[0-9]+$ ]] || die "kubernetes version must look like 1.37.2, not $1"
  minor=${BASH_REMATCH[1]}
  dir=$here/1.$minor
  mkdir -p "$dir/kubernetes" "$dir/etcd"
  gomod=$(go mod download -json "k8s.io/kubernetes@v$version" | jq -r .GoMod)
  [[ -s $gomod ]] || die "k8s.io/kubernetes@v$version: no go.mod downloaded"
  {
    echo "// Builds kube-apiserver, kube-controller-manager and kubectl v$version (scripts/k8s/pin.sh)."
    echo "module customer-operator.test/kubernetes"
    echo
    grep -E '^(go|godebug) ' "$gomod"
    echo
    echo "require k8s.io/kubernetes v$version"
    echo
    echo "tool ("
    printf '\tk8s.io/kubernetes/cmd/%s\n' kube-apiserver kube-controller-manager kubectl
    echo ")"
    echo
    echo "replace ("
    awk -v v="v0.$minor.${version##*.}" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$gomod"
    echo ")"
  } >"$dir/kubernetes/go.mod"
  rm -f "$dir/kubernetes/go.sum"
  (cd "$dir/kubernetes" && go mod tidy)

  local etcd_major=${etcd%%.*}
  {
    echo "// Builds etcd v$etcd for the Kubernetes 1.$minor test control plane (scripts/k8s/pin.sh)."
    echo "module customer-operator.test/etcd"
    echo
    grep -E '^go ' "$gomod"
    echo
    echo "require go.etcd.io/etcd/server/v$etcd_major v$etcd"
  } >"$dir/etcd/go.mod"
  cat >"$dir/etcd/main.go" <<GO
// Command etcd runs etcd's server entry point; see scripts/k8s/pin.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v$etcd_major/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  rm -f "$dir/etcd/go.sum"
  (cd "$dir/etcd" && go mod tidy)
  echo "pinned kubernetes v$version and etcd v$etcd in $dir" >&2
}

pin_helm() {
  local version=${1#v} major
  major=${version%%.*}
  mkdir -p "$here/helm"
  {
    echo "// Builds the helm CLI v$version (scripts/k8s/pin.sh)."
    echo "module customer-operator.test/helm"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$/.0/')"
    echo
    echo "require helm.sh/helm/v$major v$version"
    echo
    echo "tool helm.sh/helm/v$major/cmd/helm"
  } >"$here/helm/go.mod"
  rm -f "$here/helm/go.sum"
  (cd "$here/helm" && go mod tidy)
  echo "pinned helm v$version in $here/helm" >&2
}

case ${1:-} in
  kubernetes) [[ $# == 3 ]] || die "usage: pin.sh kubernetes K8S_VERSION ETCD_VERSION"; pin_kubernetes "$2" "$3" ;;
  helm) [[ $# == 2 ]] || die "usage: pin.sh helm VERSION"; pin_helm "$2" ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
