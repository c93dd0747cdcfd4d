// Chunk compressor: the tar stream arrives in fixed-size chunks; a pool of
// worker threads turns each chunk into one complete zstd frame (content size
// and checksum flags, per-thread ZSTD_CCtx) or one gzip member (zlib deflate),
// and a writer thread hands the results to a sink strictly in order. The
// concatenation is one valid .zst / .gz stream for stock tools, and a reader
// can decompress frames in parallel (docs/FORMAT.md "Compression framing").
//
// Memory is bounded: a fixed pool of chunk buffers circulates (producer ->
// workers -> writer -> producer), so nothing grows with the data size.
//
// zstd levels 1-3, per chunk (ChooseLevel, from a level-1 sample): text-like
// chunks (LZ4 SSTs of source files) the fast strategy with a frame-sized window
// and a 128K-512K-entry hash table (TuneZstdText: half the CPU of stock level 3,
// and smaller); chunks
// whose redundancy is far apart (snappy SSTs of random-looking blobs) the
// "fast" strategy with a frame-sized window and a large hash table
// (TuneZstd), both smaller and ~2x faster than stock level 3 there. gzip: a sample of each chunk
// picks stored / Huffman-only / fast LZ77 blocks of GzipEncoder at levels 1-3
// (deflate_fast.h), stored / Huffman-only / zlib deflate at 4-9 (ChooseLevel); zstd: a
// chunk whose sample does not compress (SSTs whose blocks RocksDB already
// compressed with ZSTD/LZ4, random data) becomes a frame of raw blocks.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace guts {

enum class Compression { kNone, kZstd, kGzip };

// Level of one frame; for gzip, Huffman-only deflate is a tier of its own;
// for zstd, `raw` is a frame of raw (stored) blocks.
struct FrameLevel {
  int level = 0;
  bool huffman_only = false;
  bool raw = false;
  bool fast = false;         // zstd 1-3: the tuned fast strategy (TuneZstd)
  std::string Name() const;  // "3", "3-fast", "0", "huffman-only", "raw"
};

// One standard zstd frame (content size, XXH64 content checksum) holding
// in[0..n) in raw blocks: what zstd itself emits for incompressible blocks,
// without searching for matches. Any zstd decoder reads it. Returns its length.
size_t WriteRawZstdFrame(uint8_t* out, size_t cap, const uint8_t* in, size_t n);
size_t RawZstdFrameBound(size_t n);

struct Chunk {
  std::unique_ptr<uint8_t[]> in;
  size_t in_cap = 0, in_len = 0;
  std::unique_ptr<uint8_t[]> out;
  size_t out_cap = 0, out_len = 0;
  uint64_t seq = 0;
  // Bytes of `in` that come from files whose content is already compressed
  // (SSTs RocksDB wrote with ZSTD: see SstIsPrecompressed); set by the producer.
  size_t precompressed = 0;
  FrameLevel level;  // level actually used for this frame
};

struct CompressStats {
  uint64_t frames = 0;
  uint64_t in_bytes = 0;
  uint64_t out_bytes = 0;
  std::map<std::string, uint64_t> frames_by_level;
};

// Level for one chunk given the level-1 sample gain (1 - compressed/original)
// and the share of its bytes from already compressed files.
FrameLevel ChooseLevel(Compression c, int requested, double sample_gain, double precompressed_share = 0);

// True when the file at fd is a RocksDB SST whose data blocks are ZSTD
// compressed: its properties block (read from the tail) says
// rocksdb.compression=ZSTD. Never throws (unreadable: false).
bool SstIsPrecompressed(int fd, uint64_t size);

// zstd parameters for a requested level (0 = the level's stock value).
struct ZstdTuning {
  int level = 3;
  int window_log = 0, hash_log = 0, min_match = 0, target_length = 0;
};
ZstdTuning TuneZstd(int requested, size_t frame_size);
// Levels 1-3 for text-like chunks (the sample gains >= 5%): the fast strategy
// with a frame-sized window and a larger hash table (zstd_stream.cc); other
// levels: the stock ones, with window_log.
ZstdTuning TuneZstdText(int requested, int window_log);

class ChunkCompressor {
 public:
  // Called on the writer thread, in chunk order, with the final bytes.
  using Sink = std::function<void(const uint8_t* data, size_t len)>;

  // `cancel` (may be null) is polled while waiting and between slices of
  // slow (high-level) compressions, so cancel() takes effect within ~50 ms.
  ChunkCompressor(Compression c, int level, int threads, size_t chunk_size, Sink sink,
                  const std::atomic<bool>* cancel = nullptr);
  ~ChunkCompressor();  // aborts and joins if Finish() was not reached
  ChunkCompressor(const ChunkCompressor&) = delete;
  ChunkCompressor& operator=(const ChunkCompressor&) = delete;

  // Producer side (one thread). Acquire blocks until a buffer is free and
  // rethrows the first error of any stage.
  Chunk* Acquire();
  void Submit(Chunk* chunk);
  // Waits until every submitted chunk is written; rethrows the first error.
  void Finish();
  // Stops every thread without writing the rest.
  void Abort();

  const CompressStats& stats() const { return stats_; }
  size_t chunk_size() const { return chunk_size_; }

 private:
  void WorkerLoop();
  void WriterLoop();
  void Fail(std::exception_ptr e);
  void Join();

  const Compression compression_;
  const int level_;
  const ZstdTuning tuning_;
  const size_t chunk_size_;
  Sink sink_;
  const std::atomic<bool>* cancel_;

  // Ownership: every chunk buffer belongs to chunks_ for the compressor's
  // whole life; the producer, the workers and the writer thread only pass
  // raw pointers around (free_ -> work_ -> done_ -> free_). The destructor
  // (Abort) and Finish() join every thread before chunks_ is freed, also
  // when a stage failed or the caller unwinds; the sink (and what it writes
  // to) must be declared before the compressor so that it outlives the
  // writer thread (WriteArchive).
  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::mutex mu_;
  std::condition_variable free_cv_, work_cv_, done_cv_;
  std::vector<Chunk*> free_;
  std::deque<Chunk*> work_;
  std::map<uint64_t, Chunk*> done_;
  uint64_t next_seq_ = 0, next_write_ = 0;
  bool finishing_ = false, stop_ = false;
  std::exception_ptr error_;
  CompressStats stats_;
  std::vector<std::thread> workers_;
  std::thread writer_;
};

}  // namespace guts
