// Streaming tar parser: ustar + pax ('x', 'g') + GNU long names ('L', 'K').
// Bytes arrive in arbitrary chunks (decompressed frames); headers and pax
// records are buffered with hard size limits, file data is passed straight
// through to the handler. Lost stretches of the stream (a damaged compressed
// frame) are reported as holes: the parser names the entry they hit and
// re-synchronises on the next valid header, so a verify can keep going.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "errors.h"

namespace guts {

struct TarEntry {
  std::string path;  // after pax path / GNU long name / ustar prefix
  std::string linkname;
  char type = '0';
  uint64_t size = 0;  // data bytes that follow the header
  uint32_t mode = 0;
  int64_t mtime = 0;
  uint64_t header_offset = 0;
  bool sparse = false;  // GNU.sparse.* pax keys
};

class TarHandler {
 public:
  virtual ~TarHandler() = default;
  // Returns true to receive the entry's data (then Data* and End or Abort).
  virtual bool Begin(const TarEntry& e) = 0;
  virtual void Data(const uint8_t* p, size_t n) = 0;
  virtual void End() = 0;
  // The entry's data was damaged or cut short (already reported).
  virtual void Abort() = 0;
  // May throw (fail-fast mode). path "" = the archive itself.
  virtual void Problem(const std::string& path, Code code, const std::string& msg) = 0;
};

class TarParser {
 public:
  static constexpr uint64_t kMaxPaxHeader = 1 << 20;
  static constexpr uint64_t kMaxLongName = 16 << 10;

  explicit TarParser(TarHandler* h) : h_(h) {}

  void Feed(const uint8_t* p, size_t n);
  // n bytes of the tar stream are lost (damaged frame); `why` says which.
  void Hole(uint64_t n, const std::string& why);
  // The stream cannot continue (truncated, undecodable): report, stop.
  void Fail(const std::string& why);
  // End of the decompressed stream.
  void Finish();
  void Stop() { state_ = kStopped; }
  bool stopped() const { return state_ == kStopped; }
  bool damaged() const { return damaged_; }
  // Total tar bytes accepted (decompression bomb limit).
  void SetCap(uint64_t cap) { cap_ = cap; }
  uint64_t offset() const { return offset_; }

 private:
  enum State { kHeader, kData, kPad, kMeta, kEnd, kResync, kStopped };
  bool FillHeader(const uint8_t* p, size_t n, size_t* take);
  void ProcessHeader();
  void ProcessMeta();
  bool ParsePax(const std::string& text, std::map<std::string, std::string>& into);
  void EndData(bool complete);
  void EnterResync();
  const std::string& CurrentPath() const;

  TarHandler* h_;
  State state_ = kHeader;
  uint64_t offset_ = 0;
  uint64_t cap_ = (64ull << 20) + (1 << 20);
  uint8_t hdr_[512];
  size_t hdr_fill_ = 0;
  int zero_blocks_ = 0;
  bool damaged_ = false;

  // current entry (kData / kPad)
  TarEntry cur_;
  bool deliver_ = false;
  bool cur_damaged_ = false;
  uint64_t remaining_ = 0;
  uint64_t pad_ = 0;

  // pending metadata for the next entry
  char meta_type_ = 0;
  std::string meta_;
  std::string long_name_, long_link_;
  std::map<std::string, std::string> pax_local_, pax_global_;
};

}  // namespace guts
