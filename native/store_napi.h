// JS binding of Store. Every operation is a promise resolved from a libuv
// worker; close() waits until every pending operation has finished.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>

#include "async.h"
#include "store.h"

namespace guts {

// {commit, tree, blob, tag, repositories} as a JS object (shared by the verifier).
Napi::Object CountsToJs(Napi::Env e, const ObjectCounts& c);

class StoreWrap : public Napi::ObjectWrap<StoreWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit StoreWrap(const Napi::CallbackInfo& info);

  // For other capabilities (verifier, checkpoints): the open store, counted
  // as a pending operation until the returned guard's EndOp() runs on the JS
  // thread. Throws GUTS_CLOSED when not open or closing.
  static StoreWrap* FromValue(Napi::Value v);
  std::shared_ptr<Store> BeginOp(Napi::Env env);
  void EndOp();

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value PutObjects(const Napi::CallbackInfo& info);
  Napi::Value GetObject(const Napi::CallbackInfo& info);
  Napi::Value HasObjects(const Napi::CallbackInfo& info);
  Napi::Value ScanObjects(const Napi::CallbackInfo& info);
  Napi::Value PutRepo(const Napi::CallbackInfo& info);
  Napi::Value ListRepos(const Napi::CallbackInfo& info);
  Napi::Value UpdateRefs(const Napi::CallbackInfo& info);
  Napi::Value GetRefs(const Napi::CallbackInfo& info);
  Napi::Value Counts(const Napi::CallbackInfo& info);
  Napi::Value PutBlocks(const Napi::CallbackInfo& info);
  Napi::Value GetBlock(const Napi::CallbackInfo& info);
  Napi::Value ConsensusInfo(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Checkpoint(const Napi::CallbackInfo& info);
  Napi::Value Sequences(const Napi::CallbackInfo& info);
  Napi::Value IsOpen(const Napi::CallbackInfo& info);

  void MaybeFinishClose();

  Store::Options options_;
  std::shared_ptr<Store> store_;
  bool opening_ = false;
  bool closing_ = false;
  int pending_ = 0;  // touched on the JS thread only
  std::unique_ptr<Napi::Promise::Deferred> close_deferred_;
};

// A PromiseWorker from two lambdas: run (worker thread, no N-API) and result
// (JS thread). `done` always runs on the JS thread, success or failure.
class LambdaWorker : public PromiseWorker {
 public:
  LambdaWorker(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> result,
               std::function<void()> done = nullptr)
      : PromiseWorker(env), run_(std::move(run)), result_(std::move(result)), done_(std::move(done)) {}

 protected:
  void Run() override { run_(); }
  Napi::Value Result(Napi::Env env) override { return result_ ? result_(env) : env.Undefined(); }
  void Finally() override {
    if (done_) done_();
  }

 private:
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::function<void()> done_;
};

}  // namespace guts
