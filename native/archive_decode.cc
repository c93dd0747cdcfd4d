#include "archive_decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_d_forceIgnoreChecksum (libzstd is linked statically)
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "priority.h"

namespace guts {

namespace {
// Input is read in blocks of at least this size; a whole frame (8 MiB of tar
// by default, ~7 MiB compressed) then usually sits in the buffer already.
constexpr size_t kReadBlock = 8 << 20;
constexpr size_t kMaxParallelFrame = 32 << 20;   // larger frames are streamed
constexpr size_t kOutBlock = 4 << 20;            // streaming / inflate output block
constexpr size_t kFrameHeaderMax = 18;           // ZSTD_FRAMEHEADERSIZE_MAX (static-only API)
constexpr size_t kDirectReadAhead = 1 << 20;     // ReadWholeFrame: least read straight into a frame buffer

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

// ---- AsyncSha256 / FileSource / InputBuffer ----

// Test hook (GUTS_TEST_HOOKS=1 and GUTS_TEST_SHA256_DELAY_MS=N): the hasher
// sleeps N ms before each block, so it always lags the reader and the
// consumer; tests use it to make the buffer-lifetime races of the error paths
// deterministic.
static int HashDelayMs() {
  const char* hooks = std::getenv("GUTS_TEST_HOOKS");
  const char* ms = std::getenv("GUTS_TEST_SHA256_DELAY_MS");
  if (!hooks || std::strcmp(hooks, "1") != 0 || !ms) return 0;
  return std::max(0, std::min(1000, std::atoi(ms)));
}

AsyncSha256::AsyncSha256() : digest_(Digest::kSha256), delay_ms_(HashDelayMs()), thread_([this] { Loop(); }) {}

AsyncSha256::~AsyncSha256() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void AsyncSha256::Submit(const uint8_t* p, size_t n) {
  if (n == 0) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.emplace_back(p, n);
    submitted_ += n;
  }
  work_cv_.notify_one();
}

void AsyncSha256::WaitHashed(uint64_t upto) {
  std::unique_lock<std::mutex> l(mu_);
  done_cv_.wait(l, [&] { return hashed_ >= upto; });  // advances even after an error
}

std::string AsyncSha256::Finish() {
  uint64_t all;
  {
    std::lock_guard<std::mutex> l(mu_);
    all = submitted_;
  }
  WaitHashed(all);
  std::lock_guard<std::mutex> l(mu_);  // the hasher is idle: the queue is empty
  if (!error_.empty()) throw GutsError(Code::Internal, "SHA-256: " + error_);
  uint8_t out[32];
  digest_.Final(out);
  return ToHex(out, 32);
}

void AsyncSha256::Loop() {
  for (;;) {
    std::pair<const uint8_t*, size_t> item;
    bool failed;
    {
      std::unique_lock<std::mutex> l(mu_);
      work_cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop requested and nothing left
      item = queue_.front();
      // Stopping: nobody will read the digest; skip what is left rather than
      // read more of buffers whose owners are going away.
      failed = !error_.empty() || stop_;
    }
    std::string err;
    if (delay_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    try {
      if (!failed) digest_.Update(item.first, item.second);
    } catch (const std::exception& e) {
      err = e.what();
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.pop_front();
      hashed_ += item.second;
      if (!err.empty() && error_.empty()) error_ = err;
    }
    done_cv_.notify_all();
  }
}

FileSource::FileSource(const std::string& path, bool sha256, TaskState* state) : path_(path), state_(state) {
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) ThrowErrno("cannot open archive", path, errno);
  struct stat st;
  const int rc = fstat(fd_, &st);
  const int err = errno;
  if (rc != 0 || !S_ISREG(st.st_mode)) {
    close(fd_);  // the destructor does not run when the constructor throws
    fd_ = -1;
    if (rc != 0) ThrowErrno("cannot stat archive", path, err);
    throw GutsError(Code::InvalidArgument, "archive " + path + " is not a regular file", path);
  }
  size_ = static_cast<uint64_t>(st.st_size);
  posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  if (sha256) sha_.reset(new AsyncSha256());
}

FileSource::FileSource(int fd, const std::string& path, uint64_t size, bool sha256, TaskState* state)
    : path_(path), fd_(fd), size_(size), stream_(true), state_(state) {
  if (sha256) sha_.reset(new AsyncSha256());
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
    if (sha_ && r > 0) sha_->Submit(p, static_cast<size_t>(r));
    read_ += static_cast<uint64_t>(r);
    if (state_) state_->done.store(read_, std::memory_order_relaxed);
    return static_cast<size_t>(r);
  }
}

