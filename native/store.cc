#include "store.h"

#include "wal_reader.h"

#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <cstring>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "errors.h"
#include "hashing.h"

namespace guts {

const char* const kCountKeys[5] = {"count/commit", "count/tree", "count/blob", "count/tag", "count/repos"};
static const char* const kCfNames[Store::kCfCount] = {"default", "objects", "refs", "repos", "meta"};

uint64_t& ObjectCounts::ForType(int type) {
  switch (type) {
    case kCommit: return commit;
    case kTree: return tree;
    case kBlob: return blob;
    case kTag: return tag;
  }
  throw GutsError(Code::InvalidArgument, "invalid object type " + std::to_string(type));
}

std::string EncodeCount(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

uint64_t DecodeCount(const std::string& v) {
  if (v.size() != 8) throw GutsError(Code::Corrupt, "stored count has " + std::to_string(v.size()) + " bytes, not 8");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<uint8_t>(v[i]);
  return n;
}

std::string MembershipKey(const std::string& repo, const std::string& id) {
  std::string k = "m/" + repo;
  k.push_back('\0');
  return k + id;
}

std::string RefKey(const std::string& repo, const std::string& ref) {
  std::string k = repo;
  k.push_back('\0');
  return k + ref;
}

std::string HeightKey(uint64_t height) {
  std::string k = "h/";
  for (int i = 7; i >= 0; i--) k.push_back(static_cast<char>((height >> (8 * i)) & 0xff));
  return k;
}

uint64_t NowMicros() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<uint64_t>(tv.tv_sec) * 1000000u + static_cast<uint64_t>(tv.tv_usec);
}

void StampCommitTime(rocksdb::WriteBatch* batch, uint64_t time_us) {
  std::string blob(kWalTimeTag, 2);
  for (int i = 0; i < 8; i++) blob.push_back(static_cast<char>((time_us >> (8 * i)) & 0xff));
  batch->PutLogData(blob);
}

// WAL retention for continuous archiving (docs/NODE.md "WAL archiving"): once
// DATA_DIR/wal/ exists, RocksDB moves obsolete WAL files to db/archive/ and
// never deletes them (the TTL is a century); the node's archiver deletes them
// once their batches are in a closed segment. Every open (node or offline CLI)
// takes the same decision, so no committed batch escapes the archiver.
static bool WalRetained(const std::string& data_dir) {
  struct stat st;
  return stat((data_dir + "/wal").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

static void EnsureDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) ThrowErrno("cannot create directory", path, errno);
}

std::shared_ptr<Store> Store::Open(const Options& options) {
  std::shared_ptr<Store> s(new Store(options));
  struct stat st;
  if (stat(options.data_dir.c_str(), &st) != 0) {
    if (errno != ENOENT || !options.create || options.read_only) ThrowErrno("cannot open data dir", options.data_dir, errno);
    EnsureDir(options.data_dir);
  } else if (!S_ISDIR(st.st_mode)) {
    throw GutsError(Code::InvalidArgument, "data dir " + options.data_dir + " is not a directory", options.data_dir);
  }
  StoreTuning tuning = options.tuning;
  tuning.bounded_memory = options.read_only;
  // Dynamic level sizes for a database created now in the default format;
  // an existing one keeps what its OPTIONS file records (a read-only open
  // compacts nothing and writes no OPTIONS file: it needs no answer).
  auto dynamic_levels = [&](const std::string& path) {
    if (options.read_only) return false;
    struct stat cur;
    if (stat((path + "/CURRENT").c_str(), &cur) == 0) return RecordedDynamicLevels(path);
    return tuning.format == "default";
  };
  tuning.dynamic_levels = options.open_db ? dynamic_levels(s->db_path()) : false;
  rocksdb::Options base = MakeStoreOptions(tuning, options.create && !options.read_only, WalRetained(options.data_dir));
  if (options.replay) TuneForReplay(&base);
  rocksdb::Options consensus_base = base;
  if (options.open_consensus) {
    StoreTuning consensus_tuning = tuning;
    consensus_tuning.dynamic_levels = dynamic_levels(s->consensus_path());
    if (consensus_tuning.dynamic_levels != tuning.dynamic_levels) {
      consensus_base = MakeStoreOptions(consensus_tuning, options.create && !options.read_only, WalRetained(options.data_dir));
      if (options.replay) TuneForReplay(&consensus_base);
    }
  }
  if (options.create && !options.read_only) {
    // RocksDB creates missing store dirs 0755 (env/fs_posix.cc), whatever we
    // ask: make them here first, owner-only, so no other local user can read
    // db/ even when the process umask is lax (its files get 0644 & ~umask).
    if (options.open_db) EnsureDir(s->db_path());
    if (options.open_consensus) EnsureDir(s->consensus_path());
  }
  // The two stores open in parallel: a read-write open is mostly waiting on
  // the disk (a new MANIFEST, CURRENT and OPTIONS file, each fsynced, with
  // their directory: ~8 fsyncs per store), and the small consensus store took
  // as long as the object store. Opened one after the other they were ~0.1 s
  // of every offline command (half of `backup create`'s time outside the
  // archive on the real-files corpus); side by side the slower one's time.
  // RocksDB's Env, caches and table factory in `base` are shared safely
  // between DBs opening at once.
  rocksdb::Status db_status, consensus_status;
  auto open_consensus = [&] {
    try {
      consensus_status = options.read_only ? rocksdb::DB::OpenForReadOnly(consensus_base, s->consensus_path(), &s->consensus_)
                                           : rocksdb::DB::Open(consensus_base, s->consensus_path(), &s->consensus_);
    } catch (const std::exception& e) {
      consensus_status = rocksdb::Status::Aborted(e.what());
    }
  };
  std::thread consensus_thread;
  if (options.open_consensus) {
    try {
      consensus_thread = std::thread(open_consensus);
    } catch (const std::system_error&) {
      open_consensus();  // no thread to be had: one after the other
    }
  }
  if (options.open_db) {
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (int i = 0; i < kCfCount; i++) descs.emplace_back(kCfNames[i], rocksdb::ColumnFamilyOptions(base));
    try {
      db_status = options.read_only ? rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(base), s->db_path(), descs, &s->cfs_, &s->db_)
                                    : rocksdb::DB::Open(rocksdb::DBOptions(base), s->db_path(), descs, &s->cfs_, &s->db_);
    } catch (const std::exception& e) {
      db_status = rocksdb::Status::Aborted(e.what());
    }
  }
  if (consensus_thread.joinable()) consensus_thread.join();  // before anything in `s`, `base` or `consensus_base` goes away
  try {
    if (options.open_db) CheckStatus(db_status, s->db_path());
    if (options.open_consensus) CheckStatus(consensus_status, s->consensus_path());
  } catch (...) {
    s->Close();
    throw;
  }
  return s;
}

