# syntax=docker/dockerfile:1
# customer-operator image: a static (musl) binary on an empty base, run as UID 65532.
#   docker build -t <registry>/customer-operator:<version> .
# Not built here (the project's machines have no container engine): scripts/image.sh
# builds the same layout with umoci, and tests/offline/image.rs checks this final stage
# against it.

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The musl target of the architecture being built (the builder runs on it).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$target" \
 && cargo build --release --locked --target "$target" --bin customer-operator \
 && install -D -m 0755 "target/$target/release/customer-operator" /out/customer-operator

FROM scratch
# Roots for an apiserver outside the cluster; in a pod the ServiceAccount's CA is used.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/customer-operator /customer-operator
USER 65532:65532
ENTRYPOINT ["/customer-operator"]
CMD ["run"]