void FileSource::DrainForDigest() {
  if (!sha_ && !stream_) return;  // a stream is read to its end: every byte counted
  std::vector<uint8_t> bufs[2] = {std::vector<uint8_t>(kReadBlock), std::vector<uint8_t>(kReadBlock)};
  // Declared after bufs: on every exit (a read error, cancel) the hasher is
  // done with them before they are freed.
  struct Drained {
    FileSource& s;
    ~Drained() { s.sha_->WaitHashed(s.read_); }
  } drained{*this};
  uint64_t mark[2] = {read_, read_};
  for (int i = 0;; i ^= 1) {
    sha_->WaitHashed(mark[i]);  // this buffer's previous bytes are hashed
    if (Read(bufs[i].data(), bufs[i].size()) == 0) break;
    mark[i] = read_;
  }
}

std::string FileSource::Sha256Hex() { return sha_ ? sha_->Finish() : ""; }

void InputBuffer::SwitchBuffer(const uint8_t* head, size_t head_len, size_t cap) {
  // Continue in the other buffer: the hasher may still be reading this one.
  const int next = 1 - cur_;
  src_.WaitHashed(read_mark_[next]);
  std::vector<uint8_t>& nb = bufs_[next];
  const size_t tail = avail();
  if (nb.size() < std::max(cap, head_len + tail)) nb.resize(std::max(cap, head_len + tail));
  if (head_len) std::memcpy(nb.data(), head, head_len);
  if (tail) std::memcpy(nb.data() + head_len, bufs_[cur_].data() + pos_, tail);
  read_mark_[next] = read_mark_[cur_];  // holds no bytes read later than the current buffer's
  cur_ = next;
  pos_ = 0;
  end_ = head_len + tail;
}

size_t InputBuffer::Fill(size_t n) {
  if (avail() >= n || eof_) return avail();
  const size_t want = std::max(n + kReadBlock / 2, kReadBlock);
  if (pos_ > 0 || bufs_[cur_].size() < want) SwitchBuffer(nullptr, 0, want);
  std::vector<uint8_t>& b = bufs_[cur_];
  while (end_ < n && !eof_) {
    size_t r = src_.Read(b.data() + end_, b.size() - end_);
    if (r == 0) eof_ = true;
    end_ += r;
    read_mark_[cur_] = src_.consumed();
  }
  return avail();
}

size_t InputBuffer::FillExact(size_t n) {
  if (avail() >= n || eof_) return avail();
  if (bufs_[cur_].size() - pos_ < n) SwitchBuffer(nullptr, 0, n);
  std::vector<uint8_t>& b = bufs_[cur_];
  while (end_ - pos_ < n && !eof_) {
    size_t r = src_.Read(b.data() + end_, pos_ + n - end_);
    if (r == 0) eof_ = true;
    end_ += r;
    read_mark_[cur_] = src_.consumed();
  }
  return avail();
}

size_t InputBuffer::ReadDirect(uint8_t* p, size_t n) {
  if (avail() != 0) throw GutsError(Code::Internal, "InputBuffer::ReadDirect with buffered bytes");
  if (eof_) return 0;
  size_t r = src_.Read(p, n);
  if (r == 0) eof_ = true;
  return r;
}

