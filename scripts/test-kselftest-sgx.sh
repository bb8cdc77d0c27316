#!/usr/bin/env bash
# The Linux kernel's own SGX selftests (tools/testing/selftests/sgx: test_sgx and its test
# enclave test_encl.elf), built unmodified and run against the simulated EPC. The stage
# kselftest-sgx of scripts/test-all.sh.
#
# Licence: the selftests are GPL-2.0 test code of the Linux kernel. This script takes them at
# test time from Debian's linux-source package (/usr/src/linux-source-X.Y.tar.xz), extracts only
# tools/testing/selftests/sgx, tools/testing/selftests/kselftest*.h and the SGX headers under
# arch/x86/include into .build-kselftest/ (gitignored), and builds them there for testing. Not
# one of their lines is edited, committed to this repository or distributed; what makes them
# run here is our own shim (c/kselftest: the device, the vDSO, CPUID and ENCLU emulation), added
# with compile and link flags only.
#
# Usage: scripts/test-kselftest-sgx.sh [--mode direct|edmmd] [--epc-pages N] [--kernel X.Y]
#                                       [--keep] [-- test_sgx options, e.g. -t augment]
#   --mode direct   (default) the shim drives the simulated driver in the test process.
#   --mode edmmd    open, ioctl and close of the device go to libedmm-interpose.so (c/build,
#                   or $EDMM_INTERPOSE_LIB), whose test device creates the enclave in the EPC
#                   of a live edmmd --simulate (an EPC of --epc-pages) and sends the SGX2 ioctls
#                   through it, registered with implicit-commit and kernel-errors (docs/interpose.md).
#   --epc-pages N   the simulated EPC (default 32768 pages, 128 MiB): the oversubscription
#                   tests build an enclave whose heap is the whole EPC, and one of them
#                   EACCEPTs it page by page (about 6 s at this size).
#   --kernel X.Y    the linux-source version (default: 6.12 if installed, else 6.1).
#   --keep          keep the run's log folder.
# Prints the kselftest TAP, then "N passed, N failed" (a skipped test counts as failed: each
# skip is something the simulator does not provide). Then the same tests run again with the
# shim under AddressSanitizer and UndefinedBehaviorSanitizer (a 4096-page EPC; in the edmmd mode
# the daemon's), whose TAP is shown only when it fails. In the edmmd mode the run also fails if
# the interposer left any SGX2 ioctl to the device or edmmd's STATUS shows a kind it did not serve.
# Exit status 0 only if everything passed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=direct
epc_pages=32768
kernel=""
keep=0
test_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --mode) mode=${2:?--mode needs direct or edmmd}; shift 2 ;;
    --epc-pages) epc_pages=${2:?--epc-pages needs a number}; shift 2 ;;
    --kernel) kernel=${2:?--kernel needs a version such as 6.12}; shift 2 ;;
    --keep) keep=1; shift ;;
    --) shift; test_args=("$@"); break ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-kselftest-sgx.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $mode == direct || $mode == edmmd ]] || { echo "test-kselftest-sgx.sh: --mode is direct or edmmd" >&2; exit 2; }
[[ $epc_pages =~ ^[1-9][0-9]*$ ]] || { echo "test-kselftest-sgx.sh: --epc-pages is a page count" >&2; exit 2; }

# The edmmd mode: the interposer this repository builds, unless one is named.
interposer=${EDMM_INTERPOSE_LIB:-$root/c/build/libedmm-interpose.so}

summary() {
    echo "$1 passed, $2 failed ($mode)"
}

# ---- The kernel tree ----

if [[ -z $kernel ]]; then
    for v in 6.12 6.1; do
        [[ -f /usr/src/linux-source-$v.tar.xz ]] && { kernel=$v; break; }
    done
