#include "object_verifier.h"

#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table_properties.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "errors.h"
#include "hashing.h"
#include "priority.h"
#include "store_napi.h"

namespace guts {

namespace {

// Problems kept in full; beyond this only a count (memory stays flat even
// when every object of a huge store is corrupt).
constexpr size_t kMaxProblems = 10000;
// Key ranges of the objects CF handed out to threads. Ids are uniformly
// distributed SHA-1s, so equal slices of the 2-byte prefix space are equal
// amounts of work; many ranges keep the threads busy to the end, but each
// range must be large enough that its iterator's readahead (on every
// overlapping SST) is not mostly wasted.
constexpr int kMaxRanges = 1024;
constexpr uint64_t kTargetRangeBytes = 8 << 20;
// Explicit readahead for whole-file scans (checksums, small CFs). The object
// scan uses RocksDB's auto readahead (grows to 256 KiB per sequential file).
constexpr size_t kReadahead = 2 << 20;

std::string Hex(const rocksdb::Slice& s) { return ToHex(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

// Lower bound of range k of n as a 2-byte big-endian prefix.
std::string RangeBound(int k, int n) {
  uint32_t p = static_cast<uint32_t>((static_cast<uint64_t>(k) * 65536) / n);
  std::string s(2, '\0');
  s[0] = static_cast<char>(p >> 8);
  s[1] = static_cast<char>(p & 0xff);
  return s;
}

// Object keys are 20-byte ids; bounds of unreadable key ranges are kept as
// 20-byte keys too (a range's 2-byte prefix bound padded with zeros), so
// ranges compare and merge bytewise. An empty string is the end of the key space.
std::string Pad20(const std::string& k) {
  std::string s = k.substr(0, 20);
  s.resize(20, '\0');
  return s;
}

// k + 1 as a 160-bit big-endian number; false when k is all 0xff.
bool Increment20(std::string& k) {
  for (int i = 19; i >= 0; i--) {
    if (static_cast<uint8_t>(k[i]) != 0xff) {
      k[i] = static_cast<char>(static_cast<uint8_t>(k[i]) + 1);
      return true;
    }
    k[i] = '\0';
  }
  return false;
}

// floor((a + b) / 2) of two 20-byte keys; b empty = 2^160.
std::string Midpoint20(const std::string& a, const std::string& b) {
  uint8_t sum[21];
  unsigned carry = 0;
  for (int i = 19; i >= 0; i--) {
    unsigned v = static_cast<uint8_t>(a[i]) + (b.empty() ? 0u : static_cast<uint8_t>(b[i])) + carry;
    sum[i + 1] = static_cast<uint8_t>(v & 0xff);
    carry = v >> 8;
  }
  sum[0] = static_cast<uint8_t>(carry + (b.empty() ? 1 : 0));
  std::string m(20, '\0');
  for (int i = 0; i < 20; i++) m[i] = static_cast<char>(((sum[i] & 1) << 7) | (sum[i + 1] >> 1));
  return m;
}

// a < b for 20-byte keys, b empty = the end of the key space.
bool KeyBefore(const std::string& a, const std::string& b) { return b.empty() || a < b; }

ObjectProblem MakeProblem(const char* kind, std::string message, std::string id = "") {
  ObjectProblem p;
  p.kind = kind;
  p.message = std::move(message);
  p.id = std::move(id);
  return p;
}

const char* StatusKind(const rocksdb::Status& s) { return s.IsCorruption() ? "CORRUPT" : "ERROR"; }

// Runs fn(i) for i in [0, n) on up to `threads` threads; rethrows the first
// exception after all threads have stopped.
template <typename Fn>
void ParallelFor(int threads, int n, Fn fn) {
  std::atomic<int> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::exception_ptr error;
  auto body = [&]() {
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) return;
      int i = next.fetch_add(1);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        stop = true;
        return;
      }
    }
  };
  int t = std::max(1, std::min(threads, n));
  // The threads use this frame's locals (fn's captures, next, error): they
  // are joined before it unwinds, also when starting one fails (a joinable
  // std::thread destroyed would terminate the process).
  std::vector<std::thread> pool;
  struct Joiner {
    std::vector<std::thread>& pool;
    std::atomic<bool>& stop;
    ~Joiner() {
      stop = true;
      for (auto& th : pool) th.join();
    }
  } joiner{pool, stop};
  for (int i = 1; i < t; i++)
    pool.emplace_back([&] {
      NameThisThread("guts-verify");
      body();
    });
  body();
  for (auto& th : pool) th.join();
  pool.clear();
  if (error) std::rethrow_exception(error);
}

// Stored count under `key` of db/cf; nullopt-like: ok=false when undecodable.
bool ReadStoredCount(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const char* key, const std::string& label,
                     uint64_t* out, std::vector<ObjectProblem>* problems) {
  std::string v;
  rocksdb::Status st = cf ? db->Get(rocksdb::ReadOptions(), cf, key, &v) : db->Get(rocksdb::ReadOptions(), key, &v);
  *out = 0;
  if (st.IsNotFound()) return true;
  if (!st.ok()) {
    problems->push_back(MakeProblem(StatusKind(st), label + " " + key + ": " + st.ToString()));
    return false;
  }
  if (v.size() != 8) {
    problems->push_back(MakeProblem("CORRUPT", label + " " + key + ": " + std::to_string(v.size()) + " bytes, not an 8-byte count"));
    return false;
  }
  *out = DecodeCount(v);
  return true;
}

// Guards live SST files against deletion by compactions while we read them
// (only matters for a writable store; a read-only store never deletes).
struct FileDeletionGuard {
  rocksdb::DB* db;
  bool disabled = false;
  explicit FileDeletionGuard(rocksdb::DB* d) : db(d) {
    if (db) disabled = db->DisableFileDeletions().ok();
  }
  ~FileDeletionGuard() {
    if (disabled) db->EnableFileDeletions(false);
  }
};

}  // namespace