void InputBuffer::Unread(const uint8_t* p, size_t n) {
  if (n == 0) return;
  SwitchBuffer(p, n, n + avail());
  eof_ = false;  // there are bytes again; a later read finds the end again
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

size_t InputBuffer::ReadInto(uint8_t* p, size_t n) {
  if (avail() == 0 && Fill(1) == 0) return 0;
  const size_t take = std::min(n, avail());
  std::memcpy(p, data(), take);
  Consume(take);
  return take;
}

ArchiveKind DetectKind(InputBuffer& in) {
  in.FillExact(4);  // zstd frames are then read straight into frame buffers
  const uint8_t* p = in.data();
  if (in.avail() >= 4) {
    uint32_t m = Le32(p);
    if (m == ZSTD_MAGICNUMBER || (m & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) return ArchiveKind::kZstd;
  }
  if (in.avail() >= 2 && p[0] == 0x1f && p[1] == 0x8b) return ArchiveKind::kGzip;
  return ArchiveKind::kTar;
}

// ---- pipeline: reader thread -> ordered chunks -> consumer ----
//
// The reader thread reads the file (and hashes it), splits zstd frames and
// hands whole frames to the decoder pool, or decodes itself (streamed zstd
// frames, gzip, plain tar), pushing chunks in archive order. The calling
// thread consumes them in order: tar parsing, XXH3, writes. Both sides are
// bounded (chunk count and decoded bytes queued).

namespace {

constexpr size_t kMaxQueuedBytes = 128 << 20;

// Page-aligned, so that decoded file data can be written with O_DIRECT
// straight from it (ExtractDir).
struct Buf {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> p;
  size_t cap = 0;
  void Reserve(size_t n) {
    if (n > cap) {
      const size_t rounded = (n + 4095) & ~size_t{4095};
      p.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, rounded)));
      if (!p) {
        cap = 0;
        throw std::bad_alloc();
      }
      cap = rounded;
    }
  }
};

// One unit of the tar stream, in archive order.
//
// Ownership: every Chunk is created and freed by its Pipeline (Pipeline::owned_)
// and by nothing else. The reader thread, the decoder pool and the consumer
// only hold a ChunkPtr, whose deleter hands the chunk back to the pipeline's
// spare list instead of freeing it: dropping a handle on any path (an early
// return, an exception unwinding either thread, Push after Abort) never frees
// memory that another thread may still read. Readers of a chunk's memory
// besides its holder: the decoder pool (a pooled chunk until `done`) and the
// SHA-256 thread (`in` up to `hash_mark`). The buffers are released only in
// ~Pipeline, after the reader thread and the pool are joined and the hasher
// has caught up with every byte read.
struct Chunk {
  Buf in, out;
  // source().consumed() after the last direct read into `in`: the hasher may
  // read `in` until it has hashed that far (kept across Reset).
  uint64_t hash_mark = 0;
  size_t in_size = 0;
  size_t size = 0;      // decoded bytes in `out`, or bytes lost when `error` is set
  uint64_t offset = 0;  // archive offset of the frame (messages)
  bool pooled = false;  // decoded by the pool: wait for `done`
  bool done = false;    // guarded by the pool's mutex
  std::string error;    // frame failed to decode: a hole of `size` bytes
  std::string fail;     // the stream cannot continue
  void Reset() {
    in_size = size = 0;
    offset = 0;
    pooled = done = false;
    error.clear();
    fail.clear();
  }
};

class Pipeline;
struct ChunkReturn {
  Pipeline* pl;
  void operator()(Chunk* c) const;  // back to pl's spare list (see Chunk)
};
using ChunkPtr = std::unique_ptr<Chunk, ChunkReturn>;

struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
using Dctx = std::unique_ptr<ZSTD_DCtx, DctxDeleter>;

// Without frame checksums: the caller checks a SHA-256 of every archive byte
// (and XXH3-128 of every file), so zstd's XXH64 of the content adds nothing.
Dctx NewDctx(bool frame_checksums) {
  Dctx d(ZSTD_createDCtx());
  if (!d) throw std::bad_alloc();
  if (!frame_checksums) ZSTD_DCtx_setParameter(d.get(), ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum);
  return d;
}

void DecodeFrame(ZSTD_DCtx* d, Chunk* c) {
  c->out.Reserve(std::max<size_t>(c->size, 1));
  size_t r = ZSTD_decompressDCtx(d, c->out.p.get(), c->size, c->in.p.get(), c->in_size);
  if (ZSTD_isError(r)) c->error = ZSTD_getErrorName(r);
  else if (r != c->size) c->error = "frame decodes to " + std::to_string(r) + " bytes, header says " + std::to_string(c->size);
}