fi
if [[ -z $kernel || ! -f /usr/src/linux-source-$kernel.tar.xz ]]; then
    echo "installing the kernel source (scripts/install-deps.sh kselftest)"
    scripts/install-deps.sh kselftest || { summary 0 1; exit 1; }
    for v in ${kernel:-6.12 6.1}; do
        [[ -f /usr/src/linux-source-$v.tar.xz ]] && { kernel=$v; break; }
    done
fi
tarball=/usr/src/linux-source-$kernel.tar.xz
[[ -f $tarball ]] || { echo "no $tarball" >&2; summary 0 1; exit 1; }
package_version=$(dpkg-query -W -f='${Version}' "linux-source-$kernel" 2>/dev/null || echo unknown)

build=$root/.build-kselftest
tree=$build/linux-source-$kernel
stamp=$tree/.extracted-$package_version
members=(
    "linux-source-$kernel/tools/testing/selftests/sgx"
    "linux-source-$kernel/tools/testing/selftests/kselftest*.h"
    "linux-source-$kernel/arch/x86/include/asm/sgx.h"
    "linux-source-$kernel/arch/x86/include/asm/enclu.h"
    "linux-source-$kernel/arch/x86/include/uapi/asm/sgx.h"
)
if [[ ! -f $stamp ]]; then
    echo "extracting the SGX selftests from $tarball ($package_version; once)"
    start=$SECONDS
    rm -rf "$tree" "$build/extract.tmp"
    mkdir -p "$build/extract.tmp"
    if ! tar -xJf "$tarball" -C "$build/extract.tmp" --wildcards "${members[@]}"; then
        echo "extraction failed" >&2
        summary 0 1
        exit 1
    fi
    mv "$build/extract.tmp/linux-source-$kernel" "$tree"
    rmdir "$build/extract.tmp"
    # What the package holds, to prove before every build that nothing was edited.
    (cd "$tree" && find . -type f ! -name '.extracted-*' -print0 | sort -z | xargs -0 sha256sum) >"$stamp"
    echo "extracted in $((SECONDS - start)) s"
fi
if ! (cd "$tree" && sha256sum --quiet -c "$stamp"); then
    echo "the extracted kernel files differ from $tarball: remove $tree to extract them again" >&2
    summary 0 1
    exit 1
fi

# ---- Build ----

out=$build/out-$kernel
out_san=$build/out-$kernel-san
log=$(mktemp -d /tmp/edmm-kselftest-XXXXXX)
daemon_pid=""
cleanup() {
    if [[ -n $daemon_pid ]]; then
        kill "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    if [[ $keep -eq 1 ]]; then echo "logs kept in $log"; else rm -rf "$log"; fi
}
trap cleanup EXIT

echo "building libedmm_sim and test_sgx (linux-source-$kernel), plain and with the shim under ASan+UBSan"
shim=(make -C c/kselftest KSRC="$tree" KVER="$kernel" SIM="$root/c/build")
c_targets=(sim)
[[ $mode == edmmd && -z ${EDMM_INTERPOSE_LIB:-} ]] && c_targets+=(interpose)
if ! make -C c "${c_targets[@]}" >"$log/build.log" 2>&1 || ! "${shim[@]}" OUT="$out" >>"$log/build.log" 2>&1 ||
    ! "${shim[@]}" OUT="$out_san" SAN=1 >>"$log/build.log" 2>&1; then
    grep -v '^make' "$log/build.log" | tail -40
    summary 0 1
    exit 1
fi

# ---- Run ----

