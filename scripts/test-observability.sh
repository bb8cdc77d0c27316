#!/usr/bin/env bash
# The newcomer's path through observability, against a live demo-like fleet: edmmd on a simulated
# EPC with /metrics, eight simulated enclave hosts replaying mixed workloads, and while they run:
# a scrape checked by promtool, then every edmmctl command a newcomer would try, with its exit
# status. Cleans up every process and file it starts, even on failure. Needs promtool and curl
# (scripts/install-deps.sh test) and the debug build (swift build).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${EDMM_BIN:-.build/debug}
export SWIFT_BACKTRACE=enable=no

dir=$(mktemp -d /tmp/edmm-obs-XXXXXX)
socket=$dir/edmmd.sock
daemon_pid=""
fleet_pid=""
passed=0
failed=0

cleanup() {
  [ -n "$fleet_pid" ] && kill -TERM "$fleet_pid" 2>/dev/null && wait "$fleet_pid" 2>/dev/null
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: passes when COMMAND exits 0
  local name=$1; shift
  if "$@" >"$dir/out" 2>&1; then
    passed=$((passed + 1)); echo "ok    $name"
  else
    failed=$((failed + 1)); echo "FAIL  $name"; sed 's/^/      /' "$dir/out" | head -20
  fi
}

status_is() {  # status_is EXPECTED COMMAND...: passes when COMMAND exits with EXPECTED
  local expected=$1; shift
  "$@"; local actual=$?
  [ "$actual" -eq "$expected" ] || { echo "exit status $actual, expected $expected"; return 1; }
}

for tool in promtool curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh test"; exit 1; }
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/edmmd" --simulate --socket "$socket" --epc-size 32MiB --metrics "127.0.0.1:$port" --log-level warning \
  >"$dir/edmmd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
"$bin/edmm-sim" run --socket "$socket" --enclaves 8 --workload mixed --duration 30 >"$dir/fleet.log" 2>&1 &
fleet_pid=$!
for _ in $(seq 100); do
  [ "$("$bin/edmmctl" --socket "$socket" enclaves --json 2>/dev/null | grep -o '"id"' | wc -l)" -ge 8 ] && break
  sleep 0.1
done

ctl() { "$bin/edmmctl" --socket "$socket" "$@"; }
scrape() { curl -sS -f "http://127.0.0.1:$port/metrics"; }
http_status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
export bin socket port
export -f ctl scrape http_status

check "a live scrape with 8 busy enclaves passes promtool" bash -c 'scrape | promtool check metrics'
check "the scrape has per-enclave series for all 8 enclaves" bash -c '[ "$(scrape | grep -c "^edmmd_enclave_committed_pages{")" -eq 8 ]'
check "/ is 404, POST /metrics 405" bash -c \
  '[ "$(http_status "http://127.0.0.1:$port/")" = 404 ] && [ "$(http_status -X POST "http://127.0.0.1:$port/metrics")" = 405 ]'
check "edmmctl metrics passes promtool" bash -c 'ctl metrics | promtool check metrics'
check "edmmctl status names the simulated mode" bash -c 'ctl status | grep -q "^mode  *simulated"'
check "edmmctl enclaves lists 8 rows" bash -c '[ "$(ctl enclaves | tail -n +2 | wc -l)" -eq 8 ]'
check "edmmctl enclaves --json is one object with 8 enclaves" bash -c 'ctl enclaves --json | python3 -c "
import json, sys
enclaves = json.load(sys.stdin)[\"enclaves\"]
assert len(enclaves) == 8, enclaves
assert all(\"committed_pages\" in e and \"label\" in e and \"id\" in e and \"uid\" in e for e in enclaves)"'
label=$(ctl enclaves --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["enclaves"][0]["label"])')
check "edmmctl show $label" bash -c "ctl show $label | grep -q 'lazy pool'"
id=$(ctl enclaves --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["enclaves"][0]["id"])')
check "edmmctl show $id (by id) --json has the STATS counters" bash -c "ctl show $id --json | grep -q '\"pages_committed\"'"
check "edmmctl top --batch prints two frames" bash -c '[ "$(ctl top --batch --iterations 2 --interval 0.5 | grep -c requests/s)" -eq 2 ]'
if [ "$(id -u)" -eq 0 ]; then
  check "edmmctl reclaim (root)" bash -c 'ctl reclaim | grep -q "^reclaiming"'
  check "edmmctl reload (root)" bash -c 'ctl reload | grep -q "^reloaded"'
else
  check "edmmctl reclaim without admin rights exits 77" status_is 77 ctl reclaim
fi
check "edmmctl config check config/edmmd.toml" "$bin/edmmctl" config check config/edmmd.toml
printf '[batch]\nwindow_us = 0\n' >"$dir/bad.toml"
check "edmmctl config check of a bad file exits 1 with file:line" bash -c \
  "\"\$bin/edmmctl\" config check $dir/bad.toml 2>&1 | grep -q '$dir/bad.toml:2:'; [ \${PIPESTATUS[0]} -eq 1 ]"
check "edmmctl show of an unknown enclave exits 1" status_is 1 ctl show no-such-enclave
check "edmmctl without a daemon exits 69" status_is 69 "$bin/edmmctl" --socket "$dir/absent.sock" status
check "edmmctl with a bad option exits 64" status_is 64 ctl enclaves --sort nonsense
check "edmmctl --help documents the exit statuses" bash -c '"$bin/edmmctl" --help | grep -q "EXIT STATUS"'

kill -TERM "$fleet_pid"; wait "$fleet_pid"; fleet_status=$?; fleet_pid=""
check "the fleet's ledgers matched the EPCM (edmm-sim run exit status)" test "$fleet_status" -eq 0
kill -TERM "$daemon_pid"; wait "$daemon_pid"; daemon_status=$?; daemon_pid=""
check "edmmd drained and exited 0 on SIGTERM" test "$daemon_status" -eq 0

echo
echo "observability: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
