#include "store_napi.h"

#include "checkpoint.h"
#include "errors.h"

namespace guts {

static std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    ThrowJs(info.Env(), Code::InvalidArgument, std::string(name) + " must be a string");
  return info[i].As<Napi::String>();
}

static std::string IdArg(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != 20)
    ThrowJs(env, Code::InvalidArgument, std::string(name) + " must be a 20-byte Buffer");
  auto b = v.As<Napi::Buffer<uint8_t>>();
  return std::string(reinterpret_cast<const char*>(b.Data()), 20);
}

static Napi::Buffer<uint8_t> ToBuffer(Napi::Env env, const std::string& s) {
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

static Napi::Object ObjectToJs(Napi::Env env, const StoredObject& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("id", ToBuffer(env, o.id));
  r.Set("type", Napi::Number::New(env, o.type));
  r.Set("data", ToBuffer(env, o.body));
  return r;
}

void StoreWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "Store",
                                    {
                                        InstanceMethod<&StoreWrap::Open>("open"),
                                        InstanceMethod<&StoreWrap::Close>("close"),
                                        InstanceMethod<&StoreWrap::PutObjects>("putObjects"),
                                        InstanceMethod<&StoreWrap::GetObject>("getObject"),
                                        InstanceMethod<&StoreWrap::HasObjects>("hasObjects"),
                                        InstanceMethod<&StoreWrap::ScanObjects>("scanObjects"),
                                        InstanceMethod<&StoreWrap::PutRepo>("putRepo"),
                                        InstanceMethod<&StoreWrap::ListRepos>("listRepos"),
                                        InstanceMethod<&StoreWrap::UpdateRefs>("updateRefs"),
                                        InstanceMethod<&StoreWrap::GetRefs>("getRefs"),
                                        InstanceMethod<&StoreWrap::Counts>("counts"),
                                        InstanceMethod<&StoreWrap::PutBlocks>("putBlocks"),
                                        InstanceMethod<&StoreWrap::GetBlock>("getBlock"),
                                        InstanceMethod<&StoreWrap::ConsensusInfo>("consensusInfo"),
                                        InstanceMethod<&StoreWrap::Flush>("flush"),
                                        InstanceMethod<&StoreWrap::Checkpoint>("checkpoint"),
                                        InstanceMethod<&StoreWrap::Sequences>("sequences"),
                                        InstanceMethod<&StoreWrap::IsOpen>("isOpen"),
                                    });
  auto* ref = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.SetInstanceData(ref);  // one per env: safe in worker threads
  exports.Set("Store", ctor);
}

StoreWrap* StoreWrap::FromValue(Napi::Value v) {
  Napi::FunctionReference* ctor = v.Env().GetInstanceData<Napi::FunctionReference>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor->Value()))
    ThrowJs(v.Env(), Code::InvalidArgument, "expected a Store");
  return Unwrap(v.As<Napi::Object>());
}

// new Store(dataDir, { readOnly, create, db, consensus, replay, format, rocksdbOptions }) (store_options.h)
StoreWrap::StoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StoreWrap>(info) {
  options_.data_dir = StringArg(info, 0, "dataDir");
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    auto flag = [&](const char* k, bool def) { return o.Has(k) ? o.Get(k).ToBoolean().Value() : def; };
    options_.read_only = flag("readOnly", false);
    options_.create = flag("create", true);
    options_.open_db = flag("db", true);
    options_.open_consensus = flag("consensus", true);
    options_.replay = flag("replay", false);
    if (o.Has("format") && o.Get("format").IsString()) options_.tuning.format = o.Get("format").As<Napi::String>();
    if (o.Has("rocksdbOptions") && o.Get("rocksdbOptions").IsString())
      options_.tuning.rocksdb_options = o.Get("rocksdbOptions").As<Napi::String>();
  }
}

std::shared_ptr<Store> StoreWrap::BeginOp(Napi::Env env) {
  if (!store_ || closing_) ThrowJs(env, Code::Closed, "store " + options_.data_dir + " is not open");
  pending_++;
  Ref();  // keep the JS object (and so this wrapper) alive while work is queued
  return store_;
}

void StoreWrap::EndOp() {
  pending_--;
  Unref();
  MaybeFinishClose();
}

