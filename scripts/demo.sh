#!/usr/bin/env bash
# `make demo`: edmmd on a small simulated EPC, a fleet of eight simulated enclave hosts replaying
# mixed workloads against it, and one live summary line. Ctrl-C stops everything: the fleet
# checks edmmd's ledger against the simulated EPCM and prints its summary, edmmd drains and
# exits, and the temporary directory (socket, log) is removed.
#
# Environment: EDMM_BIN (default .build/release), DEMO_ENCLAVES (8), DEMO_EPC (256MiB),
# DEMO_DURATION (40 s; 0: until Ctrl-C), DEMO_METRICS_PORT (first free port from 9464).
#
# Why 40 s and 256 MiB: the mixed fleet adds and removes ~60,000 pages a second, and like Linux
# (sgx_encl_grow/sgx_encl_shrink: REMOVE_PAGES lowers page_cnt but keeps the VA page) the
# simulated driver adds a VA page each time an enclave's page count climbs back over a multiple
# of 512, freeing them only when the enclave goes. The VA pages pile up at ~3 MiB/s; a 32 MiB EPC
# is full of them within 10 s and every enclave stalls (docs/simulator.md).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${EDMM_BIN:-.build/release}
enclaves=${DEMO_ENCLAVES:-8}
epc=${DEMO_EPC:-256MiB}
duration=${DEMO_DURATION:-40}
for program in edmmd edmm-sim edmmctl; do
  if [ ! -x "$bin/$program" ]; then
    echo "demo: $bin/$program is missing; run 'make demo', which builds the release first" >&2
    exit 1
  fi
done

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${DEMO_METRICS_PORT:-9464}
while port_in_use "$port"; do port=$((port + 1)); done

dir=$(mktemp -d /tmp/edmm-demo-XXXXXX)
socket=$dir/edmmd.sock
daemon_pid=""
fleet_status=0

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    wait "$daemon_pid"
    echo "edmmd stopped (exit status $?)"
  fi
  rm -rf "$dir"
  exit "$fleet_status"
}
trap cleanup EXIT
# Ctrl-C reaches edmm-sim run (in this process group), which stops the fleet and reports;
# the script then goes on to stop edmmd.
trap ':' INT TERM

# A session of its own, so that Ctrl-C in this terminal does not stop edmmd before the fleet
# has compared its ledger with the EPCM.
setsid "$bin/edmmd" --simulate --socket "$socket" --epc-size "$epc" --metrics "127.0.0.1:$port" \
  >"$dir/edmmd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [ -S "$socket" ] && break
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "demo: edmmd did not start:" >&2
    cat "$dir/edmmd.log" >&2
    daemon_pid=""
    fleet_status=1
    exit
  fi
  sleep 0.1
done

cat <<INTRO
edmmd is running on a simulated ${epc} EPC (pid $daemon_pid, log $dir/edmmd.log).
$enclaves simulated enclave hosts replay server, startup, gc and fragmented workloads against it.

Look next, from another terminal:
  $bin/edmmctl --socket $socket status
INTRO
cat <<MORE
  $bin/edmmctl --socket $socket enclaves
  $bin/edmmctl --socket $socket top            (a live table; q quits)
  $bin/edmmctl --socket $socket show server-0
  curl -s http://127.0.0.1:$port/metrics
MORE
echo
echo "Ctrl-C stops the demo."
echo

"$bin/edmm-sim" run --socket "$socket" --enclaves "$enclaves" --workload mixed --duration "$duration" --live
fleet_status=$?
