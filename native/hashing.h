// Hashes used across the engine: git SHA-1 (object ids) and SHA-256 (archive
// checksum) through the node binary's OpenSSL, and XXH3-128 per archived file.
#pragma once
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace guts {

enum ObjectType : uint8_t { kCommit = 1, kTree = 2, kBlob = 3, kTag = 4 };
const char* ObjectTypeName(int type);  // nullptr when not 1..4
int ObjectTypeFromName(const std::string& name);  // 0 when unknown

// Reusable digest context (EVP_MD fetched once per process).
class Digest {
 public:
  enum Kind { kSha1, kSha256 };
  explicit Digest(Kind kind);
  ~Digest();
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void Reset();
  void Update(const void* data, size_t len);
  // Writes 20 or 32 bytes.
  void Final(uint8_t* out);
  size_t size() const { return size_; }

 private:
  EVP_MD_CTX* ctx_;
  const EVP_MD* md_;
  size_t size_;
};

// SHA-1 of "<type> <len>\0" + body: the git object id.
void GitObjectId(Digest& sha1, int type, const uint8_t* body, size_t len, uint8_t out[20]);

std::string ToHex(const uint8_t* data, size_t len);

class Xxh3Stream {
 public:
  Xxh3Stream();
  ~Xxh3Stream();
  void Reset();
  void Update(const void* data, size_t len);
  std::string HexDigest();  // 32 hex chars, canonical (big-endian) form

 private:
  XXH3_state_t* state_;
};

}  // namespace guts

#include <napi.h>
namespace guts {
// gitHash(type: number, body: Buffer) -> Buffer(20); sha256File(path) -> Promise<hex>
void InitHashing(Napi::Env env, Napi::Object exports);
}  // namespace guts