void StoreWrap::MaybeFinishClose() {
  if (!closing_ || pending_ > 0 || !close_deferred_) return;
  Napi::Env env = Env();
  std::shared_ptr<Store> store = std::move(store_);
  auto* deferred = close_deferred_.release();
  auto* w = new LambdaWorker(
      env, [store]() { store->Close(); }, nullptr, nullptr);
  // Chain the worker's promise into the caller's.
  Napi::Promise p = w->Promise();
  Napi::Function then = Napi::Function::New(env, [deferred](const Napi::CallbackInfo& i) {
    deferred->Resolve(i.Env().Undefined());
    delete deferred;
  });
  Napi::Function fail = Napi::Function::New(env, [deferred](const Napi::CallbackInfo& i) {
    deferred->Reject(i[0]);
    delete deferred;
  });
  p.Get("then").As<Napi::Function>().Call(p, {then, fail});
  w->Queue();
}

Napi::Value StoreWrap::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (store_ || opening_) ThrowJs(env, Code::InvalidArgument, "store " + options_.data_dir + " is already open");
  opening_ = true;
  Ref();
  auto result = std::make_shared<std::shared_ptr<Store>>();
  Store::Options opts = options_;
  auto* w = new LambdaWorker(
      env, [opts, result]() { *result = Store::Open(opts); },
      [this, result](Napi::Env e) {
        store_ = *result;
        closing_ = false;
        return e.Undefined();
      },
      [this]() {
        opening_ = false;
        Unref();
      });
  return w->Start();
}

Napi::Value StoreWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  if (!store_ || closing_) {
    deferred.Resolve(env.Undefined());  // idempotent
    return deferred.Promise();
  }
  closing_ = true;
  close_deferred_.reset(new Napi::Promise::Deferred(deferred));
  MaybeFinishClose();
  return deferred.Promise();
}

Napi::Value StoreWrap::IsOpen(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), store_ && !closing_);
}

