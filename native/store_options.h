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
  // level_compaction_dynamic_level_bytes (Store::Open decides, per database:
  // on for one it creates in the default format, as its OPTIONS file records
  // otherwise). RocksDB sizes the levels from the bottommost one, which then
  // holds ~90% of the data in ZSTD; with fixed sizes up to 256 MB of L1 stays
  // LZ4 (the 2000 MB corpus: 57% of a 489 MB store). RocksDB advises against
  // switching it for an existing database, so a store keeps what it has.
  bool dynamic_levels = false;
};

// Whether the RocksDB database at db_path records dynamic level sizes in its
// latest OPTIONS file; false when it has none or it cannot be read.
bool RecordedDynamicLevels(const std::string& db_path);

rocksdb::Options MakeStoreOptions(const StoreTuning& tuning, bool create, bool retain_wal);

// Compression types this build of RocksDB supports ("snappy", "lz4", "zstd", ...).
std::vector<std::string> SupportedCompressions();

}  // namespace guts
