#include "zstd_stream.h"

#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_c_stableInBuffer / stableOutBuffer
#include <zstd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <string>

#include "deflate_fast.h"
#include "errors.h"
#include "priority.h"

namespace guts {

// gzip tiers (zlib, 4 MiB chunks of a checkpoint of snappy SSTs, one core):
// level 1: 0.926 of the input at ~45 MB/s, Huffman-only: 0.958 at ~110 MB/s.
// Chunks that barely compress get stored deflate blocks or Huffman-only.
static constexpr double kIncompressibleGain = 0.02;
static constexpr double kPrecompressedGain = 0.15;
// gzip levels 1-3 (GzipEncoder), 8 MiB chunks of the real-files corpus
// (300 MB: 115 MB of LZ4/ZSTD SSTs), fraction of the input and one core's
// speed; `tar -czf` (gzip -6) keeps 0.913 of that tar:
//   sample gain   huffman-only (16 KiB blocks)   fast LZ77     zlib level 1
//   < 0.001       1.000                          1.000         0.999
//   0.02-0.03     0.970-0.984  ~700 MB/s         0.958-0.979   0.953-0.976  ~45 MB/s
//   0.03-0.06     0.962-0.969                    0.931-0.954   0.924-0.948
//   0.09-0.18     0.846-0.955  ~450 MB/s         0.791-0.934   0.774-0.930
//                                                ~100-280 MB/s
// Stored below 0.5% (random data, SSTs of ZSTD blocks that gain nothing),
// Huffman-only below 3%, fast LZ77 above: 1.014x the size of tar -czf's.
static constexpr double kGzipFastGain = 0.03;

// zstd: when a chunk is stored in raw blocks (FrameLevel::raw) instead of
// compressed. The level-1 sample (16 slices of 16 KiB) only sees local
// redundancy: on the seeded data set (snappy SSTs of random-looking blobs)
// chunks whose sample gains 0.009-0.03 still shrink by 6-16% as a whole
// frame, through object ids repeated megabytes apart. So the sample alone
// stores a chunk only when it gains nothing at all (random data: < 0.001);
// a chunk made of SSTs RocksDB compressed with ZSTD (SstIsPrecompressed) is
// stored when its sample gains under 2%.
static constexpr double kRawGain = 0.004;
static constexpr double kRawGainPrecompressed = 0.02;
static constexpr double kRawPrecompressedShare = 0.9;
// Levels 1-3: a chunk whose sample gains at least this much (5%) is text-like
// (real source files in snappy SSTs: 0.048-0.146; LZ4 SSTs: more) and
// compressed with the fast strategy and a larger hash table (TuneZstdText;
// before: the level's stock parameters and a window as large as the
// frame, at twice the CPU); below it
// (seeded data: 0.009-0.11, mostly < 0.05) the tuned fast strategy of
// TuneZstd. 8 MiB chunks, fraction of the input, `tar | zstd -T0 -3` for
// reference:
//                       tuned fast  stock 3, frame window  per chunk  zstd -T0 -3
//   real files (155 MB)   0.929          0.875               0.877      0.884
//   seeded (385 MB)       0.887          0.900               0.891      0.901
static constexpr double kTextGain = 0.05;

FrameLevel ChooseLevel(Compression c, int requested, double gain, double precompressed_share) {
  if (c == Compression::kGzip && requested <= 3) {
    // GzipEncoder (deflate_fast.h): stored, Huffman-only or fast LZ77.
    FrameLevel l{requested, false};
    if (gain < kIncompressibleGain / 2) l.raw = true;
    else if (gain < kGzipFastGain) l.huffman_only = true;
    else l.fast = true;
    return l;
  }
  if (c == Compression::kGzip) {  // levels 4-9: zlib
    if (gain < kIncompressibleGain / 2) return {0, false};
    if (gain < kPrecompressedGain) return {std::min(requested, 1), true};
    return {requested, false};
  }
  if (c != Compression::kZstd) return {requested, false};
  if (gain < kRawGain || (precompressed_share >= kRawPrecompressedShare && gain < kRawGainPrecompressed)) {
    FrameLevel l;
    l.raw = true;
    return l;
  }
  FrameLevel l{requested, false};
  l.fast = requested >= 1 && requested <= 3 && gain < kTextGain;
  return l;
}

bool SstIsPrecompressed(int fd, uint64_t size) {
  // The properties block sits just before the metaindex block and the footer.
  // Its entries are prefix-compressed (RocksDB writes it with one restart
  // point): shared key length, unshared length, value length (one-byte
  // varints here), the unshared key bytes, the value. "rocksdb.compression"
  // follows "rocksdb.comparator", so it is usually stored as 12 shared bytes
  // and "ression"; every split is tried.
  static const char kKey[] = "rocksdb.compression";
  constexpr size_t kKeyLen = sizeof kKey - 1;
  constexpr size_t kTail = 64 << 10;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size, kTail));
  if (n < 64) return false;
  std::vector<char> buf(n);
  const off_t off = static_cast<off_t>(size - n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, buf.data() + got, n - got, off + static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  for (size_t shared = 0; shared < kKeyLen; shared++) {
    const char* delta = kKey + shared;
    const size_t dlen = kKeyLen - shared;
    for (size_t i = 3; i + dlen < n;) {
      const void* hit = memmem(buf.data() + i, n - i, delta, dlen);
      if (!hit) break;
      const size_t k = static_cast<size_t>(static_cast<const char*>(hit) - buf.data());
      i = k + 1;
      if (k < 3 || static_cast<uint8_t>(buf[k - 3]) != shared || static_cast<uint8_t>(buf[k - 2]) != dlen) continue;
      const size_t vlen = static_cast<uint8_t>(buf[k - 1]);
      if (vlen >= 0x80 || k + dlen + vlen > n) continue;
      const std::string v(buf.data() + k + dlen, vlen);
      return v == "ZSTD" || v == "ZSTDNotFinalCompression";
    }
  }
  return false;
}

