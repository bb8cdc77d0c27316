#!/usr/bin/env bash
# The whole test suite, stage by stage; `make test` runs it and .ci/run runs `make test`.
# Each stage prints its own result; the last line is the summary. Exit status 1 if any failed.
#   scripts/test-all.sh [stage...]    only the named stages (e.g. `conformance fuzz`)
set -uo pipefail
cd "$(dirname "$0")/.."
export SWIFT_BACKTRACE=enable=no   # tests crash processes on purpose; don't wait for the backtracer

only=" $* "
passed=()
failed=()
stage() {
  local name=$1; shift
  [[ $only == "  " || $only == *" $name "* ]] || return 0
  local start=$SECONDS
  echo "=== $name: $*"
  if "$@"; then
    passed+=("$name")
    echo "=== $name: passed ($((SECONDS - start)) s)"
  else
    failed+=("$name")
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
  fi
}

stage lint scripts/lint.sh
stage build swift build --build-tests
stage unit-and-integration swift test --skip-build
stage conformance .build/debug/edmm-sim conformance
stage c-library scripts/test-c.sh
stage interpose scripts/test-interpose.sh
# The kernel's SGX selftests, on the simulator directly and then through libedmm-interpose and edmmd.
stage kselftest-sgx sh -c 'scripts/test-kselftest-sgx.sh && scripts/test-kselftest-sgx.sh --mode edmmd'
stage systemd scripts/test-systemd.sh
stage packages scripts/test-packages.sh
stage fuzz scripts/fuzz.sh
stage observability scripts/test-observability.sh
stage kubernetes scripts/test-kubernetes.sh
stage soak scripts/soak.sh --duration 120 --kill-every 2 --churn 0.01
# The same soak with every transient failure of SGX2 hardware and the Linux driver injected.
stage soak-faults env SOAK_FAULTS="all=0.03,seed=1" scripts/soak.sh --duration 60 --kill-every 2 --churn 0.01 --require-faults

echo
echo "stages: ${#passed[@]} passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[ ${#failed[@]} -eq 0 ]
