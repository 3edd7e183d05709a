#!/usr/bin/env bash
# The test command: install what is missing, build (ccache), run every test.
#   1. build/        g++ RelWithDebInfo: unit, integration; benches compile.
#   2. build-asan/   clang with ASan+UBSan: the same tests plus fuzz smokes.
# Set SLUICE_SKIP_ASAN=1 to run only the first configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/sluice-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Relative paths in the cache key, so a fresh clone elsewhere still hits.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

bash .ci/install-deps.sh

start=$(date +%s)
echo "== build (g++, RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  --graphviz=build/graph/sluice.dot >/dev/null
# Every #include stays within the rooms its library links.
/usr/bin/python3 .ci/check_includes.py build/graph/sluice.dot
cmake --build build -j "$JOBS"
echo "== test (g++)"
ctest --test-dir build --output-on-failure -j "$JOBS" --timeout 300

if [[ "${SLUICE_SKIP_ASAN:-0}" != "1" ]]; then
  echo "== build (clang, ASan+UBSan, fuzzers)"
  CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DSLUICE_SANITIZE=ON -DSLUICE_FUZZ=ON -DSLUICE_BENCH=OFF \
    --graphviz=build-asan/graph/sluice.dot >/dev/null
  /usr/bin/python3 .ci/check_includes.py build-asan/graph/sluice.dot
  cmake --build build-asan -j "$JOBS"
  echo "== test (ASan+UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$JOBS" --timeout 300
fi
echo "== all tests passed in $(( $(date +%s) - start ))s"
