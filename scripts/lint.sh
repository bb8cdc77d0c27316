#!/usr/bin/env bash
# The lint stage: swift-format's rules (.swift-format: 4 spaces, lines of at most 140 characters)
# over every Swift file, then the structural rules of docs/architecture.md (which module may
# import what, file, function and line sizes: scripts/check-structure.py). The C code under c/
# is not Swift: it builds with -Wall -Wextra -Werror instead.
#   scripts/lint.sh          check
#   scripts/lint.sh --fix    format every Swift file in place first (then check)
set -uo pipefail
cd "$(dirname "$0")/.."
paths=(Package.swift Sources Tests Plugins Benchmarks/Package.swift Benchmarks/Benchmarks FuzzTesting/Package.swift FuzzTesting/Sources)
if [[ ${1:-} == --fix ]]; then
  swift format format --in-place --parallel --recursive "${paths[@]}"
fi
status=0
swift format lint --strict --parallel --recursive "${paths[@]}" || status=1
scripts/check-structure.py || status=1
exit $status
