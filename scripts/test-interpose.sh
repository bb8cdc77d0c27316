#!/usr/bin/env bash
# The interposer stage (scripts/test-all.sh interpose): libedmm-interpose.so preloaded into
# c/tests/test_interpose, an enclave host written against the kernel's uapi that drives the
# device as Intel's libsgx_enclave_common does, on the simulated test device
# (EDMM_INTERPOSE_DEVICE=simulated). Every scenario runs three ways and the transcripts (what
# every call returned: errno, count, result, and the EPCM afterwards) must be the same, line
# by line:
#   direct     the simulated driver in the test process, no interposer, no edmmd
#   no edmmd   the interposer with nobody at EDMMD_SOCKET: its own test device
#   edmmd      the interposer through a fresh edmmd --simulate, which must serve every SGX2
#              ioctl itself (no refusal, no fallback) and show the enclave with its counters
# Then: edmmctl's view of an interposed enclave, edmmd stopped and restarted (and killed and
# restarted) in the middle of a run, EDMM_INTERPOSE=off, programs that never touch SGX, and
# the same scenarios under AddressSanitizer+UBSan. Prints one line per check and
# "N passed, N failed". EDMMD and EDMMCTL override the binaries (default .build/debug).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
edmmd=${EDMMD:-$root/.build/debug/edmmd}
edmmctl=${EDMMCTL:-$root/.build/debug/edmmctl}
build=$root/c/build
test_bin=$build/test_interpose
lib=$build/libedmm-interpose.so
work=$(mktemp -d /tmp/edmm-interpose-XXXXXX)
daemon_pid=""
passed=0
failed=0
export SWIFT_BACKTRACE=enable=no

cleanup() {
    stop_daemon
    rm -rf "$work"
}
trap cleanup EXIT

stop_daemon() {
    local signal=${1:-TERM}
    if [[ -n $daemon_pid ]]; then
        kill -"$signal" "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
        daemon_pid=""
    fi
}

# start_daemon NAME: a fresh edmmd --simulate on $work/NAME.sock (a socket file left by a
# killed one is replaced).
start_daemon() {
    local name=$1
    rm -f "$work/$name.sock"
    "$edmmd" --simulate --socket "$work/$name.sock" --metrics "" >>"$work/$name.edmmd.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 100); do
        [[ -S $work/$name.sock ]] && return 0
        sleep 0.1
    done
    echo "edmmd did not start; its log:" >&2
    cat "$work/$name.edmmd.log" >&2
    return 1
}

# check NAME COMMAND...: runs it, counts it, shows its output on failure.
check() {
    local name=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name: $(tail -1 "$work/out")"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/    /' "$work/out" | tail -40
    fi
}

# interposed [ENV=VALUE...] -- ARGS: the test program with the interposer preloaded.
interposed() {
    local envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    env LD_PRELOAD="$lib" EDMM_INTERPOSE_DEVICE=simulated "${envs[@]}" timeout 120 "$test_bin" libc "$@"
}

# same SCENARIO A B: two transcripts agree line by line (the last line is the test's own
# summary, which counts checks that only one of the runs makes).
same() {
    if diff <(sed '$d' "$2") <(sed '$d' "$3") >"$work/diff"; then
        echo "$(($(wc -l <"$2") - 1)) calls returned the same"
    else
        echo "the transcripts of $1 differ:"
        head -30 "$work/diff"
        return 1
    fi
}

# Runs SCENARIO three ways and compares them.
three_ways() {
    local s=$1
    timeout 120 "$test_bin" direct "$s" >"$work/$s.direct" 2>"$work/$s.direct.err" ||
        { cat "$work/$s.direct" "$work/$s.direct.err"; return 1; }
    interposed EDMMD_SOCKET="$work/nobody.sock" -- "$s" >"$work/$s.alone" 2>"$work/$s.alone.err" ||
        { cat "$work/$s.alone" "$work/$s.alone.err"; return 1; }
    local notes
    notes=$(grep -c 'is not reachable' "$work/$s.alone.err")
    [[ $notes -eq 1 ]] || { echo "no edmmd: $notes notes, expected exactly one"; cat "$work/$s.alone.err"; return 1; }
    start_daemon "$s" || return 1
    interposed EDMMD_SOCKET="$work/$s.sock" INTERPOSE_TEST_DAEMON="$work/$s.sock" -- "$s" >"$work/$s.edmmd" 2>"$work/$s.edmmd.err"
    local status=$?
    stop_daemon
    if [[ $status -ne 0 ]] || grep -q 'libedmm-interpose' "$work/$s.edmmd.err"; then
        echo "through edmmd (exit $status):"
        cat "$work/$s.edmmd" "$work/$s.edmmd.err"
        return 1
    fi
    same "$s (direct, no edmmd)" "$work/$s.direct" "$work/$s.alone" >/dev/null || { same x "$work/$s.direct" "$work/$s.alone"; return 1; }
    same "$s (direct, edmmd)" "$work/$s.direct" "$work/$s.edmmd" || return 1
}

