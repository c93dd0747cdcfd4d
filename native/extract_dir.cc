#include "extract_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "errors.h"
#include "fs_util.h"

namespace guts {

namespace {
constexpr size_t kMaxUnsynced = 16;  // files whose fsync is deferred (writeback already started)

// Defense in depth: callers validate paths, but a name that could leave the
// directory it is resolved in is refused here too.
void CheckName(const std::string& name, const std::string& rel) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw GutsError(Code::UnsafePath, "refusing unsafe path " + rel, rel);
}
}  // namespace

// File data is written with O_DIRECT when the file system says how (statx
// STATX_DIOALIGN): the kernel's copy into the page cache was 45% of a
// restore's CPU on this VM (perf: copy_folio_from_iter_atomic), more than
// SHA-256 and decoding together. Tar puts file data at 512-byte offsets of
// the stream and decoded frames sit in page-aligned buffers, so the data can
// go to the device straight from them. A file's last partial block is written
// padded from a bounce block and the file truncated to its size; anything
// unaligned (odd frame layouts, gzip members) continues buffered. Restored
// files then do not fill the page cache either.
// Asked of a regular file (directories do not report it).
static size_t DirectIoAlign(int file_fd) {
#ifdef STATX_DIOALIGN
  struct statx sx;
  if (statx(file_fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 || !(sx.stx_mask & STATX_DIOALIGN)) return 0;
  size_t a = std::max<size_t>(sx.stx_dio_mem_align, sx.stx_dio_offset_align);
  if (a == 0 || a > 4096 || (a & (a - 1))) return 0;  // not supported, or not a power of two we can serve
  return a;
#else
  (void)dir_fd;
  return 0;
#endif
}

ExtractDir::ExtractDir(const std::string& root, bool fsync) : root_(root), fsync_(fsync) {
  root_fd_ = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd_ < 0) ThrowErrno("cannot open extraction dir", root, errno);
  probe_dio_ = getenv("GUTS_NO_DIRECT_IO") == nullptr;
}

ExtractDir::~ExtractDir() {
  std::free(bounce_);
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
  if (dirs_.size() >= kMaxExtractDirs) {
    close(fd);
    throw GutsError(Code::Corrupt, "too many directories in the archive (limit " + std::to_string(kMaxExtractDirs) + ")", rel);
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
  truncate_ = false;
  off_ = 0;
  size_ = size;
  direct_ = false;
  if (fd_ >= 0 && probe_dio_) {  // the first file tells whether and how this file system does O_DIRECT
    probe_dio_ = false;
    dio_align_ = DirectIoAlign(fd_);
    if (dio_align_) bounce_ = static_cast<uint8_t*>(std::aligned_alloc(4096, 4096));
    if (!bounce_) dio_align_ = 0;
  }
  if (fd_ >= 0 && dio_align_) {
    int flags = fcntl(fd_, F_GETFL);
    direct_ = flags >= 0 && fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0;
    if (!direct_) dio_align_ = 0;  // refused: buffered from now on
  }
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

void ExtractDir::LeaveDirect() {
  int flags = fcntl(fd_, F_GETFL);
  if (flags >= 0) fcntl(fd_, F_SETFL, flags & ~O_DIRECT);
  direct_ = false;
}

void ExtractDir::Write(const uint8_t* p, size_t n) {
  if (direct_) {
    DirectWrite(p, n);
  } else {
    WriteAll(fd_, p, n, cur_);
  }
  off_ += n;
}

void ExtractDir::DirectWrite(const uint8_t* p, size_t n) {
  const size_t a = dio_align_;
  if (reinterpret_cast<uintptr_t>(p) % a != 0 || off_ % a != 0 || truncate_) {
    LeaveDirect();
    WriteAll(fd_, p, n, cur_);
    return;
  }
  const size_t aligned = n & ~(a - 1);
  size_t done = 0;
  while (done < aligned) {
    ssize_t w = write(fd_, p + done, aligned - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL && off_ + done == 0) {  // refused after all: this file goes buffered
      LeaveDirect();
      WriteAll(fd_, p + done, n - done, cur_);
      return;
    }
    if (w < 0) ThrowErrno("cannot write", cur_, errno);
    done += static_cast<size_t>(w);
    if (done < aligned && (done % a) != 0) {  // short unaligned write: finish buffered
      LeaveDirect();
      WriteAll(fd_, p + done, n - done, cur_);
      return;
    }
  }
  const size_t tail = n - aligned;
  if (tail == 0) return;
  if (off_ + n != size_) {  // a partial block in the middle of the file
    LeaveDirect();
    WriteAll(fd_, p + aligned, tail, cur_);
    return;
  }
  // The file's last partial block: padded with zeros, cut back in EndFile.
  std::memset(bounce_, 0, a);
  std::memcpy(bounce_, p + aligned, tail);
  for (;;) {
    ssize_t w = write(fd_, bounce_, a);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) ThrowErrno("cannot write", cur_, errno);
    if (static_cast<size_t>(w) != a) throw GutsError(Code::Io, "short write to " + cur_, cur_);
    break;
  }
  truncate_ = true;
}

void ExtractDir::EndFile(uint32_t mode, int64_t mtime) {
  if (truncate_ && ftruncate(fd_, static_cast<off_t>(size_)) != 0) ThrowErrno("cannot truncate", cur_, errno);
  truncate_ = false;
  // Owner bits only: a restored store is never group/other-accessible,
  // whatever mode the archive recorded (older archives say 0644 for SSTs).
  if (fchmod(fd_, mode & 0700) != 0) ThrowErrno("cannot chmod", cur_, errno);
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
