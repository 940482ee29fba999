#!/usr/bin/env bash
# Install everything nbdts's tests, benchmarks and demo need, on Debian 12 as
# root. Idempotent: safe to run again; quick when nothing is missing.
#
#   scripts/setup.sh
#
# 1. Debian packages (real NBD clients, nbdkit as the reference server, QEMU,
#    fio, FUSE, filesystem tools, the Swift store), then each store script's
#    own `install` (scripts/stores/*.sh).
# 2. The Node.js runtime (.nvmrc, the current LTS line) from the npm registry
#    (scripts/node-runtime.sh); NBDTS_NODE_VERSION=24 picks the maintenance LTS.
# 3. npm dependencies (npm ci on a fresh tree or in CI, npm install otherwise).
# 4. The native addons (file plugin, engine, memory plugin), each optional:
#    without one, its user falls back (see the warnings).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

PACKAGES=(
  # NBD clients and the reference server
  libnbd-bin python3-libnbd nbdkit nbdkit-plugin-python
  # QEMU's NBD client, fio's NBD engine, FUSE, filesystems
  qemu-utils fio fuse3 e2fsprogs rsync genisoimage xorriso
  # native addon build
  build-essential python3
  # OpenStack Swift, for the swift plugin's tests and demo
  swift swift-proxy swift-object swift-container swift-account memcached python3-swiftclient
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || { say "must run as root to install: ${missing[*]}"; exit 1; }
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${PACKAGES[@]}"
else
  say "Debian packages already installed"
fi

# Store hook: each scripts/stores/NAME.sh installs what its store needs
# (e.g. Ceph's radosgw). Owned by the store engineers.
for store in scripts/stores/*.sh; do
  [[ -e $store ]] || continue
  say "store: $store install"
  bash "$store" install
done

# nbdfuse needs the FUSE device; say so early rather than in a failing test.
[[ -e /dev/fuse ]] || say "warning: /dev/fuse is missing: the nbdfuse tests will fail (in a container, pass --device /dev/fuse)"

command -v npm >/dev/null || { say "npm is required to fetch the Node.js runtime (Debian: apt-get install npm)"; exit 1; }
# shellcheck source=scripts/node-runtime.sh
source scripts/node-runtime.sh
say "node $(node --version) from $NBDTS_NODE_HOME"
if [[ ! -f package-lock.json ]]; then
  npm install --no-audit --no-fund
elif [[ ${CI:-} == true || ! -d node_modules ]]; then
  npm ci --no-audit --no-fund
elif [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm install --no-audit --no-fund
else
  say "node_modules up to date"
fi

if ! npm run build:native -w @nbdts/plugin-file --if-present; then
  say "warning: the file plugin's native addon did not build; the plugin falls back to plain fs calls"
fi
if ! npm run build:native -w @nbdts/plugin-memory --if-present; then
  say "warning: the memory plugin's native addon did not build; it falls back to its JS store, served on the main thread only"
fi
if ! npm run build:native -w @nbdts/server --if-present; then
  say "warning: the engine's native addon did not build; every connection is served on the main thread"
fi
say "done"
