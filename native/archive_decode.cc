#include "archive_decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

namespace guts {

namespace {
constexpr size_t kReadBlock = 4 << 20;
constexpr size_t kMaxParallelFrame = 32 << 20;   // larger frames are streamed
constexpr size_t kMaxInflightBytes = 128 << 20;  // decoded bytes waiting in the pool
constexpr size_t kOutBlock = 4 << 20;            // streaming / inflate output block
constexpr size_t kFrameHeaderMax = 18;           // ZSTD_FRAMEHEADERSIZE_MAX (static-only API)

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
std::string Off(uint64_t o) { return std::to_string(o); }
}  // namespace

const char* ArchiveKindName(ArchiveKind k) {
  switch (k) {
    case ArchiveKind::kZstd: return "tar.zst";
    case ArchiveKind::kGzip: return "tar.gz";
    default: return "tar";
  }
}

// ---- FileSource / InputBuffer ----

FileSource::FileSource(const std::string& path, bool sha256, TaskState* state) : path_(path), state_(state) {
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) ThrowErrno("cannot open archive", path, errno);
  struct stat st;
  if (fstat(fd_, &st) != 0) ThrowErrno("cannot stat archive", path, errno);
  if (!S_ISREG(st.st_mode)) throw GutsError(Code::InvalidArgument, "archive " + path + " is not a regular file", path);
  size_ = static_cast<uint64_t>(st.st_size);
  posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  if (sha256) sha_.reset(new Digest(Digest::kSha256));
}

FileSource::~FileSource() {
  if (fd_ >= 0) close(fd_);
}

size_t FileSource::Read(uint8_t* p, size_t n) {
  if (state_) state_->CheckCancelled();
  for (;;) {
    ssize_t r = read(fd_, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("cannot read archive", path_, errno);
    }
    if (sha_ && r > 0) sha_->Update(p, static_cast<size_t>(r));
    read_ += static_cast<uint64_t>(r);
    if (state_) state_->done.store(read_, std::memory_order_relaxed);
    return static_cast<size_t>(r);
  }
}

void FileSource::DrainForDigest() {
  if (!sha_) return;
  std::vector<uint8_t> buf(kReadBlock);
  while (Read(buf.data(), buf.size()) > 0) {
  }
}

std::string FileSource::Sha256Hex() {
  if (!sha_) return "";
  uint8_t out[32];
  sha_->Final(out);
  return ToHex(out, 32);
}

size_t InputBuffer::Fill(size_t n) {
  if (avail() >= n || eof_) return avail();
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, avail());
    end_ -= pos_;
    pos_ = 0;
  }
  size_t want = std::max(n + kReadBlock / 2, kReadBlock);
  if (buf_.size() < want) buf_.resize(want);
  while (end_ < n && !eof_) {
    size_t r = src_.Read(buf_.data() + end_, buf_.size() - end_);
    if (r == 0) eof_ = true;
    end_ += r;
  }
  return avail();
}

bool InputBuffer::Skip(uint64_t n) {
  while (n > 0) {
    if (avail() == 0 && Fill(1) == 0) return false;
    size_t take = static_cast<size_t>(std::min<uint64_t>(n, avail()));
    Consume(take);
    n -= take;
  }
  return true;
}

