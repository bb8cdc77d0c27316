#!/usr/bin/env bash
# The newcomer's path through observability, against a live demo-like fleet: edmmd on a simulated
# EPC with /metrics, eight simulated enclave hosts replaying mixed workloads, and while they run:
# plain and gzipped scrapes checked by promtool, the shipped Prometheus rules (promtool check
# rules, promtool test rules) and Grafana dashboard (scripts/check-monitoring.py) against the
# live scrape, then every edmmctl command a newcomer would try, with its exit status. Cleans up
# every process and file it starts, even on failure. Needs promtool, curl and python3-yaml
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

for tool in promtool curl gunzip; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh test"; exit 1; }
done
/usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "python3-yaml is missing: run scripts/install-deps.sh test"; exit 1; }

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
export bin socket port dir
export -f ctl scrape http_status

check "a live scrape with 8 busy enclaves passes promtool" bash -c 'scrape | promtool check metrics'
check "the scrape has per-enclave series for all 8 enclaves" bash -c '[ "$(scrape | grep -c "^edmmd_enclave_info{")" -eq 8 ]'
check "a scraper that accepts gzip gets it gzipped, and it passes promtool" bash -c \
  'curl -sS -f -H "Accept-Encoding: gzip" -D "$dir/headers" "http://127.0.0.1:$port/metrics" | gunzip | promtool check metrics &&
   grep -qi "^content-encoding: gzip" "$dir/headers"'
scrape >"$dir/scrape.txt"
check "promtool check rules contrib/prometheus/edmmd.rules.yml" promtool check rules contrib/prometheus/edmmd.rules.yml
check "promtool test rules: every alert fires and stays quiet when it should" bash -c 'cd contrib/prometheus && promtool test rules edmmd.rules.test.yml'
check "check-monitoring.py rejects an unknown metric, a parse error, a missing quiet case" /usr/bin/python3 scripts/check-monitoring.py --self-test
check "rules and dashboard parse and name only metrics of the live scrape" /usr/bin/python3 scripts/check-monitoring.py --scrape "$dir/scrape.txt"
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
check "edmmctl stauts exits 64 with: did you mean status?" bash -c \
  '"$bin/edmmctl" stauts 2>&1 | grep -q "did you mean .status.?"; [ ${PIPESTATUS[0]} -eq 64 ]'
check "edmmctl alone prints its manual and exits 64" bash -c '"$bin/edmmctl" 2>&1 | grep -q SUBCOMMANDS; [ ${PIPESTATUS[0]} -eq 64 ]'
check "errors under --json are JSON on standard error" bash -c \
  '"$bin/edmmctl" --socket "$dir/absent.sock" status --json 2>&1 >/dev/null | python3 -c "
import json, sys
assert json.load(sys.stdin)[\"error\"][\"exit_status\"] == 69"'
check "edmmctl metrics --json and top --json are JSON" bash -c \
  'ctl metrics --json | python3 -c "import json, sys; assert json.load(sys.stdin)[\"families\"]" &&
   ctl top --json --iterations 2 --interval 0.2 | python3 -c "import json, sys; assert len([json.loads(l) for l in sys.stdin]) == 2"'
check "edmmd --bogus exits 64, as edmmd --help says" bash -c \
  '"$bin/edmmd" --help | grep -q "64 bad command line"; "$bin/edmmd" --bogus 2>/dev/null; [ $? -eq 64 ]'
check "edmm-sim finds the socket in \$EDMMD_SOCKET" bash -c \
  'EDMMD_SOCKET="$socket" "$bin/edmm-sim" run --enclaves 1 --duration 1 >/dev/null'
check "edmmctl --help documents the exit statuses" bash -c '"$bin/edmmctl" --help | grep -q "EXIT STATUS"'

kill -TERM "$fleet_pid"; wait "$fleet_pid"; fleet_status=$?; fleet_pid=""
check "the fleet's ledgers matched the EPCM (edmm-sim run exit status)" test "$fleet_status" -eq 0
kill -TERM "$daemon_pid"; wait "$daemon_pid"; daemon_status=$?; daemon_pid=""
check "edmmd drained and exited 0 on SIGTERM" test "$daemon_status" -eq 0

echo
echo "observability: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
