// POSIX tar headers (ustar, with a pax extended header when a path, size or
// id does not fit ustar). Only regular files and directories: that is all a
// guts backup holds (docs/FORMAT.md).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace guts {

constexpr size_t kTarBlock = 512;
constexpr size_t kTarRecord = 10240;  // tar's default blocking factor 20

struct TarHeader {
  std::string path;  // relative, '/'-separated, no trailing '/' (added for dirs)
  bool dir = false;
  uint64_t size = 0;  // 0 for directories
  uint32_t mode = 0;  // permission bits
  int64_t mtime = 0;  // seconds since the epoch
  uint32_t uid = 0, gid = 0;
  std::string uname, gname;
};

// Appends the header block(s) of one entry: optionally a pax 'x' header with
// its records, then the ustar header. Data and padding follow from the caller.
void AppendTarHeader(std::string& out, const TarHeader& h);

// Zero bytes after `size` bytes of entry data up to the next 512-byte block.
inline size_t TarPadding(uint64_t size) { return static_cast<size_t>((kTarBlock - size % kTarBlock) % kTarBlock); }

// End of archive: two zero blocks, then zeros up to a whole 10240-byte record
// (what GNU tar and bsdtar write), given the stream length so far.
inline size_t TarTrailerSize(uint64_t stream_bytes) {
  uint64_t end = stream_bytes + 2 * kTarBlock;
  return static_cast<size_t>(2 * kTarBlock + (kTarRecord - end % kTarRecord) % kTarRecord);
}

// Throws GutsError(InvalidArgument) unless `path` is a safe archive path:
// relative, no empty / "." / ".." components, no newline or NUL.
void CheckArchivePath(const std::string& path);

}  // namespace guts
