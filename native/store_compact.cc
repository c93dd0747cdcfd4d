#include "store_compact.h"

#include <rocksdb/table_properties.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <utility>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "errors.h"
#include "priority.h"
#include "store_napi.h"
#include "store_options.h"

namespace guts {

namespace {

struct Target {
  rocksdb::DB* db;
  rocksdb::ColumnFamilyHandle* cf;
};

std::vector<Target> Targets(Store& store) {
  std::vector<Target> out;
  if (store.db())
    for (int i = 0; i < Store::kCfCount; i++) out.push_back({store.db(), store.cf(static_cast<Store::Cf>(i))});
  if (store.consensus()) out.push_back({store.consensus(), store.consensus()->DefaultColumnFamily()});
  return out;
}

// The lowest file number of the column family's SSTs (UINT64_MAX: none) and
// the highest: a file numbered at most `highest` before a compaction was not
// written by it.
std::pair<uint64_t, uint64_t> CfFileNumbers(const Target& t) {
  rocksdb::ColumnFamilyMetaData md;
  t.db->GetColumnFamilyMetaData(t.cf, &md);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const auto& level : md.levels)
    for (const auto& f : level.files) {
      uint64_t n = std::strtoull(f.name.c_str() + (f.name[0] == '/' ? 1 : 0), nullptr, 10);
      lo = std::min(lo, n), hi = std::max(hi, n);
    }
  return {lo, hi};
}

uint64_t CfBytes(const Target& t) {
  rocksdb::ColumnFamilyMetaData md;
  t.db->GetColumnFamilyMetaData(t.cf, &md);
  return md.size;
}

// RocksDB's table property names ("Snappy", "LZ4", "ZSTD", "NoCompression")
// as lower-case keys.
std::string CompressionKey(const std::string& name) {
  if (name == "NoCompression") return "none";
  if (name == "ZSTDNotFinal") return "zstd";
  std::string k;
  for (char c : name) k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return k;
}

void Summarize(const Target& t, SstSummary* s) {
  rocksdb::ColumnFamilyMetaData md;
  t.db->GetColumnFamilyMetaData(t.cf, &md);
  rocksdb::TablePropertiesCollection props;
  t.db->GetPropertiesOfAllTables(t.cf, &props);
  for (const auto& level : md.levels) {
    for (const auto& f : level.files) {
      s->files++;
      s->bytes += f.size;
      std::string name = "unknown";
      auto it = props.find(f.db_path + f.name);
      if (it != props.end()) {
        const rocksdb::TableProperties& tp = *it->second;
        name = CompressionKey(tp.compression_name);
        s->data += tp.data_size;
        s->index += tp.index_size;
        s->filter += tp.filter_size;
        s->raw_key += tp.raw_key_size;
        s->raw_value += tp.raw_value_size;
        s->entries += tp.num_entries;
      }
      s->compression[name] += f.size;
    }
  }
}

// Calls DisableManualCompaction on `db` once the task is cancelled, so a long
// CompactRange stops at its next check; joined before the compaction returns.
class CancelWatch {
 public:
  CancelWatch(rocksdb::DB* db, TaskState& state) : db_(db), state_(state) {
    thread_ = std::thread([this] {
      NameThisThread("guts-compact");
      std::unique_lock<std::mutex> lock(mu_);
      while (!done_) {
        if (state_.cancelled.load()) {
          db_->DisableManualCompaction();
          disabled_ = true;
          return;
        }
        cv_.wait_for(lock, std::chrono::milliseconds(100));
      }
    });
  }
  ~CancelWatch() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
    if (disabled_) db_->EnableManualCompaction();
  }

 private:
  rocksdb::DB* db_;
  TaskState& state_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, disabled_ = false;
  std::thread thread_;
};

}  // namespace

SstSummary SummarizeSsts(Store& store) {
  SstSummary s;
  for (const Target& t : Targets(store)) Summarize(t, &s);
  return s;
}

