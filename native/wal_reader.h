// Continuous WAL archiving, the RocksDB side (docs/FORMAT.md "WAL segments"):
// tail committed write batches of db/ or consensus/ from a sequence number,
// apply archived batches onto a restored store, write a named restore point.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "store.h"

namespace guts {

enum class WalDb { kDb = 0, kConsensus = 1 };

struct WalBatch {
  uint64_t seq = 0;
  uint32_t count = 0;
  uint64_t time_us = 0;  // 0 when the batch carries no commit time
  bool has_mark = false;
  std::string mark;
  std::string data;  // the WriteBatch representation (header: seq, count)
};

struct WalTailInput {
  WalDb which = WalDb::kDb;
  uint64_t from = 1;  // the next sequence the caller expects
  size_t max_bytes = 4 << 20;
  size_t max_batches = 10000;
};

struct WalTailResult {
  std::vector<WalBatch> batches;
  uint64_t latest = 0;  // the store's last committed sequence when asked
  // Continuity broken: the batch holding `from` (or the one after the last
  // returned) is gone. found = the sequence the log continues at (0: none).
  bool gap = false;
  uint64_t gap_expected = 0, gap_found = 0;
};

// Batches whose sequence follows `from` without a hole, in commit order.
// Never skips: RocksDB's iterator silently starts at the next available
// sequence when the asked one is gone, so every batch is checked here.
WalTailResult TailWal(Store& store, const WalTailInput& in);

struct WalApplyResult {
  uint64_t applied = 0, skipped = 0, latest = 0;
};

// Writes archived batches in order. A batch already in the store (its last
// sequence <= the store's) is skipped; one that does not start right after
// the store's last sequence is a gap (GUTS_CORRUPT). The WAL is synced at the
// end; a replay store (Store::Options::replay) writes no WAL: its caller
// flushes the memtables (store.flush()) before the store is used.
WalApplyResult ApplyWal(Store& store, WalDb which, const std::vector<rocksdb::Slice>& batches);
// RocksDB options of a replay store (point-in-time restore staging).
void TuneForReplay(rocksdb::Options* options);
// empty when the WriteBatch rep can be applied to that store, else why not
std::string CheckWalBatch(WalDb which, const rocksdb::Slice& rep);

void InitWalReader(Napi::Env env, Napi::Object exports);

}  // namespace guts