Store::~Store() { Close(); }

void Store::Close() {
  {
    std::lock_guard<std::mutex> lock(wal_mu);
    for (auto& c : wal_cursor) c = WalCursor();
  }
  if (db_) {
    for (auto* h : cfs_) db_->DestroyColumnFamilyHandle(h);
    cfs_.clear();
    db_->Close();
    delete db_;
    db_ = nullptr;
  }
  if (consensus_) {
    consensus_->Close();
    delete consensus_;
    consensus_ = nullptr;
  }
}

static void RequireDb(rocksdb::DB* db, const char* what) {
  if (!db) throw GutsError(Code::Closed, std::string(what) + " store is not open");
}

static void RequireWritable(const Store::Options& o) {
  if (o.read_only) throw GutsError(Code::InvalidArgument, "store " + o.data_dir + " is open read-only");
}

uint64_t Store::PutObjects(const std::string& repo, const std::vector<PutObject>& objects, std::string* ids_out) {
  RequireDb(db_, "object");
  RequireWritable(options_);
  Digest sha1(Digest::kSha1);
  ids_out->resize(objects.size() * 20);
  for (size_t i = 0; i < objects.size(); i++) {
    if (!ObjectTypeName(objects[i].type))
      throw GutsError(Code::InvalidArgument, "object " + std::to_string(i) + " has invalid type " + std::to_string(objects[i].type));
    GitObjectId(sha1, objects[i].type, objects[i].data, objects[i].len, reinterpret_cast<uint8_t*>(&(*ids_out)[i * 20]));
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  ObjectCounts counts = Counts();
  ObjectCounts before = counts;
  rocksdb::WriteBatch batch;
  std::unordered_set<std::string> seen;
  rocksdb::ReadOptions ro;
  std::string value;
  std::string type_and_body;
  uint64_t added = 0;
  for (size_t i = 0; i < objects.size(); i++) {
    std::string id = ids_out->substr(i * 20, 20);
    if (!repo.empty()) batch.Put(cfs_[kRepos], MembershipKey(repo, id), rocksdb::Slice());
    if (!seen.insert(id).second) continue;
    rocksdb::Status st = db_->Get(ro, cfs_[kObjects], id, &value);
    if (st.ok()) continue;
    if (!st.IsNotFound()) throw StatusError(st, db_path());
    rocksdb::Slice parts[2] = {rocksdb::Slice(reinterpret_cast<const char*>(&objects[i].type), 1),
                               rocksdb::Slice(reinterpret_cast<const char*>(objects[i].data), objects[i].len)};
    rocksdb::Slice key(id);
    batch.Put(cfs_[kObjects], rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
    counts.ForType(objects[i].type)++;
    added++;
  }
  const uint64_t* now[4] = {&counts.commit, &counts.tree, &counts.blob, &counts.tag};
  const uint64_t* old[4] = {&before.commit, &before.tree, &before.blob, &before.tag};
  for (int t = 0; t < 4; t++)
    if (*now[t] != *old[t]) batch.Put(cfs_[kMeta], kCountKeys[t], EncodeCount(*now[t]));
  if (batch.Count() == 0) return 0;
  StampCommitTime(&batch, NowMicros());
  CheckStatus(db_->Write(rocksdb::WriteOptions(), &batch), db_path());
  return added;
}

bool Store::GetObject(const std::string& id, StoredObject* out) {
  RequireDb(db_, "object");
  rocksdb::PinnableSlice v;
  rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), cfs_[kObjects], id, &v);
  if (st.IsNotFound()) return false;
  CheckStatus(st, db_path());
  if (v.size() < 1 || !ObjectTypeName(static_cast<uint8_t>(v.data()[0])))
    throw GutsError(Code::Corrupt, "object " + ToHex(reinterpret_cast<const uint8_t*>(id.data()), id.size()) + " has an invalid type byte");
  out->id = id;
  out->type = static_cast<uint8_t>(v.data()[0]);
  out->body.assign(v.data() + 1, v.size() - 1);
  return true;
}

