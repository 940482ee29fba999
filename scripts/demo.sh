#!/usr/bin/env bash
# A two-minute look at nbdts, no cloud account needed: a 1 GiB sparse RAM disk
# served by `nbdts memory size=1G` in captive mode (--run), exercised with
# libnbd's nbdinfo and nbdcopy. Does the setup first (skip with NBDTS_SKIP_SETUP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ ${NBDTS_SKIP_SETUP:-0} == 1 ]] || bash scripts/setup.sh
# shellcheck source=scripts/node-runtime.sh
source scripts/node-runtime.sh

work=$(mktemp -d /tmp/nbdts-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
head -c 64M /dev/urandom > "$work/in.img"

# The command nbdts runs once it is listening; $uri is set by nbdts.
cat > "$work/inside.sh" <<'INSIDE'
set -euo pipefail
cd "$1"
echo "== nbdts is serving $uri"
nbdinfo "$uri"
echo "== writing 64 MiB of random data with nbdcopy"
time nbdcopy --flush in.img "$uri"
echo "== reading the whole 1 GiB disk back (holes are skipped)"
time nbdcopy "$uri" out.img
cmp -n 67108864 in.img out.img && echo "== first 64 MiB read back identical"
echo "== allocation map: written data, then a hole"
nbdinfo --map --totals "$uri"
INSIDE

echo "== nbdts --run '...' memory size=1G"
node packages/cli/bin/nbdts.js --run "bash $work/inside.sh $work" memory size=1G
echo "== done: nbdts exited with the status of the --run command (0)"