ChecksumReport VerifyChecksums(Store& store, int threads, bool skip_objects) {
  struct File {
    std::string path, label;
    uint64_t size;
    bool repo_data;  // refs or repos CF of db/: damage there may touch any repository
  };
  std::vector<File> files;
  FileDeletionGuard g1(store.db()), g2(store.consensus());
  auto collect = [&](rocksdb::DB* db, const char* label) {
    if (!db) return;
    std::vector<rocksdb::LiveFileMetaData> md;
    db->GetLiveFilesMetaData(&md);
    for (auto& m : md) {
      if (skip_objects && db == store.db() && m.column_family_name == "objects") continue;
      bool repo_data = db == store.db() && (m.column_family_name == "refs" || m.column_family_name == "repos");
      files.push_back({m.db_path + m.name, std::string(label) + m.name, m.size, repo_data});
    }
  };
  collect(store.db(), "db");
  collect(store.consensus(), "consensus");

  ChecksumReport report;
  std::mutex mu;
  ParallelFor(threads, static_cast<int>(files.size()), [&](int i) {
    const File& f = files[i];
    rocksdb::Options options;
    rocksdb::SstFileReader reader(options);
    rocksdb::Status st = reader.Open(f.path);
    if (st.ok()) {
      rocksdb::ReadOptions ro;
      ro.verify_checksums = true;
      ro.fill_cache = false;
      ro.readahead_size = kReadahead;
      st = reader.VerifyChecksum(ro);
    }
    std::lock_guard<std::mutex> lock(mu);
    report.files++;
    report.bytes += f.size;
    if (!st.ok()) {
      report.problems.push_back(MakeProblem(StatusKind(st), "sst " + f.label + ": " + st.ToString()));
      report.problems.back().repos_unknown = f.repo_data;
    }
  });

  // Store metadata: every stored count must decode.
  if (store.db()) {
    uint64_t v;
    for (const char* key : kCountKeys) ReadStoredCount(store.db(), store.cf(Store::kMeta), key, "meta", &v, &report.problems);
  }
  if (store.consensus()) {
    uint64_t v;
    ReadStoredCount(store.consensus(), nullptr, "count/blocks", "consensus", &v, &report.problems);
    ReadStoredCount(store.consensus(), nullptr, "finalized", "consensus", &v, &report.problems);
  }
  return report;
}

