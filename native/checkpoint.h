// RocksDB checkpoints of a data dir's stores: hard links of the immutable SST
// files plus a copy of MANIFEST/OPTIONS/WAL, so O(1) in data size on one fs.
#pragma once
#include <cstdint>
#include <string>

#include "store.h"

namespace guts {

struct CheckpointResult {
  bool has_db = false, has_consensus = false;
  uint64_t db_sequence = 0, consensus_sequence = 0;
};

// Creates <dir>/db and/or <dir>/consensus. <dir> is created (mode 0700) and
// must not exist yet. On failure nothing is left behind.
CheckpointResult CreateCheckpoints(Store& store, const std::string& dir, bool db, bool consensus);

}  // namespace guts
