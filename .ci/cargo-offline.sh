#!/usr/bin/env bash
# Builds the Rust client without crates.io: its dependencies come from Debian's librust-*-dev
# packages, and cargo is pointed at them through a config in a private CARGO_HOME.
#
# Run it, or source it to keep the exported CARGO_HOME in the calling shell:
#   bash .ci/cargo-offline.sh [ARGS]          # set up, then `cargo test --offline [ARGS]` in clients/rust
#   source .ci/cargo-offline.sh --setup-only  # set up and export CARGO_HOME only
# The tests run the proxy named by $LAYERPIPE_PROXY_PROGRAM (default: skopeo on PATH) and
# fail rather than skip when CI=true.
# Needs root (apt-get) unless the packages are already installed.

layerpipe_cargo_offline() {
  local repo packages missing=() p
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  packages=(librust-serde-dev librust-serde-derive-dev librust-serde-json-dev librust-libc-dev)

  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" \
      || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } \
      || { echo "cargo-offline: could not install ${missing[*]}" >&2; return 1; }
  fi

  # The toolchain (rustup's or Debian's) may live under the default CARGO_HOME: remember where
  # cargo is before CARGO_HOME moves, because rustup proxies read it.
  if ! command -v cargo >/dev/null; then
    [ -x "${HOME}/.cargo/bin/cargo" ] && export PATH="${HOME}/.cargo/bin:${PATH}"
  fi
  if ! command -v cargo >/dev/null; then
    # No rustup toolchain: Debian's cargo and rustc (1.63) build the crate too.
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends cargo rustc \
      || { apt-get update && apt-get install -y --no-install-recommends cargo rustc; } \
      || { echo "cargo-offline: no cargo on PATH and apt-get could not install it" >&2; return 1; }
  fi
  if [ -z "${RUSTUP_HOME:-}" ] && [ -d "${HOME}/.rustup" ]; then
    export RUSTUP_HOME="${HOME}/.rustup"
  fi

  export CARGO_HOME="${LAYERPIPE_CARGO_HOME:-${TMPDIR:-/tmp}/layerpipe-cargo-home}"
  mkdir -p "$CARGO_HOME"
  cat >"$CARGO_HOME/config.toml" <<'TOML'
# Written by .ci/cargo-offline.sh: crates.io is served from Debian's packaged sources.
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
TOML
  echo "cargo-offline: CARGO_HOME=$CARGO_HOME ($(cargo --version))"

  if [ "${1:-}" != "--setup-only" ]; then
    # The lock file is not committed (library crate): resolve it afresh against the Debian
    # sources, so that a lock left by an online build cannot name versions missing here.
    (cd "$repo/clients/rust" && cargo generate-lockfile --offline && cargo test --offline "$@")
  fi
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  # Sourced: leave the caller's shell options alone.
  layerpipe_cargo_offline "$@"
else
  set -euo pipefail
  layerpipe_cargo_offline "$@"
fi
