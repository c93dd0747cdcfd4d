// The git-object store: one data dir holds two RocksDB instances.
//   db/         column families objects, refs, repos, meta
//   consensus/  blocks by height and the finalized height
// Kept separate so a consensus-only backup can take consensus/ alone.
#pragma once
#include <rocksdb/db.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store_options.h"

namespace guts {

struct ObjectCounts {
  uint64_t commit = 0, tree = 0, blob = 0, tag = 0, repos = 0;
  uint64_t& ForType(int type);
};

struct PutObject {
  uint8_t type;
  const uint8_t* data;
  size_t len;
};

struct RefUpdate {
  std::string name;
  std::string target;    // 20 raw bytes, or empty
  std::string symbolic;  // "refs/heads/main" for a symbolic ref, or empty
  bool remove = false;
};

struct RefValue {
  std::string name, target, symbolic;
};

// Every committed batch carries its commit wall time as a LogData blob
// kWalTimeTag + 8 bytes little-endian microseconds since the epoch; a named
// restore point (wal mark) adds kWalMarkTag + the name (docs/FORMAT.md).
constexpr const char* kWalTimeTag = "GT";
constexpr const char* kWalMarkTag = "GM";
constexpr const char* kWalMarkKeyPrefix = "wal/mark/";  // meta column family

uint64_t NowMicros();
void StampCommitTime(rocksdb::WriteBatch* batch, uint64_t time_us);

struct WalMarkResult {
  uint64_t seq = 0, time_us = 0;
};

struct StoredObject {
  std::string id;  // 20 raw bytes
  int type = 0;
  std::string body;
};

class Store {
 public:
  struct Options {
    std::string data_dir;
    bool read_only = false;
    bool create = true;
    bool open_db = true;
    bool open_consensus = true;
    // The staging store of a point-in-time restore (native/wal_reader.cc
    // TuneForReplay): bulk-load memtables, archived batches written without a
    // WAL, flushed by the restore before the swap.
    bool replay = false;
    StoreTuning tuning;  // bounded_memory is set for read-only opens
  };
  enum Cf { kDefault = 0, kObjects, kRefs, kRepos, kMeta, kCfCount };

  static std::shared_ptr<Store> Open(const Options& options);
  ~Store();
  void Close();

  const std::string& data_dir() const { return options_.data_dir; }
  bool replay() const { return options_.replay; }
  std::string db_path() const { return options_.data_dir + "/db"; }
  std::string consensus_path() const { return options_.data_dir + "/consensus"; }
  rocksdb::DB* db() const { return db_; }
  rocksdb::DB* consensus() const { return consensus_; }
  rocksdb::ColumnFamilyHandle* cf(Cf which) const { return cfs_[which]; }

  // Objects: one atomic batch, counts updated in the same batch. Existing
  // objects are skipped. ids_out gets 20 bytes per input object.
  uint64_t PutObjects(const std::string& repo, const std::vector<PutObject>& objects, std::string* ids_out);
  bool GetObject(const std::string& id, StoredObject* out);
  std::vector<bool> HasObjects(const std::vector<std::string>& ids);
  // Objects of one repository (repo non-empty) or all, after `after`, at most limit.
  std::vector<StoredObject> ScanObjects(const std::string& repo, const std::string& after, size_t limit);

  bool PutRepo(const std::string& repo, const std::string& meta_json);  // true when new
  std::vector<std::pair<std::string, std::string>> ListRepos();
  void UpdateRefs(const std::string& repo, const std::vector<RefUpdate>& updates);
  std::vector<RefValue> GetRefs(const std::string& repo);

  ObjectCounts Counts();

  void PutBlocks(const std::vector<std::pair<uint64_t, std::string>>& blocks, int64_t finalized);
  bool GetBlock(uint64_t height, std::string* out);
  uint64_t FinalizedHeight();
  uint64_t BlockCount();

  // Named restore point: one db batch (a meta key + the mark LogData).
  WalMarkResult PutWalMark(const std::string& name);

  // Flush memtables and sync the WAL of both stores (maintenance mode).
  void FlushAndSync();
  uint64_t DbSequence() const;

  // Log iterators kept between WAL tail calls (native/wal_reader.cc): a new
  // iterator re-reads its first log file from the start to find a sequence,
  // which costs up to a whole memtable's worth of log per call. Closed first.
  struct WalCursor {
    std::unique_ptr<rocksdb::TransactionLogIterator> it;
    uint64_t next = 0;     // the sequence the cursor's owner expects next
    bool pending = false;  // `it` holds a valid batch not yet returned
  };
  std::mutex wal_mu;
  WalCursor wal_cursor[2];  // db, consensus
  uint64_t ConsensusSequence() const;

 private:
  explicit Store(const Options& options) : options_(options) {}
  Options options_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::DB* consensus_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  std::mutex write_mu_;  // serializes read-modify-write of counts
};

// Key helpers shared with the verifier.
std::string MembershipKey(const std::string& repo, const std::string& id);
std::string RefKey(const std::string& repo, const std::string& ref);
std::string HeightKey(uint64_t height);
extern const char* const kCountKeys[5];  // meta keys: commit, tree, blob, tag, repos
uint64_t DecodeCount(const std::string& v);
std::string EncodeCount(uint64_t v);

}  // namespace guts
