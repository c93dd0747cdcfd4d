// zstd for WAL segment payloads (docs/FORMAT.md "WAL segments"), on a libuv
// worker so a 16 MiB segment never blocks the node's event loop.
#pragma once
#include <napi.h>

#include <string>

namespace guts {

// One zstd frame with content size and checksum.
std::string CompressWalPayload(const std::string& raw, int level);
// GUTS_CORRUPT unless `compressed` is exactly one valid frame of at most max_bytes.
std::string DecompressWalPayload(const std::string& compressed, size_t max_bytes);

void InitWalCodec(Napi::Env env, Napi::Object exports);

}  // namespace guts
