#include "wal_codec.h"

#include <zstd.h>

#include <memory>

#include "errors.h"
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

static Napi::Value StringWorker(Napi::Env env, std::function<std::string()> run) {
  auto out = std::make_shared<std::string>();
  auto* w = new LambdaWorker(
      env, [run, out]() { *out = run(); },
      [out](Napi::Env e) -> Napi::Value { return Napi::Buffer<char>::Copy(e, out->data(), out->size()); });
  return w->Start();
}

void InitWalCodec(Napi::Env env, Napi::Object exports) {
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