// zstd levels 1-3 are tuned for RocksDB checkpoints. Measured on a 385 MB
// tar of a seeded checkpoint (snappy SSTs of git objects; one core, libzstd
// 1.5.7), output as a fraction of `tar | zstd -T0 -3`'s (0.901 of the input):
//   stock level 1, 4 MiB frames              1.067  1180 MB/s
//   stock level 3, 4 MiB frames              1.006   335 MB/s
//   stock level 3, 8 MiB frames, w=23        1.000   310 MB/s
//   fast, 8 MiB window, hash 16, mm 5, acc 3 1.042  1114 MB/s  -> level 1
//   fast, 8 MiB window, hash 17, mm 5, acc 2 1.006   798 MB/s  -> level 2
//   fast, 8 MiB window, hash 18, mm 5, acc 3 0.984   731 MB/s  -> level 3
//   fast, 8 MiB window, hash 18, mm 5, acc 1 0.960   504 MB/s
//   fast, 8 MiB window, hash 17, mm 5 + LDM  0.986   425 MB/s
// Every 8 MiB chunk of that tar behaves alike (0.82-0.94 of the input at
// level 3), so a per-chunk sample buys nothing there. The redundancy left
// after snappy is short (5-6 byte) matches far apart: object ids repeated in
// keys, trees and commits, and near-duplicate blobs scattered by hash order.
// Stock level 1 misses them with its 8K-entry hash table and 512 KiB window;
// a table of 64K-256K entries over a window as large as the frame finds them,
// and skipping faster through the incompressible stretches between them
// ("acceleration", ZSTD_c_targetLength of the fast strategy) keeps the speed.
// Long-distance matching (min match 64) finds nothing more and costs 30%.
ZstdTuning TuneZstd(int requested, size_t frame_size) {
  ZstdTuning t;
  t.level = requested;
  if (requested < 1 || requested > 3) return t;  // stock parameters
  static constexpr int kHashLog[] = {16, 17, 18};
  static constexpr int kAcceleration[] = {3, 2, 3};
  int window = 10;
  while (window < 27 && (size_t{1} << window) < frame_size) window++;
  t.level = 1;  // the fast strategy
  t.window_log = window;
  t.hash_log = kHashLog[requested - 1];
  t.min_match = 5;
  t.target_length = kAcceleration[requested - 1];
  return t;
}

// Text-like chunks (sample gain >= kTextGain: LZ4 SSTs of source files, the
// upper levels of a real store) at levels 1-3. LZ4 leaves the matches across
// its 16 KiB blocks and all the entropy coding; zstd's fast strategy with a
// hash table of 128K-512K entries over a frame-sized window finds them at
// half the CPU of stock level 3 (doubleFast), and smaller. 8 MiB frames of
// the real-files corpora (tar of the checkpoint, all chunks, one core; the
// archive also stores ZSTD SSTs raw), bytes and CPU (min of 3, load 2-4):
//                                   300 MB corpus (120 MB tar)   1000 MB corpus (143 MB tar)
//   stock level 3, 8 MiB window       106.8 MB  0.42 s              130.1 MB  0.45 s
//   fast, window 8 MiB, hash 17       108.9 MB  0.20 s              -
//   fast, window 8 MiB, hash 18       106.3 MB  0.23 s              130.2 MB  0.23 s
//   fast, window 8 MiB, hash 19       105.2 MB  0.26 s              129.1 MB  0.24 s
//   fast, window 8 MiB, hash 20       104.4 MB  0.37 s              -
//   `zstd -3` of the whole tar        108.5 MB  0.53 s              131.4 MB
// (min match 5 and no acceleration, the fast strategy's defaults: minimum
// match 4 gains 1% for 20% more CPU, acceleration 2-3 loses 3%).
ZstdTuning TuneZstdText(int requested, int window_log) {
  ZstdTuning t;
  t.level = requested;
  t.window_log = window_log;
  if (requested < 1 || requested > 3) return t;  // stock parameters
  static constexpr int kHashLog[] = {17, 18, 19};
  t.level = 1;  // the fast strategy
  t.hash_log = kHashLog[requested - 1];
  return t;
}