# Structs the kernel cannot read, or read but not write back (after doing the work).
faults() {
    start_daemon faults || return 1
    interposed EDMMD_SOCKET="$work/faults.sock" -- faults
    local rc=$?
    stop_daemon
    return $rc
}

# wait_hold FILE NAME: until the test says HOLD NAME on its stderr.
wait_hold() {
    for _ in $(seq 300); do
        grep -q "^HOLD $2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the test never reached its hold point $2"
    return 1
}

# The enclave as edmmctl shows it while the test holds at the end of its flows.
edmmctl_view() {
    start_daemon view || return 1
    mkfifo "$work/go"
    interposed EDMMD_SOCKET="$work/view.sock" INTERPOSE_TEST_HOLD=end -- flows <"$work/go" >"$work/view.out" 2>"$work/view.err" &
    local test_pid=$!
    exec 7>"$work/go"
    local ok=0
    if wait_hold "$work/view.err" end; then
        "$edmmctl" --socket "$work/view.sock" enclaves >"$work/enclaves.txt" &&
            "$edmmctl" --socket "$work/view.sock" --json enclaves >"$work/enclaves.json" || ok=1
        cat "$work/enclaves.txt"
        python3 - "$work/enclaves.json" "$edmmctl" "$work/view.sock" <<'EOF' || ok=1
import json, subprocess, sys
rows = [e for e in json.load(open(sys.argv[1]))["enclaves"] if e["label"].startswith("test_interpose-")]
assert len(rows) == 1, f"expected the interposed enclave among {json.load(open(sys.argv[1]))}"
e = rows[0]
assert e["requests"] >= 10 and e["ioctls"] >= 10, f"requests {e['requests']}, ioctls {e['ioctls']}"
# The loader's TCS page (ADD_PAGES), adopted as the EPCM shows it; the flows' own TCS is trimmed.
assert e["tcs_pages"] == 1 and e["committed_pages"] > 0, e
show = json.loads(subprocess.run([sys.argv[2], "--socket", sys.argv[3], "--json", "show", str(e["id"])],
                                 check=True, capture_output=True, text=True).stdout)
counters = show["counters"]
for name in ("requests_trim_ok", "requests_trim_accepted_ok", "requests_restrict_ok", "requests_make_tcs_ok"):
    assert counters.get(name, 0) >= 1, f"{name}: {counters.get(name)}"
print(f"edmmctl: enclave {e['id']} {e['label']}: {e['requests']} requests, {e['ioctls']} ioctls, "
      f"trim {counters['requests_trim_ok']}, restrict {counters['requests_restrict_ok']}")
EOF
    else
        ok=1
    fi
    echo >&7
    exec 7>&-
    wait "$test_pid" || { cat "$work/view.out" "$work/view.err"; ok=1; }
    stop_daemon
    rm -f "$work/go"
    return $ok
}

# edmmd stopped (SIGNAL TERM: the shutdown notice; KILL: a crash) and started again while
# the test holds between two halves of its work; the second half goes through the new edmmd
# (which takes over the test's simulated EPC), and every answer is the direct run's.
restart() {
    local signal=$1
    start_daemon restart || return 1
    mkfifo "$work/go"
    interposed EDMMD_SOCKET="$work/restart.sock" INTERPOSE_TEST_DAEMON="$work/restart.sock" INTERPOSE_TEST_HOLD=restart \
        -- restart <"$work/go" >"$work/restart.$signal" 2>"$work/restart.$signal.err" &
    local test_pid=$!
    exec 7>"$work/go"
    local ok=0
    if wait_hold "$work/restart.$signal.err" restart; then
        stop_daemon "$signal"
        start_daemon restart || ok=1
    else
        ok=1
    fi
    echo >&7
    exec 7>&-
    wait "$test_pid" || ok=1
    stop_daemon
    rm -f "$work/go"
    [[ $ok -eq 0 ]] || { cat "$work/restart.$signal" "$work/restart.$signal.err"; return 1; }
    [[ -f $work/restart.direct ]] || timeout 120 "$test_bin" direct restart >"$work/restart.direct" 2>&1
    same "restart after SIG$signal" "$work/restart.direct" "$work/restart.$signal"
}

