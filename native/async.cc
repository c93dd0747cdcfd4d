#include "async.h"

namespace guts {

Napi::Object MakeTaskHandle(Napi::Env env, Napi::Promise promise, std::shared_ptr<TaskState> state) {
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", promise);
  handle.Set("progress", Napi::Function::New(env, [state](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Object p = Napi::Object::New(info.Env());
    p.Set("done", Napi::Number::New(info.Env(), static_cast<double>(state->done.load())));
    p.Set("total", Napi::Number::New(info.Env(), static_cast<double>(state->total.load())));
    p.Set("files", Napi::Number::New(info.Env(), static_cast<double>(state->files.load())));
    return p;
  }));
  handle.Set("cancel", Napi::Function::New(env, [state](const Napi::CallbackInfo& info) -> Napi::Value {
    state->cancelled = true;
    return info.Env().Undefined();
  }));
  return handle;
}

}  // namespace guts