// Runs `run` on a worker with the store held; `result` builds the JS value.
template <typename R>
static Napi::Value RunOp(StoreWrap* self, Napi::Env env, std::function<R(Store&)> run,
                         std::function<Napi::Value(Napi::Env, R&)> result) {
  std::shared_ptr<Store> store;
  try {
    store = self->BeginOp(env);
  } catch (const Napi::Error& e) {
    // Async API: a closed store rejects, it does not throw synchronously.
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
  auto out = std::make_shared<R>();
  auto* w = new LambdaWorker(
      env, [store, run, out]() { *out = run(*store); },
      [result, out](Napi::Env e) { return result(e, *out); }, [self]() { self->EndOp(); });
  return w->Start();
}

// putObjects(repo: string ('' for none), types: Uint8Array, bodies: Buffer[])
// -> { ids: Buffer (20 bytes each), added: number }
Napi::Value StoreWrap::PutObjects(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string repo = StringArg(info, 0, "repo");
  if (!info[1].IsTypedArray() || !info[2].IsArray()) ThrowJs(env, Code::InvalidArgument, "putObjects(repo, types, bodies)");
  auto types = info[1].As<Napi::Uint8Array>();
  auto bodies = info[2].As<Napi::Array>();
  if (types.ElementLength() != bodies.Length()) ThrowJs(env, Code::InvalidArgument, "types and bodies differ in length");
  // Zero-copy: keep the Buffers referenced until the worker is done.
  auto keep = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>();
  std::vector<PutObject> objects(bodies.Length());
  for (uint32_t i = 0; i < bodies.Length(); i++) {
    Napi::Value b = bodies.Get(i);
    if (!b.IsBuffer()) ThrowJs(env, Code::InvalidArgument, "bodies[" + std::to_string(i) + "] must be a Buffer");
    auto buf = b.As<Napi::Buffer<uint8_t>>();
    objects[i] = PutObject{types[i], buf.Data(), buf.Length()};
  }
  keep->push_back(Napi::Persistent(info[2]));
  struct Out {
    std::string ids;
    uint64_t added = 0;
  };
  return RunOp<Out>(
      this, env,
      [repo, objects, keep](Store& s) {
        Out o;
        o.added = s.PutObjects(repo, objects, &o.ids);
        return o;
      },
      [keep](Napi::Env e, Out& o) -> Napi::Value {
        keep->clear();
        Napi::Object r = Napi::Object::New(e);
        r.Set("ids", ToBuffer(e, o.ids));
        r.Set("added", Napi::Number::New(e, static_cast<double>(o.added)));
        return r;
      });
}

Napi::Value StoreWrap::GetObject(const Napi::CallbackInfo& info) {
  std::string id = IdArg(info.Env(), info[0], "id");
  struct Out {
    bool found = false;
    StoredObject o;
  };
  return RunOp<Out>(
      this, info.Env(),
      [id](Store& s) {
        Out out;
        out.found = s.GetObject(id, &out.o);
        return out;
      },
      [](Napi::Env e, Out& o) -> Napi::Value { return o.found ? Napi::Value(ObjectToJs(e, o.o)) : e.Null(); });
}

Napi::Value StoreWrap::HasObjects(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowJs(env, Code::InvalidArgument, "hasObjects(ids: Buffer[])");
  auto arr = info[0].As<Napi::Array>();
  std::vector<std::string> ids;
  for (uint32_t i = 0; i < arr.Length(); i++) ids.push_back(IdArg(env, arr.Get(i), "id"));
  return RunOp<std::vector<bool>>(
      this, env, [ids](Store& s) { return s.HasObjects(ids); },
      [](Napi::Env e, std::vector<bool>& v) -> Napi::Value {
        Napi::Array r = Napi::Array::New(e, v.size());
        for (size_t i = 0; i < v.size(); i++) r.Set(i, Napi::Boolean::New(e, v[i]));
        return r;
      });
}

// scanObjects(repo ('' = all), after: Buffer|null, limit) -> [{id,type,data}]
Napi::Value StoreWrap::ScanObjects(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string repo = StringArg(info, 0, "repo");
  std::string after = info[1].IsBuffer() ? IdArg(env, info[1], "after") : "";
  size_t limit = info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 1000;
  return RunOp<std::vector<StoredObject>>(
      this, env, [repo, after, limit](Store& s) { return s.ScanObjects(repo, after, limit); },
      [](Napi::Env e, std::vector<StoredObject>& v) -> Napi::Value {
        Napi::Array r = Napi::Array::New(e, v.size());
        for (size_t i = 0; i < v.size(); i++) r.Set(i, ObjectToJs(e, v[i]));
        return r;
      });
}

Napi::Value StoreWrap::PutRepo(const Napi::CallbackInfo& info) {
  std::string repo = StringArg(info, 0, "repo"), meta = StringArg(info, 1, "meta");
  return RunOp<bool>(
      this, info.Env(), [repo, meta](Store& s) { return s.PutRepo(repo, meta); },
      [](Napi::Env e, bool& created) -> Napi::Value { return Napi::Boolean::New(e, created); });
}

Napi::Value StoreWrap::ListRepos(const Napi::CallbackInfo& info) {
  using V = std::vector<std::pair<std::string, std::string>>;
  return RunOp<V>(
      this, info.Env(), [](Store& s) { return s.ListRepos(); },
      [](Napi::Env e, V& v) -> Napi::Value {
        Napi::Array r = Napi::Array::New(e, v.size());
        for (size_t i = 0; i < v.size(); i++) {
          Napi::Object o = Napi::Object::New(e);
          o.Set("name", v[i].first);
          o.Set("meta", v[i].second);
          r.Set(i, o);
        }
        return r;
      });
}

// updateRefs(repo, [{name, target?: Buffer, symbolic?: string, delete?: bool}])
Napi::Value StoreWrap::UpdateRefs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string repo = StringArg(info, 0, "repo");
  if (!info[1].IsArray()) ThrowJs(env, Code::InvalidArgument, "updateRefs(repo, updates[])");
  auto arr = info[1].As<Napi::Array>();
  std::vector<RefUpdate> updates;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    RefUpdate u;
    if (!o.Get("name").IsString()) ThrowJs(env, Code::InvalidArgument, "ref update needs a name");
    u.name = o.Get("name").As<Napi::String>();
    if (o.Get("target").IsBuffer()) u.target = IdArg(env, o.Get("target"), "target");
    if (o.Get("symbolic").IsString()) u.symbolic = o.Get("symbolic").As<Napi::String>();
    u.remove = o.Get("delete").ToBoolean();
    updates.push_back(u);
  }
  return RunOp<bool>(
      this, env,
      [repo, updates](Store& s) {
        s.UpdateRefs(repo, updates);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

Napi::Value StoreWrap::GetRefs(const Napi::CallbackInfo& info) {
  std::string repo = StringArg(info, 0, "repo");
  return RunOp<std::vector<RefValue>>(
      this, info.Env(), [repo](Store& s) { return s.GetRefs(repo); },
      [](Napi::Env e, std::vector<RefValue>& v) -> Napi::Value {
        Napi::Array r = Napi::Array::New(e, v.size());
        for (size_t i = 0; i < v.size(); i++) {
          Napi::Object o = Napi::Object::New(e);
          o.Set("name", v[i].name);
          if (!v[i].symbolic.empty()) o.Set("symbolic", v[i].symbolic);
          else o.Set("target", ToBuffer(e, v[i].target));
          r.Set(i, o);
        }
        return r;
      });
}

Napi::Object CountsToJs(Napi::Env e, const ObjectCounts& c) {
  Napi::Object r = Napi::Object::New(e);
  r.Set("commit", Napi::Number::New(e, static_cast<double>(c.commit)));
  r.Set("tree", Napi::Number::New(e, static_cast<double>(c.tree)));
  r.Set("blob", Napi::Number::New(e, static_cast<double>(c.blob)));
  r.Set("tag", Napi::Number::New(e, static_cast<double>(c.tag)));
  r.Set("repositories", Napi::Number::New(e, static_cast<double>(c.repos)));
  return r;
}

Napi::Value StoreWrap::Counts(const Napi::CallbackInfo& info) {
  return RunOp<ObjectCounts>(
      this, info.Env(), [](Store& s) { return s.Counts(); },
      [](Napi::Env e, ObjectCounts& c) -> Napi::Value { return CountsToJs(e, c); });
}

// putBlocks(heights: number[], blocks: Buffer[], finalized: number (-1 = keep))
Napi::Value StoreWrap::PutBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsArray()) ThrowJs(env, Code::InvalidArgument, "putBlocks(heights, blocks, finalized)");
  auto hs = info[0].As<Napi::Array>();
  auto bs = info[1].As<Napi::Array>();
  std::vector<std::pair<uint64_t, std::string>> blocks;
  for (uint32_t i = 0; i < hs.Length() && i < bs.Length(); i++) {
    auto b = bs.Get(i).As<Napi::Buffer<char>>();
    blocks.emplace_back(static_cast<uint64_t>(hs.Get(i).As<Napi::Number>().Int64Value()), std::string(b.Data(), b.Length()));
  }
  int64_t finalized = info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : -1;
  return RunOp<bool>(
      this, env,
      [blocks, finalized](Store& s) {
        s.PutBlocks(blocks, finalized);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

Napi::Value StoreWrap::GetBlock(const Napi::CallbackInfo& info) {
  uint64_t h = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  struct Out {
    bool found = false;
    std::string data;
  };
  return RunOp<Out>(
      this, info.Env(),
      [h](Store& s) {
        Out o;
        o.found = s.GetBlock(h, &o.data);
        return o;
      },
      [](Napi::Env e, Out& o) -> Napi::Value { return o.found ? Napi::Value(ToBuffer(e, o.data)) : e.Null(); });
}

Napi::Value StoreWrap::ConsensusInfo(const Napi::CallbackInfo& info) {
  using P = std::pair<uint64_t, uint64_t>;
  return RunOp<P>(
      this, info.Env(), [](Store& s) { return P(s.FinalizedHeight(), s.BlockCount()); },
      [](Napi::Env e, P& p) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("finalizedHeight", Napi::Number::New(e, static_cast<double>(p.first)));
        r.Set("blocks", Napi::Number::New(e, static_cast<double>(p.second)));
        return r;
      });
}

Napi::Value StoreWrap::Flush(const Napi::CallbackInfo& info) {
  return RunOp<bool>(
      this, info.Env(),
      [](Store& s) {
        s.FlushAndSync();
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
}

// checkpoint(dir, { db: bool, consensus: bool }) -> { db?: {sequence}, consensus?: {sequence} }
Napi::Value StoreWrap::Checkpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = StringArg(info, 0, "dir");
  bool db = true, consensus = true;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("db")) db = o.Get("db").ToBoolean();
    if (o.Has("consensus")) consensus = o.Get("consensus").ToBoolean();
  }
  return RunOp<CheckpointResult>(
      this, env, [dir, db, consensus](Store& s) { return CreateCheckpoints(s, dir, db, consensus); },
      [](Napi::Env e, CheckpointResult& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        if (r.has_db) {
          Napi::Object d = Napi::Object::New(e);
          d.Set("sequence", Napi::Number::New(e, static_cast<double>(r.db_sequence)));
          o.Set("db", d);
        }
        if (r.has_consensus) {
          Napi::Object d = Napi::Object::New(e);
          d.Set("sequence", Napi::Number::New(e, static_cast<double>(r.consensus_sequence)));
          o.Set("consensus", d);
        }
        return o;
      });
}

Napi::Value StoreWrap::Sequences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!store_) ThrowJs(env, Code::Closed, "store is not open");
  Napi::Object o = Napi::Object::New(env);
  o.Set("db", Napi::Number::New(env, static_cast<double>(store_->DbSequence())));
  o.Set("consensus", Napi::Number::New(env, static_cast<double>(store_->ConsensusSequence())));
  return o;
}

}  // namespace guts
