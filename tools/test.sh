#!/usr/bin/env bash
# README command 2: install what is missing, build, run the whole test suite, then the sanitizer build's tests
# (ASan + UBSan; long quick-mode reproductions, labelled "slow", run only in the normal build), then a short
# libFuzzer run of every fuzz target (tests/fuzz_smoke.sh, FUZZ_SECONDS each; prints SKIP without clang;
# docs/security.md), then the MPI build's test when OpenMPI is installed (docs/distributed.md).
# NL_SKIP_SANITIZE=1 / NL_SKIP_FUZZ=1 / NL_SKIP_MPI=1 skip those passes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
export NL_NUM_THREADS="${NL_NUM_THREADS:-2}"
# OpenMP workers must sleep, not spin, between loops: OpenBLAS runs its own pthreads between them
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
(cd build && ctest --output-on-failure -j1)
if [ "${NL_SKIP_SANITIZE:-0}" != 1 ]; then
  NL_BUILD_DIR=build-asan bash tools/build.sh -DNL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j1 -LE slow)
fi
if [ "${NL_SKIP_FUZZ:-0}" != 1 ]; then
  bash tests/fuzz_smoke.sh
fi
# the optional MPI build (docs/distributed.md): when OpenMPI is installed, a second tree build-mpi/ (-DNL_MPI=ON) and its
# MPI test (tests/test_mpi.sh: 2 ranks vs 1 process under mpirun --oversubscribe); prints SKIP otherwise
if [ "${NL_SKIP_MPI:-0}" != 1 ]; then
  if command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1; then
    NL_BUILD_DIR=build-mpi bash tools/build.sh -DNL_MPI=ON
    (cd build-mpi && ctest --output-on-failure -j1 -R '^mpi$')
  else
    echo "SKIP MPI tests: OpenMPI not installed (libopenmpi-dev openmpi-bin; tools/setup.sh installs them)"
  fi
fi
