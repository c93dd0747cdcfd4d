#pragma once
#include <napi.h>
namespace guts {
void InitObjectVerifier(Napi::Env env, Napi::Object exports);
}  // namespace guts
