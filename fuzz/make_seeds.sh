#!/usr/bin/env bash
# Regenerate the seed corpora fuzz/corpus/<target>/ (run once; the files are committed). Builds the seed generator
# fuzz_make_seeds in build-fuzz/ (clang, -DNL_FUZZ=ON) unless NL_FUZZ_BUILD names a build folder that has it.
# The valid seeds are written by the library's own writers (tiny MLP, CNN, LM and PFN checkpoints, a safetensors
# file with every common dtype, IDX raw and gzipped, CSVs); the bad_* seeds are malformed and must be refused.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${NL_FUZZ_BUILD:-build-fuzz}"
if [ ! -x "$B/fuzz/fuzz_make_seeds" ]; then
  CC="${CC:-clang}" cmake -S . -B "$B" -DNL_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$B" --target fuzz_make_seeds -j"$(nproc)"
fi
rm -rf fuzz/corpus
mkdir -p fuzz/corpus
ASAN_OPTIONS=detect_leaks=1 NL_NUM_THREADS=1 "$B/fuzz/fuzz_make_seeds" fuzz/corpus
du -sh fuzz/corpus
find fuzz/corpus -type f | sort