std::string FrameLevel::Name() const {
  return raw ? "raw" : huffman_only ? "huffman-only" : fast ? std::to_string(level) + "-fast" : std::to_string(level);
}

size_t WriteRawZstdFrame(uint8_t* out, size_t cap, const uint8_t* in, size_t n) {
  if (cap < RawZstdFrameBound(n)) throw GutsError(Code::Internal, "zstd: output buffer too small for a raw frame");
  uint8_t* p = out;
  auto le = [&p](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) *p++ = static_cast<uint8_t>(v >> (8 * i));
  };
  le(ZSTD_MAGICNUMBER, 4);
  // Frame header descriptor (RFC 8878 3.1.1.1.1): single segment (the window
  // is the content size: no window descriptor), content checksum, no dictionary
  // id, Frame_Content_Size of 1, 2 (value - 256), 4 or 8 bytes.
  int fcs_flag, fcs_bytes;
  uint64_t fcs = n;
  if (n < 256) fcs_flag = 0, fcs_bytes = 1;
  else if (n < 65536 + 256) fcs_flag = 1, fcs_bytes = 2, fcs = n - 256;
  else if (n <= 0xFFFFFFFFull) fcs_flag = 2, fcs_bytes = 4;
  else fcs_flag = 3, fcs_bytes = 8;
  *p++ = static_cast<uint8_t>((fcs_flag << 6) | (1 << 5) | (1 << 2));
  le(fcs, fcs_bytes);
  // Raw blocks of at most ZSTD_BLOCKSIZE_MAX (128 KiB); an empty content is
  // one empty last raw block.
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(n - pos, ZSTD_BLOCKSIZE_MAX);
    const bool last = pos + len == n;
    le((static_cast<uint32_t>(len) << 3) | (0u << 1) | (last ? 1u : 0u), 3);  // Block_Type 0: Raw_Block
    std::memcpy(p, in + pos, len);
    p += len;
    pos += len;
  } while (pos < n);
  le(XXH64(in, n, 0) & 0xFFFFFFFFu, 4);  // Content_Checksum: low 32 bits of XXH64, seed 0
  return static_cast<size_t>(p - out);
}

size_t RawZstdFrameBound(size_t n) { return 4 + 1 + 8 + 3 * (n / ZSTD_BLOCKSIZE_MAX + 1) + n + 4; }