namespace {

void AddProblem(ObjectReport& report, ObjectProblem p) {
  if (report.problems.size() >= kMaxProblems) report.problems_dropped++;
  else report.problems.push_back(std::move(p));
}

// Objects, counts, repositories, refs of db/.
void VerifyObjectStore(Store& store, int threads, TaskState& state, ObjectReport& report, bool rehash) {
  rocksdb::DB* db = store.db();
  rocksdb::ColumnFamilyHandle* objects_cf = store.cf(Store::kObjects);

  // Progress total: uncompressed value bytes of the SSTs plus the memtables.
  uint64_t total = 0;
  {
    uint64_t mem = 0;
    rocksdb::TablePropertiesCollection props;
    if (db->GetPropertiesOfAllTables(objects_cf, &props).ok())
      for (auto& p : props) total += p.second->raw_value_size;
    if (db->GetIntProperty(objects_cf, "rocksdb.cur-size-all-mem-tables", &mem)) total += mem;
    state.total = total;
  }
  const int ranges = static_cast<int>(std::min<uint64_t>(
      kMaxRanges, std::max<uint64_t>(static_cast<uint64_t>(threads) * 4, total / kTargetRangeBytes)));

  std::mutex mu;
  // raw id -> index into report.problems, for naming repositories later.
  std::unordered_map<std::string, size_t> corrupt;

  auto add_problem = [&](ObjectProblem p, const std::string& raw_id) {
    // caller holds mu
    if (report.problems.size() >= kMaxProblems) {
      report.problems_dropped++;
      return;
    }
    if (!raw_id.empty()) corrupt.emplace(raw_id, report.problems.size());
    report.problems.push_back(std::move(p));
  };

  // Unreadable key intervals [from, to) of the objects CF (to empty: the end
  // of the key space). A bad data block ends one iterator; the interval it
  // covers is found by probing (FindReadableFrom) and the scan resumes after it,
  // so every readable object is still checked and the repositories owning
  // objects in the interval can be named from the membership index.
  struct BadInterval {
    std::string from, to;
    const char* kind;
    std::string status;
  };
  std::vector<BadInterval> bad;

  ParallelFor(threads, ranges, [&](int k) {
    const std::string lo = RangeBound(k, ranges), hi = k + 1 < ranges ? RangeBound(k + 1, ranges) : "";
    const std::string range_end = hi.empty() ? "" : Pad20(hi);
    rocksdb::Slice lo_s(lo), hi_s(hi);
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // a full scan must not evict the node's working set
    ro.verify_checksums = true;
    if (k > 0) ro.iterate_lower_bound = &lo_s;
    if (k + 1 < ranges) ro.iterate_upper_bound = &hi_s;
    // Whether a seek to `x` hits an unreadable block. For x past the last key
    // read, the first key >= x lies in the bad block until x passes the bad
    // block's last key: so the predicate is true up to a boundary, then false.
    auto seek_fails = [&](const std::string& x) {
      std::unique_ptr<rocksdb::Iterator> probe(db->NewIterator(ro, objects_cf));
      probe->Seek(x);
      return !probe->status().ok();
    };
    // Smallest 20-byte key >= `from` whose seek succeeds (binary search over
    // the 160-bit key space, ~160 probes); empty when none before range_end.
    auto find_readable_from = [&](const std::string& from) -> std::string {
      std::string bad_key = from, good = range_end;
      if (!seek_fails(bad_key)) return bad_key;
      for (;;) {
        std::string next = bad_key;
        if (!Increment20(next) || !KeyBefore(next, good)) break;  // good == bad_key + 1
        std::string mid = Midpoint20(bad_key, good);
        if (mid == bad_key) mid = next;
        if (seek_fails(mid)) bad_key = mid;
        else good = mid;
      }
      return good;
    };
    Digest sha1(Digest::kSha1);
    ObjectCounts local;
    uint64_t objects = 0, bytes = 0, unreported = 0, dropped = 0;
    std::vector<std::pair<ObjectProblem, std::string>> found;
    std::vector<BadInterval> local_bad;
    uint8_t id[20];
    std::string start = Pad20(lo);  // where the next iterator starts
    for (;;) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, objects_cf));
      std::string last;  // last key read by this iterator
      if (k > 0 || !local_bad.empty()) it->Seek(start);
      else it->SeekToFirst();
      for (; it->Valid(); it->Next()) {
        rocksdb::Slice key = it->key(), value = it->value();
        last.assign(key.data(), key.size());
        objects++;
        bytes += value.size() ? value.size() - 1 : 0;
        unreported += value.size();
        if ((objects & 1023) == 0) {
          state.done += unreported;
          state.files += 1024;
          unreported = 0;
          state.CheckCancelled();
        }
        if (key.size() != 20) {
          std::string hex = Hex(key);
          found.emplace_back(MakeProblem("CORRUPT", "object key " + hex + " is " + std::to_string(key.size()) + " bytes, not 20", hex),
                             key.ToString());
          continue;
        }
        int type = value.size() ? static_cast<uint8_t>(value[0]) : -1;
        if (!ObjectTypeName(type)) {
          std::string why = value.size() ? "invalid type byte " + std::to_string(type) : "empty value";
          std::string hex = Hex(key);
          found.emplace_back(MakeProblem("CORRUPT", "object " + hex + ": " + why, hex), key.ToString());
          continue;
        }
        local.ForType(type)++;
        if (!rehash) continue;  // the decode floor (debugDecodeObjects)
        GitObjectId(sha1, type, reinterpret_cast<const uint8_t*>(value.data()) + 1, value.size() - 1, id);
        if (std::memcmp(id, key.data(), 20) != 0) {
          std::string hex = Hex(key);
          found.emplace_back(MakeProblem("CORRUPT", "object " + hex + ": " + ObjectTypeName(type) + " content hashes to " + ToHex(id, 20), hex),
                             key.ToString());
        }
        if (found.size() > kMaxProblems) {
          found.pop_back();
          dropped++;
        }
      }
      rocksdb::Status st = it->status();
      if (st.ok()) break;
      // Unreadable from just after the last key read (or from where this iterator started).
      std::string from = start;
      if (!last.empty()) {
        from = Pad20(last);
        if (last.size() >= 20 && !Increment20(from)) break;  // the last possible key was read
      }
      // A bad block straddling this range's end fails a seek to the end
      // itself: nothing of this range is left, the next range reports it
      // (an empty interval here would overlap the neighbour's).
      if (!KeyBefore(from, range_end)) break;
      std::string resume = find_readable_from(from);
      if (resume == from) resume.clear();  // readable again at once: not a block problem, stop here
      local_bad.push_back({from, resume.empty() ? range_end : resume, StatusKind(st), st.ToString()});
      if (resume.empty() || local_bad.size() > 64) break;  // the rest of the range is unreadable (or too damaged to map)
      state.CheckCancelled();
      start = resume;
    }
    state.done += unreported;
    state.files += objects & 1023;
    std::lock_guard<std::mutex> lock(mu);
    for (auto& b : local_bad) bad.push_back(std::move(b));
    report.objects += objects;
    report.bytes += bytes;
    report.counts.commit += local.commit;
    report.counts.tree += local.tree;
    report.counts.blob += local.blob;
    report.counts.tag += local.tag;
    report.problems_dropped += dropped;
    for (auto& f : found) add_problem(std::move(f.first), f.second);
  });

  // One line per run of adjacent unreadable intervals with the same cause
  // (a bad block spanning two work ranges is one interval).
  std::sort(bad.begin(), bad.end(), [](const BadInterval& a, const BadInterval& b) {
    if (a.from != b.from) return a.from < b.from;
    return !a.to.empty() && (b.to.empty() || a.to < b.to);  // empty `to`: the end of the key space
  });
  std::vector<BadInterval> merged;
  for (auto& b : bad) {
    if (!merged.empty() && !merged.back().to.empty() && merged.back().to == b.from && merged.back().status == b.status) merged.back().to = b.to;
    else merged.push_back(std::move(b));
  }
  // index into report.problems of each merged interval's line
  std::vector<size_t> bad_lines;
  for (auto& b : merged) {
    bad_lines.push_back(report.problems.size());
    add_problem(MakeProblem(b.kind, "objects key range " + Hex(b.from) + ".." + (b.to.empty() ? std::string("end") : Hex(b.to)) +
                                        " unreadable: " + b.status),
                "");
  }
  const bool unreadable = !merged.empty();

  // Recount against the stored counts (kept transactionally in meta).
  rocksdb::ColumnFamilyHandle* meta_cf = store.cf(Store::kMeta);
  const char* names[4] = {"commit", "tree", "blob", "tag"};
  uint64_t* found_counts[4] = {&report.counts.commit, &report.counts.tree, &report.counts.blob, &report.counts.tag};
  uint64_t* stored_counts[4] = {&report.stored.commit, &report.stored.tree, &report.stored.blob, &report.stored.tag};
  for (int t = 0; t < 4; t++) {
    std::vector<ObjectProblem> ps;
    if (ReadStoredCount(db, meta_cf, kCountKeys[t], "meta", stored_counts[t], &ps)) {
      // With unreadable ranges the recount is incomplete: not a mismatch.
      if (!unreadable && *stored_counts[t] != *found_counts[t])
        ps.push_back(MakeProblem("MISMATCH", std::string(names[t]) + " count: stored " + std::to_string(*stored_counts[t]) +
                                                 ", found " + std::to_string(*found_counts[t])));
    }
    for (auto& p : ps) add_problem(std::move(p), "");
  }
  if (unreadable)
    add_problem(MakeProblem("ERROR", "object counts not compared: part of the objects column family is unreadable"), "");

  rocksdb::ColumnFamilyHandle* repos_cf = store.cf(Store::kRepos);
  rocksdb::ReadOptions scan;
  scan.fill_cache = false;
  scan.verify_checksums = true;
  scan.readahead_size = kReadahead;

  // Repository records and their count.
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scan, repos_cf));
    uint64_t n = 0;
    for (it->Seek("r/"); it->Valid() && it->key().starts_with("r/"); it->Next()) n++;
    if (!it->status().ok()) add_problem(MakeProblem(StatusKind(it->status()), "repository records unreadable: " + it->status().ToString()), "");
    report.repos = n;
    std::vector<ObjectProblem> ps;
    if (ReadStoredCount(db, meta_cf, kCountKeys[4], "meta", &report.stored.repos, &ps) && report.stored.repos != n)
      ps.push_back(MakeProblem("MISMATCH", "repository count: stored " + std::to_string(report.stored.repos) + ", found " + std::to_string(n)));
    for (auto& p : ps) add_problem(std::move(p), "");
    report.counts.repos = n;
  }
  state.CheckCancelled();

  // Every ref points to an existing object (symbolic refs may dangle: an
  // unborn HEAD is legal in git).
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scan, store.cf(Store::kRefs)));
    rocksdb::ReadOptions get;
    get.fill_cache = false;
    rocksdb::PinnableSlice v;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rocksdb::Slice key = it->key(), value = it->value();
      report.refs++;
      const char* nul = static_cast<const char*>(std::memchr(key.data(), '\0', key.size()));
      if (!nul) {
        add_problem(MakeProblem("CORRUPT", "ref key " + Hex(key) + " has no repository separator"), "");
        continue;
      }
      std::string repo(key.data(), nul - key.data()), name(nul + 1, key.data() + key.size() - nul - 1);
      if (value.starts_with("ref: ")) continue;
      if (value.size() != 20) {
        ObjectProblem p = MakeProblem("CORRUPT", "ref " + repo + " " + name + " has an invalid value of " + std::to_string(value.size()) + " bytes");
        p.repos.push_back(repo);
        add_problem(std::move(p), "");
        continue;
      }
      v.Reset();
      rocksdb::Status st = db->Get(get, objects_cf, value, &v);
      if (st.ok()) continue;
      ObjectProblem p = st.IsNotFound()
                            ? MakeProblem("ERROR", "ref " + repo + " " + name + " points to missing object " + Hex(value), Hex(value))
                            : MakeProblem("ERROR", "ref " + repo + " " + name + " -> " + Hex(value) + ": " + st.ToString(), Hex(value));
      p.repos.push_back(repo);
      add_problem(std::move(p), "");
    }
    if (!it->status().ok()) add_problem(MakeProblem(StatusKind(it->status()), "refs unreadable: " + it->status().ToString()), "");
  }
  state.CheckCancelled();

  // Name the repositories of corrupt objects and of unreadable key ranges:
  // one scan of the membership keys "m/<repo>\0<id>", only when something is
  // corrupt. When the index itself cannot be read, the problems say that the
  // repositories cannot be told (every repository may be affected).
  if (!corrupt.empty() || unreadable) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scan, repos_cf));
    std::vector<std::string> last_repo(merged.size());  // keys come sorted by repository: add each once
    for (it->Seek("m/"); it->Valid() && it->key().starts_with("m/"); it->Next()) {
      rocksdb::Slice k = it->key();
      if (k.size() < 2 + 1 + 1 + 20 || k[k.size() - 21] != '\0') continue;
      std::string raw(k.data() + k.size() - 20, 20);
      if (!corrupt.empty()) {
        auto f = corrupt.find(raw);
        if (f != corrupt.end()) {
          auto& repos = report.problems[f->second].repos;
          if (repos.size() < 1000) repos.emplace_back(k.data() + 2, k.size() - 23);
        }
      }
      if (unreadable) {
        // the last interval starting at or before raw
        auto after = std::upper_bound(merged.begin(), merged.end(), raw, [](const std::string& id, const BadInterval& b) { return id < b.from; });
        if (after == merged.begin()) continue;
        size_t i = static_cast<size_t>(after - merged.begin()) - 1;
        if (!KeyBefore(raw, merged[i].to) || bad_lines[i] >= report.problems.size()) continue;
        std::string repo(k.data() + 2, k.size() - 23);
        if (repo == last_repo[i]) continue;
        last_repo[i] = repo;
        auto& repos = report.problems[bad_lines[i]].repos;
        if (repos.size() < 1000) repos.push_back(std::move(repo));
      }
    }
    if (!it->status().ok()) {
      add_problem(MakeProblem(StatusKind(it->status()), "repository membership unreadable: " + it->status().ToString()), "");
      for (size_t i : bad_lines)
        if (i < report.problems.size()) report.problems[i].repos_unknown = true;
      for (auto& c : corrupt) report.problems[c.second].repos_unknown = true;
    }
  }
}