// Worker threads decoding whole frames; the consumer waits for each in order.
// A submitted chunk is read and written by one worker until `done`; its
// holder may not reuse it before (Pipeline::Give waits). The destructor joins
// every worker: it runs before any chunk is freed (~Pipeline).
class FramePool {
 public:
  FramePool(int n, bool frame_checksums) : frame_checksums_(frame_checksums) {
    try {
      for (int i = 0; i < n; i++)
        threads_.emplace_back([this] {
          NameThisThread("guts-decode");
          Loop();
        });
    } catch (...) {
      Stop();  // the destructor does not run when the constructor throws
      throw;
    }
  }
  ~FramePool() { Stop(); }
  void Submit(Chunk* c) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(c);
    }
    work_cv_.notify_one();
  }
  // Until a submitted chunk is decoded (the workers run until Stop()).
  void Wait(Chunk* c) {
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [c] { return c->done; });
  }

 private:
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  void Loop() {
    Dctx d;
    try {
      d = NewDctx(frame_checksums_);
    } catch (...) {
    }
    for (;;) {
      Chunk* c;
      {
        std::unique_lock<std::mutex> l(mu_);
        work_cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        c = queue_.front();
        queue_.pop_front();
      }
      try {
        if (!d) throw std::bad_alloc();
        DecodeFrame(d.get(), c);
      } catch (const std::exception& e) {
        c->error = e.what();
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        c->done = true;
      }
      done_cv_.notify_all();
    }
  }
  const bool frame_checksums_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Chunk*> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// The reader thread -> ordered chunks -> consumer hand-off, and the owner of
// everything the threads share: the chunks, the decoder pool and the reader
// thread itself. ~Pipeline is the one place that ends them, in this order:
// stop and join the reader, join the pool, wait for the hasher to reach the
// last byte read, then free the chunks.
class Pipeline {
 public:
  // Queued: one frame per decoder plus one decoded and waiting; with the one
  // being read and the one being consumed, threads + 3 chunks exist (16 MiB
  // each with 8 MiB frames). More only adds memory.
  Pipeline(int threads, bool frame_checksums, FileSource& src)
      : max_items_(static_cast<size_t>(std::max(2, threads + 1))), frame_checksums_(frame_checksums), src_(src) {
    if (threads > 1) pool_.reset(new FramePool(threads, frame_checksums));
  }
  ~Pipeline() {
    Abort();
    if (reader_.joinable()) reader_.join();
    pool_.reset();
    src_.WaitHashed(src_.consumed());  // frames were read straight into chunk buffers
    std::lock_guard<std::mutex> l(mu_);
    for (ChunkPtr& c : queue_) c.release();  // owned_ frees them; no hand-back from a dying pipeline
  }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Runs produce() on the reader thread; its exception (I/O error, cancel)
  // reaches the consumer through Pop() after the chunks pushed before it.
  template <typename Fn>
  void StartReader(Fn produce) {
    reader_ = std::thread([this, produce] {
      NameThisThread("guts-read");
      std::exception_ptr error;
      try {
        produce();
      } catch (...) {
        error = std::current_exception();
      }
      Close(error);
    });
  }

  bool frame_checksums() const { return frame_checksums_; }
  FramePool* pool() { return pool_.get(); }

  ChunkPtr Take() {
    std::lock_guard<std::mutex> l(mu_);
    if (!spare_.empty()) {
      Chunk* c = spare_.back();
      spare_.pop_back();
      c->Reset();
      return ChunkPtr(c, ChunkReturn{this});
    }
    std::unique_ptr<Chunk> c(new Chunk());
    // Allocated only when none is spare: as many exist as were ever in use at
    // once (the queue, threads + 1, and the two or three the threads hold).
    owned_.push_back(std::move(c));
    return ChunkPtr(owned_.back().get(), ChunkReturn{this});
  }
  // Called when a ChunkPtr is dropped, on any thread and path.
  void Give(Chunk* c) {
    // A pooled chunk dropped before the consumer waited for it (cancel, a
    // failing write) is still being decoded: not reusable before it is done.
    if (c->pooled && pool_) pool_->Wait(c);
    std::lock_guard<std::mutex> l(mu_);
    spare_.push_back(c);
  }
  // Before writing into c->in (the hasher may still read what a direct read put there).
  void WaitInputFree(Chunk* c) { src_.WaitHashed(c->hash_mark); }
  // Reader side: waits for room; false once the consumer has stopped.
  bool Push(ChunkPtr c) {
    const size_t bytes = c->size;
    std::unique_lock<std::mutex> l(mu_);
    room_cv_.wait(l, [&] {
      return aborted_ || queue_.empty() || (queue_.size() < max_items_ && queued_ + bytes <= kMaxQueuedBytes);
    });
    if (aborted_) {
      c->pooled = false;  // never submitted: Give must not wait for the pool
      l.unlock();         // c goes back to spare_ (Give takes mu_)
      return false;
    }
    queued_ += bytes;
    if (c->pooled) pool_->Submit(c.get());
    queue_.push_back(std::move(c));
    item_cv_.notify_one();
    return true;
  }
  // Consumer side: the next chunk, or null at the end; rethrows the reader's
  // exception once everything pushed before it was taken.
  ChunkPtr Pop() {
    std::unique_lock<std::mutex> l(mu_);
    item_cv_.wait(l, [&] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (reader_error_) std::rethrow_exception(reader_error_);
      return ChunkPtr(nullptr, ChunkReturn{this});
    }
    ChunkPtr c = std::move(queue_.front());
    queue_.pop_front();
    queued_ -= c->size;
    room_cv_.notify_one();
    return c;
  }
  // Consumer side: stop the reader (Push returns false from now on).
  void Abort() {
    std::lock_guard<std::mutex> l(mu_);
    aborted_ = true;
    room_cv_.notify_all();
  }
  bool aborted() {
    std::lock_guard<std::mutex> l(mu_);
    return aborted_;
  }
  bool Fail(const std::string& msg) {
    ChunkPtr c = Take();
    c->fail = msg;
    return Push(std::move(c));
  }

