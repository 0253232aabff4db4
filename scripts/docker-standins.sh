#!/usr/bin/env bash
# Stand-ins for the base images docker/Dockerfile and docker-compose.yml name,
# for machines that can reach Debian's mirror but no image registry.
#
#   debian:bookworm-slim  debootstrap --variant=minbase bookworm, imported
#   redis:7-bookworm      the above plus Debian's redis-server (7.0)
#   rust:1-bookworm       the above plus a C toolchain, this machine's Rust
#                         toolchain, and a crate registry pre-fetched on the
#                         host for Cargo.lock (CARGO_NET_OFFLINE=true inside)
#
# An image that already exists under its tag is kept (a real one pulled from
# a registry, or a stand-in from an earlier run), except that a stand-in Rust
# image whose pre-fetched registry was made for another Cargo.lock is rebuilt.
# Every stand-in carries the label org.x402.standin=1.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK="${X402_STANDIN_DIR:-$HOME/.cache/x402-facilitator/docker-standins}"
MIRROR="${X402_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$WORK"

say() { echo "[standins] $*"; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
label_of() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# The legacy builder (no BuildKit here) never pulls a FROM image that exists
# locally; --pull=false says so explicitly.
# (Its deprecation notice is filtered out.)
build() {
  DOCKER_BUILDKIT=0 docker build --pull=false -q "$@" >/dev/null \
    2> >(grep -v -e DEPRECATED -e 'legacy builder' -e BuildKit -e '^ *environment-variable' -e '^$' >&2)
}

debian_slim() {
  have_image debian:bookworm-slim && return 0
  say "debian:bookworm-slim: debootstrap --variant=minbase bookworm"
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed" >&2; exit 1; }
  local root="$WORK/rootfs"
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  # Slim like the real one: no apt cache, docs, man pages or locales.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/*
  echo "deb $MIRROR bookworm main" >"$root/etc/apt/sources.list"
  tar -C "$root" -c . | docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL org.x402.standin=1' \
    - debian:bookworm-slim >/dev/null
  rm -rf "$root"
}

redis_image() {
  have_image redis:7-bookworm && return 0
  say "redis:7-bookworm: debian:bookworm-slim + redis-server"
  local ctx="$WORK/redis-ctx"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
LABEL org.x402.standin=1
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
EOF
  build -t redis:7-bookworm "$ctx"
}

rust_image() {
  local lock_sum
  lock_sum=$(sha256sum Cargo.lock | cut -c1-16)
  if have_image rust:1-bookworm; then
    if [ "$(label_of rust:1-bookworm org.x402.standin)" != 1 ] \
      || [ "$(label_of rust:1-bookworm org.x402.cargo-lock)" = "$lock_sum" ]; then
      return 0
    fi
    say "rust:1-bookworm: Cargo.lock changed, refreshing the pre-fetched registry"
  else
    say "rust:1-bookworm: debian + C toolchain + host Rust toolchain + pre-fetched registry"
  fi

  # Base layer (C toolchain + Rust toolchain), kept across Cargo.lock changes.
  if ! have_image x402-standin/rust-toolchain:latest; then
    local tc_src ctx="$WORK/rust-toolchain-ctx"
    tc_src="$(rustc --print sysroot)"
    rm -rf "$ctx" && mkdir -p "$ctx/rust/bin" "$ctx/rust/lib/rustlib"
    cp -a "$tc_src/bin/cargo" "$tc_src/bin/rustc" "$ctx/rust/bin/"
    cp -a "$tc_src"/lib/*.so* "$ctx/rust/lib/"
    cp -a "$tc_src/lib/rustlib/x86_64-unknown-linux-gnu" "$ctx/rust/lib/rustlib/"
    cat >"$ctx/Dockerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc g++ libc6-dev make cmake perl pkg-config ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/usr/local/cargo
RUN rustc --version && cargo --version
EOF
    build -t x402-standin/rust-toolchain:latest "$ctx"
    rm -rf "$ctx"
  fi

  # Registry layer: every crate Cargo.lock names, fetched on the host.
  local ctx="$WORK/rust-registry-ctx"
  rm -rf "$ctx" && mkdir -p "$ctx/cargo"
  # Seed from this machine's registry so that only missing crates download.
  if [ ! -d "$WORK/cargo-home/registry" ] && [ -d "${CARGO_HOME:-$HOME/.cargo}/registry/cache" ]; then
    mkdir -p "$WORK/cargo-home/registry"
    cp -a "${CARGO_HOME:-$HOME/.cargo}/registry/index" "${CARGO_HOME:-$HOME/.cargo}/registry/cache" \
      "$WORK/cargo-home/registry/" 2>/dev/null || true
  fi
  CARGO_HOME="$WORK/cargo-home" cargo fetch --locked -q
  cp -a "$WORK/cargo-home/registry" "$ctx/cargo/"
  rm -rf "$ctx/cargo/registry/src"
  cat >"$ctx/Dockerfile" <<EOF
FROM x402-standin/rust-toolchain:latest
COPY cargo /usr/local/cargo
ENV CARGO_NET_OFFLINE=true
LABEL org.x402.standin=1 org.x402.cargo-lock=$lock_sum
EOF
  build -t rust:1-bookworm "$ctx"
  rm -rf "$ctx"
}

command -v docker >/dev/null || { echo "docker client missing" >&2; exit 1; }
debian_slim
redis_image
rust_image
say "ready: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(debian:bookworm-slim|redis:7-bookworm|rust:1-bookworm) ' | tr '\n' ' ')"
