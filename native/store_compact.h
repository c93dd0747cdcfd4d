// `guts-node compact` (issue 14): rewrites every SST of both RocksDB instances
// of an open, writable store with the store's current options, so a store
// written by older options (snappy) ends up LZ4 above / ZSTD at the bottom.
// CompactRange over each column family with bottommost_level_compaction =
// kForce: all data moves to the bottommost level, rewritten even when it is
// already there. Runs with the node serving (writes go on) or offline.
//
//   compactStore(store) -> TaskHandle<{ before, after: { files, bytes,
//       compression: {name: bytes} }, columnFamilies }>
//   sstSummary(store) -> Promise<{ files, bytes, compression, parts }>
//   backgroundWork(store) -> number of flushes and compactions running or pending (synchronous)
//   compressions: the compression types this build supports ("lz4", "snappy", "zstd")
//   progress: done/total = SST bytes of the column families finished / all;
//   files = column families finished. cancel(): stops the running manual
//   compaction (RocksDB DisableManualCompaction), GUTS_CANCELLED; what was
//   already rewritten stays (each compaction is atomic).
#pragma once
#include <napi.h>

#include <cstdint>
#include <map>
#include <string>

#include "async.h"
#include "store.h"

namespace guts {

struct SstSummary {
  uint64_t files = 0, bytes = 0;
  std::map<std::string, uint64_t> compression;  // "snappy", "lz4", "zstd", "none" -> file bytes
  // Table properties summed over the SSTs (sstSummary's `parts`; the store
  // bench's breakdown): compressed data, index and filter blocks; raw key and
  // value bytes before compression; entries.
  uint64_t data = 0, index = 0, filter = 0, raw_key = 0, raw_value = 0, entries = 0;
};

struct CompactReport {
  SstSummary before, after;
  uint64_t column_families = 0;
};

SstSummary SummarizeSsts(Store& store);
CompactReport CompactStore(Store& store, TaskState& state);

void InitStoreCompact(Napi::Env env, Napi::Object exports);

}  // namespace guts
