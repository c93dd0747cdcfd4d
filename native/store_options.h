// RocksDB options of the store (issue 14): compression by level, block size,
// caches, and the bounded-memory profile of read-only scans.
//
//   format "default"  LZ4 on every level but the bottommost, ZSTD there (where
//                     nearly all data lives and is rewritten least often).
//   format "snappy"   the options of every store written before issue 14:
//                     snappy everywhere. Only tests and benchmarks ask for it
//                     (to build such a store); any store opens with either,
//                     since each block records its own compression type.
// rocksdb_options: an Options string (DB and column family options) applied last (benchmarks
// compare tunings with it; never set by the CLI or the node).
#pragma once
#include <rocksdb/options.h>

#include <string>
#include <vector>

namespace guts {

struct StoreTuning {
  std::string format = "default";  // "default" or "snappy"
  std::string rocksdb_options;
  // Read-only scans (verify): a small private block cache that also holds the
  // index and filter blocks, so table readers cost no memory outside it.
  bool bounded_memory = false;
};

rocksdb::Options MakeStoreOptions(const StoreTuning& tuning, bool create, bool retain_wal);

// Compression types this build of RocksDB supports ("snappy", "lz4", "zstd", ...).
std::vector<std::string> SupportedCompressions();

}  // namespace guts