 private:
  void Close(std::exception_ptr error) {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    reader_error_ = error;
    item_cv_.notify_all();
  }

  const size_t max_items_;
  const bool frame_checksums_;
  FileSource& src_;
  std::mutex mu_;
  std::condition_variable room_cv_, item_cv_;
  // Declared first among the chunk containers: destroyed last.
  std::vector<std::unique_ptr<Chunk>> owned_;  // every chunk of this pipeline
  std::vector<Chunk*> spare_;
  std::deque<ChunkPtr> queue_;
  size_t queued_ = 0;
  bool closed_ = false, aborted_ = false;
  std::exception_ptr reader_error_;
  std::unique_ptr<FramePool> pool_;
  std::thread reader_;
};

void ChunkReturn::operator()(Chunk* c) const { pl->Give(c); }

// Pushes `c` when it holds data; keeps it otherwise. False once the consumer stopped.
bool Flush(Pipeline& pl, ChunkPtr& c) {
  if (!c || c->size == 0) return !pl.aborted();
  bool ok = pl.Push(std::move(c));
  c = pl.Take();
  c->out.Reserve(kOutBlock);
  return ok;
}

// One frame of unknown/huge size (or odd layout, or truncated), decoded with
// bounded buffers on the reader thread. False when the stream cannot continue.
bool StreamFrame(ZSTD_DCtx* d, InputBuffer& in, Pipeline& pl) {
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  const uint64_t start = in.offset();
  ChunkPtr c = pl.Take();
  c->out.Reserve(kOutBlock);
  for (;;) {
    if (in.avail() == 0 && in.Fill(1) == 0) {
      Flush(pl, c);
      pl.Fail("archive truncated: zstd frame at archive offset " + Off(start) + " is incomplete");
      return false;
    }
    ZSTD_inBuffer ib{in.data(), in.avail(), 0};
    ZSTD_outBuffer ob{c->out.p.get() + c->size, c->out.cap - c->size, 0};
    size_t r = ZSTD_decompressStream(d, &ob, &ib);
    in.Consume(ib.pos);
    c->size += ob.pos;
    if (ZSTD_isError(r)) {
      Flush(pl, c);
      pl.Fail("damaged zstd frame at archive offset " + Off(start) + ": " + ZSTD_getErrorName(r));
      return false;
    }
    if ((c->size == c->out.cap || r == 0) && !Flush(pl, c)) return false;
    if (r == 0) return true;
  }
}

uint32_t Le24(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16);
}

