#include "wal_codec.h"

#include <zstd.h>

#include <memory>

#include "errors.h"
#include "hashing.h"
#include "store_napi.h"

namespace guts {

std::string CompressWalPayload(const std::string& raw, int level) {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!cctx) throw GutsError(Code::Internal, "ZSTD_createCCtx failed");
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1);
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n = ZSTD_compress2(cctx.get(), &out[0], out.size(), raw.data(), raw.size());
  if (ZSTD_isError(n)) throw GutsError(Code::Internal, std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

static void PutFixed64(std::string* s, size_t off, uint64_t v) {
  for (int i = 0; i < 8; i++) (*s)[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

SealedSegment SealWalSegment(std::string header, const std::vector<std::pair<const char*, size_t>>& parts, int level) {
  if (header.size() != 128) throw GutsError(Code::InvalidArgument, "segment header must be 128 bytes");
  std::string raw;
  size_t total = 0;
  for (const auto& p : parts) total += p.second;
  raw.reserve(total);
  for (const auto& p : parts) raw.append(p.first, p.second);
  std::string payload = CompressWalPayload(raw, level);
  PutFixed64(&header, 80, raw.size());
  PutFixed64(&header, 88, payload.size());
  SealedSegment out;
  out.file.reserve(header.size() + payload.size() + 32);
  out.file.append(header).append(payload);
  uint8_t sum[32];
  Digest d(Digest::kSha256);
  d.Update(out.file.data(), out.file.size());
  d.Final(sum);
  out.file.append(reinterpret_cast<const char*>(sum), 32);
  out.checksum_hex = ToHex(sum, 32);
  return out;
}

std::string DecompressWalPayload(const std::string& compressed, size_t max_bytes) {
  unsigned long long size = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
    throw GutsError(Code::Corrupt, "segment payload is not a zstd frame with a content size");
  if (size > max_bytes)
    throw GutsError(Code::Corrupt, "segment payload claims " + std::to_string(size) + " bytes, more than " + std::to_string(max_bytes));
  size_t frame = ZSTD_findFrameCompressedSize(compressed.data(), compressed.size());
  if (ZSTD_isError(frame) || frame != compressed.size())
    throw GutsError(Code::Corrupt, "segment payload is not exactly one zstd frame");
  std::string out(static_cast<size_t>(size), '\0');
  size_t n = ZSTD_decompress(&out[0], out.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n) || n != size) throw GutsError(Code::Corrupt, std::string("segment payload: ") + (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short frame"));
  return out;
}

static std::string BufferArg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsBuffer()) ThrowJs(env, Code::InvalidArgument, std::string(what) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<char>>();
  return std::string(b.Data(), b.Length());
}

// The result is handed to JS without a copy: the Buffer owns the string (freed
// by its finalizer); a segment's payload is up to 16 MiB and decoded segments
// are what a point-in-time restore reads most.
static Napi::Value StringWorker(Napi::Env env, std::function<std::string()> run) {
  auto out = std::make_shared<std::string>();
  auto* w = new LambdaWorker(
      env, [run, out]() { *out = run(); },
      [out](Napi::Env e) -> Napi::Value {
        if (out->empty()) return Napi::Buffer<char>::New(e, 0);
        auto* owned = new std::string(std::move(*out));
        return Napi::Buffer<char>::New(
            e, &(*owned)[0], owned->size(), [](Napi::Env, char*, std::string* s) { delete s; }, owned);
      });
  return w->Start();
}

// walSeal(header: Buffer(128), parts: Buffer[], level) -> Promise<{file: Buffer, checksum: hex}>
// The parts are read in place by the worker (kept referenced until it is done).
static Napi::Value WalSealJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string header = BufferArg(env, info[0], "header");
  if (!info[1].IsArray()) ThrowJs(env, Code::InvalidArgument, "walSeal(header, parts: Buffer[], level)");
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<std::pair<const char*, size_t>> parts;
  parts.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsBuffer()) ThrowJs(env, Code::InvalidArgument, "parts[" + std::to_string(i) + "] must be a Buffer");
    auto b = v.As<Napi::Buffer<char>>();
    parts.emplace_back(b.Data(), b.Length());
  }
  int level = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 3;
  auto keep = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(info[1]));
  auto out = std::make_shared<SealedSegment>();
  auto* w = new LambdaWorker(
      env, [header, parts, level, out]() { *out = SealWalSegment(header, parts, level); },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        // Hand the file over without a copy on the JS thread.
        auto* file = new std::string(std::move(out->file));
        r.Set("file", Napi::Buffer<char>::New(e, &(*file)[0], file->size(), [](Napi::Env, char*, std::string* s) { delete s; }, file));
        r.Set("checksum", out->checksum_hex);
        return r;
      },
      [keep]() { keep->Reset(); });
  return w->Start();
}

void InitWalCodec(Napi::Env env, Napi::Object exports) {
  exports.Set("walSeal", Napi::Function::New(env, WalSealJs));
  // walCompress(raw: Buffer, level) -> Promise<Buffer>
  exports.Set("walCompress", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto raw = std::make_shared<std::string>(BufferArg(info.Env(), info[0], "raw"));
    int level = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 3;
    return StringWorker(info.Env(), [raw, level]() { return CompressWalPayload(*raw, level); });
  }));
  // walDecompress(compressed: Buffer, maxBytes) -> Promise<Buffer>
  exports.Set("walDecompress", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto in = std::make_shared<std::string>(BufferArg(info.Env(), info[0], "compressed"));
    size_t max = info[1].IsNumber() ? static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()) : (1u << 30);
    return StringWorker(info.Env(), [in, max]() { return DecompressWalPayload(*in, max); });
  }));
}

}  // namespace guts
