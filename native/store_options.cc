#include "store_options.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/options_util.h>

#include <algorithm>

#include "errors.h"

namespace guts {

namespace {

// Measured on the real-files corpora (bench `store` suite; the table of what
// was tried: docs/OPERATIONS.md "Store format and tuning"): ZSTD level 3 at
// the bottom (0.78x of snappy; levels 5-9 with trained dictionaries reach
// 0.73-0.70x at 2-5x the compaction CPU); LZ4 above; 16 KiB blocks (larger
// ones gain < 1% and slow point reads).
constexpr int kZstdLevel = 3;
// No dictionary by default. RocksDB is now built with ZSTD_STATIC_LINKING_ONLY
// (ROCKSDB_ZSTD_DDICT: each SST's dictionary is digested once per table
// reader), yet a trained dictionary still costs more than it saves: on the
// 1000 MB corpus a 64 KiB one gains 2.7% of size (0.764x vs 0.785x of snappy)
// for 1.18-1.28x the CPU of random gets (1.15-1.19x with 16-32 KiB), 1.16x the write
// path's CPU and 0.63-0.69x its settled throughput (docs/OPERATIONS.md). The
// read cost is zstd's cold-dictionary decoding: a get's block comes from
// another SST (another dictionary) than the previous one. The trainer stays
// linked (native/deps/zstd_dict); bottommost_compression_opts turns it on.
constexpr uint32_t kDictBytes = 0;
constexpr uint32_t kDictTrainBytes = 10 * kDictBytes;
constexpr size_t kBlockSize = 16 * 1024;
// Compactions into the bottommost level (ZSTD) split in two on this 2-core
// class of machine: the write path's settled throughput (bench).
constexpr uint32_t kSubcompactions = 2;
// The node's block cache (shared by every store of the process).
constexpr size_t kNodeCacheBytes = 64 << 20;
// Read-only scans: index and filter blocks and the few data blocks point
// lookups touch (refs against objects); the object scan itself does not fill it.
constexpr size_t kBoundedCacheBytes = 16 << 20;
constexpr int kBoundedMaxOpenFiles = 256;

}  // namespace

rocksdb::Options MakeStoreOptions(const StoreTuning& tuning, bool create, bool retain_wal) {
  rocksdb::Options o;
  if (retain_wal) {
    o.WAL_ttl_seconds = 100ull * 365 * 24 * 3600;
    o.WAL_size_limit_MB = 0;
  }
  o.create_if_missing = create;
  o.create_missing_column_families = create;
  o.max_background_jobs = 2;
  o.max_open_files = tuning.bounded_memory ? kBoundedMaxOpenFiles : 1024;
  // Read-only opens (verify, export, status, checkpoints of a stopped store)
  // load their table readers with one thread: RocksDB's default of 16 per
  // column family created and joined ~100 threads for a handful of files, and
  // one opens them in half the CPU (tiny-store verify 122.6 -> 109.6 ms).
  if (tuning.bounded_memory) o.max_file_opening_threads = 1;
  o.keep_log_file_num = 4;
  o.bytes_per_sync = 1 << 20;
  if (tuning.format == "snappy") {
    o.compression = rocksdb::kSnappyCompression;
  } else if (tuning.format == "default") {
    o.compression = rocksdb::kLZ4Compression;
    o.bottommost_compression = rocksdb::kZSTD;
    o.bottommost_compression_opts.enabled = true;
    o.bottommost_compression_opts.level = kZstdLevel;
    o.bottommost_compression_opts.max_dict_bytes = kDictBytes;
    o.bottommost_compression_opts.zstd_max_train_bytes = kDictTrainBytes;
    o.max_subcompactions = kSubcompactions;
  } else {
    throw GutsError(Code::InvalidArgument, "unknown store format \"" + tuning.format + "\" (expected default or snappy)");
  }
  o.level_compaction_dynamic_level_bytes = tuning.dynamic_levels;
  static std::shared_ptr<rocksdb::Cache> node_cache = rocksdb::NewLRUCache(kNodeCacheBytes);
  rocksdb::BlockBasedTableOptions t;
  if (tuning.bounded_memory) {
    t.block_cache = rocksdb::NewLRUCache(kBoundedCacheBytes);
    t.cache_index_and_filter_blocks = true;
    t.pin_l0_filter_and_index_blocks_in_cache = false;
  } else {
    t.block_cache = node_cache;
  }
  t.block_size = kBlockSize;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  if (!tuning.rocksdb_options.empty()) {
    rocksdb::ConfigOptions config;
    config.ignore_unknown_options = false;
    config.input_strings_escaped = false;
    rocksdb::Options tuned;
    rocksdb::Status st = rocksdb::GetOptionsFromString(config, o, tuning.rocksdb_options, &tuned);
    if (!st.ok()) throw GutsError(Code::InvalidArgument, "invalid RocksDB options \"" + tuning.rocksdb_options + "\": " + st.ToString());
    o = tuned;
  }
  return o;
}

bool RecordedDynamicLevels(const std::string& db_path) {
  rocksdb::ConfigOptions config;
  config.ignore_unknown_options = true;
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  if (!rocksdb::LoadLatestOptions(config, db_path, &db_options, &cfs).ok()) return false;
  // every column family of a store is created with the same options
  return !cfs.empty() && cfs.front().options.level_compaction_dynamic_level_bytes;
}

std::vector<std::string> SupportedCompressions() {
  std::vector<std::string> out;
  for (rocksdb::CompressionType t : rocksdb::GetSupportedCompressions()) {
    switch (t) {
      case rocksdb::kSnappyCompression: out.push_back("snappy"); break;
      case rocksdb::kZlibCompression: out.push_back("zlib"); break;
      case rocksdb::kBZip2Compression: out.push_back("bzip2"); break;
      case rocksdb::kLZ4Compression: out.push_back("lz4"); break;
      case rocksdb::kLZ4HCCompression: out.push_back("lz4hc"); break;
      case rocksdb::kXpressCompression: out.push_back("xpress"); break;
      case rocksdb::kZSTD: out.push_back("zstd"); break;
      default: break;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace guts
