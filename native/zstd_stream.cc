#include "zstd_stream.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <string>

#include "errors.h"

namespace guts {

// Tiers, measured on a checkpoint of snappy SSTs holding text and binary git
// blobs (4 MiB chunks, libzstd 1.5.7, one core):
//   level 1: 0.956 of the input at ~800 MB/s, level 2: 0.939 at ~660 MB/s,
//   level 3: 0.911 at ~270 MB/s; `zstd -T0 -3` (1.5.4) on the whole tar: 0.927.
// So "already compressed" chunks go to level 2 (still within 1.02x of the
// stock pipeline's size, at ~2.4x the speed), and chunks that barely compress
// at all go to level 1. For gzip the same tiers map to stored (level 0) and 1.
// Chunks that compress well get the requested level.
static constexpr double kIncompressibleGain = 0.02;
static constexpr double kPrecompressedGain = 0.15;

int ChooseLevel(Compression c, int requested, double gain) {
  if (c == Compression::kGzip) {
    if (gain < kIncompressibleGain / 2) return 0;
    if (gain < kPrecompressedGain) return std::min(requested, 1);
    return requested;
  }
  if (gain < kIncompressibleGain) return std::min(requested, 1);
  if (gain < kPrecompressedGain) return std::min(requested, 2);
  return requested;
}

namespace {

constexpr size_t kSampleSlice = 16 << 10;
constexpr size_t kSampleSlices = 4;

[[noreturn]] void ZstdFail(size_t r) {
  throw GutsError(Code::Internal, std::string("zstd: ") + ZSTD_getErrorName(r));
}

// One per worker thread: contexts are reused across chunks.
class Codec {
 public:
  explicit Codec(Compression c) : c_(c) {
    cctx_ = ZSTD_createCCtx();
    if (!cctx_) throw std::bad_alloc();
    sample_out_.resize(ZSTD_compressBound(kSampleSlice));
    if (c_ == Compression::kGzip) {
      zs_ = {};
      if (deflateInit2(&zs_, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        ZSTD_freeCCtx(cctx_);
        throw GutsError(Code::Internal, "zlib: deflateInit2 failed");
      }
      zinit_ = true;
    }
  }
  ~Codec() {
    ZSTD_freeCCtx(cctx_);
    if (zinit_) deflateEnd(&zs_);
  }

  void Compress(Chunk& ch, int requested) {
    ch.level = ChooseLevel(c_, requested, SampleGain(ch.in.get(), ch.in_len));
    if (c_ == Compression::kZstd) CompressZstd(ch);
    else CompressGzip(ch);
  }

 private:
  // Level-1 compression of a few slices spread over the chunk: cheap (~2% of
  // the chunk's work) and a good predictor for homogeneous SST data. Small
  // chunks are treated as compressible: they cost little either way.
  double SampleGain(const uint8_t* p, size_t n) {
    if (n < 2 * kSampleSlice * kSampleSlices) return 1.0;
    size_t in = 0, out = 0;
    for (size_t i = 0; i < kSampleSlices; i++) {
      size_t off = i * (n - kSampleSlice) / (kSampleSlices - 1);
      size_t r = ZSTD_compressCCtx(cctx_, sample_out_.data(), sample_out_.size(), p + off, kSampleSlice, 1);
      if (ZSTD_isError(r)) return 1.0;
      in += kSampleSlice;
      out += r;
    }
    return 1.0 - static_cast<double>(out) / static_cast<double>(in);
  }

  void CompressZstd(Chunk& ch) {
    size_t r = ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, ch.level);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_compress2(cctx_, ch.out.get(), ch.out_cap, ch.in.get(), ch.in_len);
    if (ZSTD_isError(r)) ZstdFail(r);
    ch.out_len = r;
  }

  void CompressGzip(Chunk& ch) {
    if (deflateReset(&zs_) != Z_OK || deflateParams(&zs_, ch.level, Z_DEFAULT_STRATEGY) != Z_OK)
      throw GutsError(Code::Internal, "zlib: cannot set level " + std::to_string(ch.level));
    zs_.next_in = ch.in.get();
    zs_.avail_in = static_cast<uInt>(ch.in_len);
    zs_.next_out = ch.out.get();
    zs_.avail_out = static_cast<uInt>(ch.out_cap);
    int r = deflate(&zs_, Z_FINISH);
    if (r != Z_STREAM_END) throw GutsError(Code::Internal, "zlib: deflate failed (" + std::to_string(r) + ")");
    ch.out_len = ch.out_cap - zs_.avail_out;
  }