// Consensus: block count and finalized height agree with the blocks.
void VerifyConsensus(Store& store, ObjectReport& report) {
  rocksdb::DB* c = store.consensus();
  if (!c) return;
  rocksdb::ReadOptions scan;
  scan.fill_cache = false;
  scan.verify_checksums = true;
  scan.readahead_size = kReadahead;
  {
    std::unique_ptr<rocksdb::Iterator> it(c->NewIterator(scan));
    uint64_t n = 0, highest = 0;
    bool any = false;
    for (it->Seek("h/"); it->Valid() && it->key().starts_with("h/"); it->Next()) {
      n++;
      rocksdb::Slice k = it->key();
      if (k.size() == 10) {
        uint64_t h = 0;
        for (int i = 2; i < 10; i++) h = (h << 8) | static_cast<uint8_t>(k[i]);
        highest = h;
        any = true;
      }
    }
    if (!it->status().ok()) AddProblem(report, MakeProblem(StatusKind(it->status()), "consensus blocks unreadable: " + it->status().ToString()));
    std::vector<ObjectProblem> ps;
    uint64_t stored = 0, finalized = 0;
    if (ReadStoredCount(c, nullptr, "count/blocks", "consensus", &stored, &ps) && stored != n)
      ps.push_back(MakeProblem("MISMATCH", "consensus block count: stored " + std::to_string(stored) + ", found " + std::to_string(n)));
    if (ReadStoredCount(c, nullptr, "finalized", "consensus", &finalized, &ps) && finalized > 0 && (!any || finalized > highest))
      ps.push_back(MakeProblem("MISMATCH", "consensus finalized height " + std::to_string(finalized) + " is beyond the highest block " +
                                               std::to_string(highest)));
    for (auto& p : ps) AddProblem(report, std::move(p));
  }
}

}  // namespace