// Moves one whole zstd frame into c->in: what `in` has buffered is copied,
// the rest is read straight from the file (no staging copy), block by block:
// the frame header and each block header say exactly how much is left.
// Returns the frame's length, or 0 with every byte taken put back into `in`
// (truncated, or a layout the streaming decoder should judge and report).
// On an exception (cancel, I/O error) c->hash_mark may be stale: harmless,
// the chunk stays with the pipeline, which frees it only after the hasher
// has caught up with every byte read (~Pipeline).
size_t ReadWholeFrame(InputBuffer& in, Chunk* c, size_t bound) {
  c->in.Reserve(bound);
  uint8_t* p = c->in.p.get();
  size_t have = 0;
  bool direct = false;
  auto need = [&](size_t n) {  // the first n bytes of the frame in p
    if (n > bound) return false;
    while (have < n) {
      if (in.avail()) {
        const size_t k = std::min(in.avail(), n - have);
        std::memcpy(p + have, in.data(), k);
        in.Consume(k);
        have += k;
        continue;
      }
      // Ahead of what the block headers ask for: libzstd 1.5.7 splits a
      // chunk into blocks of a few KiB, and one read (and one hasher
      // hand-off) per block was ~700 reads per frame. What lies past the
      // frame goes back into `in` below.
      const size_t r = in.ReadDirect(p + have, std::max(n - have, std::min(bound - have, kDirectReadAhead)));
      if (r == 0) return false;
      have += r;
      direct = true;
    }
    return true;
  };
  auto give_back = [&]() -> size_t {
    if (direct) c->hash_mark = in.source().consumed();
    in.Unread(p, have);
    return 0;
  };
  if (!need(ZSTD_FRAMEHEADERSIZE_PREFIX(ZSTD_f_zstd1))) return give_back();
  const size_t hsize = ZSTD_frameHeaderSize(p, have);
  ZSTD_frameHeader fh;
  if (ZSTD_isError(hsize) || !need(hsize) || ZSTD_getFrameHeader(&fh, p, have) != 0 || fh.frameType != ZSTD_frame)
    return give_back();
  size_t pos = hsize;
  for (;;) {
    if (!need(pos + 3)) return give_back();  // the rest of the last block and this header, in one read
    const uint32_t bh = Le24(p + pos);
    const uint32_t type = (bh >> 1) & 3, size = bh >> 3;
    if (type == 3 || size > ZSTD_BLOCKSIZE_MAX) return give_back();  // reserved type, oversized: let zstd say so
    pos += 3 + (type == 1 ? 1 : size);  // RLE blocks hold one byte
    if (bh & 1) break;                  // last block
  }
  if (fh.checksumFlag) pos += 4;
  if (!need(pos)) return give_back();
  if (have != pos) {  // read past the frame (buffered in `in`, or read ahead): hand the rest back
    in.Unread(p + pos, have - pos);
    have = pos;
  }
  if (direct) c->hash_mark = in.source().consumed();
  c->in_size = pos;
  return pos;
}

