#!/usr/bin/env bash
# Every test suite of the project, in one command (`npm test`): the node suites (server, wire,
# transports, TypeScript client, package, README examples), then the Python and Rust clients and
# the ostree example, each against layerpipe and, where it makes sense, against skopeo.
# It prints one line per node test file and per other suite, then every failure in full, then
# the path of the logs (the node suites' complete TAP, each suite's full output) and, last, one
# summary line "N passed, M failed, K skipped".
# A suite whose system packages are missing is skipped with a hint, and fails under CI=true.
set -uo pipefail
cd "$(dirname "$0")/.."
log_dir="$(mktemp -d "${TMPDIR:-/tmp}/layerpipe-tests.XXXXXX")"
passed=0 failed=0 skipped=0 status=0
layerpipe_bin="$PWD/bin/layerpipe"

count() { # count NAME PASS FAIL SKIP RC
  passed=$((passed + $2)); failed=$((failed + $3)); skipped=$((skipped + $4))
  if [ "$5" -ne 0 ] || [ "$3" -ne 0 ]; then status=1; echo "== $1: FAILED (exit $5)"; else echo "== $1: $2 passed, $4 skipped"; fi
}

missing() { # missing NAME HINT: skip, or fail under CI
  if [ "${CI:-}" = "true" ]; then echo "== $1: FAILED: $2" ; failed=$((failed + 1)); status=1
  else echo "== $1: skipped: $2"; skipped=$((skipped + 1)); fi
}

build_step() { # build_step NAME COMMAND...: quiet unless it fails
  if ! "${@:2}" >"$log_dir/build-$1.log" 2>&1; then
    cat "$log_dir/build-$1.log"; echo "== build ($1): FAILED; logs in $log_dir"; echo "0 passed, 1 failed"; exit 1
  fi
}

echo "== build"
# The same incremental build as `npm run build` (tsc, the wire's method table as JSON, which
# the Python and Rust tests check their clients against, the browser client's ES module,
# which the browser example's page loads, and the one-file CLI bin/layerpipe starts from).
build_step typescript npm run --silent build:ts
export LAYERPIPE_METHODS_JSON="$PWD/dist/protocol/methods.json"
build_step browser npm run --silent build:browser
build_step bundle npm run --silent build:bundle

echo "== node suites"
# Only *.test.js: given a directory, node --test would also run every harness module (and the child programs among them).
# And only those whose .ts still exists: the incremental build leaves a renamed test's old output in dist/.
# Two reporters: one line per file and the failures on the terminal, the complete TAP in the log directory.
mapfile -t node_tests < <(find dist/test -name '*.test.js' | sort | while read -r js; do
  src="${js#dist/}"; [ -f "${src%.js}.ts" ] && echo "$js"; done)
node --test --test-concurrency=1 --test-timeout=300000 \
  --test-reporter=./dist/test/harness/progress-reporter.js --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$log_dir/node.tap" "${node_tests[@]}"
rc=$?
n() { grep -E "^# $1 [0-9]+" "$log_dir/node.tap" | tail -1 | awk '{print $3}' | grep . || echo 0; }
count "node suites" "$(n pass || echo 0)" "$(( $(n fail || echo 0) + $(n cancelled || echo 0) ))" "$(( $(n skipped || echo 0) + $(n todo || echo 0) ))" "$rc"

python_suite() { # python_suite NAME DIR PROXY LOG
  local out="$log_dir/$4.log"
  LAYERPIPE_PROXY_COMMAND="$3" python3 -m unittest discover -s "$2" -v >"$out" 2>&1
  local rc=$? ran fails errs skips
  ran=$(grep -Eo '^Ran [0-9]+' "$out" | awk '{print $2}'); ran=${ran:-0}
  fails=$(grep -Eo 'failures=[0-9]+' "$out" | cut -d= -f2); errs=$(grep -Eo 'errors=[0-9]+' "$out" | cut -d= -f2)
  skips=$(grep -Eo 'skipped=[0-9]+' "$out" | cut -d= -f2)
  fails=$(( ${fails:-0} + ${errs:-0} )); skips=${skips:-0}
  # The failures in full: unittest's report from its first ==== separator down to "Ran N tests";
  # without one (it died first), the end of its output.
  if [ "$rc" -ne 0 ]; then
    if grep -q '^======' "$out"; then sed -n '/^======/,/^Ran [0-9]/p' "$out"; else tail -n 40 "$out"; fi
  fi
  count "$1" $((ran - fails - skips)) "$fails" "$skips" "$rc"
}

if command -v python3 >/dev/null; then
  python_suite "python client (layerpipe)" clients/python/tests "$layerpipe_bin" python-layerpipe
  if command -v skopeo >/dev/null; then python_suite "python client (skopeo)" clients/python/tests skopeo python-skopeo
  else missing "python client (skopeo)" "skopeo not installed (apt-get install -y skopeo)"; fi
  if command -v ostree >/dev/null; then python_suite "ostree example" examples/ostree-import "$layerpipe_bin" ostree-example
  else missing "ostree example" "ostree not installed (apt-get install -y ostree zstd)"; fi
else
  missing "python client" "python3 not installed"
fi

rust_suite() { # rust_suite NAME PROXY LOG
  local out="$log_dir/$3.log"
  LAYERPIPE_PROXY_PROGRAM="$2" bash .ci/cargo-offline.sh >"$out" 2>&1
  local rc=$? p f i
  sum() { grep -E '^test result:' "$out" | grep -Eo "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
  p=$(sum passed); f=$(sum failed); i=$(sum ignored)
  # The failures in full: each test binary's "failures:" report; without one (no build), the end of the output.
  if [ "$rc" -ne 0 ]; then
    if grep -q '^failures:$' "$out"; then sed -n '/^failures:$/,/^test result:/p' "$out"; else tail -n 40 "$out"; fi
  fi
  count "$1" "${p:-0}" "${f:-0}" "${i:-0}" "$rc"
}

if command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ]; then
  if dpkg-query -W -f='${Status}' librust-serde-json-dev 2>/dev/null | grep -q 'install ok installed' || [ "$(id -u)" -eq 0 ]; then
    rust_suite "rust client (layerpipe)" "$layerpipe_bin" rust-layerpipe
    if command -v skopeo >/dev/null; then rust_suite "rust client (skopeo)" skopeo rust-skopeo; fi
  else
    missing "rust client" "Debian's librust-*-dev packages are missing (bash .ci/cargo-offline.sh installs them)"
  fi
else
  missing "rust client" "cargo not installed"
fi

echo "== logs (node TAP, each suite's output): $log_dir"
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