ObjectReport VerifyObjects(Store& store, int threads, TaskState& state, bool rehash) {
  if (!store.db() && !store.consensus()) throw GutsError(Code::Closed, "store is not open");
#ifdef __GLIBC__
  // A large object is one data block: read, decompressed, hashed, freed, per
  // thread. glibc's dynamic mmap threshold would move such buffers into the
  // threads' arenas after the first free, where they stay (RSS grows with the
  // largest objects seen, per thread). A fixed threshold hands every buffer of
  // 1 MiB or more back to the OS when freed. Process-wide, set once.
  static std::once_flag malloc_once;
  std::call_once(malloc_once, [] { mallopt(M_MMAP_THRESHOLD, 1 << 20); });
#endif
  ObjectReport report;
  if (store.db()) VerifyObjectStore(store, threads, state, report, rehash);
  state.CheckCancelled();
  VerifyConsensus(store, report);
  std::set<std::string> affected;
  for (const auto& p : report.problems)
    for (const auto& r : p.repos) affected.insert(r);
  report.affected.assign(affected.begin(), affected.end());
  return report;
}

namespace {

Napi::Array ProblemsJs(Napi::Env e, const std::vector<ObjectProblem>& problems) {
  Napi::Array arr = Napi::Array::New(e, problems.size());
  for (size_t i = 0; i < problems.size(); i++) {
    const ObjectProblem& p = problems[i];
    Napi::Object o = Napi::Object::New(e);
    o.Set("kind", p.kind);
    if (!p.id.empty()) o.Set("id", p.id);
    Napi::Array repos = Napi::Array::New(e, p.repos.size());
    for (size_t j = 0; j < p.repos.size(); j++) repos.Set(j, p.repos[j]);
    o.Set("repositories", repos);
    if (p.repos_unknown) o.Set("repositoriesUnknown", true);
    o.Set("message", p.message);
    arr.Set(i, o);
  }
  return arr;
}

int ThreadsOption(Napi::Value opts) {
  int threads = 0;
  if (opts.IsObject()) {
    Napi::Value t = opts.As<Napi::Object>().Get("threads");
    if (t.IsNumber()) threads = t.As<Napi::Number>().Int32Value();
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::min(threads, 64);
}

// verifyObjects(store, {threads, listAffected}) -> TaskHandle<VerifyObjectsResult>
// debugDecodeObjects(store, {threads}): the same scan without the SHA-1 (test
// hook; the bench's floor: what reading and decompressing the objects costs).
Napi::Value StartVerifyObjects(const Napi::CallbackInfo& info, bool rehash) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  int threads = ThreadsOption(info[1]);
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto state = std::make_shared<TaskState>();
  auto out = std::make_shared<ObjectReport>();
  auto* w = new LambdaWorker(
      env, [store, threads, state, out, rehash]() { *out = VerifyObjects(*store, threads, *state, rehash); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("objects", Napi::Number::New(e, static_cast<double>(out->objects)));
        r.Set("bytes", Napi::Number::New(e, static_cast<double>(out->bytes)));
        r.Set("counts", CountsToJs(e, out->counts));
        r.Set("stored", CountsToJs(e, out->stored));
        r.Set("refs", Napi::Number::New(e, static_cast<double>(out->refs)));
        r.Set("problems", ProblemsJs(e, out->problems));
        r.Set("problemsDropped", Napi::Number::New(e, static_cast<double>(out->problems_dropped)));
        Napi::Array affected = Napi::Array::New(e, out->affected.size());
        for (size_t i = 0; i < out->affected.size(); i++) affected.Set(i, out->affected[i]);
        r.Set("affected", affected);
        return r;
      },
      [wrap]() { wrap->EndOp(); });
  return MakeTaskHandle(env, w->Start(), state);
}

Napi::Value VerifyObjectsJs(const Napi::CallbackInfo& info) { return StartVerifyObjects(info, true); }
Napi::Value DebugDecodeObjectsJs(const Napi::CallbackInfo& info) { return StartVerifyObjects(info, false); }

// verifyChecksums(store, {threads, skipObjects}?) -> Promise<{files, bytes, problems}>
Napi::Value VerifyChecksumsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  int threads = ThreadsOption(info[1]);
  bool skip_objects = info[1].IsObject() && info[1].As<Napi::Object>().Get("skipObjects").ToBoolean();
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto out = std::make_shared<ChecksumReport>();
  auto* w = new LambdaWorker(
      env, [store, threads, skip_objects, out]() { *out = VerifyChecksums(*store, threads, skip_objects); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("files", Napi::Number::New(e, static_cast<double>(out->files)));
        r.Set("bytes", Napi::Number::New(e, static_cast<double>(out->bytes)));
        r.Set("problems", ProblemsJs(e, out->problems));
        return r;
      },
      [wrap]() { wrap->EndOp(); });
  return w->Start();
}

