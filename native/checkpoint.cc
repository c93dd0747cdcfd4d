#include "checkpoint.h"

#include <rocksdb/utilities/checkpoint.h>
#include <sys/stat.h>

#include <exception>
#include <memory>
#include <system_error>
#include <thread>

#include "errors.h"
#include "fs_util.h"

namespace guts {

static constexpr uint64_t kMaxWalCopy = 64ull << 20;

static uint64_t CheckpointOne(rocksdb::DB* db, const std::string& path) {
  rocksdb::Checkpoint* raw = nullptr;
  CheckStatus(rocksdb::Checkpoint::Create(db, &raw), path);
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  uint64_t seq = 0;
  // Up to kMaxWalCopy of live WAL, the checkpoint copies the WAL (cut at the
  // checkpoint's sequence; replayed on open, read-only opens included)
  // instead of flushing the memtables. A flush per checkpoint put one small L0
  // file per column family into the live store for every hot backup; every
  // few backups that triggered an L0->L1 compaction, which with hash-ordered
  // keys rewrites the whole store (1.1 s of CPU for a 385 MB store) inside the
  // node, at the node's priority: p99 write latency during back-to-back hot
  // backups was 3-6x the idle one. Larger WALs are flushed as before.
  CheckStatus(cp->CreateCheckpoint(path, kMaxWalCopy, &seq), path);
  // RocksDB makes the checkpoint dir 0755 & ~umask: owner-only like the store
  // (its files are hard links of the store's, same inodes, same modes).
  if (chmod(path.c_str(), 0700) != 0) ThrowErrno("cannot chmod checkpoint dir", path, errno);
  return seq;
}

CheckpointResult CreateCheckpoints(Store& store, const std::string& dir, bool db, bool consensus) {
  if (mkdir(dir.c_str(), 0700) != 0) ThrowErrno("cannot create checkpoint dir", dir, errno);
  CheckpointResult r;
  try {
    if (db && !store.db()) throw GutsError(Code::Closed, "object store is not open");
    if (consensus && !store.consensus()) throw GutsError(Code::Closed, "consensus store is not open");
    // Both at once, the consensus store's on a second thread: each is a few
    // fsyncs (MANIFEST copy, CURRENT, directories) and little else, so side
    // by side they take the time of one (~15 ms of `backup create` here).
    std::exception_ptr consensus_error;
    auto consensus_checkpoint = [&] {
      try {
        r.consensus_sequence = CheckpointOne(store.consensus(), dir + "/consensus");
        r.has_consensus = true;
      } catch (...) {
        consensus_error = std::current_exception();
      }
    };
    std::thread consensus_thread;
    if (consensus && db) {
      try {
        consensus_thread = std::thread(consensus_checkpoint);
      } catch (const std::system_error&) {
        consensus_checkpoint();  // no thread to be had: one after the other
      }
    } else if (consensus) {
      consensus_checkpoint();
    }
    std::exception_ptr db_error;
    if (db) {
      try {
        r.db_sequence = CheckpointOne(store.db(), dir + "/db");
        r.has_db = true;
      } catch (...) {
        db_error = std::current_exception();
      }
    }
    if (consensus_thread.joinable()) consensus_thread.join();  // before `r`, `dir` or the store go away
    if (db_error) std::rethrow_exception(db_error);
    if (consensus_error) std::rethrow_exception(consensus_error);
    FsyncPath(dir);
  } catch (...) {
    RemoveTree(dir);
    throw;
  }
  return r;
}

}  // namespace guts
