#!/usr/bin/env bash
# The whole test suite from a clean checkout: installs what is missing, then
#   1. plain build (gcc, -Werror): every label but the on-request ones (soak, bench-full);
#   2. ASan+UBSan build (clang): unit, stress and fuzz tests;
#   3. TSan build (clang): the tests labelled tsan (the non-RCU concurrency).
# Usage: tests/run-all.sh [plain|asan|tsan]...   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh

jobs=$(nproc)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(plain asan tsan)

# A stage whose tests fail does not stop the later stages: every stage reports,
# and the exit status says whether any failed.
failed=()
for stage in "${stages[@]}"; do
  echo "=== stage: $stage"
  case "$stage" in
  plain)
    cmake -S . -B build -DMA_WERROR=ON >/dev/null
    cmake --build build -j"$jobs"
    (cd build && ctest --output-on-failure -LE '^(soak|fuzz|tsan|bench-full)$' -j1) || failed+=(plain)
    ;;
  asan)
    CC=clang cmake -S . -B build-asan -DMA_ASAN=ON -DMA_FUZZ=ON -DMA_WERROR=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       ctest --output-on-failure -L '^(unit|stress|fuzz)$' -j1) || failed+=(asan)
    ;;
  tsan)
    CC=clang cmake -S . -B build-tsan -DMA_TSAN=ON -DMA_WERROR=ON >/dev/null
    cmake --build build-tsan -j"$jobs"
    (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/../tests/tsan.supp" \
       ctest --output-on-failure -L '^tsan$' -j1) || failed+=(tsan)
    ;;
  *)
    echo "unknown stage: $stage" >&2
    exit 2
    ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "=== failed stages: ${failed[*]}" >&2
  exit 1
fi
echo "=== all stages passed: ${stages[*]}"
