#pragma once
#include <napi.h>
namespace guts {
void InitArchiveReader(Napi::Env env, Napi::Object exports);
}  // namespace guts
