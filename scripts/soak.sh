#!/usr/bin/env bash
# Starts an edmmd of its own on a simulated EPC and runs `edmm-sim soak` against it, then stops it
# with SIGTERM (it must exit 0). Everything lives in a temporary directory, removed on any exit.
#
#   scripts/soak.sh [edmm-sim soak options...]      e.g. --duration 1800 --record soak.csv
#
#   SOAK_BIN   folder with edmmd and edmm-sim (default .build/debug)
#   SOAK_EPC   simulated EPC size (default 64MiB: the default 64 clients overcommit it)
#   SOAK_NICE  niceness of the whole run (default 10)
#   SOAK_FAULTS faults the simulated EPC injects, as KIND=RATE,...[,seed=N] with KIND one of
#              load-ebusy, unmark-reclaimable, eaug-sigbus, epc-page-conflict or all, RATE 0...1
#              (docs/simulator.md, "Fault injection"); written into edmmd's [simulator] section
# Exit status: that of the soak, or 1 if edmmd did not start or did not stop cleanly.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${SOAK_BIN:-$root/.build/debug}
export SWIFT_BACKTRACE=enable=no
dir=$(mktemp -d /tmp/edmm-soak-XXXXXX)
daemon=""
cleanup() {
    [[ -n $daemon ]] && kill -KILL "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "[simulator]"
    IFS=, read -ra faults <<<"${SOAK_FAULTS:-}"
    for item in "${faults[@]}"; do
        name=${item%%=*}
        value=${item#*=}
        if [[ $name == all ]]; then
            for kind in load_ebusy unmark_reclaimable eaug_sigbus epc_page_conflict; do echo "fault_$kind = $value"; done
        else
            echo "fault_${name//-/_} = $value"
        fi
    done
} >"$dir/edmmd.toml"
nice -n "${SOAK_NICE:-10}" "$bin/edmmd" --simulate --socket "$dir/edmmd.sock" --config "$dir/edmmd.toml" --metrics "" \
    --epc-size "${SOAK_EPC:-64MiB}" --log-level notice 2>"$dir/edmmd.log" &
daemon=$!
for _ in $(seq 200); do
    [[ -S $dir/edmmd.sock ]] && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.05
done
if [[ ! -S $dir/edmmd.sock ]]; then
    echo "soak.sh: edmmd did not start:" >&2
    cat "$dir/edmmd.log" >&2
    exit 1
fi

status=0
nice -n "${SOAK_NICE:-10}" "$bin/edmm-sim" soak --socket "$dir/edmmd.sock" "$@" || status=$?

kill -TERM "$daemon"
wait "$daemon"
daemon_status=$?
daemon=""
if [[ $daemon_status -ne 0 ]]; then
    echo "soak.sh: edmmd exited with status $daemon_status after SIGTERM; its log:" >&2
    tail -50 "$dir/edmmd.log" >&2
    status=1
elif [[ $status -ne 0 ]]; then
    echo "soak.sh: the last lines of edmmd's log:" >&2
    tail -20 "$dir/edmmd.log" >&2
fi
exit $status
