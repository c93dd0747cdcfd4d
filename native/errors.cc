#include "errors.h"

#include <rocksdb/status.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace guts {

const char* CodeName(Code code) {
  switch (code) {
    case Code::Corrupt: return "GUTS_CORRUPT";
    case Code::Locked: return "GUTS_LOCKED";
    case Code::NotFound: return "GUTS_NOT_FOUND";
    case Code::InvalidArgument: return "GUTS_INVALID_ARGUMENT";
    case Code::Io: return "GUTS_IO";
    case Code::UnsafePath: return "GUTS_UNSAFE_PATH";
    case Code::Exists: return "GUTS_EXISTS";
    case Code::NoSpace: return "GUTS_NO_SPACE";
    case Code::Permission: return "GUTS_PERMISSION";
    case Code::Cancelled: return "GUTS_CANCELLED";
    case Code::Closed: return "GUTS_CLOSED";
    case Code::Internal: return "GUTS_INTERNAL";
    case Code::NotArchive: return "GUTS_NOT_ARCHIVE";
  }
  return "GUTS_INTERNAL";
}

std::string EscapeName(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  auto esc = [&](unsigned char b) {
    out += "\\x";
    out += hex[b >> 4];
    out += hex[b & 15];
  };
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) esc(c);
      else out += static_cast<char>(c);
      i++;
      continue;
    }
    // Decode one UTF-8 sequence; anything malformed is escaped byte by byte.
    size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (c > 0xf4) len = 0;
    uint32_t cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
      ok = false;  // overlong or surrogate
    if (!ok) {
      esc(c);
      i++;
      continue;
    }
    const bool c1 = cp >= 0x80 && cp <= 0x9f;
    const bool bidi = (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f ||
                      cp == 0x2028 || cp == 0x2029;
    if (c1) {
      esc(static_cast<unsigned char>(cp));
    } else if (bidi) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04X", cp);
      out += b;
    } else {
      out.append(s, i, len);
    }
    i += len;
  }
  return out;
}

static Code CodeForErrno(int err) {
  switch (err) {
    case ENOENT: case ENOTDIR: return Code::NotFound;
    case EEXIST: case ENOTEMPTY: return Code::Exists;
    case ENOSPC: case EDQUOT: case EFBIG: return Code::NoSpace;
    case EACCES: case EPERM: case EROFS: return Code::Permission;
    case EAGAIN: return Code::Locked;
    case EINVAL: return Code::InvalidArgument;
    default: return Code::Io;
  }
}

GutsError ErrnoError(const std::string& what, const std::string& path, int err) {
  std::string msg = what;
  if (!path.empty()) msg += " " + path;
  msg += ": ";
  msg += std::strerror(err);
  return GutsError(CodeForErrno(err), msg, path);
}

void ThrowErrno(const std::string& what, const std::string& path, int err) {
  throw ErrnoError(what, path, err);
}

GutsError StatusError(const rocksdb::Status& s, const std::string& path) {
  std::string text = s.ToString();
  Code code = Code::Io;
  if (s.IsIOError() && (text.find("lock") != std::string::npos || text.find("LOCK") != std::string::npos) &&
      (text.find("Resource temporarily unavailable") != std::string::npos ||
       text.find("lock hold by current process") != std::string::npos ||
       text.find("No locks available") != std::string::npos)) {
    return GutsError(Code::Locked,
                     "store " + path + " is locked by another process (is the node running?)", path);
  }
  if (s.IsCorruption()) code = Code::Corrupt;
  else if (s.IsNotFound()) code = Code::NotFound;
  else if (s.IsInvalidArgument()) code = Code::InvalidArgument;
  else if (s.IsNoSpace() || text.find("No space left") != std::string::npos ||
           text.find("File too large") != std::string::npos || text.find("Disk quota exceeded") != std::string::npos)
    code = Code::NoSpace;  // ENOSPC, EFBIG (RLIMIT_FSIZE), EDQUOT: as CodeForErrno maps them
  else if (text.find("Permission denied") != std::string::npos) code = Code::Permission;
  return GutsError(code, "store " + path + ": " + text, path);
}

Napi::Error MakeError(Napi::Env env, const GutsError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, CodeName(e.code)));
  if (!e.path.empty()) err.Set("path", Napi::String::New(env, e.path));
  return err;
}

void ThrowJs(Napi::Env env, Code code, const std::string& message) {
  throw MakeError(env, GutsError(code, message));
}

}  // namespace guts

namespace guts {
void CheckStatus(const rocksdb::Status& s, const std::string& path) {
  if (!s.ok()) throw StatusError(s, path);
}
}  // namespace guts
