// Stable error codes shared by every native capability. The string names are
// the contract with TypeScript (src/errors.ts) and with tests: never rename.
#pragma once
#include <napi.h>
#include <stdexcept>
#include <string>

namespace rocksdb { class Status; }

namespace guts {

enum class Code {
  Corrupt,          // GUTS_CORRUPT: data fails a checksum / hash / format check
  Locked,           // GUTS_LOCKED: another process (or this one) holds the store
  NotFound,         // GUTS_NOT_FOUND
  InvalidArgument,  // GUTS_INVALID_ARGUMENT
  Io,               // GUTS_IO: any other I/O failure
  UnsafePath,       // GUTS_UNSAFE_PATH: hostile archive entry
  Exists,           // GUTS_EXISTS: refusing to overwrite
  NoSpace,          // GUTS_NO_SPACE: ENOSPC / EDQUOT / EFBIG
  Permission,       // GUTS_PERMISSION: EACCES / EPERM / EROFS
  Cancelled,        // GUTS_CANCELLED: cancel() was called
  Closed,           // GUTS_CLOSED: store closed or closing
  Internal,         // GUTS_INTERNAL: a bug
  NotArchive,       // GUTS_NOT_ARCHIVE: the file is not a guts-node backup at all (docs/FORMAT.md)
};

const char* CodeName(Code code);

// A name from an archive (or any untrusted text) made safe to quote in a
// message: C0/C1 controls, DEL and bytes that are not valid UTF-8 become
// \xNN, bidi overrides \u202E-style; printable UTF-8 is kept. src/errors.ts
// escapeControls() applies the same rules to every line the CLI prints.
std::string EscapeName(const std::string& s);

class GutsError : public std::runtime_error {
 public:
  GutsError(Code code, const std::string& message, const std::string& path = "")
      : std::runtime_error(message), code(code), path(path) {}
  Code code;
  std::string path;
};

// errno -> code, message "<what> <path>: <strerror>".
[[noreturn]] void ThrowErrno(const std::string& what, const std::string& path, int err);
GutsError ErrnoError(const std::string& what, const std::string& path, int err);
// RocksDB status -> code; lock failures become Locked.
GutsError StatusError(const rocksdb::Status& s, const std::string& path);
void CheckStatus(const rocksdb::Status& s, const std::string& path);

// JS Error with .code and .path set.
Napi::Error MakeError(Napi::Env env, const GutsError& e);
[[noreturn]] void ThrowJs(Napi::Env env, Code code, const std::string& message);

}  // namespace guts
