#!/usr/bin/env bash
# The C library stage (scripts/test-all.sh c-library): builds c/ (libedmm, libedmm-enclave,
# libedmm_sim, the example and every test, plain and under AddressSanitizer+UBSan) and runs:
#   codec vectors     c/tests/test_codec against Tests/Vectors/protocol.vectors
#   enclave library   c/tests/test_enclave (scripted ENCLU table, simulated CPU, fork)
#   simulator device  c/tests/test_sim (the simulated /dev/sgx_enclave, CPUID, TCS entry and
#                     exit, ENCLU with registers, on-demand native mappings)
#   misbehaving daemon c/tests/test_client (malformed, truncated, late, missing replies)
#   live              c/tests/test_live against a fresh edmmd --simulate (c/tests/live.toml)
#   c-host            examples/c-host against a fresh edmmd --simulate
#   install           make install DESTDIR=... PREFIX=/usr, a program built with
#                     pkg-config --cflags --libs edmm from the staged tree, make uninstall
# Prints one line per check and "N passed, N failed". EDMMD overrides the daemon binary
# (default .build/debug/edmmd, which the build stage makes).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
edmmd=${EDMMD:-$root/.build/debug/edmmd}
work=$(mktemp -d /tmp/edmm-c-XXXXXX)
chmod 755 "$work" # test_live opens the socket as uid 65534 too
daemon_pid=""
passed=0
failed=0

cleanup() {
    stop_daemon
    rm -rf "$work"
}
trap cleanup EXIT

stop_daemon() {
    if [[ -n $daemon_pid ]]; then
        kill "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
        daemon_pid=""
    fi
}

# start_daemon NAME [edmmd flags...]: a fresh edmmd --simulate on $work/NAME.sock.
start_daemon() {
    local name=$1
    shift
    stop_daemon
    rm -f "$work/$name.sock"
    "$edmmd" --simulate --socket "$work/$name.sock" --metrics "" "$@" >"$work/$name.edmmd.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 100); do
        [[ -S $work/$name.sock ]] && return 0
        sleep 0.1
    done
    echo "edmmd did not start; its log:" >&2
    cat "$work/$name.edmmd.log" >&2
    return 1
}

# check NAME COMMAND...: runs it with a 5-minute bound, counts it, shows the output on failure.
check() {
    local name=$1
    shift
    local bound=(timeout 300)
    declare -F "$1" >/dev/null && bound=() # a function of this script
    if "${bound[@]}" "$@" >"$work/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name: $(grep -E '[0-9]+ passed, [0-9]+ failed|^OK' "$work/out" | tail -1)"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/    /' "$work/out" | tail -40
    fi
}

if [[ ! -x $edmmd ]]; then
    echo "test-c.sh: no edmmd at $edmmd (run swift build first, or set EDMMD)" >&2
    exit 1
fi
echo "building c/ (the simulator library takes a minute the first time)"
if ! make -C c -j2 tests >"$work/build.log" 2>&1; then
    grep -v mktemp "$work/build.log" | tail -40
    echo "0 passed, 1 failed"
    exit 1
fi

vectors=Tests/Vectors/protocol.vectors
check "codec vectors" c/build/test_codec "$vectors"
check "codec vectors (asan)" c/build/asan/test_codec "$vectors"
check "enclave library" c/build/test_enclave
check "enclave library (asan)" c/build/asan/test_enclave
check "simulator device" c/build/test_sim
check "simulator device (asan)" c/build/asan/test_sim
check "misbehaving daemon" c/build/test_client
check "misbehaving daemon (asan)" c/build/asan/test_client
# test_live ends by stopping edmmd (SIGTERM: the shutdown notice), so each run gets its own.
start_daemon live --config c/tests/live.toml && check "live edmmd" c/build/test_live "$work/live.sock"
start_daemon live --config c/tests/live.toml && check "live edmmd (asan)" c/build/asan/test_live "$work/live.sock"
start_daemon host && check "examples/c-host" c/build/c-host "$work/host.sock"

# One synchronous call = one sendmsg + one recvmsg: count the system calls of 100 calls.
fast_path() {
    strace -f -o "$work/strace" -e trace=sendmsg,recvmsg,poll,ppoll,futex,clone,clone3,write -e signal=none \
        c/build/test_fastpath "$1" 2>/dev/null || return 1
    local calls
    calls=$(sed -n '/write(2, "BEGIN/,/write(2, "END/p' "$work/strace" | grep -v 'write(2' | awk '{sub(/\(.*/, "", $2); print $2}' |
        sort | uniq -c | awk '{printf " %s %s;", $1, $2}')
    echo "system calls of 100 edmm_status calls:$calls"
    [[ $calls == " 100 recvmsg; 100 sendmsg;" ]] && echo "OK: one sendmsg + one recvmsg per call"
}
if command -v strace >/dev/null; then
    start_daemon fast && check "fast path (strace)" fast_path "$work/fast.sock"
fi

install_check() {
    local stage=$work/stage
    make install DESTDIR="$stage" PREFIX=/usr >"$work/install.log" 2>&1 || { cat "$work/install.log"; return 1; }
    for f in usr/include/edmm/edmm.h usr/include/edmm/edmm_enclave.h usr/include/edmm/edmm_sim.h usr/lib/libedmm.so.0 \
        usr/lib/libedmm.so usr/lib/libedmm.a usr/lib/libedmm_enclave.a usr/lib/libedmm_sim.so.0 usr/lib/libedmm-interpose.so \
        usr/include/edmm/edmm_interpose.h usr/lib/pkgconfig/edmm.pc \
        usr/lib/pkgconfig/edmm-enclave.pc usr/lib/pkgconfig/edmm-sim.pc; do
        [[ -e $stage/$f ]] || { echo "not staged: $f"; return 1; }
    done
    [[ $(readlink "$stage/usr/lib/libedmm.so.0") == libedmm.so.0.1.0 ]] || { echo "libedmm.so.0 is not the versioned library"; return 1; }
    local flags
    flags=$(PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_LIBDIR=$stage/usr/lib/pkgconfig pkg-config --cflags --libs edmm) || return 1
    echo "pkg-config --cflags --libs edmm: $flags"
    # shellcheck disable=SC2086
    ${CC:-cc} -std=c11 -Wall -Wextra -Werror -o "$work/install_check" c/tests/install_check.c $flags || return 1
    start_daemon install || return 1
    LD_LIBRARY_PATH=$stage/usr/lib "$work/install_check" "$work/install.sock" || return 1
    make uninstall DESTDIR="$stage" PREFIX=/usr >>"$work/install.log" 2>&1 || return 1
    local left
    left=$(find "$stage" -type f -o -type l)
    [[ -z $left ]] || { echo "uninstall left: $left"; return 1; }
    echo "OK: staged, built with pkg-config, ran, uninstalled"
}
check "install (make install DESTDIR=... PREFIX=/usr)" install_check
stop_daemon

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
