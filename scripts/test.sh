#!/usr/bin/env bash
# The test command: setup (skip with NBDTS_SKIP_SETUP=1), then type-check,
# lint, the formatter's check, and every vitest test (unit, plugin and end-to-end with real clients).
# Extra arguments go to vitest, e.g. `scripts/test.sh packages/e2e`.
# The last line printed is always `N passed, N failed[, N skipped]`, counted
# from vitest's JSON report; a failed type-check, lint or format check counts
# as one failure.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ ${NBDTS_SKIP_SETUP:-0} != 1 ]]; then
  if ! bash scripts/setup.sh; then
    echo "setup failed" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

# The runtime setup installed (.nvmrc, or NBDTS_NODE_VERSION), first on PATH.
# shellcheck source=scripts/node-runtime.sh
source scripts/node-runtime.sh || { echo "no Node.js runtime" >&2; echo "0 passed, 1 failed"; exit 1; }
echo "== node $(node --version)"

# Tests start the Swift and Ceph stores on demand (scripts/stores/*.sh start);
# stop them afterwards unless asked to keep them for the next run.
stop_stores() {
  [[ ${NBDTS_KEEP_STORES:-0} == 1 ]] && return
  for store in scripts/stores/*.sh; do
    [[ -e $store ]] && bash "$store" stop >/dev/null 2>&1
  done
}
trap stop_stores EXIT

mkdir -p .test-tmp
report=.test-tmp/vitest.json
rm -f "$report"
extra_failed=0

echo "== typecheck"; npm run --silent typecheck || { echo "typecheck FAILED"; extra_failed=$((extra_failed + 1)); }
echo "== lint";      npm run --silent lint      || { echo "lint FAILED";      extra_failed=$((extra_failed + 1)); }
echo "== format";    npm run --silent format:check >/dev/null || { npx prettier --list-different .; echo "format FAILED (npm run format fixes it)"; extra_failed=$((extra_failed + 1)); }
echo "== vitest"
npx vitest run --reporter=default --reporter=json --outputFile="$report" "$@"
vitest_status=$?

summary=$(node -e '
  const fs = require("node:fs");
  const [file, extra, status] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
  let passed = 0, failed = extra, skipped = 0;
  if (fs.existsSync(file)) {
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    passed = r.numPassedTests;
    skipped = r.numPendingTests + r.numTodoTests;
    failed += r.numFailedTests;
    // A test file that fails to load has no failed tests but failed suites.
    const broken = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.every((a) => a.status !== "failed")).length;
    failed += broken;
    if (status !== 0 && failed === 0) failed = 1; // vitest failed for another reason (e.g. unhandled error)
  } else {
    failed += 1; // vitest wrote no report: it did not run
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" "$extra_failed" "$vitest_status")
echo "$summary"
[[ $summary =~ ^[0-9]+\ passed,\ 0\ failed ]]