namespace {

// 16 slices of 16 KiB: SST blocks are 16 KiB and alternate between text and
// binary blobs, so fewer, larger slices give a noisy estimate.
constexpr size_t kSampleSlice = 16 << 10;
constexpr size_t kSampleSlices = 16;

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
      gz_.reset(new GzipEncoder());
      // between 16 KiB blocks: cancel within ~1 ms, the CPU offered back beside a node
      poll_ = [this] {
        if (++polls_ % 16 == 0) {  // every 256 KiB (kPreemptionSlice)
          CheckCancelled();
          PreemptionPoint();
        }
      };
    }
  }
  ~Codec() {
    ZSTD_freeCCtx(cctx_);
    if (zinit_) deflateEnd(&zs_);
  }

  void Compress(Chunk& ch, int requested, const ZstdTuning& tuning) {
    if (c_ == Compression::kZstd) {
      const double share = ch.in_len ? static_cast<double>(ch.precompressed) / static_cast<double>(ch.in_len) : 0;
      ch.level = ChooseLevel(c_, requested, SampleGain(ch.in.get(), ch.in_len), share);
      if (ch.level.raw) {
        CheckCancelled();
        ch.out_len = WriteRawZstdFrame(ch.out.get(), ch.out_cap, ch.in.get(), ch.in_len);
        PreemptionPoint();
      } else if (ch.level.fast || tuning.window_log == 0) {
        CompressZstd(ch, tuning);
      } else {
        CompressZstd(ch, TuneZstdText(requested, tuning.window_log));
      }
    } else {
      ch.level = ChooseLevel(c_, requested, SampleGain(ch.in.get(), ch.in_len));
      if (requested <= 3) {
        const GzipTier tier = ch.level.raw ? GzipTier::kStored : ch.level.huffman_only ? GzipTier::kHuffman : GzipTier::kFast;
        CheckCancelled();
        ch.out_len = gz_->Member(ch.out.get(), ch.out_cap, ch.in.get(), ch.in_len, tier, poll_);
        PreemptionPoint();
      } else {
        CompressGzip(ch);
      }
    }
  }

 private:
  // Level-1 zstd compression of slices spread over the chunk (3% of the
  // chunk, cheap next to compressing it). Small chunks are treated as
  // compressible: they cost little either way.
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

  void CompressZstd(Chunk& ch, const ZstdTuning& t) {
    size_t r = ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, t.level);
    if (!ZSTD_isError(r) && t.window_log) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_windowLog, t.window_log);
    if (!ZSTD_isError(r) && t.hash_log) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_hashLog, t.hash_log);
    if (!ZSTD_isError(r) && t.min_match) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_minMatch, t.min_match);
    if (!ZSTD_isError(r) && t.target_length) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_targetLength, t.target_length);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    if (ZSTD_isError(r)) ZstdFail(r);
    // Beside a running node, and at levels above 3: compressed in slices with
    // both buffers stable (no copy into zstd's window buffer): cancel is
    // checked and, beside a node, the CPU offered back between them.
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_stableInBuffer, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx_, ZSTD_c_stableOutBuffer, 1);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setPledgedSrcSize(cctx_, ch.in_len);  // content size in the frame header
    if (ZSTD_isError(r)) ZstdFail(r);
    if (!InBackgroundMode() && t.level <= 3) {
      // One call: libzstd 1.5.7 splits blocks better when it sees the whole
      // chunk (real files, stock level 3: 0.874 of the input instead of
      // 0.883 fed in 256 KiB slices) and is no slower. At levels 1-3 an 8 MiB
      // chunk takes 10-80 ms, so cancel() still takes effect within ~0.1 s;
      // higher levels (seconds per chunk) stay in slices.
      CheckCancelled();
      r = ZSTD_compress2(cctx_, ch.out.get(), ch.out_cap, ch.in.get(), ch.in_len);
      if (ZSTD_isError(r)) ZstdFail(r);
      ch.out_len = r;
      return;
    }
    ZSTD_outBuffer out = {ch.out.get(), ch.out_cap, 0};
    for (size_t pos = 0;;) {
      CheckCancelled();
      size_t end = std::min(ch.in_len, pos + kPreemptionSlice);
      ZSTD_inBuffer in = {ch.in.get(), end, pos};
      bool last = end == ch.in_len;
      r = ZSTD_compressStream2(cctx_, &out, &in, last ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(r)) ZstdFail(r);
      pos = in.pos;
      PreemptionPoint();
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
      size_t n = std::min(ch.in_len - pos, kPreemptionSlice);
      bool last = pos + n == ch.in_len;
      zs_.next_in = ch.in.get() + pos;
      zs_.avail_in = static_cast<uInt>(n);
      int r = deflate(&zs_, last ? Z_FINISH : Z_NO_FLUSH);
      if (last ? r != Z_STREAM_END : (r != Z_OK || zs_.avail_in != 0))
        throw GutsError(Code::Internal, "zlib: deflate failed (" + std::to_string(r) + ")");
      pos += n;
      PreemptionPoint();
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
  std::unique_ptr<GzipEncoder> gz_;
  std::function<void()> poll_;
  uint64_t polls_ = 0;
  std::vector<uint8_t> sample_out_;
};

size_t OutCapacity(Compression c, size_t chunk) {
  if (c == Compression::kZstd) return std::max(ZSTD_compressBound(chunk), RawZstdFrameBound(chunk));
  if (c == Compression::kGzip) return std::max(chunk + (chunk >> 8) + 1024, GzipMemberBound(chunk));  // > deflateBound at any level
  return 0;
}

}  // namespace

ChunkCompressor::ChunkCompressor(Compression c, int level, int threads, size_t chunk_size, Sink sink,
                                 const std::atomic<bool>* cancel)
    : compression_(c), level_(level), tuning_(TuneZstd(level, chunk_size)), chunk_size_(chunk_size), sink_(std::move(sink)), cancel_(cancel) {
  int workers = c == Compression::kNone ? 0 : std::max(1, threads);
  // In flight: one chunk per worker, one being filled (or queued) and one
  // being written. Filling from the page cache takes ~2 ms per 8 MiB and
  // compressing ~15 ms, so more buffers only add memory.
  size_t count = c == Compression::kNone ? 4 : static_cast<size_t>(workers + 2);
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
    for (int i = 0; i < workers; i++) workers_.emplace_back([this] {
      NameThisThread(compression_ == Compression::kGzip ? "guts-gzip" : "guts-zstd");
      WorkerLoop();
    });
    writer_ = std::thread([this] {
      NameThisThread("guts-frames");
      WriterLoop();
    });
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
  ch->precompressed = 0;
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
      codec.Compress(*ch, level_, tuning_);
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
