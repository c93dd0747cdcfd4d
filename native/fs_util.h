// Small POSIX helpers: durable renames, lock probing, tree removal.
#pragma once
#include <napi.h>

#include <string>

namespace guts {

// fsync a file or directory by path.
void FsyncPath(const std::string& path);
// Remove a file or a directory tree; missing is fine. Never follows symlinks.
void RemoveTree(const std::string& path);
// pid of the process holding a POSIX write lock on `path` (RocksDB's LOCK
// file), 0 when unlocked or missing.
int LockHolder(const std::string& path);
// Atomically swap two paths (renameat2 RENAME_EXCHANGE).
void RenameExchange(const std::string& a, const std::string& b);
// Full write loop with EINTR handling; throws with the path on error.
void WriteAll(int fd, const void* data, size_t len, const std::string& path);

void InitFsUtil(Napi::Env env, Napi::Object exports);

}  // namespace guts
