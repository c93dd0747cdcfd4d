// zstd for WAL segment payloads (docs/FORMAT.md "WAL segments"), on a libuv
// worker so a 16 MiB segment never blocks the node's event loop.
#pragma once
#include <napi.h>

#include <string>
#include <utility>
#include <vector>

namespace guts {

// One zstd frame with content size and checksum.
std::string CompressWalPayload(const std::string& raw, int level);
// A whole segment file from its 128-byte header and the records' bytes
// (docs/FORMAT.md "Segment file"): the parts are joined and compressed, the
// header's payload sizes (offsets 80, 88) filled in, and the SHA-256 trailer
// appended. Everything here runs on a worker: joining, compressing and hashing
// a 16 MiB segment on the event loop would stall requests for tens of ms.
struct SealedSegment {
  std::string file;
  std::string checksum_hex;
};
SealedSegment SealWalSegment(std::string header, const std::vector<std::pair<const char*, size_t>>& parts, int level);

// GUTS_CORRUPT unless `compressed` is exactly one valid frame of at most max_bytes.
std::string DecompressWalPayload(const std::string& compressed, size_t max_bytes);

void InitWalCodec(Napi::Env env, Napi::Object exports);

}  // namespace guts