std::vector<bool> Store::HasObjects(const std::vector<std::string>& ids) {
  RequireDb(db_, "object");
  std::vector<bool> out(ids.size());
  rocksdb::ReadOptions ro;
  std::string v;
  for (size_t i = 0; i < ids.size(); i++) {
    rocksdb::Status st = db_->Get(ro, cfs_[kObjects], ids[i], &v);
    if (!st.ok() && !st.IsNotFound()) throw StatusError(st, db_path());
    out[i] = st.ok();
  }
  return out;
}

std::vector<StoredObject> Store::ScanObjects(const std::string& repo, const std::string& after, size_t limit) {
  RequireDb(db_, "object");
  std::vector<StoredObject> out;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  if (repo.empty()) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kObjects]));
    if (after.empty()) it->SeekToFirst();
    else {
      it->Seek(after);
      if (it->Valid() && it->key() == after) it->Next();
    }
    for (; it->Valid() && out.size() < limit; it->Next()) {
      StoredObject o;
      o.id = it->key().ToString();
      rocksdb::Slice v = it->value();
      if (v.size() < 1) throw GutsError(Code::Corrupt, "empty object value for " + ToHex(reinterpret_cast<const uint8_t*>(o.id.data()), o.id.size()));
      o.type = static_cast<uint8_t>(v[0]);
      o.body.assign(v.data() + 1, v.size() - 1);
      out.push_back(std::move(o));
    }
    CheckStatus(it->status(), db_path());
    return out;
  }
  std::string prefix = MembershipKey(repo, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cfs_[kRepos]));
  std::string start = prefix + after;
  it->Seek(start);
  if (!after.empty() && it->Valid() && it->key() == start) it->Next();
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    std::string id = it->key().ToString().substr(prefix.size());
    StoredObject o;
    if (!GetObject(id, &o))
      throw GutsError(Code::Corrupt, "repository " + repo + " lists missing object " + ToHex(reinterpret_cast<const uint8_t*>(id.data()), id.size()));
    out.push_back(std::move(o));
  }
  CheckStatus(it->status(), db_path());
  return out;
}

