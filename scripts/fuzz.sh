#!/usr/bin/env bash
# Builds the libFuzzer targets of FuzzTesting/ (release, -sanitize=fuzzer,address) and runs each
# for a bounded time on a scratch copy of its committed seed corpus.
#
#   scripts/fuzz.sh [target...]      default: every FuzzTesting/Sources/*Fuzz target
#
#   FUZZ_SECONDS   time per target (default 60)
#   FUZZ_MAX_LEN   largest input libFuzzer generates, in bytes (default 8192)
#
# CReplyFuzz is libedmm's decoder of messages from edmmd (c/fuzz/fuzz_reply.c, built by
# `make -C c fuzz` with the Swift toolchain's clang); every other target is a Swift one.
# Target <Name>Fuzz uses Corpus/<name>/ (seeds, required), Regressions/<name>/ (past crashes,
# replayed first), Dictionaries/<name>.dict and Options/<name>.flags (extra libFuzzer flags, one
# per line; both optional). C and C++ dependencies are instrumented too. Runs go to
# FuzzTesting/.build/fuzz-runs/<target>/ (log, grown corpus, crash reproducers); the committed
# corpus is never modified. Exits 1 if any target crashes, 2 on a usage or build error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir="$root/FuzzTesting"
seconds=${FUZZ_SECONDS:-60}
max_len=${FUZZ_MAX_LEN:-8192}
export SWIFT_BACKTRACE=enable=no

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=()
    for dir in "$fuzz_dir"/Sources/*Fuzz; do targets+=("$(basename "$dir")"); done
    targets+=(CReplyFuzz)
fi
c_target() { [[ $1 == CReplyFuzz ]]; }

# ProtocolFuzz -> protocol
data_name() { local name=${1%Fuzz}; echo "${name,,}"; }

for target in "${targets[@]}"; do
    if ! c_target "$target" && [[ ! -d "$fuzz_dir/Sources/$target" || "$target" != *Fuzz ]]; then
        echo "fuzz.sh: no fuzz target $target (expected FuzzTesting/Sources/<Name>Fuzz/)" >&2
        exit 2
    fi
    if ! compgen -G "$fuzz_dir/Corpus/$(data_name "$target")/*" >/dev/null; then
        echo "fuzz.sh: $target has no seed corpus in FuzzTesting/Corpus/$(data_name "$target")/" >&2
        exit 2
    fi
done

cd "$fuzz_dir"
mkdir -p .build
for target in "${targets[@]}"; do
    echo "== building $target"
    build_log=.build/fuzz-build-$target.log
    if c_target "$target"; then
        if ! nice -n 10 make -C "$root/c" fuzz >"$build_log" 2>&1; then
            grep -v "Cannot export local symbol" "$build_log" | tail -40 >&2
            echo "fuzz.sh: building $target failed (full log: FuzzTesting/$build_log)" >&2
            exit 2
        fi
        continue
    fi
    # ld.gold warns "Cannot export local symbol '__asan_...'" for every sanitized binary; harmless.
    if ! nice -n 10 swift build -c release --product "$target" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library \
        -Xcc -fsanitize=fuzzer-no-link,address -Xcxx -fsanitize=fuzzer-no-link,address >"$build_log" 2>&1; then
        grep -v "Cannot export local symbol" "$build_log" | tail -40 >&2
        echo "fuzz.sh: building $target failed (full log: FuzzTesting/$build_log)" >&2
        exit 2
    fi
done
bin_dir=$(swift build -c release --show-bin-path)

summary=()
failed=0
for target in "${targets[@]}"; do
    name=$(data_name "$target")
    run_dir=.build/fuzz-runs/$target
    rm -rf "$run_dir"
    mkdir -p "$run_dir/corpus" "$run_dir/artifacts"
    cp Corpus/"$name"/* "$run_dir/corpus/"

    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len"
        -print_final_stats=1 -artifact_prefix="$run_dir/artifacts/")
    [[ -f Dictionaries/$name.dict ]] && args+=(-dict="Dictionaries/$name.dict")
    [[ -f Options/$name.flags ]] && mapfile -t -O "${#args[@]}" args < <(grep -v '^[[:space:]]*\(#\|$\)' "Options/$name.flags")
    # New inputs go to the first folder only; the regressions are read, never written.
    inputs=("$run_dir/corpus")
    compgen -G "Regressions/$name/*" >/dev/null && inputs+=("Regressions/$name")

    # libFuzzer's -detect_leaks=0 only stops its per-input checks; AddressSanitizer's own leak
    # check still runs at exit, fails the run and writes an empty "crash" input. Turn both off.
    sanitizer_env=()
    [[ " ${args[*]} " == *" -detect_leaks=0 "* ]] && sanitizer_env=(ASAN_OPTIONS=detect_leaks=0)

    echo "== fuzzing $target for ${seconds}s (log: FuzzTesting/$run_dir/log)"
    status=0
    binary=$bin_dir/$target
    c_target "$target" && binary=$root/c/build/fuzz_reply
    env "${sanitizer_env[@]}" nice -n 10 "$binary" "${args[@]}" "${inputs[@]}" >"$run_dir/log" 2>&1 || status=$?

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run_dir/log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$run_dir/log" | tail -1 | cut -d' ' -f2)
    features=$(grep -o 'ft: [0-9]*' "$run_dir/log" | tail -1 | cut -d' ' -f2)
    corpus=$(find "$run_dir/corpus" -type f | wc -l)
    mapfile -t crashes < <(find "$run_dir/artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \))
    summary+=("$target: ${runs:-?} runs in ${seconds}s, coverage ${cov:-?} edges / ${features:-?} features, corpus $corpus inputs, crashes ${#crashes[@]}, exit $status")

    if [[ $status -ne 0 || ${#crashes[@]} -gt 0 ]]; then
        failed=1
        grep -E 'Fatal error|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$run_dir/log" | head -5 >&2 || true
        for crash in "${crashes[@]}"; do
            echo "reproducer: FuzzTesting/$crash" >&2
            echo "  replay:   (cd FuzzTesting && $binary $crash)" >&2
            echo "  keep it:  fix the bug, then cp FuzzTesting/$crash FuzzTesting/Regressions/$name/<what-it-is>.bin" >&2
        done
        [[ ${#crashes[@]} -eq 0 ]] && echo "$target exited with $status and left no reproducer; see FuzzTesting/$run_dir/log" >&2
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $failed
