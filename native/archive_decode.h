// Reading an archive file and turning it into a tar byte stream for TarParser.
// A reader thread reads the file sequentially in large blocks (SHA-256 of the
// compressed bytes on the same pass) while the calling thread parses. zstd: independent frames with a known content size
// (<= kMaxParallelFrame) are decoded by a pool of worker threads and consumed
// in order; other frames (stock `zstd` output, unknown or huge sizes, odd
// block layouts, truncation) fall back to bounded streaming decompression.
// gzip: multi-member zlib inflate. Memory is bounded by frame buffers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "async.h"
#include "hashing.h"
#include "tar_reader.h"

namespace guts {

enum class ArchiveKind { kTar, kGzip, kZstd };
const char* ArchiveKindName(ArchiveKind k);  // "tar" | "tar.gz" | "tar.zst"

class FileSource {
 public:
  FileSource(const std::string& path, bool sha256, TaskState* state);
  ~FileSource();
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  size_t Read(uint8_t* p, size_t n);  // 0 = EOF
  void DrainForDigest();              // hash the rest without decoding it
  std::string Sha256Hex();
  uint64_t size() const { return size_; }
  uint64_t consumed() const { return read_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0, read_ = 0;
  std::unique_ptr<Digest> sha_;
  TaskState* state_;
};

// A sliding window over the file: data() .. data()+avail().
class InputBuffer {
 public:
  explicit InputBuffer(FileSource& src) : src_(src) {}
  // Make at least n bytes available unless EOF; returns avail().
  size_t Fill(size_t n);
  const uint8_t* data() const { return buf_.data() + pos_; }
  size_t avail() const { return end_ - pos_; }
  void Consume(size_t n) { pos_ += n; }
  bool eof() const { return eof_; }
  uint64_t offset() const { return src_.consumed() - avail(); }  // file offset of data()
  // Discard n bytes (reading them through the source); false at EOF.
  bool Skip(uint64_t n);
  // Buffered bytes first, then straight from the file (no extra copy); 0 = EOF.
  size_t ReadInto(uint8_t* p, size_t n);

 private:
  FileSource& src_;
  std::vector<uint8_t> buf_;
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
void Decode(ArchiveKind kind, InputBuffer& in, TarParser& tar, int threads, TaskState& state, DecodeStats& stats);

}  // namespace guts
