#!/usr/bin/env bash
# The helm CLI of the chart checks, the Helm release test and the demo: built once from
# its Go module (scripts/k8s/helm, pinned there) and cached outside the repo; any helm
# that happens to be installed is never used.
#
#   scripts/helm.sh setup     build helm (idempotent); prints nothing
#   scripts/helm.sh path      print the path of the helm binary (building it first)
#   scripts/helm.sh ARGS...   run `helm ARGS...` (e.g. template, lint, install, upgrade, uninstall)
#
# Environment: CUSTOMER_OPERATOR_CACHE (default ~/.cache/customer-operator).
set -euo pipefail

wrapper=$(cd "$(dirname "$0")" && pwd)/k8s/helm
cache=${CUSTOMER_OPERATOR_CACHE:-$HOME/.cache/customer-operator}
version=$(awk '$1 ~ /^helm\.sh\/helm\// && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 ~ /^helm\.sh\/helm\// { print $3; exit }' "$wrapper/go.mod")
module=$(awk '$1 == "tool" { print $2; exit }' "$wrapper/go.mod")
bin=$cache/helm-$version/bin/helm

build() {
  [ -x "$bin" ] && return 0
  mkdir -p "$cache"
  # Several test threads may ask at once: one builds, the others wait for it.
  exec 9>"$cache/helm-build.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
    command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
    command -v go >/dev/null || { echo "helm.sh: Go 1.26 or newer is needed to build helm" >&2; exit 1; }
    echo "helm.sh: building helm $version from its Go module (about 3 minutes on 2 cores, once)" >&2
    local tmp major=${version%%.*}
    tmp=$(mktemp -d "$cache/helm-build.XXXXXX")
    if ! (cd "$wrapper" && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$version" -o "$tmp/helm" "$module") >"$tmp/build.log" 2>&1; then
      tail -n 30 "$tmp/build.log" >&2
      echo "helm.sh: go build of $module failed" >&2
      exit 1
    fi
    mkdir -p "$(dirname "$bin")"
    mv "$tmp/helm" "$bin.tmp"
    mv "$bin.tmp" "$bin"
    rm -rf "$tmp"
  fi
  exec 9>&-
}

case "${1:-}" in
  setup) build ;;
  path) build; echo "$bin" ;;
  "" | -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  *) build; exec "$bin" "$@" ;;
esac