# EDMM_INTERPOSE=off: the library does nothing, so there is no /dev/sgx_enclave here.
switched_off() {
    ! env LD_PRELOAD="$lib" EDMM_INTERPOSE=off EDMM_INTERPOSE_DEVICE=simulated EDMMD_SOCKET="$work/nobody.sock" \
        "$test_bin" libc probe >"$work/off.out" 2>"$work/off.err" || { echo "the device opened"; return 1; }
    grep -q 'No such file or directory' "$work/off.err" || { cat "$work/off.out" "$work/off.err"; return 1; }
    ! grep -q libedmm-interpose "$work/off.err" || { echo "the library spoke"; cat "$work/off.err"; return 1; }
    echo "open(/dev/sgx_enclave) failed with ENOENT, the library said nothing"
}

# Programs that never touch SGX run as without the library.
untouched() {
    local out
    for cmd in "ls -la $root/c" "sh -c 'exec 3</dev/null 4>&3; cat /etc/hostname >&4; echo done'" \
        "python3 -c 'import os,mmap; f=os.open(\"/dev/zero\", os.O_RDONLY); m=mmap.mmap(f, 4096, prot=mmap.PROT_READ); os.close(os.dup(f)); print(len(m))'" \
        "$edmmctl --help"; do
        out=$(eval "$cmd" 2>&1)
        [[ $(env LD_PRELOAD="$lib" bash -c "$cmd" 2>&1) == "$out" ]] || { echo "differs under the interposer: $cmd"; return 1; }
    done
    echo "4 programs ran the same with and without the library"
}

# The ASan+UBSan interposer preloaded after libasan into the ASan test program.
asan_runs() {
    local asan_lib
    asan_lib=$(${CC:-cc} -print-file-name=libasan.so)
    local s rc=0
    start_daemon asan || return 1
    for s in probe flows errors threads fork descriptors faults; do
        env LD_PRELOAD="$asan_lib $build/asan/libedmm-interpose.so" EDMM_INTERPOSE_DEVICE=simulated EDMMD_SOCKET="$work/asan.sock" \
            INTERPOSE_TEST_DAEMON="$work/asan.sock" timeout 300 "$build/asan/test_interpose" libc "$s" >"$work/asan.$s" 2>&1 ||
            { echo "$s under ASan:"; tail -30 "$work/asan.$s"; rc=1; }
    done
    stop_daemon
    [[ $rc -eq 0 ]] && echo "probe flows errors threads fork descriptors faults: clean"
    return $rc
}

# The cost of an ioctl through edmmd against the simulated driver called directly.
bench() {
    timeout 300 "$test_bin" direct bench >"$work/bench.direct" 2>&1 || { cat "$work/bench.direct"; return 1; }
    start_daemon bench || return 1
    interposed EDMMD_SOCKET="$work/bench.sock" -- bench >"$work/bench.edmmd" 2>&1 || { stop_daemon; cat "$work/bench.edmmd"; return 1; }
    stop_daemon
    # "bench MODE: N rounds, microseconds per ioctl: RESTRICT a MODIFY_TYPES b REMOVE_PAGES c"
    awk '/^bench/ { for (i = 1; i <= NF; i++) if ($i ~ /^(RESTRICT|MODIFY_TYPES|REMOVE_PAGES)$/) us[FILENAME, $i] = $(i + 1) }
        END { d = ARGV[1]; e = ARGV[2]; line = "microseconds per ioctl, direct / through edmmd:"
              n = split("RESTRICT MODIFY_TYPES REMOVE_PAGES", k, " ")
              for (i = 1; i <= n; i++) line = line sprintf(" %s %s / %s (x%.1f)", k[i], us[d, k[i]], us[e, k[i]], us[e, k[i]] / us[d, k[i]])
              print line }' "$work/bench.direct" "$work/bench.edmmd"
}

for bin in "$edmmd" "$edmmctl"; do
    [[ -x $bin ]] || { echo "test-interpose.sh: no $bin (run swift build first, or set EDMMD/EDMMCTL)" >&2; exit 1; }
done
echo "building c/ (libedmm-interpose, the test program, their ASan builds)"
if ! make -C c -j2 interpose-tests >"$work/build.log" 2>&1; then
    grep -v mktemp "$work/build.log" | tail -40
    echo "0 passed, 1 failed"
    exit 1
fi

for s in probe flows errors threads fork descriptors; do
    check "$s: direct, no edmmd, edmmd" three_ways "$s"
done
check "read-only and unmapped structs through edmmd" faults
check "edmmctl enclaves and show" edmmctl_view
check "edmmd stopped and restarted mid-run" restart TERM
check "edmmd killed and restarted mid-run" restart KILL
check "EDMM_INTERPOSE=off" switched_off
check "programs without SGX" untouched
check "AddressSanitizer and UBSan" asan_runs
check "ioctl cost, direct and through edmmd" bench
stop_daemon

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
