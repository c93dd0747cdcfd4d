#include "wal_reader.h"

#include <rocksdb/memtablerep.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

#include <memory>

#include "errors.h"
#include "store_napi.h"

namespace guts {

static uint64_t Fixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

static uint32_t Fixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

static void EncodeFixed64(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

static void EncodeFixed32(char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

static rocksdb::DB* WhichDb(Store& store, WalDb which, std::string* path) {
  rocksdb::DB* db = which == WalDb::kDb ? store.db() : store.consensus();
  *path = which == WalDb::kDb ? store.db_path() : store.consensus_path();
  if (!db) throw GutsError(Code::Closed, "store " + *path + " is not open");
  return db;
}

// Reads the commit time and restore-point name a batch carries (LogData).
struct StampReader : public rocksdb::WriteBatch::Handler {
  uint64_t time_us = 0;
  bool has_mark = false;
  std::string mark;
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
  rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
  rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override { return rocksdb::Status::OK(); }
  void LogData(const rocksdb::Slice& blob) override {
    if (blob.size() == 10 && memcmp(blob.data(), kWalTimeTag, 2) == 0) time_us = Fixed64(blob.data() + 2);
    else if (blob.size() >= 2 && memcmp(blob.data(), kWalMarkTag, 2) == 0) {
      has_mark = true;
      mark.assign(blob.data() + 2, blob.size() - 2);
    }
  }
};

// Walks a WriteBatch rep without applying it: the records must parse, their
// count match the header, and every column family exist in the store it is
// for (the db store's families, the consensus store's default one). Returns
// an empty string when the batch is valid, else why not.
struct BatchChecker : public rocksdb::WriteBatch::Handler {
  uint32_t max_cf;
  uint32_t bad_cf = 0;
  bool has_bad_cf = false;
  explicit BatchChecker(uint32_t families) : max_cf(families) {}
  rocksdb::Status Cf(uint32_t cf) {
    if (cf < max_cf) return rocksdb::Status::OK();
    has_bad_cf = true;
    bad_cf = cf;
    return rocksdb::Status::Corruption("invalid column family " + std::to_string(cf));
  }
  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice&, const rocksdb::Slice&) override { return Cf(cf); }
  rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice&) override { return Cf(cf); }
  rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice&) override { return Cf(cf); }
  rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice&, const rocksdb::Slice&) override { return Cf(cf); }
  rocksdb::Status MergeCF(uint32_t cf, const rocksdb::Slice&, const rocksdb::Slice&) override { return Cf(cf); }
  void LogData(const rocksdb::Slice&) override {}
};

std::string CheckWalBatch(WalDb which, const rocksdb::Slice& rep) {
  if (rep.size() < 12) return "batch of " + std::to_string(rep.size()) + " bytes is too short";
  if (Fixed32(rep.data() + 8) == 0) return "batch holds no records";
  BatchChecker h(which == WalDb::kDb ? static_cast<uint32_t>(Store::kCfCount) : 1u);
  rocksdb::WriteBatch batch(rep.ToString());
  rocksdb::Status st = batch.Iterate(&h);
  if (st.ok()) return "";
  if (h.has_bad_cf) return "column family " + std::to_string(h.bad_cf) + " does not exist in the " + (which == WalDb::kDb ? "db" : "consensus") + " store";
  return st.ToString();
}

static void Recreate(rocksdb::DB* db, Store::WalCursor& c, uint64_t from, const std::string& path) {
  c = Store::WalCursor();
  rocksdb::Status st = db->GetUpdatesSince(from, &c.it);
  if (st.IsNotFound()) {  // not written yet
    c.it.reset();
    return;
  }
  if (!st.ok()) throw StatusError(st, path);
  c.next = from;
  c.pending = c.it->Valid();
}

