#include "zstd_stream.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "errors.h"

namespace guts {

// Tiers, measured on a checkpoint of snappy SSTs holding text and binary git
// blobs (4 MiB chunks, libzstd 1.5.7, one core):
//   zstd level 1: 0.956 of the input at ~800 MB/s, level 2: 0.939 at ~660 MB/s,
//   level 3: 0.911 at ~270 MB/s; `zstd -T0 -3` (1.5.4) on the whole tar: 0.927.
//   zlib level 1: 0.926 at ~45 MB/s, Huffman-only: 0.958 at ~110 MB/s.
// So "already compressed" chunks get zstd level 2 (within 1.02x of the stock
// pipeline's size at ~2.4x the speed of level 3) or deflate Huffman-only, and
// chunks that barely compress at all get zstd level 1 or stored deflate
// blocks. Chunks that compress well get the requested level.
static constexpr double kIncompressibleGain = 0.02;
static constexpr double kPrecompressedGain = 0.15;

FrameLevel ChooseLevel(Compression c, int requested, double gain) {
  if (c == Compression::kGzip) {
    if (gain < kIncompressibleGain / 2) return {0, false};
    if (gain < kPrecompressedGain) return {std::min(requested, 1), true};
    return {requested, false};
  }
  if (gain < kIncompressibleGain) return {std::min(requested, 1), false};
  if (gain < kPrecompressedGain) return {std::min(requested, 2), false};
  return {requested, false};
}

std::string FrameLevel::Name() const { return huffman_only ? "huffman-only" : std::to_string(level); }

namespace {

// 16 slices of 16 KiB: SST blocks are 16 KiB and alternate between text and
// binary blobs, so fewer, larger slices give a noisy estimate.
constexpr size_t kSampleSlice = 16 << 10;
constexpr size_t kSampleSlices = 16;
// Levels from here on take long per chunk: compress in slices and check for
// cancel between them (one-shot ZSTD_compress2 is faster at low levels).
constexpr int kSlicedZstdLevel = 10;
constexpr size_t kSlice = 512 << 10;

[[noreturn]] void ZstdFail(size_t r) {
  throw GutsError(Code::Internal, std::string("zstd: ") + ZSTD_getErrorName(r));
}

// One per worker thread: contexts are reused across chunks.
class Codec {
 public:
  Codec(Compression c, const std::atomic<bool>* cancel) : c_(c), cancel_(cancel) {
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
  // Level-1 compression of slices spread over the chunk: ~4% of the chunk's
  // work at level 2. Small chunks are treated as compressible: they cost
  // little either way.
  double SampleGain(const uint8_t* p, size_t n) {
    if (n < 4 * kSampleSlice * kSampleSlices) return 1.0;
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
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, ch.level.level);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    if (ZSTD_isError(r)) ZstdFail(r);
    if (ch.level.level < kSlicedZstdLevel) {
      r = ZSTD_compress2(cctx_, ch.out.get(), ch.out_cap, ch.in.get(), ch.in_len);
      if (ZSTD_isError(r)) ZstdFail(r);
      ch.out_len = r;
      return;
    }
    r = ZSTD_CCtx_setPledgedSrcSize(cctx_, ch.in_len);  // keeps the content size in the frame header
    if (ZSTD_isError(r)) ZstdFail(r);
    ZSTD_outBuffer out = {ch.out.get(), ch.out_cap, 0};
    for (size_t pos = 0;;) {
      CheckCancelled();
      size_t end = std::min(ch.in_len, pos + kSlice);
      ZSTD_inBuffer in = {ch.in.get(), end, pos};
      bool last = end == ch.in_len;
      r = ZSTD_compressStream2(cctx_, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(r)) ZstdFail(r);
      pos = in.pos;
      if (last && r == 0) break;
      if (out.pos == out.size) throw GutsError(Code::Internal, "zstd: output buffer too small");
    }
    ch.out_len = out.pos;
  }

  void CompressGzip(Chunk& ch) {
    int strategy = ch.level.huffman_only ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY;
    if (deflateReset(&zs_) != Z_OK || deflateParams(&zs_, ch.level.level, strategy) != Z_OK)
      throw GutsError(Code::Internal, "zlib: cannot set level " + ch.level.Name());
    zs_.next_out = ch.out.get();
    zs_.avail_out = static_cast<uInt>(ch.out_cap);
    for (size_t pos = 0;;) {
      CheckCancelled();
      size_t n = std::min(ch.in_len - pos, kSlice);
      bool last = pos + n == ch.in_len;
      zs_.next_in = ch.in.get() + pos;
      zs_.avail_in = static_cast<uInt>(n);
      int r = deflate(&zs_, last ? Z_FINISH : Z_NO_FLUSH);
      if (last ? r != Z_STREAM_END : (r != Z_OK || zs_.avail_in != 0))
        throw GutsError(Code::Internal, "zlib: deflate failed (" + std::to_string(r) + ")");
      pos += n;
      if (last) break;
    }
    ch.out_len = ch.out_cap - zs_.avail_out;
  }

  void CheckCancelled() const {
    if (cancel_ && cancel_->load(std::memory_order_relaxed)) throw GutsError(Code::Cancelled, "cancelled");
  }

  Compression c_;
  const std::atomic<bool>* cancel_;
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

ChunkCompressor::ChunkCompressor(Compression c, int level, int threads, size_t chunk_size, Sink sink,
                                 const std::atomic<bool>* cancel)
    : compression_(c), level_(level), chunk_size_(chunk_size), sink_(std::move(sink)), cancel_(cancel) {
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
  while (!free_cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return !free_.empty() || stop_; })) {
    if (cancel_ && cancel_->load(std::memory_order_relaxed)) throw GutsError(Code::Cancelled, "cancelled");
  }
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
    ch->level = {};
    done_[ch->seq] = ch;
    done_cv_.notify_all();
  } else {
    work_.push_back(ch);
    work_cv_.notify_one();
  }
}

void ChunkCompressor::WorkerLoop() {
  try {
    Codec codec(compression_, cancel_);
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
      if (!raw) stats_.frames_by_level[ch->level.Name()]++;
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