  Compression c_;
  ZSTD_CCtx* cctx_ = nullptr;
  z_stream zs_;
  bool zinit_ = false;
  std::vector<uint8_t> sample_out_;
};

size_t OutCapacity(Compression c, size_t chunk) {
  if (c == Compression::kZstd) return ZSTD_compressBound(chunk);
  if (c == Compression::kGzip) return chunk + (chunk >> 8) + 1024;  // > deflateBound at any level
  return 0;
}

}  // namespace

ChunkCompressor::ChunkCompressor(Compression c, int level, int threads, size_t chunk_size, Sink sink)
    : compression_(c), level_(level), chunk_size_(chunk_size), sink_(std::move(sink)) {
  int workers = c == Compression::kNone ? 0 : std::max(1, threads);
  // In flight: one chunk per worker, as many finished ones waiting for the
  // writer, one being filled and one being written.
  size_t count = c == Compression::kNone ? 4 : static_cast<size_t>(std::min(2 * workers + 2, workers + 8));
  size_t out_cap = OutCapacity(c, chunk_size);
  for (size_t i = 0; i < count; i++) {
    auto ch = std::make_unique<Chunk>();
    ch->in.reset(new uint8_t[chunk_size]);
    ch->in_cap = chunk_size;
    if (out_cap) {
      ch->out.reset(new uint8_t[out_cap]);
      ch->out_cap = out_cap;
    }
    free_.push_back(ch.get());
    chunks_.push_back(std::move(ch));
  }
  try {
    for (int i = 0; i < workers; i++) workers_.emplace_back([this] { WorkerLoop(); });
    writer_ = std::thread([this] { WriterLoop(); });
  } catch (...) {
    Abort();
    throw;
  }
}

ChunkCompressor::~ChunkCompressor() { Abort(); }

void ChunkCompressor::Fail(std::exception_ptr e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!error_) error_ = e;
  stop_ = true;
  free_cv_.notify_all();
  work_cv_.notify_all();
  done_cv_.notify_all();
}

Chunk* ChunkCompressor::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  free_cv_.wait(lock, [this] { return !free_.empty() || stop_; });
  if (error_) std::rethrow_exception(error_);
  if (stop_) throw GutsError(Code::Cancelled, "cancelled");
  Chunk* ch = free_.back();
  free_.pop_back();
  ch->in_len = 0;
  ch->out_len = 0;
  ch->seq = next_seq_++;
  return ch;
}

void ChunkCompressor::Submit(Chunk* ch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (compression_ == Compression::kNone) {
    ch->level = 0;
    done_[ch->seq] = ch;
    done_cv_.notify_all();
  } else {
    work_.push_back(ch);
    work_cv_.notify_one();
  }
}

void ChunkCompressor::WorkerLoop() {
  try {
    Codec codec(compression_);
    for (;;) {
      Chunk* ch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [this] { return !work_.empty() || stop_ || finishing_; });
        if (stop_ || work_.empty()) return;  // finishing_ with nothing left
        ch = work_.front();
        work_.pop_front();
      }
      codec.Compress(*ch, level_);
      std::lock_guard<std::mutex> lock(mu_);
      done_[ch->seq] = ch;
      done_cv_.notify_all();
    }
  } catch (...) {
    Fail(std::current_exception());
  }
}

void ChunkCompressor::WriterLoop() {
  try {
    for (;;) {
      Chunk* ch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        done_cv_.wait(lock, [this] {
          return stop_ || done_.count(next_write_) || (finishing_ && next_write_ == next_seq_);
        });
        if (stop_) return;
        auto it = done_.find(next_write_);
        if (it == done_.end()) return;  // finishing and everything written
        ch = it->second;
        done_.erase(it);
      }
      bool raw = compression_ == Compression::kNone;
      sink_(raw ? ch->in.get() : ch->out.get(), raw ? ch->in_len : ch->out_len);
      std::lock_guard<std::mutex> lock(mu_);
      stats_.frames++;
      stats_.in_bytes += ch->in_len;
      stats_.out_bytes += raw ? ch->in_len : ch->out_len;
      if (!raw) stats_.frames_by_level[ch->level]++;
      next_write_++;
      free_.push_back(ch);
      free_cv_.notify_one();
    }
  } catch (...) {
    Fail(std::current_exception());
  }
}

void ChunkCompressor::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finishing_ = true;
    work_cv_.notify_all();
    done_cv_.notify_all();
  }
  Join();
  if (error_) std::rethrow_exception(error_);
}

void ChunkCompressor::Abort() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    free_cv_.notify_all();
    work_cv_.notify_all();
    done_cv_.notify_all();
  }
  Join();
}

void ChunkCompressor::Join() {
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
  if (writer_.joinable()) writer_.join();
}

}  // namespace guts