WalTailResult TailWal(Store& store, const WalTailInput& in) {
  std::string path;
  rocksdb::DB* db = WhichDb(store, in.which, &path);
  std::lock_guard<std::mutex> lock(store.wal_mu);
  Store::WalCursor& c = store.wal_cursor[static_cast<int>(in.which)];
  WalTailResult r;
  r.latest = db->GetLatestSequenceNumber();
  if (in.from == 0) throw GutsError(Code::InvalidArgument, "walTail: sequences start at 1");
  if (in.from > r.latest) {
    // The store is behind the archive (restored or replaced under it).
    if (in.from > r.latest + 1) r.gap = true, r.gap_expected = in.from, r.gap_found = r.latest + 1;
    return r;
  }
  bool fresh = false;
  if (!c.it || c.next != in.from) {
    Recreate(db, c, in.from, path);
    fresh = true;
  } else if (!c.pending) {
    c.it->Next();  // a kept iterator reads on past its last end of file
    c.pending = c.it->Valid();
  }
  uint64_t expect = in.from;
  size_t bytes = 0;
  for (;;) {
    if (!c.pending) {
      // The iterator only knows the log files that existed when it was made:
      // once it ran out before the latest sequence, start one at `expect`.
      if (fresh || expect > r.latest) break;
      Recreate(db, c, expect, path);
      fresh = true;
      continue;
    }
    rocksdb::BatchResult b = c.it->GetBatch();
    c.pending = false;
    uint32_t count = static_cast<uint32_t>(b.writeBatchPtr->Count());
    if (count > 0 && b.sequence != expect) {
      r.gap = true, r.gap_expected = expect, r.gap_found = b.sequence;
      c = Store::WalCursor();
      return r;
    }
    if (count > 0) {
      WalBatch out;
      StampReader stamps;
      CheckStatus(b.writeBatchPtr->Iterate(&stamps), path);
      out.seq = b.sequence;
      out.count = count;
      out.time_us = stamps.time_us;
      out.has_mark = stamps.has_mark;
      out.mark = std::move(stamps.mark);
      out.data = b.writeBatchPtr->Data();
      bytes += out.data.size();
      expect = b.sequence + count;
      r.batches.push_back(std::move(out));
    }  // else LogData only: nothing to replay, no sequence used
    c.next = expect;
    if (bytes >= in.max_bytes || r.batches.size() >= in.max_batches) return r;
    c.it->Next();
    c.pending = c.it->Valid();
  }
  // `expect` <= latest means a batch holding it was committed: if the log
  // gave nothing for it, the file that held it is gone.
  if (r.batches.empty() && expect <= r.latest) {
    rocksdb::Status its = c.it ? c.it->status() : rocksdb::Status::OK();
    if (!its.IsTryAgain()) {
      r.gap = true, r.gap_expected = expect, r.gap_found = 0;
      c = Store::WalCursor();
    }
  }
  return r;
}

// Consecutive archived batches are replayed as one write: their records are
// concatenated under the first one's header (sequence, summed count), which
// lands every record on exactly the sequence it had, but pays RocksDB's
// per-write cost (write-thread hand-off, one WAL record and syscall) once per
// group instead of once per batch: replay was 3.5x the node's ingest rate with
// one Write per batch, most of it that per-write cost.
static constexpr size_t kReplayGroupBytes = 4 << 20;

// A point-in-time restore replays into a staging store that is discarded
// unless the whole replay succeeds and is flushed, so its writes need no WAL
// (disableWAL); it is written by one thread in sequence order and read only
// after the flush, so its memtables are vectors (an append per record, sorted
// once when flushed) instead of skip lists, whose inserts of random object ids
// were most of the replay's time (perf: InlineSkipList::FindSpliceForLevel).
// Memory stays bounded: 64 MiB memtables, 256 MiB for all of them together.
// Level-0 compactions wait for 16 files instead of 4 (merging the base's files
// with each flush was a tenth of the replay's CPU); the node compacts the
// store once it opens it with its own options.
void TuneForReplay(rocksdb::Options* o) {
  o->memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  o->allow_concurrent_memtable_write = false;  // a vector memtable takes one writer
  o->write_buffer_size = 64 << 20;
  o->max_write_buffer_number = 3;
  o->db_write_buffer_size = 256 << 20;
  o->max_background_flushes = 2;  // the objects and membership families flush side by side
  o->max_background_compactions = 1;
  o->avoid_flush_during_shutdown = true;  // closed unflushed = a failed replay: its staging dir is discarded
  o->level0_file_num_compaction_trigger = 16;
  o->level0_slowdown_writes_trigger = 40;
  o->level0_stop_writes_trigger = 64;
}