void ProduceZstd(InputBuffer& in, Pipeline& pl, DecodeStats& st) {
  Dctx dctx = NewDctx(pl.frame_checksums());
  while (!pl.aborted()) {
    size_t avail = in.FillExact(kFrameHeaderMax);
    if (avail == 0) break;  // clean end at a frame boundary
    const uint64_t off = in.offset();
    if (avail < 4) {
      pl.Fail("archive truncated: " + std::to_string(avail) + " stray bytes at archive offset " + Off(off));
      break;
    }
    const uint32_t magic = Le32(in.data());
    if ((magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START) {
      if (avail < 8 || !in.Skip(8ull + Le32(in.data() + 4))) {
        pl.Fail("archive truncated inside a skippable zstd frame at archive offset " + Off(off));
        break;
      }
      continue;
    }
    if (magic != ZSTD_MAGICNUMBER) {
      pl.Fail("not a zstd frame at archive offset " + Off(off) + " (damaged stream or trailing garbage)");
      break;
    }
    const unsigned long long cs = ZSTD_getFrameContentSize(in.data(), avail);
    if (cs == ZSTD_CONTENTSIZE_ERROR) {
      pl.Fail(in.eof() && avail < kFrameHeaderMax ? "archive truncated inside a zstd frame header at archive offset " + Off(off)
                                                  : "invalid zstd frame header at archive offset " + Off(off));
      break;
    }
    st.frames++;
    if (cs != ZSTD_CONTENTSIZE_UNKNOWN && cs <= kMaxParallelFrame) {
      ChunkPtr c = pl.Take();
      pl.WaitInputFree(c.get());
      const size_t frame_len = ReadWholeFrame(in, c.get(), ZSTD_compressBound(static_cast<size_t>(cs)) + 4096);
      if (frame_len) {
        c->size = static_cast<size_t>(cs);
        c->offset = off;
        st.parallel_frames++;
        if (pl.pool()) {
          c->pooled = true;
        } else {
          DecodeFrame(dctx.get(), c.get());
        }
        if (!pl.Push(std::move(c))) break;
        continue;
      }
      // odd or truncated frame: its bytes are back in `in`; c goes back to the pipeline
    }
    st.streamed_frames++;
    if (!StreamFrame(dctx.get(), in, pl)) break;
  }
}

void ProduceGzip(InputBuffer& in, Pipeline& pl, DecodeStats& st) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw GutsError(Code::Internal, "inflateInit2 failed");
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  ChunkPtr c = pl.Take();
  c->out.Reserve(kOutBlock);
  bool in_member = false;
  uint64_t member_start = 0;
  while (!pl.aborted()) {
    if (in.avail() == 0 && in.Fill(1) == 0) {
      Flush(pl, c);
      if (in_member) pl.Fail("archive truncated: gzip member at archive offset " + Off(member_start) + " is incomplete");
      return;
    }
    if (!in_member) {
      member_start = in.offset();
      if (in.Fill(2) < 2 || in.data()[0] != 0x1f || in.data()[1] != 0x8b) {
        Flush(pl, c);
        pl.Fail("unexpected data after the gzip stream at archive offset " + Off(member_start));
        return;
      }
      in_member = true;
      st.frames++;
    }
    zs.next_in = const_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in.avail(), 1u << 30));
    zs.next_out = c->out.p.get() + c->size;
    zs.avail_out = static_cast<uInt>(c->out.cap - c->size);
    const size_t given = zs.avail_in, room = zs.avail_out;
    int r = inflate(&zs, Z_NO_FLUSH);
    in.Consume(given - zs.avail_in);
    c->size += room - zs.avail_out;
    if (c->size == c->out.cap && !Flush(pl, c)) return;
    if (r == Z_STREAM_END) {
      inflateReset(&zs);
      in_member = false;
      continue;
    }
    if (r == Z_OK || r == Z_BUF_ERROR) continue;
    Flush(pl, c);
    pl.Fail("damaged gzip data in the member at archive offset " + Off(member_start) + ": " +
            (zs.msg ? zs.msg : "inflate error " + std::to_string(r)));
    return;
  }
}

void ProducePlain(InputBuffer& in, Pipeline& pl) {
  while (!pl.aborted()) {
    ChunkPtr c = pl.Take();
    c->out.Reserve(kReadBlock);
    while (c->size < c->out.cap) {
      size_t n = in.ReadInto(c->out.p.get() + c->size, c->out.cap - c->size);
      if (n == 0) break;
      c->size += n;
    }
    if (c->size == 0) return;
    bool full = c->size == c->out.cap;
    if (!pl.Push(std::move(c)) || !full) return;
  }
}

void Produce(ArchiveKind kind, InputBuffer& in, Pipeline& pl, DecodeStats& st) {
  switch (kind) {
    case ArchiveKind::kZstd: ProduceZstd(in, pl, st); break;
    case ArchiveKind::kGzip: ProduceGzip(in, pl, st); break;
    case ArchiveKind::kTar: ProducePlain(in, pl); break;
  }
}

void Consume(Pipeline& pl, TarParser& tar, TaskState& state, DecodeStats& st) {
  while (ChunkPtr c = pl.Pop()) {
    state.CheckCancelled();
    if (c->pooled) pl.pool()->Wait(c.get());
    if (!c->fail.empty()) {
      tar.Fail(c->fail);
    } else if (!c->error.empty()) {
      tar.Hole(c->size, "damaged zstd frame at archive offset " + Off(c->offset) + ": " + c->error);
    } else if (c->size) {
      st.tar_bytes += c->size;
      tar.Feed(c->out.p.get(), c->size);
    }
    if (tar.stopped()) return;
  }
}

}  // namespace

// The calling thread consumes; ~Pipeline (on return and on every exception
// of the consumer: a failing write, a fail-fast problem, cancel) stops and
// joins the reader thread and the decoders and waits for the hasher before
// any chunk is freed. `in` (and the hasher in `in.source()`) outlive `pl`.
void Decode(ArchiveKind kind, InputBuffer& in, TarParser& tar, int threads, TaskState& state, DecodeStats& stats,
            bool frame_checksums) {
  Pipeline pl(threads, frame_checksums, in.source());
  pl.StartReader([&] { Produce(kind, in, pl, stats); });
  Consume(pl, tar, state, stats);
}

}  // namespace guts
