// Reading an archive file and turning it into a tar byte stream for TarParser.
// A reader thread reads the file sequentially in large blocks (SHA-256 of the
// compressed bytes on the same pass) while the calling thread parses. zstd: independent frames with a known content size
// (<= kMaxParallelFrame) are decoded by a pool of worker threads and consumed
// in order; other frames (stock `zstd` output, unknown or huge sizes, odd
// block layouts, truncation) fall back to bounded streaming decompression.
// gzip: multi-member zlib inflate. Memory is bounded by frame buffers.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "async.h"
#include "hashing.h"
#include "tar_reader.h"

namespace guts {

enum class ArchiveKind { kTar, kGzip, kZstd };
const char* ArchiveKindName(ArchiveKind k);  // "tar" | "tar.gz" | "tar.zst"

// SHA-256 on its own thread: Submit()ted bytes must stay unchanged until
// WaitHashed() says they are done (hashing is FIFO).
//
// The hasher reads memory it does not own. Each owner of a buffer it submits
// waits for WaitHashed(mark) before it overwrites or frees that buffer, on
// every path, in a destructor where unwinding could skip the wait:
//   - InputBuffer's two window buffers: SwitchBuffer before reuse, ~InputBuffer;
//   - a decode chunk's frame buffer (direct reads): Pipeline::WaitInputFree
//     before reuse, ~Pipeline before the chunks are freed;
//   - FileSource::DrainForDigest's buffers: its scope guard.
// FileSource owns the hasher and is destroyed after all of them: ~AsyncSha256
// stops (skipping whatever is still queued) and joins the thread.
class AsyncSha256 {
 public:
  AsyncSha256();
  ~AsyncSha256();
  void Submit(const uint8_t* p, size_t n);
  void WaitHashed(uint64_t upto);  // until the first `upto` submitted bytes are hashed
  std::string Finish();            // hex digest of everything submitted

 private:
  void Loop();
  Digest digest_;
  const int delay_ms_;  // test hook, see HashDelayMs()
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::pair<const uint8_t*, size_t>> queue_;
  uint64_t submitted_ = 0, hashed_ = 0;
  bool stop_ = false;
  std::string error_;
  std::thread thread_;  // last: starts once everything above exists
};

class FileSource {
 public:
  FileSource(const std::string& path, bool sha256, TaskState* state);
  // A stream (the read end of a pipe from a download): `path` names it in
  // messages, `size` is the expected length (progress only). Owns fd.
  FileSource(int fd, const std::string& path, uint64_t size, bool sha256, TaskState* state);
  ~FileSource();
  bool stream() const { return stream_; }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  // Reads into p; with sha256 the bytes are hashed asynchronously: do not
  // overwrite them before WaitHashed(consumed()).
  size_t Read(uint8_t* p, size_t n);  // 0 = EOF
  void WaitHashed(uint64_t upto) {
    if (sha_) sha_->WaitHashed(upto);
  }
  void DrainForDigest();  // hash the rest without decoding it
  std::string Sha256Hex();
  uint64_t size() const { return size_; }
  uint64_t consumed() const { return read_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0, read_ = 0;
  bool stream_ = false;
  std::unique_ptr<AsyncSha256> sha_;
  TaskState* state_;
};

// A sliding window over the file: data() .. data()+avail(). Two buffers
// alternate so the hasher can still read the previous one while the next is
// filled (the unconsumed tail is copied over).
class InputBuffer {
 public:
  explicit InputBuffer(FileSource& src) : src_(src) {}
  ~InputBuffer() { src_.WaitHashed(src_.consumed()); }  // the hasher may still read our buffers (they are freed next)
  // Make at least n bytes available unless EOF; returns avail(). Reads ahead
  // in large blocks.
  size_t Fill(size_t n);
  // Like Fill, without reading ahead: the bytes after these are then read
  // straight into their destination with ReadDirect.
  size_t FillExact(size_t n);
  // Only when avail() == 0: reads up to n bytes of the file straight into p.
  // With SHA-256 on, p must stay unchanged until source().WaitHashed(mark)
  // for the mark source().consumed() had after this call.
  size_t ReadDirect(uint8_t* p, size_t n);
  // Puts n bytes taken out of the stream (by Consume or ReadDirect) back in
  // front of what is buffered.
  void Unread(const uint8_t* p, size_t n);
  FileSource& source() { return src_; }
  const uint8_t* data() const { return bufs_[cur_].data() + pos_; }
  size_t avail() const { return end_ - pos_; }
  void Consume(size_t n) { pos_ += n; }
  bool eof() const { return eof_; }
  uint64_t offset() const { return src_.consumed() - avail(); }  // file offset of data()
  // Discard n bytes (reading them through the source); false at EOF.
  bool Skip(uint64_t n);
  // Copies up to n buffered/read bytes into p; 0 = EOF.
  size_t ReadInto(uint8_t* p, size_t n);

 private:
  FileSource& src_;
  // Switches to the other buffer (once the hasher is done with it) holding
  // `head` (may be null) followed by the unconsumed bytes; capacity >= cap.
  void SwitchBuffer(const uint8_t* head, size_t head_len, size_t cap);
  std::vector<uint8_t> bufs_[2];
  uint64_t read_mark_[2] = {0, 0};  // src_.consumed() after the last read into each buffer
  int cur_ = 0;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

struct DecodeStats {
  uint64_t frames = 0;
  uint64_t parallel_frames = 0;
  uint64_t streamed_frames = 0;
  uint64_t tar_bytes = 0;
};

ArchiveKind DetectKind(InputBuffer& in);
// frame_checksums = false: zstd frame checksums are not checked (the caller
// checks a SHA-256 of the whole archive instead).
void Decode(ArchiveKind kind, InputBuffer& in, TarParser& tar, int threads, TaskState& state, DecodeStats& stats,
            bool frame_checksums = true);

}  // namespace guts
