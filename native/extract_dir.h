// Writes archive entries under one root directory and nowhere else: every
// path is resolved component by component with openat/mkdirat relative to
// directory fds opened with O_NOFOLLOW, files are created O_EXCL|O_NOFOLLOW.
// Paths must already be validated (relative, no "..", no empty components).
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>

namespace guts {

// Directories one extraction may create (the archive reader refuses more, in
// verify mode too, so that verify and restore agree).
constexpr size_t kMaxExtractDirs = 4096;

class ExtractDir {
 public:
  ExtractDir(const std::string& root, bool fsync);
  ~ExtractDir();
  ExtractDir(const ExtractDir&) = delete;
  ExtractDir& operator=(const ExtractDir&) = delete;

  // Fails with GUTS_NO_SPACE when the file system cannot hold `bytes`.
  void CheckSpace(uint64_t bytes);
  void MakeDir(const std::string& rel);
  void BeginFile(const std::string& rel, uint64_t size);
  void Write(const uint8_t* p, size_t n);
  void EndFile(uint32_t mode, int64_t mtime);
  void AbortFile();
  // fsync pending files and every directory (when asked), close everything.
  void Finish();

 private:
  int OpenDir(const std::string& rel);  // "" = root; creates missing dirs (0700)
  void SyncOldest();

  std::string root_;
  bool fsync_;
  int root_fd_ = -1;
  std::map<std::string, int> dirs_;
  // O_DIRECT for file data (see extract_dir.cc): alignment the file system
  // asks for (0 = buffered writes only), state of the current file.
  void DirectWrite(const uint8_t* p, size_t n);
  void LeaveDirect();
  bool probe_dio_ = false;
  size_t dio_align_ = 0;
  bool direct_ = false;        // the current file's fd has O_DIRECT
  bool truncate_ = false;      // the last direct write was padded past the end
  uint64_t off_ = 0, size_ = 0;
  uint8_t* bounce_ = nullptr;  // one aligned block for a file's unaligned tail
  int fd_ = -1;
  std::string cur_;
  std::deque<std::pair<int, std::string>> unsynced_;  // files written, fsync deferred
};

}  // namespace guts