bool Store::PutRepo(const std::string& repo, const std::string& meta_json) {
  RequireDb(db_, "object");
  RequireWritable(options_);
  std::lock_guard<std::mutex> lock(write_mu_);
  std::string key = "r/" + repo, v;
  rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), cfs_[kRepos], key, &v);
  if (!st.ok() && !st.IsNotFound()) throw StatusError(st, db_path());
  bool created = st.IsNotFound();
  rocksdb::WriteBatch batch;
  batch.Put(cfs_[kRepos], key, meta_json);
  if (created) batch.Put(cfs_[kMeta], kCountKeys[4], EncodeCount(Counts().repos + 1));
  StampCommitTime(&batch, NowMicros());
  CheckStatus(db_->Write(rocksdb::WriteOptions(), &batch), db_path());
  return created;
}

std::vector<std::pair<std::string, std::string>> Store::ListRepos() {
  RequireDb(db_, "object");
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kRepos]));
  for (it->Seek("r/"); it->Valid() && it->key().starts_with("r/"); it->Next())
    out.emplace_back(it->key().ToString().substr(2), it->value().ToString());
  CheckStatus(it->status(), db_path());
  return out;
}

void Store::UpdateRefs(const std::string& repo, const std::vector<RefUpdate>& updates) {
  RequireDb(db_, "object");
  RequireWritable(options_);
  rocksdb::WriteBatch batch;
  for (const RefUpdate& u : updates) {
    std::string key = RefKey(repo, u.name);
    if (u.remove) batch.Delete(cfs_[kRefs], key);
    else if (!u.symbolic.empty()) batch.Put(cfs_[kRefs], key, "ref: " + u.symbolic);
    else if (u.target.size() == 20) batch.Put(cfs_[kRefs], key, u.target);
    else throw GutsError(Code::InvalidArgument, "ref " + u.name + " needs a 20-byte target or a symbolic target");
  }
  if (batch.Count() == 0) return;
  StampCommitTime(&batch, NowMicros());
  CheckStatus(db_->Write(rocksdb::WriteOptions(), &batch), db_path());
}

std::vector<RefValue> Store::GetRefs(const std::string& repo) {
  RequireDb(db_, "object");
  std::vector<RefValue> out;
  std::string prefix = RefKey(repo, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kRefs]));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    RefValue r;
    r.name = it->key().ToString().substr(prefix.size());
    std::string v = it->value().ToString();
    if (v.compare(0, 5, "ref: ") == 0) r.symbolic = v.substr(5);
    else r.target = v;
    out.push_back(std::move(r));
  }
  CheckStatus(it->status(), db_path());
  return out;
}

