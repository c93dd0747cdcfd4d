#include "hashing.h"

#include <cstdio>
#include <stdexcept>

#include "errors.h"

namespace guts {

static const EVP_MD* FetchMd(Digest::Kind kind) {
  // Explicit fetch once: avoids the implicit per-init provider lookup of
  // EVP_sha1(), which dominates hashing of small git objects.
  static const EVP_MD* sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  static const EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD* md = kind == Digest::kSha1 ? sha1 : sha256;
  if (!md) throw GutsError(Code::Internal, "OpenSSL digest unavailable");
  return md;
}

const char* ObjectTypeName(int type) {
  switch (type) {
    case kCommit: return "commit";
    case kTree: return "tree";
    case kBlob: return "blob";
    case kTag: return "tag";
  }
  return nullptr;
}

int ObjectTypeFromName(const std::string& name) {
  if (name == "commit") return kCommit;
  if (name == "tree") return kTree;
  if (name == "blob") return kBlob;
  if (name == "tag") return kTag;
  return 0;
}

Digest::Digest(Kind kind) : ctx_(EVP_MD_CTX_new()), md_(FetchMd(kind)) {
  if (!ctx_) throw std::bad_alloc();
  size_ = kind == kSha1 ? 20 : 32;
  Reset();
}

Digest::~Digest() { EVP_MD_CTX_free(ctx_); }

void Digest::Reset() {
  if (EVP_DigestInit_ex(ctx_, md_, nullptr) != 1) throw GutsError(Code::Internal, "EVP_DigestInit_ex failed");
}

void Digest::Update(const void* data, size_t len) {
  if (len && EVP_DigestUpdate(ctx_, data, len) != 1) throw GutsError(Code::Internal, "EVP_DigestUpdate failed");
}

void Digest::Final(uint8_t* out) {
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx_, out, &n) != 1) throw GutsError(Code::Internal, "EVP_DigestFinal_ex failed");
  Reset();
}

void GitObjectId(Digest& sha1, int type, const uint8_t* body, size_t len, uint8_t out[20]) {
  char header[64];
  int n = std::snprintf(header, sizeof header, "%s %zu", ObjectTypeName(type), len);
  sha1.Update(header, static_cast<size_t>(n) + 1);  // includes the NUL
  sha1.Update(body, len);
  sha1.Final(out);
}

std::string ToHex(const uint8_t* data, size_t len) {
  static const char* digits = "0123456789abcdef";
  std::string s(len * 2, '0');
  for (size_t i = 0; i < len; i++) {
    s[2 * i] = digits[data[i] >> 4];
    s[2 * i + 1] = digits[data[i] & 15];
  }
  return s;
}

Xxh3Stream::Xxh3Stream() : state_(XXH3_createState()) {
  if (!state_) throw std::bad_alloc();
  Reset();
}
Xxh3Stream::~Xxh3Stream() { XXH3_freeState(state_); }
void Xxh3Stream::Reset() { XXH3_128bits_reset(state_); }
void Xxh3Stream::Update(const void* data, size_t len) { XXH3_128bits_update(state_, data, len); }
std::string Xxh3Stream::HexDigest() {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(state_));
  return ToHex(c.digest, sizeof c.digest);
}

}  // namespace guts

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "async.h"

namespace guts {

namespace {

class Sha256FileWorker : public PromiseWorker {
 public:
  Sha256FileWorker(Napi::Env env, std::string path) : PromiseWorker(env), path_(std::move(path)) {}

 protected:
  void Run() override {
    int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) ThrowErrno("cannot open", path_, errno);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    std::vector<uint8_t> buf(1 << 20);
    Digest d(Digest::kSha256);
    for (;;) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        close(fd);
        ThrowErrno("cannot read", path_, err);
      }
      if (n == 0) break;
      d.Update(buf.data(), static_cast<size_t>(n));
    }
    close(fd);
    uint8_t out[32];
    d.Final(out);
    hex_ = ToHex(out, 32);
  }
  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, hex_); }

 private:
  std::string path_, hex_;
};

}  // namespace

void InitHashing(Napi::Env env, Napi::Object exports) {
  exports.Set("gitHash", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env e = info.Env();
    if (!info[0].IsNumber() || !info[1].IsBuffer()) ThrowJs(e, Code::InvalidArgument, "gitHash(type, body)");
    int type = info[0].As<Napi::Number>().Int32Value();
    if (!ObjectTypeName(type)) ThrowJs(e, Code::InvalidArgument, "invalid object type " + std::to_string(type));
    auto body = info[1].As<Napi::Buffer<uint8_t>>();
    Digest sha1(Digest::kSha1);
    uint8_t id[20];
    GitObjectId(sha1, type, body.Data(), body.Length(), id);
    return Napi::Buffer<uint8_t>::Copy(e, id, 20);
  }));
  exports.Set("sha256File", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    if (!info[0].IsString()) ThrowJs(info.Env(), Code::InvalidArgument, "sha256File(path)");
    return (new Sha256FileWorker(info.Env(), info[0].As<Napi::String>()))->Start();
  }));
}

}  // namespace guts
