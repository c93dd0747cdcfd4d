#include "repo_object.h"

#include <fcntl.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table_properties.h>
#include <unistd.h>
#include <zstd.h>

#include <memory>
#include <string>
#include <vector>

#include "async.h"
#include "errors.h"
#include "hashing.h"

namespace guts {

namespace {

constexpr size_t kSlice = 1 << 20;

struct ObjectResult {
  uint64_t raw = 0, stored = 0;
  std::string xxh3;
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // closes and reports the error; the descriptor is gone either way (never closed twice:
  // another worker thread may already own the same number)
  int CloseChecked() {
    int fd = fd_;
    fd_ = -1;
    return fd >= 0 ? close(fd) : 0;
  }

 private:
  int fd_;
};

size_t ReadSome(int fd, uint8_t* buf, size_t cap, const std::string& what) {
  size_t got = 0;
  while (got < cap) {
    ssize_t n = read(fd, buf + got, cap - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("cannot read", what, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

void WriteAll(int fd, const uint8_t* p, size_t len, const std::string& what) {
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("cannot write", what, errno);
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
}

struct PackInput {
  std::string source;
  int output_fd = -1;
  int level = 3;
  bool hash_only = false;
  // output_fd is a file: fsynced and closed (errors checked) by the worker
  bool sync_output = false;
  std::string output_name = "repository object";
};

void Pack(const PackInput& in, Fd& out, TaskState& state, ObjectResult& r) {
  Fd src(open(in.source.c_str(), O_RDONLY | O_CLOEXEC));
  if (src.get() < 0) ThrowErrno("cannot open", in.source, errno);
  posix_fadvise(src.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  off_t size = lseek(src.get(), 0, SEEK_END);
  if (size < 0 || lseek(src.get(), 0, SEEK_SET) < 0) ThrowErrno("cannot seek", in.source, errno);
  state.total = static_cast<uint64_t>(size);
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(in.hash_only ? nullptr : ZSTD_createCCtx(), ZSTD_freeCCtx);
  if (!in.hash_only) {
    if (!cctx) throw GutsError(Code::Internal, "out of memory (zstd)");
    size_t e = ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, in.level);
    if (!ZSTD_isError(e)) e = ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(e)) e = ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(e)) e = ZSTD_CCtx_setPledgedSrcSize(cctx.get(), static_cast<unsigned long long>(size));
    if (ZSTD_isError(e)) throw GutsError(Code::Internal, std::string("zstd: ") + ZSTD_getErrorName(e));
  }
  std::vector<uint8_t> buf(kSlice), obuf(in.hash_only ? 0 : ZSTD_CStreamOutSize());
  Xxh3Stream hash;
  for (;;) {
    state.CheckCancelled();
    size_t n = ReadSome(src.get(), buf.data(), buf.size(), in.source);
    hash.Update(buf.data(), n);
    r.raw += n;
    const bool last = n < buf.size();
    if (!in.hash_only) {
      ZSTD_inBuffer ib{buf.data(), n, 0};
      for (;;) {
        ZSTD_outBuffer ob{obuf.data(), obuf.size(), 0};
        size_t rem = ZSTD_compressStream2(cctx.get(), &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(rem)) {
          if (r.raw != static_cast<uint64_t>(size)) throw GutsError(Code::Io, in.source + " changed size while it was read", in.source);
          throw GutsError(Code::Internal, std::string("zstd: ") + ZSTD_getErrorName(rem));
        }
        WriteAll(out.get(), obuf.data(), ob.pos, in.output_name);
        r.stored += ob.pos;
        if (last ? rem == 0 : ib.pos == ib.size) break;
      }
    }
    state.done = r.raw;
    if (last) break;
  }
  if (r.raw != static_cast<uint64_t>(size)) throw GutsError(Code::Io, in.source + " changed size while it was read", in.source);
  r.xxh3 = hash.HexDigest();
}

struct UnpackInput {
  int input_fd = -1;
  std::string output;
  uint64_t max_bytes = 0;
  std::string name;
};

void Unpack(const UnpackInput& in, TaskState& state, ObjectResult& r) {
  Fd src(in.input_fd);
  Fd dst;
  if (!in.output.empty()) {
    dst.Reset(open(in.output.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (dst.get() < 0) ThrowErrno("cannot create", in.output, errno);
  }
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) throw GutsError(Code::Internal, "out of memory (zstd)");
  // frames of at most 128 MiB windows (our writer uses the level's default)
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 27);
  std::vector<uint8_t> buf(kSlice), obuf(ZSTD_DStreamOutSize());
  Xxh3Stream hash;
  size_t pending = 1;  // 0 = the last frame ended exactly here
  bool any = false;
  for (;;) {
    state.CheckCancelled();
    size_t n = ReadSome(src.get(), buf.data(), buf.size(), in.name);
    if (n == 0) break;
    any = true;
    r.stored += n;
    ZSTD_inBuffer ib{buf.data(), n, 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{obuf.data(), obuf.size(), 0};
      pending = ZSTD_decompressStream(dctx.get(), &ob, &ib);
      if (ZSTD_isError(pending)) throw GutsError(Code::Corrupt, in.name + ": " + ZSTD_getErrorName(pending), in.name);
      hash.Update(obuf.data(), ob.pos);
      r.raw += ob.pos;
      if (in.max_bytes && r.raw > in.max_bytes) throw GutsError(Code::Corrupt, in.name + ": holds more than the " + std::to_string(in.max_bytes) + " bytes recorded", in.name);
      if (dst.get() >= 0) WriteAll(dst.get(), obuf.data(), ob.pos, in.output);
    }
    state.done = r.stored;
  }
  // flush what the decoder still holds
  for (;;) {
    ZSTD_inBuffer ib{nullptr, 0, 0};
    ZSTD_outBuffer ob{obuf.data(), obuf.size(), 0};
    if (!any || pending == 0) break;
    pending = ZSTD_decompressStream(dctx.get(), &ob, &ib);
    if (ZSTD_isError(pending)) throw GutsError(Code::Corrupt, in.name + ": " + ZSTD_getErrorName(pending), in.name);
    hash.Update(obuf.data(), ob.pos);
    r.raw += ob.pos;
    if (dst.get() >= 0) WriteAll(dst.get(), obuf.data(), ob.pos, in.output);
    if (ob.pos == 0) break;
  }
  if (!any) throw GutsError(Code::Corrupt, in.name + ": empty object (not a zstd frame)", in.name);
  if (pending != 0) throw GutsError(Code::Corrupt, in.name + ": truncated zstd frame", in.name);
  if (dst.get() >= 0) {
    if (fsync(dst.get()) != 0) ThrowErrno("cannot fsync", in.output, errno);
    if (dst.CloseChecked() != 0) ThrowErrno("cannot close", in.output, errno);
  }
  r.xxh3 = hash.HexDigest();
}

Napi::Object ResultJs(Napi::Env env, const ObjectResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("rawBytes", Napi::Number::New(env, static_cast<double>(r.raw)));
  o.Set("storedBytes", Napi::Number::New(env, static_cast<double>(r.stored)));
  o.Set("xxh3", Napi::String::New(env, r.xxh3));
  return o;
}

class PackWorker : public PromiseWorker {
 public:
  PackWorker(Napi::Env env, PackInput in, std::shared_ptr<TaskState> state)
      : PromiseWorker(env), in_(std::move(in)), out_(in_.output_fd), state_(std::move(state)) {}

 protected:
  void Run() override {
    Pack(in_, out_, *state_, r_);
    if (in_.sync_output) {
      if (fsync(out_.get()) != 0) ThrowErrno("cannot fsync", in_.output_name, errno);
      if (out_.CloseChecked() != 0) ThrowErrno("cannot close", in_.output_name, errno);
    }
    out_.Close();  // EOF for the reader of the pipe
  }
  void Finally() override { out_.Close(); }
  Napi::Value Result(Napi::Env env) override { return ResultJs(env, r_); }

 private:
  PackInput in_;
  Fd out_;
  std::shared_ptr<TaskState> state_;
  ObjectResult r_;
};

class UnpackWorker : public PromiseWorker {
 public:
  UnpackWorker(Napi::Env env, UnpackInput in, std::shared_ptr<TaskState> state)
      : PromiseWorker(env), in_(std::move(in)), state_(std::move(state)) {}

 protected:
  void Run() override {
    try {
      Unpack(in_, *state_, r_);
    } catch (...) {
      if (!in_.output.empty()) unlink(in_.output.c_str());
      throw;
    }
  }
  Napi::Value Result(Napi::Env env) override { return ResultJs(env, r_); }

 private:
  UnpackInput in_;
  std::shared_ptr<TaskState> state_;
  ObjectResult r_;
};

struct SstId {
  std::string session, db_id;
};

class SstIdentityWorker : public PromiseWorker {
 public:
  SstIdentityWorker(Napi::Env env, std::vector<std::string> paths) : PromiseWorker(env), paths_(std::move(paths)) {}

 protected:
  void Run() override {
    rocksdb::Options options;
    for (const auto& p : paths_) {
      rocksdb::SstFileReader reader(options);
      CheckStatus(reader.Open(p), p);
      auto props = reader.GetTableProperties();
      SstId id;
      if (props) {
        id.session = props->db_session_id;
        id.db_id = props->db_id;
      }
      out_.push_back(std::move(id));
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Array a = Napi::Array::New(env, out_.size());
    for (size_t i = 0; i < out_.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("dbSessionId", out_[i].session);
      o.Set("dbId", out_[i].db_id);
      a.Set(i, o);
    }
    return a;
  }

 private:
  std::vector<std::string> paths_;
  std::vector<SstId> out_;
};

}  // namespace

void InitRepoObject(Napi::Env env, Napi::Object exports) {
  exports.Set("repoPack", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env e = info.Env();
    if (!info[0].IsObject()) ThrowJs(e, Code::InvalidArgument, "repoPack({source, outputFd, level})");
    Napi::Object o = info[0].As<Napi::Object>();
    PackInput in;
    in.source = o.Get("source").ToString();
    in.hash_only = o.Get("hashOnly").ToBoolean();
    in.output_fd = o.Get("outputFd").IsNumber() ? o.Get("outputFd").As<Napi::Number>().Int32Value() : -1;
    in.sync_output = o.Get("syncOutput").ToBoolean();
    if (o.Get("name").IsString()) in.output_name = o.Get("name").As<Napi::String>().Utf8Value();
    in.level = o.Get("level").IsNumber() ? o.Get("level").As<Napi::Number>().Int32Value() : 3;
    if (!in.hash_only && in.output_fd < 0) ThrowJs(e, Code::InvalidArgument, "repoPack: outputFd required");
    if (in.level < 1 || in.level > 19) ThrowJs(e, Code::InvalidArgument, "repoPack: level must be 1-19");
    auto state = std::make_shared<TaskState>();
    return MakeTaskHandle(e, (new PackWorker(e, std::move(in), state))->Start(), state);
  }));
  exports.Set("repoUnpack", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env e = info.Env();
    if (!info[0].IsObject()) ThrowJs(e, Code::InvalidArgument, "repoUnpack({inputFd, output?, maxBytes, name})");
    Napi::Object o = info[0].As<Napi::Object>();
    UnpackInput in;
    in.input_fd = o.Get("inputFd").As<Napi::Number>().Int32Value();
    if (o.Get("output").IsString()) in.output = o.Get("output").ToString();
    if (o.Get("maxBytes").IsNumber()) in.max_bytes = static_cast<uint64_t>(o.Get("maxBytes").As<Napi::Number>().DoubleValue());
    in.name = o.Get("name").IsString() ? std::string(o.Get("name").ToString()) : std::string("repository object");
    auto state = std::make_shared<TaskState>();
    return MakeTaskHandle(e, (new UnpackWorker(e, std::move(in), state))->Start(), state);
  }));
  exports.Set("sstIdentity", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env e = info.Env();
    if (!info[0].IsArray()) ThrowJs(e, Code::InvalidArgument, "sstIdentity(paths[])");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<std::string> paths;
    for (uint32_t i = 0; i < a.Length(); i++) paths.push_back(a.Get(i).ToString());
    return (new SstIdentityWorker(e, std::move(paths)))->Start();
  }));
}

}  // namespace guts