WalApplyResult ApplyWal(Store& store, WalDb which, const std::vector<rocksdb::Slice>& batches) {
  std::string path;
  rocksdb::DB* db = WhichDb(store, which, &path);
  WalApplyResult r;
  rocksdb::WriteOptions wo;
  wo.disableWAL = store.replay();
  uint64_t latest = db->GetLatestSequenceNumber();
  std::string group;  // header (first seq, summed count) + records of consecutive batches
  uint64_t group_seq = 0;
  uint64_t group_count = 0;
  size_t group_batches = 0;
  auto flush = [&]() {
    if (!group_batches) return;
    EncodeFixed64(&group[0], group_seq);
    EncodeFixed32(&group[8], static_cast<uint32_t>(group_count));
    rocksdb::WriteBatch batch(std::move(group));
    CheckStatus(db->Write(wo, &batch), path);
    if (db->GetLatestSequenceNumber() != group_seq + group_count - 1)
      throw GutsError(Code::Internal, "replayed batches from " + std::to_string(group_seq) + " did not land on their sequences", path);
    r.applied += group_batches;
    group = std::string();
    group_count = 0;
    group_batches = 0;
  };
  for (const rocksdb::Slice& rep : batches) {
    if (rep.size() < 12) throw GutsError(Code::Corrupt, "archived batch of " + std::to_string(rep.size()) + " bytes is too short", path);
    uint64_t seq = Fixed64(rep.data());
    uint32_t count = Fixed32(rep.data() + 8);
    if (count == 0 || seq + count - 1 <= latest) {
      r.skipped++;
      continue;
    }
    if (seq != latest + 1)
      throw GutsError(Code::Corrupt, "gap: " + path + " is at sequence " + std::to_string(latest) + ", next archived batch starts at " + std::to_string(seq), path);
    std::string why = CheckWalBatch(which, rep);
    if (!why.empty()) throw GutsError(Code::Corrupt, "archived batch at sequence " + std::to_string(seq) + ": " + why, path);
    // a group's count is a 32-bit field: start a new group well before it could overflow
    if (group_batches && (group.size() + rep.size() > kReplayGroupBytes || group_count + count > 0x7fffffffu)) flush();
    if (!group_batches) {
      group.assign(12, '\0');
      group_seq = seq;
    }
    group.append(rep.data() + 12, rep.size() - 12);
    group_count += count;
    group_batches++;
    latest = seq + count - 1;
  }
  flush();
  if (r.applied && !store.replay()) CheckStatus(db->SyncWAL(), path);
  r.latest = db->GetLatestSequenceNumber();
  return r;
}

static WalDb WhichArg(Napi::Env env, Napi::Value v) {
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "db") return WalDb::kDb;
  if (s == "consensus") return WalDb::kConsensus;
  ThrowJs(env, Code::InvalidArgument, "expected 'db' or 'consensus'");
}

static uint64_t SeqArg(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0) ThrowJs(env, Code::InvalidArgument, std::string(name) + " must be a non-negative number");
  return static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
}

static Napi::Number Num(Napi::Env e, uint64_t v) { return Napi::Number::New(e, static_cast<double>(v)); }

// walTail(store, 'db'|'consensus', from, {maxBytes, maxBatches}?)
//   -> Promise<{batches:[{seq,count,timeUs,mark?,data}], latest, gap: null|{expected, found}}>
static Napi::Value WalTailJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  WalTailInput in;
  in.which = WhichArg(env, info[1]);
  in.from = SeqArg(env, info[2], "from");
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    if (o.Get("maxBytes").IsNumber()) in.max_bytes = static_cast<size_t>(o.Get("maxBytes").As<Napi::Number>().Int64Value());
    if (o.Get("maxBatches").IsNumber()) in.max_batches = static_cast<size_t>(o.Get("maxBatches").As<Napi::Number>().Int64Value());
  }
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto out = std::make_shared<WalTailResult>();
  auto* w = new LambdaWorker(
      env, [store, in, out]() { *out = TailWal(*store, in); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        Napi::Array arr = Napi::Array::New(e, out->batches.size());
        for (size_t i = 0; i < out->batches.size(); i++) {
          const WalBatch& b = out->batches[i];
          Napi::Object o = Napi::Object::New(e);
          o.Set("seq", Num(e, b.seq));
          o.Set("count", Num(e, b.count));
          o.Set("timeUs", Num(e, b.time_us));
          if (b.has_mark) o.Set("mark", Napi::String::New(e, b.mark));
          o.Set("data", Napi::Buffer<char>::Copy(e, b.data.data(), b.data.size()));
          arr.Set(i, o);
        }
        r.Set("batches", arr);
        r.Set("latest", Num(e, out->latest));
        if (out->gap) {
          Napi::Object g = Napi::Object::New(e);
          g.Set("expected", Num(e, out->gap_expected));
          g.Set("found", Num(e, out->gap_found));
          r.Set("gap", g);
        } else {
          r.Set("gap", e.Null());
        }
        return r;
      },
      [wrap]() { wrap->EndOp(); });
  return w->Start();
}

