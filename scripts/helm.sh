#!/usr/bin/env bash
# The Helm engine of the chart checks: Helm 4 as compiled into the PyPI package
# helm-python-sdk (a C library built from Helm's Go SDK, driven from Python), installed
# once into a virtualenv under the cache. No `helm` binary is needed or fetched.
#
#   scripts/helm.sh setup                        install the engine (idempotent)
#   scripts/helm.sh version                      the Helm SDK version inside it
#   scripts/helm.sh lint CHART [-f VALUES]... [--set k=v]... [--kube-version V] [--strict]
#   scripts/helm.sh template CHART [-f VALUES]... [--set k=v]... [--name N] [--namespace NS]
#                                  [--kube-version V] [--api-versions A,B,...]
#   scripts/helm.sh install RELEASE CHART -n NS [--create-namespace] [-f VALUES]... [--set k=v]...
#   scripts/helm.sh upgrade RELEASE CHART -n NS [-f VALUES]... [--set k=v]...
#   scripts/helm.sh uninstall RELEASE -n NS      (these three on the cluster of $KUBECONFIG)
#
# Environment: CUSTOMER_OPERATOR_CACHE (default ~/.cache/customer-operator).
set -euo pipefail

HELM_SDK_VERSION=0.2.2
here=$(cd "$(dirname "$0")" && pwd)
cache=${CUSTOMER_OPERATOR_CACHE:-$HOME/.cache/customer-operator}
venv=$cache/helm-python-sdk-$HELM_SDK_VERSION

install() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import helm_python' 2>/dev/null && return 0
  mkdir -p "$cache"
  # Several test threads may ask at once: one installs, the others wait for it.
  exec 9>"$cache/helm-install.lock"
  flock 9
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import helm_python' 2>/dev/null; then
    exec 9>&-
    return 0
  fi
  local python
  python=$(command -v python3 || true)
  if [ -z "$python" ] || ! "$python" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    apt-get install -y -qq python3 python3-venv >/dev/null
    python=$(command -v python3)
  fi
  echo "helm.sh: installing helm-python-sdk $HELM_SDK_VERSION into $venv" >&2
  rm -rf "$venv.tmp"
  "$python" -m venv "$venv.tmp"
  "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check "helm-python-sdk==$HELM_SDK_VERSION"
  rm -rf "$venv"
  mv "$venv.tmp" "$venv"
  # The venv's scripts name their interpreter by the temporary path; the engine is only
  # ever started as "$venv/bin/python", which does not depend on it.
  exec 9>&-
}

case "${1:-}" in
  setup)
    install
    ;;
  version | lint | template | install | upgrade | uninstall)
    install
    exec "$venv/bin/python" "$here/helm.py" "$@"
    ;;
  *)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
