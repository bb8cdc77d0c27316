#!/usr/bin/env bash
# What a Prometheus scrape of edmmd costs with many registered enclaves: edmmd (release build)
# on a simulated EPC, ENCLAVES enclaves registered by 8 edmm-sim bench-host processes, then
# SCRAPES scrapes of /metrics plain and SCRAPES gzipped (as Prometheus asks), and SCRAPES
# METRICS over the control socket (edmmctl metrics). Prints the exposition's series and bytes,
# the time per scrape (curl's time_total, median and max) and edmmd's CPU time per scrape (from
# /proc/<edmmd>/stat around each batch), and checks the big scrape with promtool.
#
# Usage: scripts/bench-scrape.sh [ENCLAVES (4096)] [SCRAPES (20)]
#   EDMM_BIN   where edmmd, edmmctl and edmm-sim are (default .build/release; swift build -c release)
#   EDMMD_EXTRA_CONFIG   more configuration, e.g. $'[metrics]\nper_enclave = false'
# Used for docs/benchmarks.md, "A scrape at 4,096 enclaves". Cleans up everything it starts.
set -uo pipefail
cd "$(dirname "$0")/.."
enclaves=${1:-4096}
scrapes=${2:-20}
bin=${EDMM_BIN:-.build/release}
hosts=8
export SWIFT_BACKTRACE=enable=no
for tool in curl promtool python3; do command -v "$tool" >/dev/null || { echo "$tool is missing: scripts/install-deps.sh test"; exit 1; }; done
for p in edmmd edmmctl edmm-sim; do [ -x "$bin/$p" ] || { echo "$bin/$p is missing: swift build -c release"; exit 1; }; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

dir=$(mktemp -d /tmp/edmm-scrape-XXXXXX)
daemon_pid=""
host_pids=()
cleanup() {
  for pid in "${host_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/edmmd.toml" <<EOF
[daemon]
log_level = "warning"
[simulator]
epc_size = "2GiB"
max_enclaves = $((enclaves + 2 * hosts + 64))
[limits]
max_connections = $((enclaves + 2 * hosts + 64))
${EDMMD_EXTRA_CONFIG:-}
EOF
"$bin/edmmd" --simulate --config "$dir/edmmd.toml" --socket "$dir/edmmd.sock" --metrics "127.0.0.1:$port" >"$dir/edmmd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$dir/edmmd.sock" ] && break; sleep 0.1; done
[ -S "$dir/edmmd.sock" ] || { echo "edmmd did not start:"; cat "$dir/edmmd.log"; exit 1; }

# Each host registers one enclave of its own and idle ones, says "ready" and waits (stdin open).
start=$SECONDS
for i in $(seq 0 $((hosts - 1))); do
  idle=$(( (enclaves - hosts) / hosts + (i < (enclaves - hosts) % hosts ? 1 : 0) ))
  mkfifo "$dir/in.$i"
  "$bin/edmm-sim" bench-host --approach edmmd-full --socket "$dir/edmmd.sock" --workload server --seed "$i" --batches 1 \
    --working-set 16 --label "scrape-$i" --idle-enclaves "$idle" --no-check <"$dir/in.$i" >"$dir/out.$i" 2>"$dir/err.$i" &
  host_pids+=($!)
  eval "exec {fd_$i}>\"$dir/in.$i\""
done
for i in $(seq 0 $((hosts - 1))); do
  until grep -q '"ready"' "$dir/out.$i" 2>/dev/null; do
    grep -q '"error"' "$dir/out.$i" 2>/dev/null && { cat "$dir/out.$i" "$dir/err.$i"; exit 1; }
    kill -0 "${host_pids[$i]}" 2>/dev/null || { echo "host $i died:"; cat "$dir/err.$i"; exit 1; }
    sleep 0.5
  done
done
registered=$("$bin/edmmctl" --socket "$dir/edmmd.sock" status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["enclaves"])')
echo "registered $registered enclaves in $((SECONDS - start)) s"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$daemon_pid/stat"; }
ticks_per_second=$(getconf CLK_TCK)
measure() {  # measure NAME COMMAND...: SCRAPES runs; prints size, median and max time, edmmd CPU per run
  local name=$1; shift
  local before after
  before=$(cpu_ticks)
  for _ in $(seq "$scrapes"); do "$@"; done >"$dir/times"
  after=$(cpu_ticks)
  python3 - "$name" "$dir/times" "$((after - before))" "$ticks_per_second" "$scrapes" <<'EOF'
import statistics, sys
name, path, ticks, hz, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [line.split() for line in open(path) if line.strip()]
sizes = [int(float(r[0])) for r in rows]
times = [float(r[1]) * 1000 for r in rows]
print(f"{name:38} {int(statistics.median(sizes)):>10} bytes  median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  edmmd CPU {ticks / hz / n * 1000:6.1f} ms/scrape")
EOF
}
plain() { curl -sS -o /dev/null -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$port/metrics"; }
gzipped() { curl -sS -o /dev/null -H 'Accept-Encoding: gzip' -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$port/metrics"; }
over_socket() {
  local t0 t1
  t0=$(date +%s%N)
  "$bin/edmmctl" --socket "$dir/edmmd.sock" metrics >"$dir/socket.txt"
  t1=$(date +%s%N)
  echo "$(wc -c <"$dir/socket.txt") $(( (t1 - t0) / 1000 ))e-6"
}

curl -sS -o "$dir/scrape.txt" "http://127.0.0.1:$port/metrics"
series=$(grep -vc '^#' "$dir/scrape.txt")
per_enclave=$(grep -c '^edmmd_enclave_' "$dir/scrape.txt")
echo "exposition: $series series, $per_enclave of them per enclave ($((per_enclave / registered)) per enclave), $(grep -c '_bucket{' "$dir/scrape.txt") histogram buckets"
if promtool check metrics <"$dir/scrape.txt" >"$dir/promtool.out" 2>&1; then
  echo "promtool check metrics: ok"
else
  echo "promtool check metrics: FAILED"; head -5 "$dir/promtool.out"
fi
measure "GET /metrics" plain
measure "GET /metrics, Accept-Encoding: gzip" gzipped
measure "edmmctl metrics (control socket)" over_socket
echo "edmmd resident memory: $(awk '/VmRSS/ {print $2, $3}' "/proc/$daemon_pid/status")"
