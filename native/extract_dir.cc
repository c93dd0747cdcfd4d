#include "extract_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "fs_util.h"

namespace guts {

namespace {
constexpr size_t kMaxDirs = 4096;
constexpr size_t kMaxUnsynced = 16;  // files whose fsync is deferred (writeback already started)

// Defense in depth: callers validate paths, but a name that could leave the
// directory it is resolved in is refused here too.
void CheckName(const std::string& name, const std::string& rel) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw GutsError(Code::UnsafePath, "refusing unsafe path " + rel, rel);
}
}  // namespace

ExtractDir::ExtractDir(const std::string& root, bool fsync) : root_(root), fsync_(fsync) {
  root_fd_ = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd_ < 0) ThrowErrno("cannot open extraction dir", root, errno);
}

ExtractDir::~ExtractDir() {
  if (fd_ >= 0) close(fd_);
  for (auto& u : unsynced_) close(u.first);
  for (auto& d : dirs_) close(d.second);
  if (root_fd_ >= 0) close(root_fd_);
}

void ExtractDir::CheckSpace(uint64_t bytes) {
  struct statvfs vfs;
  if (fstatvfs(root_fd_, &vfs) != 0) return;
  uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (bytes > avail)
    throw GutsError(Code::NoSpace,
                    "not enough space in " + root_ + ": the archive holds " + std::to_string(bytes) + " bytes, " +
                        std::to_string(avail) + " available",
                    root_);
}

int ExtractDir::OpenDir(const std::string& rel) {
  if (rel.empty()) return root_fd_;
  auto it = dirs_.find(rel);
  if (it != dirs_.end()) return it->second;
  size_t slash = rel.rfind('/');
  int parent = OpenDir(slash == std::string::npos ? "" : rel.substr(0, slash));
  std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  CheckName(name, rel);
  const std::string full = root_ + "/" + rel;
  int fd = openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    if (mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST) ThrowErrno("cannot create directory", full, errno);
    fd = openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR)
      throw GutsError(Code::UnsafePath, "refusing to write through " + rel + ": not a directory", rel);
    ThrowErrno("cannot open directory", full, errno);
  }
  if (dirs_.size() >= kMaxDirs) {
    close(fd);
    throw GutsError(Code::Corrupt, "too many directories in the archive (limit " + std::to_string(kMaxDirs) + ")", rel);
  }
  dirs_[rel] = fd;
  return fd;
}

void ExtractDir::MakeDir(const std::string& rel) { OpenDir(rel); }

void ExtractDir::BeginFile(const std::string& rel, uint64_t size) {
  size_t slash = rel.rfind('/');
  int dir = OpenDir(slash == std::string::npos ? "" : rel.substr(0, slash));
  std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  CheckName(name, rel);
  cur_ = root_ + "/" + rel;
  fd_ = openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    if (errno == EEXIST || errno == ELOOP)
      throw GutsError(Code::Corrupt, "refusing to replace existing " + rel + " while extracting", rel);
    ThrowErrno("cannot create", cur_, errno);
  }
  if (size > 0 && fallocate(fd_, 0, 0, static_cast<off_t>(size)) != 0) {
    int err = errno;
    if (err == ENOSPC || err == EDQUOT || err == EFBIG) ThrowErrno("cannot allocate space for", cur_, err);
  }
}

void ExtractDir::Write(const uint8_t* p, size_t n) { WriteAll(fd_, p, n, cur_); }

void ExtractDir::EndFile(uint32_t mode, int64_t mtime) {
  if (fchmod(fd_, mode & 0777) != 0) ThrowErrno("cannot chmod", cur_, errno);
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(mtime);
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  if (futimens(fd_, ts) != 0) ThrowErrno("cannot set mtime of", cur_, errno);
  int fd = fd_;
  fd_ = -1;
  if (!fsync_) {
    close(fd);
    return;
  }
  // Start writeback now, fsync a little later: keeps the disk busy without
  // stalling the decode pipeline on every file.
  sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  unsynced_.emplace_back(fd, cur_);
  if (unsynced_.size() > kMaxUnsynced) SyncOldest();
}

void ExtractDir::SyncOldest() {
  auto u = unsynced_.front();
  unsynced_.pop_front();
  int rc = fsync(u.first);
  int err = errno;
  close(u.first);
  if (rc != 0) ThrowErrno("fsync failed for", u.second, err);
}

void ExtractDir::AbortFile() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void ExtractDir::Finish() {
  while (!unsynced_.empty()) SyncOldest();
  if (fsync_) {
    for (auto& d : dirs_)
      if (fsync(d.second) != 0) ThrowErrno("fsync failed for", root_ + "/" + d.first, errno);
    if (fsync(root_fd_) != 0) ThrowErrno("fsync failed for", root_, errno);
  }
  for (auto& d : dirs_) close(d.second);
  dirs_.clear();
}

}  // namespace guts