CompactReport CompactStore(Store& store, TaskState& state) {
  if (!store.db() && !store.consensus()) throw GutsError(Code::Closed, "store is not open");
  std::vector<Target> targets = Targets(store);
  CompactReport r;
  r.before = SummarizeSsts(store);
  state.total = r.before.bytes;
  for (const Target& t : targets) {
    state.CheckCancelled();
    uint64_t bytes = CfBytes(t);
    rocksdb::CompactRangeOptions co;
    co.exclusive_manual_compaction = false;  // the node's flushes and compactions go on
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    const uint64_t written_before = CfFileNumbers(t).second;
    // CompactRange plans its levels once: an automatic compaction running
    // beside it (non-exclusive, so a node's writes go on) can trivially move
    // an old file below the last level it planned, where it stays in the old
    // format. Run it again while a file from before remains (rarely a second
    // pass; bounded).
    for (int pass = 0; pass < 4; pass++) {
      rocksdb::Status st;
      {
        CancelWatch watch(t.db, state);
        st = t.db->CompactRange(co, t.cf, nullptr, nullptr);
      }
      state.CheckCancelled();
      CheckStatus(st, t.db->GetName());
      if (CfFileNumbers(t).first > written_before) break;
    }
    state.done += bytes;
    state.files++;
    r.column_families++;
  }
  r.after = SummarizeSsts(store);
  return r;
}

namespace {

Napi::Object SummaryJs(Napi::Env e, const SstSummary& s, bool parts = false) {
  Napi::Object o = Napi::Object::New(e);
  o.Set("files", Napi::Number::New(e, static_cast<double>(s.files)));
  o.Set("bytes", Napi::Number::New(e, static_cast<double>(s.bytes)));
  Napi::Object c = Napi::Object::New(e);
  for (const auto& kv : s.compression) c.Set(kv.first, Napi::Number::New(e, static_cast<double>(kv.second)));
  o.Set("compression", c);
  if (parts) {
    Napi::Object p = Napi::Object::New(e);
    auto num = [&](const char* k, uint64_t v) { p.Set(k, Napi::Number::New(e, static_cast<double>(v))); };
    num("data", s.data);
    num("index", s.index);
    num("filter", s.filter);
    num("rawKey", s.raw_key);
    num("rawValue", s.raw_value);
    num("entries", s.entries);
    o.Set("parts", p);
  }
  return o;
}

// compactStore(store) -> TaskHandle
Napi::Value CompactStoreJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto state = std::make_shared<TaskState>();
  auto out = std::make_shared<CompactReport>();
  auto* w = new LambdaWorker(
      env, [store, state, out]() { *out = CompactStore(*store, *state); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("before", SummaryJs(e, out->before));
        r.Set("after", SummaryJs(e, out->after));
        r.Set("columnFamilies", Napi::Number::New(e, static_cast<double>(out->column_families)));
        return r;
      },
      [wrap]() { wrap->EndOp(); });
  return MakeTaskHandle(env, w->Start(), state);
}

// sstSummary(store) -> Promise<{files, bytes, compression, parts: {data, index,
// filter, rawKey, rawValue, entries}}> (parts: table properties, summed)
Napi::Value SstSummaryJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto out = std::make_shared<SstSummary>();
  auto* w = new LambdaWorker(
      env, [store, out]() { *out = SummarizeSsts(*store); }, [out](Napi::Env e) -> Napi::Value { return SummaryJs(e, *out, true); },
      [wrap]() { wrap->EndOp(); });
  return w->Start();
}

// backgroundWork(store) -> number: flushes and compactions running or pending
// in both RocksDB instances (benchmarks wait for 0 to charge a write run with
// the compaction work it caused).
Napi::Value BackgroundWorkJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  uint64_t n = 0;
  for (const Target& t : Targets(*store)) {
    uint64_t v = 0;
    if (t.db->GetIntProperty(t.cf, "rocksdb.compaction-pending", &v)) n += v;
    if (t.db->GetIntProperty(t.cf, "rocksdb.mem-table-flush-pending", &v)) n += v;
  }
  for (rocksdb::DB* db : {store->db(), store->consensus()}) {
    uint64_t v = 0;
    if (db && db->GetIntProperty("rocksdb.num-running-compactions", &v)) n += v;
    if (db && db->GetIntProperty("rocksdb.num-running-flushes", &v)) n += v;
  }
  wrap->EndOp();
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace

void InitStoreCompact(Napi::Env env, Napi::Object exports) {
  exports.Set("compactStore", Napi::Function::New(env, CompactStoreJs));
  exports.Set("sstSummary", Napi::Function::New(env, SstSummaryJs));
  exports.Set("backgroundWork", Napi::Function::New(env, BackgroundWorkJs));
  std::vector<std::string> names = SupportedCompressions();
  Napi::Array arr = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); i++) arr.Set(i, names[i]);
  exports.Set("compressions", arr);
}

}  // namespace guts
