#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests, and the integration tests
# against the local control plane (started here, and built once from Debian's sources
# on a fresh machine; see scripts/control-plane.sh). Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo is needed (rustup toolchain)" >&2
  exit 1
fi

bash scripts/control-plane.sh up >/dev/null
eval "$(bash scripts/control-plane.sh env)"
# The tests run their own operator; one left running by scripts/demo.sh would race it.
bash scripts/demo.sh stop >/dev/null
echo "test.sh: control plane ready, KUBECONFIG=$KUBECONFIG" >&2

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
