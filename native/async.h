// Promise-returning AsyncWorker base and a Task handle for long jobs.
// Run() executes on a libuv worker thread and must never touch N-API: inputs
// are copied into plain members in the constructor (sharp's "baton" pattern).
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "errors.h"

namespace guts {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  // Queue and hand back the promise.
  Napi::Promise Start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }
  virtual void Finally() {}

  void Execute() override {
    try {
      Run();
    } catch (const GutsError& e) {
      error_.reset(new GutsError(e));
    } catch (const std::bad_alloc&) {
      error_.reset(new GutsError(Code::Internal, "out of memory"));
    } catch (const std::exception& e) {
      error_.reset(new GutsError(Code::Internal, e.what()));
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Finally();
    if (error_) {
      deferred_.Reject(MakeError(env, *error_).Value());
      return;
    }
    try {
      deferred_.Resolve(Result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const GutsError& e) {
      deferred_.Reject(MakeError(env, e).Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Finally();
    deferred_.Reject(e.Value());
  }

  Napi::Promise::Deferred deferred_;
  std::unique_ptr<GutsError> error_;
};

// Shared between a long-running worker and the JS-visible handle: progress is
// polled from JS (no callbacks across threads), cancel is a flag the worker
// checks between chunks.
struct TaskState {
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> files{0};
  std::atomic<bool> cancelled{false};
  void CheckCancelled() const {
    if (cancelled.load(std::memory_order_relaxed)) throw GutsError(Code::Cancelled, "cancelled");
  }
};

// Returns { promise, progress(): {done,total,files}, cancel() } to JS.
Napi::Object MakeTaskHandle(Napi::Env env, Napi::Promise promise, std::shared_ptr<TaskState> state);

}  // namespace guts