// Buffers handed to a worker without copying them: the slices point into the
// Buffers, which a reference to their array keeps alive until the worker has
// finished (released in its `done`, on the JS thread).
struct HeldBuffers {
  std::vector<rocksdb::Slice> slices;
  Napi::ObjectReference array;
};

static std::shared_ptr<HeldBuffers> HoldBuffers(Napi::Env env, Napi::Value v, const char* usage) {
  if (!v.IsArray()) ThrowJs(env, Code::InvalidArgument, usage);
  Napi::Array arr = v.As<Napi::Array>();
  auto held = std::make_shared<HeldBuffers>();
  held->slices.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value b = arr.Get(i);
    if (!b.IsBuffer()) ThrowJs(env, Code::InvalidArgument, std::string(usage) + ": element " + std::to_string(i) + " is not a Buffer");
    auto buf = b.As<Napi::Buffer<char>>();
    held->slices.emplace_back(buf.Data(), buf.Length());
  }
  held->array = Napi::Persistent(arr.As<Napi::Object>());
  return held;
}

// walApply(store, 'db'|'consensus', batches: Buffer[]) -> Promise<{applied, skipped, latest}>
static Napi::Value WalApplyJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  WalDb which = WhichArg(env, info[1]);
  std::shared_ptr<HeldBuffers> in = HoldBuffers(env, info[2], "walApply(store, which, batches: Buffer[])");
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto out = std::make_shared<WalApplyResult>();
  const std::vector<rocksdb::Slice>* slices = &in->slices;
  auto* w = new LambdaWorker(
      env, [store, which, slices, out]() { *out = ApplyWal(*store, which, *slices); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("applied", Num(e, out->applied));
        r.Set("skipped", Num(e, out->skipped));
        r.Set("latest", Num(e, out->latest));
        return r;
      },
      [wrap, in]() {
        wrap->EndOp();
        in->array.Reset();
      });
  return w->Start();
}

// walCheckBatches(dbs: Uint8Array (0 db, 1 consensus), batches: Buffer[]) -> Promise<null | {index, why}>
// CheckWalBatch for every batch of a segment on a worker: the first one that
// cannot be applied, or null.
static Napi::Value WalCheckBatchesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "walCheckBatches(dbs: Uint8Array, batches: Buffer[])";
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) ThrowJs(env, Code::InvalidArgument, usage);
  Napi::Uint8Array dbs = info[0].As<Napi::Uint8Array>();
  std::shared_ptr<HeldBuffers> in = HoldBuffers(env, info[1], usage);
  if (dbs.ElementLength() != in->slices.size()) ThrowJs(env, Code::InvalidArgument, std::string(usage) + ": one db per batch");
  auto which = std::make_shared<std::vector<WalDb>>();
  for (size_t i = 0; i < dbs.ElementLength(); i++) {
    if (dbs[i] > 1) ThrowJs(env, Code::InvalidArgument, std::string(usage) + ": db codes are 0 and 1");
    which->push_back(dbs[i] == 0 ? WalDb::kDb : WalDb::kConsensus);
  }
  struct Bad {
    bool found = false;
    size_t index = 0;
    std::string why;
  };
  auto out = std::make_shared<Bad>();
  const std::vector<rocksdb::Slice>* slices = &in->slices;
  auto* w = new LambdaWorker(
      env,
      [which, slices, out]() {
        for (size_t i = 0; i < slices->size(); i++) {
          std::string why = CheckWalBatch((*which)[i], (*slices)[i]);
          if (!why.empty()) {
            out->found = true, out->index = i, out->why = std::move(why);
            return;
          }
        }
      },
      [out](Napi::Env e) -> Napi::Value {
        if (!out->found) return e.Null();
        Napi::Object r = Napi::Object::New(e);
        r.Set("index", Num(e, out->index));
        r.Set("why", Napi::String::New(e, out->why));
        return r;
      },
      [in]() { in->array.Reset(); });
  return w->Start();
}

