#include "tar_reader.h"

#include <algorithm>
#include <cstring>

namespace guts {

namespace {

std::string Field(const uint8_t* f, size_t len) {
  size_t n = 0;
  while (n < len && f[n]) n++;
  return std::string(reinterpret_cast<const char*>(f), n);
}

// Octal (NUL/space padded) or GNU base-256 (high bit set) numeric field.
bool ParseNumeric(const uint8_t* f, size_t len, uint64_t* out) {
  if (f[0] & 0x80) {
    if (f[0] & 0x40) return false;  // negative
    uint64_t v = f[0] & 0x3f;
    for (size_t i = 1; i < len; i++) {
      if (v >> 55) return false;
      v = (v << 8) | f[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < len && f[i] == ' ') i++;
  uint64_t v = 0;
  for (; i < len; i++) {
    uint8_t c = f[i];
    if (c >= '0' && c <= '7') {
      if (v >> 60) return false;
      v = v * 8 + (c - '0');
    } else if (c == ' ' || c == 0) {
      break;
    } else {
      return false;
    }
  }
  for (; i < len; i++)
    if (f[i] != ' ' && f[i] != 0) return false;
  *out = v;
  return true;
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

bool ChecksumOk(const uint8_t* h) {
  uint64_t stored;
  if (!ParseNumeric(h + 148, 8, &stored)) return false;
  uint64_t u = 0;
  int64_t s = 0;
  for (int i = 0; i < 512; i++) {
    uint8_t b = (i >= 148 && i < 156) ? ' ' : h[i];
    u += b;
    s += static_cast<int8_t>(b);
  }
  return stored == u || static_cast<int64_t>(stored) == s;
}

bool LooksLikeHeader(const uint8_t* h) { return std::memcmp(h + 257, "ustar", 5) == 0 && ChecksumOk(h); }

// The boundary between "a damaged backup" and "not a backup at all"
// (docs/FORMAT.md): the first block of a backup is the tar header of
// GUTS-INDEX, so it carries that name or at least the ustar magic. `n` bytes
// of it are known (fewer when the stream ends inside it).
bool CouldBeFirstHeader(const uint8_t* h, size_t n) {
  static const char kName[] = "GUTS-INDEX";
  if (n >= sizeof kName - 1 && std::memcmp(h, kName, sizeof kName - 1) == 0) return true;
  return n >= 262 && std::memcmp(h + 257, "ustar", 5) == 0;
}

bool ParseDecimal(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

std::string Off(uint64_t o) { return std::to_string(o); }

}  // namespace

const std::string& TarParser::CurrentPath() const {
  static const std::string none;
  return (state_ == kData || state_ == kPad) ? cur_.path : none;
}

void TarParser::Feed(const uint8_t* p, size_t n) {
  if (state_ == kStopped) return;
  if (offset_ + n > cap_) {
    size_t ok = cap_ > offset_ ? static_cast<size_t>(cap_ - offset_) : 0;
    Feed(p, ok);
    if (state_ == kStopped) return;
    damaged_ = true;
    h_->Problem(CurrentPath(), Code::Corrupt,
                "archive expands beyond the sizes GUTS-INDEX declares (limit " + std::to_string(cap_) +
                    " bytes of tar stream; decompression bomb?)");
    if (state_ == kData && deliver_) h_->Abort();
    state_ = kStopped;
    return;
  }
  while (n > 0 && state_ != kStopped) {
    size_t take = 0;
    switch (state_) {
      case kHeader: {
        if (FillHeader(p, n, &take)) ProcessHeader();
        break;
      }
      case kData: {
        take = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
        if (deliver_ && !cur_damaged_) h_->Data(p, take);
        remaining_ -= take;
        offset_ += take;
        if (remaining_ == 0) {
          EndData(true);
          if (state_ != kStopped) state_ = pad_ ? kPad : kHeader;
        }
        break;
      }
      case kPad: {
        take = static_cast<size_t>(std::min<uint64_t>(n, pad_));
        pad_ -= take;
        offset_ += take;
        if (pad_ == 0) state_ = kHeader;
        break;
      }
      case kMeta: {
        take = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
        meta_.append(reinterpret_cast<const char*>(p), take);
        remaining_ -= take;
        offset_ += take;
        if (remaining_ == 0) {
          ProcessMeta();
          if (state_ != kStopped) state_ = pad_ ? kPad : kHeader;
        }
        break;
      }
      case kEnd: {
        take = n;
        if (!AllZero(p, n)) {
          damaged_ = true;
          h_->Problem("", Code::Corrupt, "unexpected data after the end-of-archive marker near offset " + Off(offset_));
          state_ = kStopped;
        }
        offset_ += take;
        break;
      }
      case kResync: {
        uint64_t mis = offset_ % 512;
        if (mis && hdr_fill_ == 0) {
          take = static_cast<size_t>(std::min<uint64_t>(n, 512 - mis));
          offset_ += take;
          break;
        }
        if (FillHeader(p, n, &take) && LooksLikeHeader(hdr_)) {
          state_ = kHeader;
          ProcessHeader();
        }
        break;
      }
      case kStopped: return;
    }
    p += take;
    n -= take;
  }
}

// Copies up to one header's worth into hdr_; true when 512 bytes are complete.
bool TarParser::FillHeader(const uint8_t* p, size_t n, size_t* take) {
  *take = std::min(n, 512 - hdr_fill_);
  std::memcpy(hdr_ + hdr_fill_, p, *take);
  hdr_fill_ += *take;
  offset_ += *take;
  if (hdr_fill_ < 512) return false;
  hdr_fill_ = 0;
  return true;
}

void TarParser::ProcessHeader() {
  const uint64_t hoff = offset_ - 512;
  if (AllZero(hdr_, 512)) {
    if (++zero_blocks_ == 2) state_ = kEnd;
    return;
  }
  zero_blocks_ = 0;
  if (hoff == 0 && !damaged_ && !CouldBeFirstHeader(hdr_, 512)) {
    h_->Problem("", Code::NotArchive, "its data does not start with a tar header");
    state_ = kStopped;
    return;
  }
  if (std::memcmp(hdr_ + 257, "ustar", 5) != 0 || !ChecksumOk(hdr_)) {
    damaged_ = true;
    h_->Problem("", Code::Corrupt, "invalid tar header at offset " + Off(hoff) + " (bad magic or checksum)");
    if (state_ != kStopped) EnterResync();
    return;
  }
  const char type = static_cast<char>(hdr_[156]);
  uint64_t size = 0, mode = 0, mtime = 0;
  if (!ParseNumeric(hdr_ + 124, 12, &size)) {
    damaged_ = true;
    h_->Problem("", Code::Corrupt, "invalid size field in tar header at offset " + Off(hoff));
    state_ = kStopped;
    return;
  }
  ParseNumeric(hdr_ + 100, 8, &mode);
  if (!ParseNumeric(hdr_ + 136, 12, &mtime)) mtime = 0;

  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
    uint64_t limit = (type == 'x' || type == 'g') ? kMaxPaxHeader : kMaxLongName;
    if (size > limit) {
      damaged_ = true;
      h_->Problem("", Code::Corrupt,
                  std::string("oversized ") + (type == 'L' || type == 'K' ? "GNU long name" : "pax") +
                      " header at offset " + Off(hoff) + " (" + std::to_string(size) + " bytes)");
      state_ = kStopped;
      return;
    }
    meta_type_ = type;
    meta_.clear();
    remaining_ = size;
    pad_ = (512 - size % 512) % 512;
    if (size == 0) {
      ProcessMeta();
      return;
    }
    state_ = kMeta;
    return;
  }

  TarEntry e;
  e.header_offset = hoff;
  e.type = type;
  e.path = Field(hdr_, 100);
  if (std::memcmp(hdr_ + 257, "ustar\0", 6) == 0 && hdr_[345]) e.path = Field(hdr_ + 345, 155) + "/" + e.path;
  e.linkname = Field(hdr_ + 157, 100);
  if (!long_name_.empty()) e.path = long_name_;
  if (!long_link_.empty()) e.linkname = long_link_;
  e.size = size;
  e.mode = static_cast<uint32_t>(mode & 07777777);
  e.mtime = static_cast<int64_t>(mtime);
  auto pax = [&](const char* key) -> const std::string* {
    auto it = pax_local_.find(key);
    if (it != pax_local_.end()) return it->second.empty() ? nullptr : &it->second;
    it = pax_global_.find(key);
    if (it != pax_global_.end() && !it->second.empty()) return &it->second;
    return nullptr;
  };
  if (const std::string* v = pax("path")) e.path = *v;
  if (const std::string* v = pax("linkpath")) e.linkname = *v;
  if (const std::string* v = pax("size")) {
    if (!ParseDecimal(*v, &e.size)) {
      damaged_ = true;
      h_->Problem(e.path, Code::Corrupt, "invalid pax size \"" + EscapeName(v->substr(0, 40)) + "\" at offset " + Off(hoff));
      state_ = kStopped;
      return;
    }
  }
  if (const std::string* v = pax("mtime")) {
    std::string s = v->substr(0, v->find('.'));
    bool neg = !s.empty() && s[0] == '-';
    uint64_t t;
    if (ParseDecimal(neg ? s.substr(1) : s, &t)) e.mtime = neg ? -static_cast<int64_t>(t) : static_cast<int64_t>(t);
  }
  for (auto* m : {&pax_local_, &pax_global_})
    for (auto& kv : *m)
      if (kv.first.compare(0, 11, "GNU.sparse.") == 0) e.sparse = true;
  long_name_.clear();
  long_link_.clear();
  pax_local_.clear();

  cur_ = std::move(e);
  cur_damaged_ = false;
  remaining_ = cur_.size;
  pad_ = (512 - cur_.size % 512) % 512;
  deliver_ = h_->Begin(cur_);
  if (state_ == kStopped) return;
  if (remaining_ == 0) {
    EndData(true);
    if (state_ != kStopped) state_ = pad_ ? kPad : kHeader;
  } else {
    state_ = kData;
  }
}

void TarParser::ProcessMeta() {
  switch (meta_type_) {
    case 'x':
    case 'g':
      if (!ParsePax(meta_, meta_type_ == 'x' ? pax_local_ : pax_global_)) {
        damaged_ = true;
        h_->Problem("", Code::Corrupt, "malformed pax header before offset " + Off(offset_));
        state_ = kStopped;
      }
      break;
    case 'L':
      long_name_ = meta_.substr(0, meta_.find('\0'));
      break;
    case 'K':
      long_link_ = meta_.substr(0, meta_.find('\0'));
      break;
  }
  meta_.clear();
  meta_.shrink_to_fit();
}

// Records "<len> <key>=<value>\n", len counting the whole record.
bool TarParser::ParsePax(const std::string& text, std::map<std::string, std::string>& into) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == '\0') break;  // some writers NUL-pad
    size_t sp = text.find(' ', pos);
    if (sp == std::string::npos || sp == pos || sp - pos > 9) return false;
    uint64_t len;
    if (!ParseDecimal(text.substr(pos, sp - pos), &len)) return false;
    if (len < sp - pos + 3 || pos + len > text.size() || text[pos + len - 1] != '\n') return false;
    size_t eq = text.find('=', sp + 1);
    if (eq == std::string::npos || eq >= pos + len - 1 || eq == sp + 1) return false;
    into[text.substr(sp + 1, eq - sp - 1)] = text.substr(eq + 1, pos + len - 1 - eq - 1);
    pos += len;
  }
  return true;
}

void TarParser::EndData(bool complete) {
  if (!deliver_) return;
  deliver_ = false;
  if (complete && !cur_damaged_) h_->End();
  else h_->Abort();
}

void TarParser::EnterResync() {
  state_ = kResync;
  hdr_fill_ = 0;
  zero_blocks_ = 0;
  meta_.clear();
  long_name_.clear();
  long_link_.clear();
  pax_local_.clear();
}

void TarParser::Hole(uint64_t n, const std::string& why) {
  if (state_ == kStopped || n == 0) return;
  damaged_ = true;
  if (offset_ + n > cap_ || offset_ + n < offset_) {
    h_->Problem(CurrentPath(), Code::Corrupt, why);
    if (state_ == kData && deliver_) h_->Abort();
    state_ = kStopped;
    return;
  }
  bool reported = false;
  if (state_ == kData) {
    if (deliver_ && !cur_damaged_) {
      cur_damaged_ = true;
      h_->Problem(cur_.path, Code::Corrupt, why);
      if (state_ == kStopped) return;
    }
    reported = true;
    uint64_t take = std::min(n, remaining_);
    remaining_ -= take;
    offset_ += take;
    n -= take;
    if (remaining_ == 0) {
      EndData(false);
      if (state_ == kStopped) return;
      state_ = pad_ ? kPad : kHeader;
    }
    if (n == 0) return;
  }
  if (state_ == kPad) {
    uint64_t take = std::min(n, pad_);
    pad_ -= take;
    offset_ += take;
    n -= take;
    if (pad_ == 0) state_ = kHeader;
    if (n == 0) return;
  }
  if (state_ == kEnd) {
    h_->Problem("", Code::Corrupt, why);
    offset_ += n;
    return;
  }
  if (!reported && state_ != kResync) {
    h_->Problem("", Code::Corrupt, why + " (tar headers lost near offset " + Off(offset_) + ")");
    if (state_ == kStopped) return;
  }
  offset_ += n;
  EnterResync();
}

void TarParser::Fail(const std::string& why) {
  if (state_ == kStopped) return;
  damaged_ = true;
  h_->Problem(CurrentPath(), Code::Corrupt, why);
  if (state_ == kData && deliver_) {
    deliver_ = false;
    h_->Abort();
  }
  state_ = kStopped;
}

void TarParser::Finish() {
  if (state_ != kStopped && !damaged_ && offset_ == hdr_fill_ && !CouldBeFirstHeader(hdr_, hdr_fill_)) {
    h_->Problem("", Code::NotArchive, offset_ == 0 ? "it holds no data" : "it is too short to be a tar archive");
    state_ = kStopped;
    return;
  }
  switch (state_) {
    case kHeader:
      if (hdr_fill_ > 0) Fail("archive truncated inside a tar header at offset " + Off(offset_ - hdr_fill_));
      // Every tar writer ends with two zero blocks: without them the stream
      // was cut (after an entry's data, the cut is otherwise invisible).
      else if (!damaged_) Fail("archive truncated: the end-of-archive marker (two zero blocks) is missing");
      break;
    case kEnd:
      if (offset_ % 512) Fail("archive truncated inside the end-of-archive padding");
      break;
    case kData:
      Fail("archive truncated: " + std::to_string(remaining_) + " of " + std::to_string(cur_.size) +
           " bytes of data missing");
      break;
    case kPad:
      Fail("archive truncated in the padding after this entry");
      break;
    case kMeta:
      Fail("archive truncated inside a pax or long-name header at offset " + Off(offset_));
      break;
    default:
      break;
  }
}

}  // namespace guts