run_env=(EDMM_KSELFTEST_BACKEND="$mode" EDMM_KSELFTEST_VERBOSE=1 SWIFT_BACKTRACE=enable=no)
if [[ $mode == edmmd ]]; then
    # The interposer (issue 13) sends the SGX2 ioctls of the device to edmmd and hands the shim
    # the daemon's simulated EPC (edmm_interpose_machine_fd); see docs/simulator.md.
    edmmd=${EDMMD:-$root/.build/debug/edmmd}
    printf '[simulator]\nepc_size = "%dKiB"\n' $((epc_pages * 4)) >"$log/edmmd.toml"
    "$edmmd" --simulate --config "$log/edmmd.toml" --socket "$log/edmmd.sock" --metrics "" >"$log/edmmd.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 100); do [[ -S $log/edmmd.sock ]] && break; sleep 0.1; done
    [[ -S $log/edmmd.sock ]] || { cat "$log/edmmd.log"; summary 0 1; exit 1; }
    [[ -f $interposer ]] || { echo "no $interposer" >&2; summary 0 1; exit 1; }
    run_env+=(EDMMD_SOCKET="$log/edmmd.sock" LD_PRELOAD="$interposer" EDMM_INTERPOSE_DEVICE=simulated)
fi

# run_tests DIR EPC_PAGES TAP: test_sgx of DIR (it loads test_encl.elf from its working
# directory); sets planned, passed and failed.
run_tests() {
    local start=$SECONDS status
    (cd "$1" && env "${run_env[@]}" EDMM_KSELFTEST_EPC_PAGES="$2" ASAN_OPTIONS=verify_asan_link_order=0 \
        timeout 240 ./test_sgx "${test_args[@]}") >"$3" 2>&1
    status=$?
    planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$3" | head -1)
    passed=$(grep -cE '^ok [0-9]+ ' "$3")
    passed=$((passed - $(grep -cE '^ok [0-9]+ .*# SKIP' "$3")))
    failed=$((${planned:-0} - passed))
    [[ ${planned:-0} -gt 0 && $status -eq 0 ]] || failed=$((failed > 0 ? failed : 1))
    [[ $status -eq 124 ]] && echo "test_sgx timed out" >>"$3"
    echo "# test_sgx ran in $((SECONDS - start)) s, exit status $status" >>"$3"
}

echo "running test_sgx ($mode, $epc_pages EPC pages)"
run_tests "$out" "$epc_pages" "$log/tap"
cat "$log/tap"
total_failed=$failed
main_passed=$passed
main_failed=$failed

echo "running test_sgx again with the shim under ASan+UBSan (4096 EPC pages)"
run_tests "$out_san" 4096 "$log/tap-san"
if [[ $failed -ne 0 ]]; then cat "$log/tap-san"; fi
echo "shim under ASan+UBSan: $passed passed, $failed failed"
total_failed=$((total_failed + failed))

# In the edmmd mode the tests passing is not enough: edmmd must have served every SGX2 ioctl. The
# interposer says on stderr (in the TAP) whenever it left one to the device; edmmd's STATUS
# counts what it served.
if [[ $mode == edmmd ]]; then
    if grep -h '^libedmm-interpose\[' "$log/tap" "$log/tap-san"; then
        echo "edmmd mode: the interposer left SGX2 ioctls to the device (above)"
        main_failed=$((main_failed + 1))
        total_failed=$((total_failed + 1))
    fi
    status_json=$("${EDMMCTL:-$root/.build/debug/edmmctl}" status --json --socket "$log/edmmd.sock" 2>&1)
    served=$(python3 -c '
import json, sys
c = json.loads(sys.argv[1])["counters"]
verbs = ["register", "trim", "trim_accepted", "restrict", "make_tcs"]
print(" ".join("%s=%d/%d" % (v, c.get("requests_%s_ok" % v, 0), c.get("requests_%s_failed" % v, 0)) for v in verbs))
ok = all(c.get("requests_%s_ok" % v, 0) > 0 for v in verbs) and c.get("requests_register_failed", 0) == 0
sys.exit(0 if ok else 1)' "$status_json")
    verdict=$?
    echo "edmmd served (ok/failed): $served"
    if [[ $verdict -ne 0 ]]; then
        echo "edmmd mode: edmmd did not serve every kind of SGX2 ioctl, or refused a registration"
        main_failed=$((main_failed + 1))
        total_failed=$((total_failed + 1))
    fi
fi

summary "$main_passed" "$main_failed"
[[ $total_failed -eq 0 ]]