// walMark(store, name) -> Promise<{seq, timeUs}>
static Napi::Value WalMarkJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  if (!info[1].IsString()) ThrowJs(env, Code::InvalidArgument, "walMark(store, name: string)");
  std::string name = info[1].As<Napi::String>();
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  auto out = std::make_shared<WalMarkResult>();
  auto* w = new LambdaWorker(
      env, [store, name, out]() { *out = store->PutWalMark(name); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("seq", Num(e, out->seq));
        r.Set("timeUs", Num(e, out->time_us));
        return r;
      },
      [wrap]() { wrap->EndOp(); });
  return w->Start();
}

// walFiles(store, 'db'|'consensus') -> Promise<[{path, logNumber, startSeq, archived, bytes}]>, oldest first
static Napi::Value WalFilesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreWrap* wrap = StoreWrap::FromValue(info[0]);
  WalDb which = WhichArg(env, info[1]);
  std::shared_ptr<Store> store = wrap->BeginOp(env);
  struct File {
    std::string path;
    uint64_t number, start, bytes;
    bool archived;
  };
  auto out = std::make_shared<std::vector<File>>();
  auto* w = new LambdaWorker(
      env,
      [store, which, out]() {
        std::string path;
        rocksdb::DB* db = WhichDb(*store, which, &path);
        rocksdb::VectorLogPtr files;
        CheckStatus(db->GetSortedWalFiles(files), path);
        for (auto& f : files)
          out->push_back(File{path + (f->Type() == rocksdb::kArchivedLogFile ? "/archive" : "") + "/" +
                                  std::string(f->PathName()).substr(std::string(f->PathName()).rfind('/') + 1),
                              f->LogNumber(), f->StartSequence(), f->SizeFileBytes(), f->Type() == rocksdb::kArchivedLogFile});
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Array arr = Napi::Array::New(e, out->size());
        for (size_t i = 0; i < out->size(); i++) {
          Napi::Object o = Napi::Object::New(e);
          o.Set("path", (*out)[i].path);
          o.Set("logNumber", Num(e, (*out)[i].number));
          o.Set("startSeq", Num(e, (*out)[i].start));
          o.Set("bytes", Num(e, (*out)[i].bytes));
          o.Set("archived", Napi::Boolean::New(e, (*out)[i].archived));
          arr.Set(i, o);
        }
        return arr;
      },
      [wrap]() { wrap->EndOp(); });
  return w->Start();
}

// walCheckBatch('db'|'consensus', data: Buffer) -> null | string (why the batch cannot be applied); synchronous and cheap
static Napi::Value WalCheckBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WalDb which = WhichArg(env, info[0]);
  if (!info[1].IsBuffer()) ThrowJs(env, Code::InvalidArgument, "walCheckBatch(which, data: Buffer)");
  auto b = info[1].As<Napi::Buffer<char>>();
  std::string why = CheckWalBatch(which, rocksdb::Slice(b.Data(), b.Length()));
  if (why.empty()) return env.Null();
  return Napi::String::New(env, why);
}

void InitWalReader(Napi::Env env, Napi::Object exports) {
  exports.Set("walCheckBatch", Napi::Function::New(env, WalCheckBatchJs));
  exports.Set("walCheckBatches", Napi::Function::New(env, WalCheckBatchesJs));
  exports.Set("walFiles", Napi::Function::New(env, WalFilesJs));
  exports.Set("walTail", Napi::Function::New(env, WalTailJs));
  exports.Set("walApply", Napi::Function::New(env, WalApplyJs));
  exports.Set("walMark", Napi::Function::New(env, WalMarkJs));
}

}  // namespace guts