ObjectCounts Store::Counts() {
  RequireDb(db_, "object");
  ObjectCounts c;
  uint64_t* fields[5] = {&c.commit, &c.tree, &c.blob, &c.tag, &c.repos};
  std::string v;
  for (int i = 0; i < 5; i++) {
    rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), cfs_[kMeta], kCountKeys[i], &v);
    if (st.IsNotFound()) continue;
    CheckStatus(st, db_path());
    *fields[i] = DecodeCount(v);
  }
  return c;
}

void Store::PutBlocks(const std::vector<std::pair<uint64_t, std::string>>& blocks, int64_t finalized) {
  RequireDb(consensus_, "consensus");
  RequireWritable(options_);
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  uint64_t count = BlockCount();
  std::string v;
  for (const auto& b : blocks) {
    rocksdb::Status st = consensus_->Get(rocksdb::ReadOptions(), HeightKey(b.first), &v);
    if (st.IsNotFound()) count++;
    else CheckStatus(st, consensus_path());
    batch.Put(HeightKey(b.first), b.second);
  }
  batch.Put("count/blocks", EncodeCount(count));
  if (finalized >= 0) batch.Put("finalized", EncodeCount(static_cast<uint64_t>(finalized)));
  StampCommitTime(&batch, NowMicros());
  CheckStatus(consensus_->Write(rocksdb::WriteOptions(), &batch), consensus_path());
}

bool Store::GetBlock(uint64_t height, std::string* out) {
  RequireDb(consensus_, "consensus");
  rocksdb::Status st = consensus_->Get(rocksdb::ReadOptions(), HeightKey(height), out);
  if (st.IsNotFound()) return false;
  CheckStatus(st, consensus_path());
  return true;
}

static uint64_t ReadCount(rocksdb::DB* db, const char* key, const std::string& path) {
  std::string v;
  rocksdb::Status st = db->Get(rocksdb::ReadOptions(), key, &v);
  if (st.IsNotFound()) return 0;
  CheckStatus(st, path);
  return DecodeCount(v);
}

uint64_t Store::FinalizedHeight() {
  RequireDb(consensus_, "consensus");
  return ReadCount(consensus_, "finalized", consensus_path());
}

uint64_t Store::BlockCount() {
  RequireDb(consensus_, "consensus");
  return ReadCount(consensus_, "count/blocks", consensus_path());
}

void Store::FlushAndSync() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (db_ && !options_.read_only) {
    CheckStatus(db_->Flush(fo, cfs_), db_path());
    CheckStatus(db_->SyncWAL(), db_path());
  }
  if (consensus_ && !options_.read_only) {
    CheckStatus(consensus_->Flush(fo), consensus_path());
    CheckStatus(consensus_->SyncWAL(), consensus_path());
  }
}

WalMarkResult Store::PutWalMark(const std::string& name) {
  RequireDb(db_, "object");
  RequireWritable(options_);
  WalMarkResult r;
  r.time_us = NowMicros();
  rocksdb::WriteBatch batch;
  // A real key with the marker: recovery skips LogData, and a log iterator
  // misses a LogData-only batch at the very end of the log.
  batch.Put(cfs_[kMeta], kWalMarkKeyPrefix + name, EncodeCount(r.time_us));
  StampCommitTime(&batch, r.time_us);
  batch.PutLogData(std::string(kWalMarkTag, 2) + name);
  CheckStatus(db_->Write(rocksdb::WriteOptions(), &batch), db_path());
  // The write path stores the assigned sequence in the batch header.
  r.seq = 0;
  for (int i = 7; i >= 0; i--) r.seq = (r.seq << 8) | static_cast<uint8_t>(batch.Data()[i]);
  return r;
}

uint64_t Store::DbSequence() const { return db_ ? db_->GetLatestSequenceNumber() : 0; }
uint64_t Store::ConsensusSequence() const { return consensus_ ? consensus_->GetLatestSequenceNumber() : 0; }

}  // namespace guts
