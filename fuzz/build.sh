#!/usr/bin/env bash
# Builds fuzz/out/archive_reader_fuzz: the native archive reader under
# libFuzzer with AddressSanitizer and UndefinedBehaviorSanitizer.
# A developer tool, not part of `npm test` / CI.
#
# Needs clang with libFuzzer (Debian bookworm: clang 14) and the OpenSSL and
# zlib headers and libraries (the addon takes those symbols from node; a
# standalone binary links the system ones):
#   apt-get install -y clang libssl-dev zlib1g-dev
# zstd is compiled from node_modules/zstd-napi/deps/zstd/lib, xxHash is the
# header from node_modules/xxhash-addon (npm ci first).
#
# FUZZ_SANITIZER=thread builds fuzz/out/tsan/archive_reader_fuzz with
# ThreadSanitizer instead (races between the reader, decoder and hasher
# threads); run it with FUZZ_SANITIZER=thread fuzz/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/fuzz/out
[ "${FUZZ_SANITIZER:-address}" = thread ] && OUT=$ROOT/fuzz/out/tsan
CXX=${CXX:-clang++}
CC=${CC:-clang}

missing=()
command -v "$CXX" >/dev/null || missing+=(clang)
[ -f /usr/include/openssl/evp.h ] || missing+=(libssl-dev)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "fuzz/build.sh: missing ${missing[*]}; install with:" >&2
  echo "  apt-get install -y clang libssl-dev zlib1g-dev" >&2
  exit 2
fi
ZSTD=$ROOT/node_modules/zstd-napi/deps/zstd/lib
XXH=$ROOT/node_modules/xxhash-addon/xxHash
NAPI=$(node -p "require('node-addon-api').include_dir")
NODE_INC=$(dirname "$(dirname "$(command -v node)")")/include/node
[ -d "$NODE_INC" ] || NODE_INC=/usr/include/node
for d in "$ZSTD" "$XXH" "$NAPI" "$NODE_INC"; do
  [ -d "$d" ] || { echo "fuzz/build.sh: $d not found (run npm ci in the repository first)" >&2; exit 2; }
done

mkdir -p "$OUT/zstd"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
[ "${FUZZ_SANITIZER:-address}" = thread ] && SAN="-fsanitize=thread"
COMMON="-g -O1 -fno-omit-frame-pointer -ffunction-sections -fdata-sections"

# zstd: sanitized, not instrumented for coverage (the reader is the target).
zobjs=()
for src in "$ZSTD"/common/*.c "$ZSTD"/compress/*.c "$ZSTD"/decompress/*.c; do
  obj=$OUT/zstd/$(basename "$(dirname "$src")")_$(basename "$src" .c).o
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
    "$CC" $COMMON $SAN -DZSTD_DISABLE_ASM -I"$ZSTD" -I"$ZSTD/common" -c "$src" -o "$obj" &
  fi
  zobjs+=("$obj")
done
wait

# The reader and what it calls. These files also hold N-API glue (the
# addon's exports and workers) and errors.cc maps RocksDB statuses: none of
# that is reachable from the fuzz target. A first link lists the symbols
# that glue needs; the second binds each of them to guts_fuzz_unreachable()
# (which aborts), so neither node nor RocksDB is linked. The build fails if
# anything else is unresolved.
SRCS=()
for n in archive_reader archive_decode tar_reader extract_dir hashing errors fs_util async priority; do SRCS+=("$ROOT/native/$n.cc"); done
objs=()
for src in "$ROOT/fuzz/archive_reader_fuzz.cc" "${SRCS[@]}"; do
  obj=$OUT/$(basename "$src" .cc).o
  "$CXX" -std=c++17 $COMMON $SAN -fsanitize=fuzzer-no-link \
    -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -DXXH_INLINE_ALL \
    -I"$ROOT/native" -I"$ZSTD" -I"$XXH" -I"$NAPI" -I"$NODE_INC" \
    -I"$ROOT/node_modules/rocksdb/deps/rocksdb/rocksdb/include" \
    -c "$src" -o "$obj" &
  objs+=("$obj")
done
wait
link() {
  "$CXX" $SAN -fsanitize=fuzzer "${objs[@]}" "${zobjs[@]}" -lcrypto -lz -pthread -o "$OUT/archive_reader_fuzz" "$@"
}
link -Wl,--no-demangle -Wl,--warn-unresolved-symbols 2> "$OUT/link.log" || { cat "$OUT/link.log" >&2; exit 1; }
undefined=$(grep -o "undefined reference to \`[^']*'" "$OUT/link.log" | sed "s/^undefined reference to \`//; s/'\$//" | sort -u || true)
unexpected=$(echo "$undefined" | grep -v -e '^$' -e '^napi_' -e '^_ZNK\?7rocksdb' || true)
if [ -n "$unexpected" ]; then
  echo "fuzz/build.sh: unresolved symbols outside N-API / RocksDB:" >&2
  echo "$unexpected" >&2
  rm -f "$OUT/archive_reader_fuzz"
  exit 1
fi
defsyms=()
for s in $undefined; do defsyms+=("-Wl,--defsym=$s=guts_fuzz_unreachable"); done
link "${defsyms[@]}"
echo "built $OUT/archive_reader_fuzz (${#defsyms[@]} N-API/RocksDB symbols bound to guts_fuzz_unreachable)"
