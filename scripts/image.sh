#!/usr/bin/env bash
# Builds the operator's OCI image without a container engine, with Debian's umoci, and
# its software bill of materials, offline. The layout is the Dockerfile's: a static
# (musl) binary at /customer-operator, the CA roots at /etc/ssl/certs/ca-certificates.crt
# and nothing else (no shell, no package manager), run as UID 65532, entrypoint
# /customer-operator, command `run`. tests/image.rs unpacks it and checks all of that.
#
#   scripts/image.sh                   into target/image
#   scripts/image.sh --out DIR         into DIR
#
# It writes DIR/oci (an OCI image layout, tag = the crate's version), DIR/sbom.spdx.json
# (SPDX 2.3: the crates linked into the binary and the Debian package of the CA roots).
# Copy it to a registry with skopeo: skopeo copy oci:DIR/oci:<version> docker://<registry>/customer-operator:<version>
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/image
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { echo "image.sh: $*" >&2; }

bash scripts/control-plane.sh image-deps
target="$(uname -m)-unknown-linux-musl"
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
version=$(cargo metadata --no-deps --format-version 1 --locked | jq -r '.packages[] | select(.name == "customer-operator") | .version')
say "building customer-operator $version for $target"
cargo build --release --locked --target "$target" --bin customer-operator
binary=target/$target/release/customer-operator
roots=/etc/ssl/certs/ca-certificates.crt
[[ -s $roots ]] || { say "no CA roots at $roots (Debian's ca-certificates)"; exit 1; }

rm -rf "$out"
mkdir -p "$out"
layout=$out/oci
bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci unpack --image "$layout:$version" "$bundle/b"
install -D -m 0755 "$binary" "$bundle/b/rootfs/customer-operator"
install -D -m 0644 "$roots" "$bundle/b/rootfs$roots"
umoci repack --image "$layout:$version" "$bundle/b"
umoci config --image "$layout:$version" \
  --config.user 65532:65532 \
  --config.entrypoint /customer-operator \
  --config.cmd run \
  --config.workingdir / \
  --config.label "org.opencontainers.image.title=customer-operator" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
umoci gc --layout "$layout"

# The bill of materials: every crate the binary links (normal dependencies for the musl
# target, no build or dev dependencies), with the licence cargo records, and the Debian
# package the CA roots come from.
crates=$(cargo tree --locked --edges normal --target "$target" --package customer-operator \
  --prefix none --format '{p}' | sed 's/ (.*//; s/ v/ /' | sort -u)
cargo metadata --format-version 1 --locked --filter-platform "$target" |
  jq '[.packages[] | {key: "\(.name) \(.version)", value: .license}] | from_entries' > "$bundle/licences.json"
roots_package=$(dpkg-query -S "$(readlink -f "$roots")" 2>/dev/null | cut -d: -f1 || true)
roots_package=${roots_package:-ca-certificates}
roots_version=$(dpkg-query -W -f='${Version}' "$roots_package")
rust_version=$(rustc --version | awk '{print $2}')
jq -n \
  --arg version "$version" \
  --arg created "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg crates "$crates" \
  --slurpfile licences "$bundle/licences.json" \
  --arg deb "$roots_package" --arg debVersion "$roots_version" \
  --arg rust "$rust_version" --arg target "$target" '
  def spdxid: gsub("[^A-Za-z0-9.-]"; "-");
  $licences[0] as $licence
  | [$crates | split("\n")[] | select(length > 0) | split(" ") | {name: .[0], version: .[1]}] as $linked
  | {
      spdxVersion: "SPDX-2.3",
      dataLicense: "CC0-1.0",
      SPDXID: "SPDXRef-DOCUMENT",
      name: "customer-operator-\($version)-image",
      documentNamespace: "urn:customer-operator:image:\($version):\($created)",
      creationInfo: {created: $created, creators: ["Tool: scripts/image.sh"]},
      packages: (
        [$linked[] | {
          SPDXID: "SPDXRef-crate-\(.name)-\(.version | spdxid)",
          name: .name,
          versionInfo: .version,
          downloadLocation: "NOASSERTION",
          licenseDeclared: ($licence["\(.name) \(.version)"] // "NOASSERTION"),
          externalRefs: [{referenceCategory: "PACKAGE-MANAGER", referenceType: "purl",
                          referenceLocator: "pkg:cargo/\(.name)@\(.version)"}]
        }]
        + [{
          SPDXID: "SPDXRef-deb-\($deb)", name: $deb, versionInfo: $debVersion,
          downloadLocation: "NOASSERTION", licenseDeclared: "NOASSERTION",
          comment: "the file /etc/ssl/certs/ca-certificates.crt",
          externalRefs: [{referenceCategory: "PACKAGE-MANAGER", referenceType: "purl",
                          referenceLocator: "pkg:deb/debian/\($deb)@\($debVersion)?arch=all"}]
        }, {
          SPDXID: "SPDXRef-rust-std", name: "rust-std", versionInfo: $rust,
          downloadLocation: "NOASSERTION", licenseDeclared: "MIT OR Apache-2.0",
          comment: "the Rust standard library and the musl libc the \($target) target bundles, linked statically"
        }]),
      relationships: [{spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES",
                       relatedSpdxElement: "SPDXRef-crate-customer-operator-\($version | spdxid)"}]
    }' > "$out/sbom.spdx.json"
say "image: oci:$layout:$version ($(jq '.packages | length' "$out/sbom.spdx.json") packages in $out/sbom.spdx.json)"
