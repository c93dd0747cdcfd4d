#include "checkpoint.h"

#include <rocksdb/utilities/checkpoint.h>
#include <sys/stat.h>

#include <memory>

#include "errors.h"
#include "fs_util.h"

namespace guts {

static uint64_t CheckpointOne(rocksdb::DB* db, const std::string& path) {
  rocksdb::Checkpoint* raw = nullptr;
  CheckStatus(rocksdb::Checkpoint::Create(db, &raw), path);
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  uint64_t seq = 0;
  // log_size_for_flush = 0: always flush memtables first, so the checkpoint's
  // WAL is (nearly) empty and the archive holds only SST files plus metadata.
  CheckStatus(cp->CreateCheckpoint(path, 0, &seq), path);
  return seq;
}

CheckpointResult CreateCheckpoints(Store& store, const std::string& dir, bool db, bool consensus) {
  if (mkdir(dir.c_str(), 0700) != 0) ThrowErrno("cannot create checkpoint dir", dir, errno);
  CheckpointResult r;
  try {
    if (db) {
      if (!store.db()) throw GutsError(Code::Closed, "object store is not open");
      r.db_sequence = CheckpointOne(store.db(), dir + "/db");
      r.has_db = true;
    }
    if (consensus) {
      if (!store.consensus()) throw GutsError(Code::Closed, "consensus store is not open");
      r.consensus_sequence = CheckpointOne(store.consensus(), dir + "/consensus");
      r.has_consensus = true;
    }
    FsyncPath(dir);
  } catch (...) {
    RemoveTree(dir);
    throw;
  }
  return r;
}

}  // namespace guts