ArchiveKind DetectKind(InputBuffer& in) {
  in.Fill(4);
  const uint8_t* p = in.data();
  if (in.avail() >= 4) {
    uint32_t m = Le32(p);
    if (m == ZSTD_MAGICNUMBER || (m & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) return ArchiveKind::kZstd;
  }
  if (in.avail() >= 2 && p[0] == 0x1f && p[1] == 0x8b) return ArchiveKind::kGzip;
  return ArchiveKind::kTar;
}

// ---- zstd ----

namespace {

struct Buf {
  std::unique_ptr<uint8_t[]> p;
  size_t cap = 0;
  void Reserve(size_t n) {
    if (n > cap) {
      p.reset(new uint8_t[n]);
      cap = n;
    }
  }
};

struct FrameJob {
  Buf in, out;
  size_t in_size = 0, content = 0;
  uint64_t offset = 0;
  std::string error;
  bool done = false;
};

struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
using Dctx = std::unique_ptr<ZSTD_DCtx, DctxDeleter>;

Dctx NewDctx() {
  Dctx d(ZSTD_createDCtx());
  if (!d) throw std::bad_alloc();
  return d;
}

void DecodeFrame(ZSTD_DCtx* d, FrameJob* j) {
  j->out.Reserve(std::max<size_t>(j->content, 1));
  size_t r = ZSTD_decompressDCtx(d, j->out.p.get(), j->content, j->in.p.get(), j->in_size);
  if (ZSTD_isError(r)) j->error = ZSTD_getErrorName(r);
  else if (r != j->content) j->error = "frame decodes to " + std::to_string(r) + " bytes, header says " + std::to_string(j->content);
}

// Worker threads decoding whole frames; results are waited for in order.
class FramePool {
 public:
  explicit FramePool(int n) {
    for (int i = 0; i < n; i++) threads_.emplace_back([this] { Loop(); });
  }
  ~FramePool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(FrameJob* j) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(j);
    }
    work_cv_.notify_one();
  }
  void Wait(FrameJob* j) {
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [j] { return j->done; });
  }

 private:
  void Loop() {
    Dctx d;
    try {
      d = NewDctx();
    } catch (...) {
    }
    for (;;) {
      FrameJob* j;
      {
        std::unique_lock<std::mutex> l(mu_);
        work_cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        j = queue_.front();
        queue_.pop_front();
      }
      try {
        if (!d) throw std::bad_alloc();
        DecodeFrame(d.get(), j);
      } catch (const std::exception& e) {
        j->error = e.what();
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        j->done = true;
      }
      done_cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<FrameJob*> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// One frame of unknown/huge size (or odd layout, or truncated) decoded with
// bounded buffers. Returns false when the stream cannot continue.
bool StreamFrame(ZSTD_DCtx* d, InputBuffer& in, TarParser& tar, TaskState& state, DecodeStats& st, Buf& out) {
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  const uint64_t start = in.offset();
  out.Reserve(kOutBlock);
  for (;;) {
    if (in.avail() == 0 && in.Fill(1) == 0) {
      tar.Fail("archive truncated: zstd frame at archive offset " + Off(start) + " is incomplete");
      return false;
    }
    ZSTD_inBuffer ib{in.data(), in.avail(), 0};
    ZSTD_outBuffer ob{out.p.get(), out.cap, 0};
    size_t r = ZSTD_decompressStream(d, &ob, &ib);
    in.Consume(ib.pos);
    if (ob.pos) {
      st.tar_bytes += ob.pos;
      tar.Feed(out.p.get(), ob.pos);
      if (tar.stopped()) return false;
    }
    if (ZSTD_isError(r)) {
      tar.Fail("damaged zstd frame at archive offset " + Off(start) + ": " + ZSTD_getErrorName(r));
      return false;
    }
    if (r == 0) return true;
    state.CheckCancelled();
  }
}

void DecodeZstd(InputBuffer& in, TarParser& tar, int threads, TaskState& state, DecodeStats& st) {
  // Declaration order matters: the pool (joined in its destructor) must go
  // before the jobs its threads may still be touching.
  std::vector<std::unique_ptr<FrameJob>> spare;
  std::deque<std::unique_ptr<FrameJob>> inflight;
  size_t inflight_bytes = 0;
  Buf stream_out;
  Dctx dctx = NewDctx();
  std::unique_ptr<FramePool> pool;
  if (threads > 1) pool.reset(new FramePool(threads));
  const size_t max_inflight = static_cast<size_t>(std::max(2, threads * 2));

  auto deliver = [&](FrameJob& j) {
    if (!j.error.empty()) {
      tar.Hole(j.content, "damaged zstd frame at archive offset " + Off(j.offset) + ": " + j.error);
    } else {
      st.tar_bytes += j.content;
      tar.Feed(j.out.p.get(), j.content);
    }
  };
  auto consume_front = [&] {
    std::unique_ptr<FrameJob> j = std::move(inflight.front());
    inflight.pop_front();
    pool->Wait(j.get());
    inflight_bytes -= j->content;
    deliver(*j);
    spare.push_back(std::move(j));
  };
  auto drain = [&] {
    while (!inflight.empty() && !tar.stopped()) consume_front();
  };

  while (!tar.stopped()) {
    state.CheckCancelled();
    size_t avail = in.Fill(kFrameHeaderMax);
    if (avail == 0) break;  // clean end at a frame boundary
    const uint64_t off = in.offset();
    if (avail < 4) {
      drain();
      tar.Fail("archive truncated: " + std::to_string(avail) + " stray bytes at archive offset " + Off(off));
      break;
    }
    const uint32_t magic = Le32(in.data());
    if ((magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) {
      if (avail < 8 || !in.Skip(8ull + Le32(in.data() + 4))) {
        drain();
        tar.Fail("archive truncated inside a skippable zstd frame at archive offset " + Off(off));
        break;
      }
      continue;
    }
    if (magic != ZSTD_MAGICNUMBER) {
      drain();
      tar.Fail("not a zstd frame at archive offset " + Off(off) + " (damaged stream or trailing garbage)");
      break;
    }
    const unsigned long long cs = ZSTD_getFrameContentSize(in.data(), avail);
    if (cs == ZSTD_CONTENTSIZE_ERROR) {
      drain();
      tar.Fail(in.eof() && avail < kFrameHeaderMax
                   ? "archive truncated inside a zstd frame header at archive offset " + Off(off)
                   : "invalid zstd frame header at archive offset " + Off(off));
      break;
    }
    st.frames++;
    size_t frame_len = 0;
    if (cs != ZSTD_CONTENTSIZE_UNKNOWN && cs <= kMaxParallelFrame) {
      const size_t bound = ZSTD_compressBound(static_cast<size_t>(cs)) + 4096;
      for (;;) {
        size_t r = ZSTD_findFrameCompressedSize(in.data(), in.avail());
        if (!ZSTD_isError(r)) {
          frame_len = r;
          break;
        }
        if (ZSTD_getErrorCode(r) != ZSTD_error_srcSize_wrong || in.eof() || in.avail() >= bound) break;
        in.Fill(in.avail() + 1);
      }
    }
    if (frame_len) {
      std::unique_ptr<FrameJob> j;
      if (!spare.empty()) {
        j = std::move(spare.back());
        spare.pop_back();
      } else {
        j.reset(new FrameJob());
      }
      j->in.Reserve(frame_len);
      std::memcpy(j->in.p.get(), in.data(), frame_len);
      j->in_size = frame_len;
      j->content = static_cast<size_t>(cs);
      j->offset = off;
      j->error.clear();
      j->done = false;
      in.Consume(frame_len);
      st.parallel_frames++;
      if (!pool) {
        DecodeFrame(dctx.get(), j.get());
        deliver(*j);
        spare.push_back(std::move(j));
        continue;
      }
      while (!inflight.empty() && !tar.stopped() &&
             (inflight.size() >= max_inflight || inflight_bytes + j->content > kMaxInflightBytes))
        consume_front();
      if (tar.stopped()) break;
      inflight_bytes += j->content;
      pool->Submit(j.get());
      inflight.push_back(std::move(j));
      continue;
    }
    // Streaming fallback; frames must reach the parser in order.
    drain();
    if (tar.stopped()) break;
    st.streamed_frames++;
    if (!StreamFrame(dctx.get(), in, tar, state, st, stream_out)) break;
  }
  drain();
}

// ---- gzip (multi-member) ----

void DecodeGzip(InputBuffer& in, TarParser& tar, TaskState& state, DecodeStats& st) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw GutsError(Code::Internal, "inflateInit2 failed");
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  Buf out;
  out.Reserve(kOutBlock);
  bool in_member = false;
  uint64_t member_start = 0;
  for (;;) {
    state.CheckCancelled();
    if (in.avail() == 0 && in.Fill(1) == 0) {
      if (in_member) tar.Fail("archive truncated: gzip member at archive offset " + Off(member_start) + " is incomplete");
      break;
    }
    if (!in_member) {
      member_start = in.offset();
      if (in.Fill(2) < 2 || in.data()[0] != 0x1f || in.data()[1] != 0x8b) {
        tar.Fail("unexpected data after the gzip stream at archive offset " + Off(member_start));
        break;
      }
      in_member = true;
      st.frames++;
    }
    zs.next_in = const_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in.avail(), 1u << 30));
    zs.next_out = out.p.get();
    zs.avail_out = static_cast<uInt>(out.cap);
    const size_t given = zs.avail_in;
    int r = inflate(&zs, Z_NO_FLUSH);
    in.Consume(given - zs.avail_in);
    size_t produced = out.cap - zs.avail_out;
    if (produced) {
      st.tar_bytes += produced;
      tar.Feed(out.p.get(), produced);
      if (tar.stopped()) break;
    }
    if (r == Z_STREAM_END) {
      inflateReset(&zs);
      in_member = false;
      continue;
    }
    if (r == Z_OK || r == Z_BUF_ERROR) continue;
    tar.Fail("damaged gzip data in the member at archive offset " + Off(member_start) + ": " +
             (zs.msg ? zs.msg : "inflate error " + std::to_string(r)));
    break;
  }
}

void DecodePlain(InputBuffer& in, TarParser& tar, TaskState& state, DecodeStats& st) {
  for (;;) {
    state.CheckCancelled();
    size_t n = in.Fill(1);
    if (n == 0) break;
    st.tar_bytes += n;
    tar.Feed(in.data(), n);
    in.Consume(n);
    if (tar.stopped()) break;
  }
}

}  // namespace

void Decode(ArchiveKind kind, InputBuffer& in, TarParser& tar, int threads, TaskState& state, DecodeStats& stats) {
  switch (kind) {
    case ArchiveKind::kZstd: DecodeZstd(in, tar, threads, state, stats); break;
    case ArchiveKind::kGzip: DecodeGzip(in, tar, state, stats); break;
    case ArchiveKind::kTar: DecodePlain(in, tar, state, stats); break;
  }
}

}  // namespace guts
