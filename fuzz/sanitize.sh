#!/usr/bin/env bash
# fuzz/sanitize.sh: the addon built with AddressSanitizer or ThreadSanitizer,
# run under the real node and CLI. A developer tool, not part of `npm test`/CI.
#
#   fuzz/sanitize.sh build asan|tsan          -> fuzz/out/addon-<san>/guts_native.node
#   fuzz/sanitize.sh run asan|tsan CMD...     runs CMD with that addon loaded
#   fuzz/sanitize.sh tests asan|tsan FILE...  npx tap FILE... with that addon
#
# Only the addon's own files (native/*.cc) are compiled with the sanitizer
# (g++ -O1 -g); they are linked against the non-instrumented static
# libraries the normal build already made (build/Release/{rocksdb,zstd,
# snappy}.a), so a build takes ~2 minutes on two cores and needs no
# node-gyp rebuild. node itself is not instrumented: the runtime comes in
# with LD_PRELOAD, and GUTS_NATIVE_ADDON points src/native.ts at the
# sanitized addon. Leak checking is off (node's own allocations would
# drown it). A report makes the process exit with status 66 (ASan) or 67
# (TSan, halt_on_error): tests then fail on the exit code. TSan cannot see
# the synchronization inside the uninstrumented node binary: fuzz/tsan.supp
# silences reports there, so only races with frames in native/ remain.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: fuzz/sanitize.sh build|run|tests asan|tsan [...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
ACTION=$1 SAN=$2
shift 2
case $SAN in
  asan) FLAG=address RT=libasan.so ;;
  tsan) FLAG=thread RT=libtsan.so ;;
  *) usage ;;
esac
OUT=$ROOT/fuzz/out/addon-$SAN
ADDON=$OUT/guts_native.node

build() {
  local napi node_inc xxh rocks zstd rel
  napi=$(cd "$ROOT" && node -p "require('node-addon-api').include_dir")
  node_inc=$(dirname "$(dirname "$(command -v node)")")/include/node
  [ -d "$node_inc" ] || node_inc=/usr/include/node
  xxh=$ROOT/node_modules/xxhash-addon/xxHash
  rocks=$ROOT/node_modules/rocksdb/deps/rocksdb/rocksdb/include
  zstd=$ROOT/node_modules/zstd-napi/deps/zstd/lib
  rel=$ROOT/build/Release
  for f in "$rel/rocksdb.a" "$rel/zstd.a" "$rel/snappy.a"; do
    [ -f "$f" ] || { echo "fuzz/sanitize.sh: $f missing: build the addon first (npm ci)" >&2; exit 2; }
  done
  for d in "$napi" "$node_inc" "$xxh" "$rocks" "$zstd"; do
    [ -d "$d" ] || { echo "fuzz/sanitize.sh: $d not found (npm ci first)" >&2; exit 2; }
  done
  mkdir -p "$OUT"
  # The defines and flags of binding.gyp / native/cpu_flags.gypi.
  local cxxflags=(-std=c++17 -frtti -fexceptions -fPIC -pthread -msse4.2 -mpclmul -O1 -g -fno-omit-frame-pointer
    -fsanitize=$FLAG -Wall -Wno-unused-parameter
    -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNODE_ADDON_API_CPP_EXCEPTIONS -DXXH_INLINE_ALL
    -DOS_LINUX=1 -DROCKSDB_PLATFORM_POSIX=1 -DROCKSDB_LIB_IO_POSIX=1 -DBUILDING_NODE_EXTENSION
    -DNODE_GYP_MODULE_NAME=guts_native -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE -DHAVE_SSE42 -DHAVE_PCLMUL
    -I"$node_inc" -I"$napi" -I"$xxh" -I"$rocks" -I"$zstd")
  local objs=() pids=() src obj
  for src in "$ROOT"/native/*.cc; do
    obj=$OUT/$(basename "$src" .cc).o
    objs+=("$obj")
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$ROOT/native" -name '*.h' -newer "$obj" -print -quit)" ]; then
      # two at a time: the machine is shared
      while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
      g++ "${cxxflags[@]}" -c "$src" -o "$obj" &
    fi
  done
  wait
  g++ -shared -fsanitize=$FLAG -pthread -rdynamic -o "$ADDON" "${objs[@]}" \
    -Wl,--start-group "$rel/rocksdb.a" "$rel/zstd.a" "$rel/snappy.a" -Wl,--end-group
  echo "built $ADDON"
}

sanitized_env() {
  [ -f "$ADDON" ] || build >&2
  export GUTS_NATIVE_ADDON=$ADDON
  export LD_PRELOAD
  LD_PRELOAD=$(gcc -print-file-name=$RT)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:exitcode=66:abort_on_error=0:allocator_may_return_null=1}
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=67:report_signal_unsafe=0:suppressions=$ROOT/fuzz/tsan.supp}
}

case $ACTION in
  build) build ;;
  run)
    [ $# -ge 1 ] || usage
    sanitized_env
    exec "$@"
    ;;
  tests)
    [ $# -ge 1 ] || usage
    sanitized_env
    cd "$ROOT"
    # not through npx: sh crashes at start with the TSan runtime preloaded
    exec node node_modules/.bin/tap --disable-coverage -j1 "$@"
    ;;
  *) usage ;;
esac
