#!/usr/bin/env bash
# fuzz/run.sh MINUTES [extra libFuzzer flags]: runs the archive reader fuzzer
# (built by fuzz/build.sh, rebuilt here when missing) for MINUTES on one
# core, starting from the committed seed corpus fuzz/corpus/. New inputs go
# to fuzz/out/corpus/ (not committed), crashes, leaks, timeouts and OOMs to
# fuzz/crashes/. Reproduce one with:
#   fuzz/out/archive_reader_fuzz fuzz/crashes/crash-<sha1>
set -euo pipefail
cd "$(dirname "$0")"
MINUTES=${1:?usage: fuzz/run.sh MINUTES [libFuzzer flags]}
shift
BIN=out/archive_reader_fuzz
if [ "${FUZZ_SANITIZER:-address}" = thread ]; then
  BIN=out/tsan/archive_reader_fuzz
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:suppressions=$PWD/tsan.supp}
fi
[ -x "$BIN" ] || ./build.sh
mkdir -p out/corpus crashes
exec "$BIN" out/corpus corpus \
  -max_total_time=$((MINUTES * 60)) \
  -artifact_prefix=crashes/ \
  -max_len=131072 \
  -timeout=20 \
  -rss_limit_mb=4096 \
  -print_final_stats=1 \
  "$@"