// debugPutRaw(store, cf: 'objects'|'refs'|'repos'|'meta'|'consensus', key: Buffer, value: Buffer|null)
// Test hook only (GUTS_TEST_HOOKS=1 at load): bypasses every invariant.
Napi::Value DebugPutRawJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  if (!info[1].IsString() || !info[2].IsBuffer()) ThrowJs(env, Code::InvalidArgument, "debugPutRaw(store, cf, key, value)");
  std::string cf = info[1].As<Napi::String>();
  auto kb = info[2].As<Napi::Buffer<char>>();
  std::string key(kb.Data(), kb.Length());
  bool remove = !info[3].IsBuffer();
  std::string value;
  if (!remove) {
    auto vb = info[3].As<Napi::Buffer<char>>();
    value.assign(vb.Data(), vb.Length());
  }
  int which = cf == "objects" ? Store::kObjects : cf == "refs" ? Store::kRefs : cf == "repos" ? Store::kRepos : cf == "meta" ? Store::kMeta : cf == "consensus" ? -1 : -2;
  if (which == -2) ThrowJs(env, Code::InvalidArgument, "unknown column family " + cf);
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto* w = new LambdaWorker(
      env,
      [store, which, key, value, remove]() {
        rocksdb::DB* db = which < 0 ? store->consensus() : store->db();
        if (!db) throw GutsError(Code::Closed, "store is not open");
        rocksdb::ColumnFamilyHandle* h = which < 0 ? db->DefaultColumnFamily() : store->cf(static_cast<Store::Cf>(which));
        rocksdb::Status st = remove ? db->Delete(rocksdb::WriteOptions(), h, key) : db->Put(rocksdb::WriteOptions(), h, key, value);
        CheckStatus(st, store->data_dir());
      },
      nullptr, [wrap]() { wrap->EndOp(); });
  return w->Start();
}

}  // namespace

void InitObjectVerifier(Napi::Env env, Napi::Object exports) {
  exports.Set("verifyObjects", Napi::Function::New(env, VerifyObjectsJs));
  exports.Set("verifyChecksums", Napi::Function::New(env, VerifyChecksumsJs));
  const char* hooks = std::getenv("GUTS_TEST_HOOKS");
  if (hooks && std::strcmp(hooks, "1") == 0) {
    exports.Set("debugPutRaw", Napi::Function::New(env, DebugPutRawJs));
    exports.Set("debugDecodeObjects", Napi::Function::New(env, DebugDecodeObjectsJs));
  }
}

}  // namespace guts
