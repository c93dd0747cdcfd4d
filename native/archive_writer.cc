#include "archive_writer.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <memory>
#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include "async.h"
#include "deflate_fast.h"
#include "errors.h"
#include "fs_util.h"
#include "hashing.h"
#include "priority.h"
#include "tar_writer.h"

namespace guts {

namespace {

bool EndsWith(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

constexpr const char* kIndexName = "GUTS-INDEX";
constexpr const char* kManifestName = "MANIFEST.json";
constexpr uint64_t kReadSize = 1 << 20;

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Owner names for the tar headers, looked up once per id.
class OwnerNames {
 public:
  const std::string& User(uid_t uid) {
    auto it = users_.find(uid);
    if (it != users_.end()) return it->second;
    std::string name;
    struct passwd pw, *res = nullptr;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) name = res->pw_name;
    return users_[uid] = name;
  }
  const std::string& Group(gid_t gid) {
    auto it = groups_.find(gid);
    if (it != groups_.end()) return it->second;
    std::string name;
    struct group gr, *res = nullptr;
    char buf[4096];
    if (getgrgid_r(gid, &gr, buf, sizeof buf, &res) == 0 && res) name = res->gr_name;
    return groups_[gid] = name;
  }

 private:
  std::map<uid_t, std::string> users_;
  std::map<gid_t, std::string> groups_;
};

struct Planned {
  const ArchiveEntry* spec;
  TarHeader header;
};

// Stats every entry up front: sizes for GUTS-INDEX and progress, and early
// errors (missing file, symlink, bad path) before anything is written.
std::vector<Planned> PlanEntries(const std::vector<ArchiveEntry>& entries, uint64_t* total) {
  std::vector<Planned> plan;
  std::set<std::string> seen = {kIndexName, kManifestName};
  OwnerNames owners;
  uid_t my_uid = geteuid();
  gid_t my_gid = getegid();
  *total = 0;
  for (const ArchiveEntry& e : entries) {
    CheckArchivePath(e.path);
    if (!seen.insert(e.path).second)
      throw GutsError(Code::InvalidArgument, "duplicate or reserved archive path \"" + e.path + "\"", e.path);
    Planned p{&e, {}};
    p.header.path = e.path;
    p.header.dir = e.dir;
    if (e.has_data) {
      p.header.size = e.data.size();
      p.header.mode = e.mode >= 0 ? static_cast<uint32_t>(e.mode) : 0600;
      p.header.mtime = static_cast<int64_t>(time(nullptr));
      p.header.uid = my_uid;
      p.header.gid = my_gid;
    } else {
      struct stat st;
      if (lstat(e.source.c_str(), &st) != 0) ThrowErrno("cannot stat", e.source, errno);
      if (e.dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        throw GutsError(Code::InvalidArgument,
                        e.source + " is not a " + (e.dir ? "directory" : "regular file") + " (symlinks are not archived)",
                        e.source);
      p.header.size = e.dir ? 0 : static_cast<uint64_t>(st.st_size);
      p.header.mode = e.mode >= 0 ? static_cast<uint32_t>(e.mode) : (st.st_mode & 07777);
      p.header.mtime = static_cast<int64_t>(st.st_mtime);
      p.header.uid = st.st_uid;
      p.header.gid = st.st_gid;
    }
    p.header.uname = owners.User(p.header.uid);
    p.header.gname = owners.Group(p.header.gid);
    *total += p.header.size;
    plan.push_back(std::move(p));
  }
  return plan;
}

std::string BuildIndex(const std::vector<Planned>& plan) {
  std::string index = "guts-index 1\n";
  char buf[64];
  for (const Planned& p : plan) {
    if (p.header.dir) continue;
    std::snprintf(buf, sizeof buf, "%llu %04o ", static_cast<unsigned long long>(p.header.size), p.header.mode);
    index += buf;
    index += p.header.path;
    index += '\n';
  }
  return index;
}

// manifest_base with "files" and "total_bytes" appended before its closing brace.
std::string BuildManifest(const std::string& base, const std::vector<ArchivedFile>& files, uint64_t total) {
  size_t open = base.find_first_not_of(" \t\r\n");
  size_t close = base.find_last_not_of(" \t\r\n");
  if (open == std::string::npos || base[open] != '{' || base[close] != '}')
    throw GutsError(Code::InvalidArgument, "manifestBase must be a JSON object");
  std::string head = base.substr(0, close);
  size_t last = head.find_last_not_of(" \t\r\n");
  bool empty = last == open;
  bool pretty = base.find('\n') != std::string::npos;
  head.erase(last + 1);
  const char* nl = pretty ? "\n" : "";
  const char* ind = pretty ? "  " : "";
  const char* ind2 = pretty ? "    " : "";
  std::string out = head;
  if (!empty) out += ",";
  out += nl;
  out += ind;
  out += pretty ? "\"files\": [" : "\"files\":[";
  for (size_t i = 0; i < files.size(); i++) {
    const ArchivedFile& f = files[i];
    out += i ? "," : "";
    out += nl;
    out += ind2;
    out += "{\"path\": " + JsonString(f.path) + ", \"size\": " + std::to_string(f.size) +
           ", \"mode\": " + std::to_string(f.mode) + ", \"mtime\": " + std::to_string(f.mtime) +
           ", \"xxh3\": \"" + f.xxh3 + "\"}";
  }
  if (!files.empty()) {
    out += nl;
    out += ind;
  }
  out += "],";
  out += nl;
  out += ind;
  out += pretty ? "\"total_bytes\": " : "\"total_bytes\":";
  out += std::to_string(total);
  out += nl;
  out += "}";
  if (pretty) out += "\n";
  return out;
}

// Reads a source file around the page cache (O_DIRECT) into an aligned bounce
// buffer; used beside a running node. A backup read through the page cache
// fills it with the checkpoint's SSTs, which on a node whose data exceeds its
// RAM evicts the pages the node serves from; reading them directly leaves the
// node's cache as it was. (On this VM a `cat` of a large file at SCHED_IDLE
// also raised the node's p99 write latency 2-3x where `dd iflag=direct` did
// not.) The device's sequential read speed (0.77 GB/s here) is above the paced
// archiver's. Files on file systems without O_DIRECT are read buffered.
class DirectReader {
 public:
  static constexpr size_t kAlign = 4096;
  static constexpr size_t kSize = 1 << 20;

  DirectReader() : buf_(static_cast<uint8_t*>(std::aligned_alloc(kAlign, kSize))) {
    if (!buf_) throw std::bad_alloc();
  }
  ~DirectReader() { std::free(buf_); }
  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;

  // Switches fd to O_DIRECT; false where the file system refuses it.
  static bool Enable(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
  }
  static void Disable(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_DIRECT);
  }

  // One aligned read at `offset` (a multiple of kAlign); -1 with errno set.
  ssize_t Read(int fd, uint64_t offset) {
    for (;;) {
      ssize_t n = pread(fd, buf_, kSize, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }
  const uint8_t* data() const { return buf_; }

 private:
  uint8_t* buf_;
};

// Fills chunk buffers with the tar stream; full chunks go to the compressor.
// A chunk is acquired only when there are bytes for it, so every acquired
// chunk is submitted.
class TarEmitter {
 public:
  TarEmitter(ChunkCompressor& cc, TaskState& state) : cc_(cc), state_(state) {}

  void Put(const void* data, size_t len) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (len) {
      Chunk* c = Space();
      size_t n = std::min(len, c->in_cap - c->in_len);
      std::memcpy(c->in.get() + c->in_len, p, n);
      Advance(n);
      p += n;
      len -= n;
    }
  }
  void Put(const std::string& s) { Put(s.data(), s.size()); }

  // PutFile around the page cache (see DirectReader); falls back to PutFile
  // when the file system refuses O_DIRECT for this file.
  void PutFileDirect(int fd, uint64_t size, Xxh3Stream& hash, const std::string& path, DirectReader& dr) {
    if (!DirectReader::Enable(fd)) return PutFile(fd, size, hash, path);
    uint64_t done = 0;
    while (done < size) {
      ssize_t n = dr.Read(fd, done);
      if (n < 0) {
        if (errno == EINVAL && done == 0) {  // O_DIRECT accepted by fcntl, refused by read
          DirectReader::Disable(fd);
          return PutFile(fd, size, hash, path);
        }
        ThrowErrno("cannot read", path, errno);
      }
      size_t k = static_cast<size_t>(std::min<uint64_t>(static_cast<uint64_t>(n), size - done));
      Put(dr.data(), k);
      hash.Update(dr.data(), k);
      state_.done.fetch_add(k, std::memory_order_relaxed);
      done += k;
      // A short read (or none) is the end of the file: the next one is not aligned.
      if (static_cast<size_t>(n) < DirectReader::kSize && done < size)
        throw GutsError(Code::Io, "file " + path + " shrank while it was archived", path);
      PreemptionPoint();
    }
  }

  void Zeros(size_t len) {
    while (len) {
      Chunk* c = Space();
      size_t n = std::min(len, c->in_cap - c->in_len);
      std::memset(c->in.get() + c->in_len, 0, n);
      Advance(n);
      len -= n;
    }
  }

  // Reads exactly `size` bytes of fd straight into chunk buffers.
  void PutFile(int fd, uint64_t size, Xxh3Stream& hash, const std::string& path) {
    uint64_t left = size;
    while (left) {
      Chunk* c = Space();
      // 1 MiB reads: the XXH3 pass over each is short enough to sit between
      // preemption points (see priority.h).
      size_t want = static_cast<size_t>(std::min<uint64_t>({left, c->in_cap - c->in_len, kReadSize}));
      ssize_t n = read(fd, c->in.get() + c->in_len, want);
      if (n < 0) {
        if (errno == EINTR) continue;
        ThrowErrno("cannot read", path, errno);
      }
      if (n == 0) throw GutsError(Code::Io, "file " + path + " shrank while it was archived", path);
      hash.Update(c->in.get() + c->in_len, static_cast<size_t>(n));
      PreemptionPoint();
      state_.done.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      Advance(static_cast<size_t>(n));
      left -= static_cast<uint64_t>(n);
    }
  }

  void Flush() {
    if (cur_) cc_.Submit(cur_);
    cur_ = nullptr;
  }
  uint64_t bytes() const { return bytes_; }
  // Bytes put from now on are counted as already compressed (Chunk::precompressed).
  void SetPrecompressed(bool on) { precompressed_ = on; }

 private:
  Chunk* Space() {
    if (!cur_) {
      state_.CheckCancelled();
      cur_ = cc_.Acquire();
    }
    return cur_;
  }
  void Advance(size_t n) {
    cur_->in_len += n;
    if (precompressed_) cur_->precompressed += n;
    bytes_ += n;
    if (cur_->in_len == cur_->in_cap) Flush();
  }

  ChunkCompressor& cc_;
  TaskState& state_;
  Chunk* cur_ = nullptr;
  uint64_t bytes_ = 0;
  bool precompressed_ = false;
};

// Test hook: with GUTS_TEST_HOOKS=1 and GUTS_TEST_CRASH_COMMIT=N in the
// environment, the process dies by SIGKILL right after commit step N (see
// PartialFile::Commit), so a test can see what a crash at that point leaves.
void CrashPointForTests(int step) {
  static const int at = [] {
    const char* hooks = std::getenv("GUTS_TEST_HOOKS");
    const char* crash = std::getenv("GUTS_TEST_CRASH_COMMIT");
    return hooks && crash && std::strcmp(hooks, "1") == 0 ? std::atoi(crash) : 0;
  }();
  if (at == step) raise(SIGKILL);
}

// The open, locked partial file; removed on destruction unless committed.
class PartialFile {
 public:
  PartialFile(const std::string& partial, const std::string& output) : path_(partial), output_(output) {
    fd_ = open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      int err = errno;
      if (err == EEXIST) throw GutsError(Code::Locked, "another backup is writing " + output + " (" + partial + " exists)", partial);
      ThrowErrno("cannot create", partial, err);
    }
    created_ = true;
    struct stat a, b;
    // Between open and flock a concurrent RemoveStalePartial may have taken
    // our fresh file for a stale one; then the path is no longer ours.
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0 || fstat(fd_, &a) != 0 || stat(partial.c_str(), &b) != 0 ||
        a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
      created_ = false;
      close(fd_);
      fd_ = -1;
      throw GutsError(Code::Locked, "another backup is writing " + output, partial);
    }
    fchmod(fd_, 0600);
    // A sidecar left by a run killed inside Commit: ours now (we hold the lock).
    unlink(SidecarPartial().c_str());
  }
  ~PartialFile() {
    if (created_ && !committed_) unlink(path_.c_str());
    if (sidecar_written_) unlink(SidecarPartial().c_str());
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

  // fsync, move into place (never replacing unless overwrite), fsync the dir.
  // The lock is held until the end, so no other run takes it for stale.
  //
  // With a sidecar (`sidecar_text` not empty), the pair OUTPUT, OUTPUT.sha256
  // is replaced in an order where a crash (kill -9, power loss) at any point
  // leaves the old pair, the new pair, or one complete archive without a
  // sidecar (`sha256sum OUTPUT` recomputes it) -- never an archive beside the
  // other one's checksum, which would read as a corrupt backup:
  //   1. the new sidecar is written and fsynced as OUTPUT.sha256.partial
  //      (a full disk fails here, with nothing replaced);
  //   2. the old sidecar is removed (dir fsynced);
  //   3. the archive is renamed over the old one;
  //   4. the new sidecar is renamed into place (dir fsynced).
  // Concurrent runs on one output are serialized by the partial's lock, so
  // no other run's sidecar lands between 3 and 4.
  void Commit(bool overwrite, const std::string& sidecar_text = std::string()) {
    if (fsync(fd_) != 0) ThrowErrno("cannot fsync", path_, errno);
    const std::string sidecar = output_ + ".sha256";
    if (!sidecar_text.empty()) {
      WriteSidecarPartial(sidecar_text);
      CrashPointForTests(1);
      if (overwrite) {
        if (unlink(sidecar.c_str()) != 0 && errno != ENOENT) ThrowErrno("cannot remove", sidecar, errno);
        FsyncPath(DirName(output_));
      }
      CrashPointForTests(2);
    }
    if (overwrite) {
      if (rename(path_.c_str(), output_.c_str()) != 0) ThrowErrno("cannot rename " + path_ + " to", output_, errno);
    } else {
      if (link(path_.c_str(), output_.c_str()) != 0) {
        int err = errno;
        if (err == EEXIST)
          throw GutsError(Code::Exists, output_ + " already exists (use --force to overwrite)", output_);
        ThrowErrno("cannot link " + path_ + " to", output_, err);
      }
      unlink(path_.c_str());
    }
    committed_ = true;  // the partial's path is gone: never unlink it again
    if (!sidecar_text.empty()) {
      FsyncPath(DirName(output_));
      CrashPointForTests(3);
      if (rename(SidecarPartial().c_str(), sidecar.c_str()) != 0) ThrowErrno("cannot rename " + SidecarPartial() + " to", sidecar, errno);
      sidecar_written_ = false;
    }
    FsyncPath(DirName(output_));
    close(fd_);
    fd_ = -1;
  }

  std::string SidecarPartial() const { return output_ + ".sha256.partial"; }

  void WriteSidecarPartial(const std::string& text) {
    const std::string tmp = SidecarPartial();
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) ThrowErrno("cannot create", tmp, errno);
    sidecar_written_ = true;
    try {
      fchmod(fd, 0600);
      WriteAll(fd, text.data(), text.size(), tmp);
      if (fsync(fd) != 0) ThrowErrno("cannot fsync", tmp, errno);
    } catch (...) {
      close(fd);
      throw;
    }
    close(fd);
  }

 private:
  std::string path_, output_;
  int fd_ = -1;
  bool created_ = false, committed_ = false;
  bool sidecar_written_ = false;  // OUTPUT.sha256.partial exists and is ours
};

// Writes the archive with O_DIRECT through aligned staging buffers: no
// page-cache copy (on this 2-core VM the kernel's copy into the page cache
// and the writeback cost more CPU than SHA-256), the final fsync has almost
// nothing left to do, and a backup does not evict the node's cached SSTs.
// O_DIRECT writes block until the device has the data (0.27 s for a 344 MB
// archive here), so they are issued by an I/O thread while the caller (the
// compressor's writer thread) fills the next buffer and hashes: the device
// time is off the pipeline's critical path. The unaligned tail is written
// buffered. Filesystems without O_DIRECT (EINVAL) get plain buffered writes.
class OutputWriter {
 public:
  static constexpr size_t kAlign = 4096;
  static constexpr size_t kCapacity = 2 << 20;
  static constexpr int kBuffers = 3;

  OutputWriter(int fd, const std::string& path, bool allow_direct = true) : fd_(fd), path_(path) {
    if (!allow_direct) return;  // a pipe: O_DIRECT would turn it into packet mode
    int flags = fcntl(fd_, F_GETFL);
    if (flags < 0 || fcntl(fd_, F_SETFL, flags | O_DIRECT) != 0) return;  // buffered writes
    for (int i = 0; i < kBuffers; i++) {
      uint8_t* b = static_cast<uint8_t*>(std::aligned_alloc(kAlign, kCapacity));
      if (!b) break;
      bufs_.push_back(b);
      free_.push_back(b);
    }
    if (bufs_.size() < 2) {
      Buffered();
      return;
    }
    direct_ = true;
    cur_ = free_.back();
    free_.pop_back();
    try {
      io_ = std::thread([this] {
        NameThisThread("guts-direct-io");
        IoLoop();
      });
    } catch (...) {
      for (uint8_t* b : bufs_) std::free(b);  // the destructor does not run when the constructor throws
      throw;
    }
  }
  // The I/O thread reads the staging buffers (bufs_): joined before they are
  // freed. Reached without Finish() only on an error or cancel: the queued
  // writes are dropped (the partial file is removed anyway).
  ~OutputWriter() {
    {
      std::lock_guard<std::mutex> l(mu_);
      discard_ = true;
    }
    StopIo(false);
    for (uint8_t* b : bufs_) std::free(b);
  }

  void Write(const uint8_t* p, size_t n) {
    if (!direct_) {
      WriteAll(fd_, p, n, path_);
      return;
    }
    while (n) {
      size_t k = std::min(n, kCapacity - fill_);
      std::memcpy(cur_ + fill_, p, k);
      fill_ += k;
      p += k;
      n -= k;
      if (fill_ == kCapacity) {
        Submit(cur_, kCapacity);
        cur_ = TakeFree();
        fill_ = 0;
      }
    }
  }

  // Everything staged reaches the file (the tail without O_DIRECT).
  void Finish() {
    if (!direct_) return;
    const size_t aligned = fill_ & ~(kAlign - 1);
    if (aligned) Submit(cur_, aligned);
    StopIo();  // waits for every submitted write; rethrows its error
    if (!buffered_fallback_) Buffered();
    WriteAll(fd_, cur_ + aligned, fill_ - aligned, path_);
    fill_ = 0;
    direct_ = false;
  }

 private:
  void Buffered() {
    int flags = fcntl(fd_, F_GETFL);
    if (flags >= 0) fcntl(fd_, F_SETFL, flags & ~O_DIRECT);
  }

  void Submit(uint8_t* b, size_t n) {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_.empty()) throw GutsError(error_code_, error_, path_);
    queue_.emplace_back(b, n);
    cv_.notify_all();
  }

  uint8_t* TakeFree() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return !free_.empty() || !error_.empty(); });
    if (!error_.empty()) throw GutsError(error_code_, error_, path_);
    uint8_t* b = free_.back();
    free_.pop_back();
    return b;
  }

  void StopIo(bool rethrow = true) {
    if (!io_.joinable()) return;
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    io_.join();
    if (rethrow && !error_.empty()) throw GutsError(error_code_, error_, path_);
  }

  // Writes one aligned buffer; a file system that refuses O_DIRECT (EINVAL
  // before anything was written) or a short unaligned write switches the
  // rest to buffered writes.
  void WriteBuffer(const uint8_t* b, size_t n) {
    size_t done = 0;
    while (!buffered_fallback_ && done < n) {
      ssize_t w = write(fd_, b + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      // EINVAL: the filesystem refuses O_DIRECT after all, or the kernel cut
      // the write to an unaligned length (RLIMIT_FSIZE): retry buffered,
      // which writes what fits and then fails with the real cause (EFBIG).
      if (w < 0 && errno == EINVAL) {
        buffered_fallback_ = true;
        Buffered();
        break;
      }
      if (w < 0) ThrowErrno("cannot write", path_, errno);
      done += static_cast<size_t>(w);
      written_ += static_cast<uint64_t>(w);
      if (done < n && (static_cast<size_t>(w) & (kAlign - 1))) {
        buffered_fallback_ = true;
        Buffered();
      }
    }
    if (done < n) WriteAll(fd_, b + done, n - done, path_);
  }

  void IoLoop() {
    for (;;) {
      std::pair<uint8_t*, size_t> item;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop requested, all written
        item = queue_.front();
      }
      bool skip;
      {
        std::lock_guard<std::mutex> l(mu_);
        skip = discard_ || !error_.empty();
      }
      try {
        if (!skip) WriteBuffer(item.first, item.second);
      } catch (const GutsError& e) {
        std::lock_guard<std::mutex> l(mu_);
        error_ = e.what();
        error_code_ = e.code;
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> l(mu_);
        error_ = e.what();
        error_code_ = Code::Io;
      }
      std::lock_guard<std::mutex> l(mu_);
      queue_.pop_front();
      free_.push_back(item.first);
      cv_.notify_all();
    }
  }

  int fd_;
  std::string path_;
  std::vector<uint8_t*> bufs_;
  uint8_t* cur_ = nullptr;
  size_t fill_ = 0;
  uint64_t written_ = 0;  // by the I/O thread
  bool direct_ = false;
  bool buffered_fallback_ = false;  // by the I/O thread until it is joined
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint8_t*> free_;
  std::deque<std::pair<uint8_t*, size_t>> queue_;
  bool stop_ = false;
  bool discard_ = false;  // the destructor runs: drop what is queued
  std::string error_;
  Code error_code_ = Code::Io;
  std::thread io_;
};

class FileHandle {
 public:
  explicit FileHandle(const std::string& path) : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) {
    if (fd_ < 0) ThrowErrno("cannot open", path, errno);
  }
  ~FileHandle() { close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

bool RemoveStalePartial(const std::string& partial, const std::string& output) {
  int fd = open(partial.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    ThrowErrno("cannot open", partial, errno);
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) throw GutsError(Code::Locked, "another backup is writing " + output, partial);
    ThrowErrno("cannot lock", partial, err);
  }
  // Unlocked: its writer died (kill -9, power loss). Remove it if the path
  // still names the file we locked.
  struct stat a, b;
  bool same = fstat(fd, &a) == 0 && stat(partial.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
  bool removed = same && unlink(partial.c_str()) == 0;
  close(fd);
  return removed;
}

ArchiveResult WriteArchive(const ArchiveOptions& o, TaskState& state) {
  // A stream output (pipe) is closed on every way out of here: the reader
  // then sees EOF and learns the outcome from the task's result.
  struct StreamFd {
    int fd;
    ~StreamFd() {
      if (fd >= 0) close(fd);
    }
  } stream{o.output_fd};
  uint64_t total = 0;
  std::vector<Planned> plan = PlanEntries(o.entries, &total);
  state.total = total;
  std::string index = BuildIndex(plan);
  std::unique_ptr<PartialFile> out;
  if (stream.fd < 0) {
    RemoveStalePartial(o.partial, o.output);
    out = std::make_unique<PartialFile>(o.partial, o.output);
  }

  ArchiveResult result;
  Digest sha(Digest::kSha256);
  OutputWriter writer(out ? out->fd() : stream.fd, out ? o.partial : o.output, out != nullptr);
  ChunkCompressor cc(o.compression, o.level, o.threads, o.frame_size, [&](const uint8_t* p, size_t n) {
    result.archive_bytes += n;
    while (n) {  // in slices: SHA-256 of a whole frame is ~5 ms of CPU
      size_t k = std::min(n, kPreemptionSlice);
      writer.Write(p, k);
      sha.Update(p, k);
      PreemptionPoint();
      p += k;
      n -= k;
    }
  }, &state.cancelled);
  TarEmitter tar(cc, state);
  std::unique_ptr<DirectReader> direct;
  if (o.direct_reads) direct = std::make_unique<DirectReader>();
  OwnerNames owners;
  try {
    std::string hdr;
    auto put_small = [&](const std::string& name, const std::string& data, uint32_t mode) {
      TarHeader h;
      h.path = name;
      h.size = data.size();
      h.mode = mode;
      h.mtime = static_cast<int64_t>(time(nullptr));
      h.uid = geteuid();
      h.gid = getegid();
      h.uname = owners.User(h.uid);
      h.gname = owners.Group(h.gid);
      hdr.clear();
      AppendTarHeader(hdr, h);
      tar.Put(hdr);
      tar.Put(data);
      tar.Zeros(TarPadding(data.size()));
    };
    put_small(kIndexName, index, 0600);

    Xxh3Stream hash;
    for (const Planned& p : plan) {
      hdr.clear();
      AppendTarHeader(hdr, p.header);
      if (p.header.dir) {
        tar.Put(hdr);
        continue;
      }
      hash.Reset();
      if (p.spec->has_data) {
        tar.Put(hdr);
        hash.Update(p.spec->data.data(), p.spec->data.size());
        tar.Put(p.spec->data);
        state.done.fetch_add(p.spec->data.size());
      } else {
        FileHandle f(p.spec->source);
        struct stat st;
        if (fstat(f.fd(), &st) != 0) ThrowErrno("cannot stat", p.spec->source, errno);
        if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != p.header.size)
          throw GutsError(Code::Io, "file " + p.spec->source + " changed while it was archived", p.spec->source);
        posix_fadvise(f.fd(), 0, 0, POSIX_FADV_SEQUENTIAL);
        tar.Put(hdr);
        const bool sst = o.compression == Compression::kZstd && EndsWith(p.header.path, ".sst") &&
                         SstIsPrecompressed(f.fd(), p.header.size);
        tar.SetPrecompressed(sst);
        if (direct) tar.PutFileDirect(f.fd(), p.header.size, hash, p.spec->source, *direct);
        else tar.PutFile(f.fd(), p.header.size, hash, p.spec->source);
        tar.SetPrecompressed(false);
      }
      tar.Zeros(TarPadding(p.header.size));
      result.files.push_back({p.header.path, p.header.size, p.header.mode, p.header.mtime, hash.HexDigest()});
      state.files.fetch_add(1);
    }
    result.total_bytes = total;
    result.manifest = BuildManifest(o.manifest_base, result.files, total);
    put_small(kManifestName, result.manifest, 0600);
    tar.Zeros(TarTrailerSize(tar.bytes()));
    tar.Flush();
    cc.Finish();
    writer.Finish();
  } catch (...) {
    cc.Abort();
    throw;
  }
  result.tar_bytes = tar.bytes();
  result.stats = cc.stats();
  uint8_t digest[32];
  sha.Final(digest);
  result.sha256 = ToHex(digest, sizeof digest);
  state.CheckCancelled();
  std::string sidecar_text;
  if (o.sidecar) {
    size_t slash = o.output.find_last_of('/');
    sidecar_text = result.sha256 + "  " + (slash == std::string::npos ? o.output : o.output.substr(slash + 1)) + "\n";
  }
  if (out) out->Commit(o.overwrite, sidecar_text);
  return result;
}

namespace {

class CreateArchiveWorker : public PromiseWorker {
 public:
  CreateArchiveWorker(Napi::Env env, ArchiveOptions options, std::shared_ptr<TaskState> state)
      : PromiseWorker(env), options_(std::move(options)), state_(std::move(state)) {}

 protected:
  void Run() override { result_ = WriteArchive(options_, *state_); }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    r.Set("output", options_.output);
    r.Set("archiveBytes", num(result_.archive_bytes));
    r.Set("tarBytes", num(result_.tar_bytes));
    r.Set("totalBytes", num(result_.total_bytes));
    r.Set("sha256", result_.sha256);
    r.Set("frames", num(result_.stats.frames));
    Napi::Object levels = Napi::Object::New(env);
    for (const auto& kv : result_.stats.frames_by_level) levels.Set(kv.first, num(kv.second));
    r.Set("levels", levels);
    Napi::Array files = Napi::Array::New(env, result_.files.size());
    for (size_t i = 0; i < result_.files.size(); i++) {
      const ArchivedFile& f = result_.files[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("path", f.path);
      o.Set("size", num(f.size));
      o.Set("mode", num(f.mode));
      o.Set("mtime", Napi::Number::New(env, static_cast<double>(f.mtime)));
      o.Set("xxh3", f.xxh3);
      files.Set(static_cast<uint32_t>(i), o);
    }
    r.Set("files", files);
    r.Set("manifest", result_.manifest);
    return r;
  }

 private:
  ArchiveOptions options_;
  std::shared_ptr<TaskState> state_;
  ArchiveResult result_;
};

[[noreturn]] void Invalid(Napi::Env env, const std::string& msg) { ThrowJs(env, Code::InvalidArgument, "createArchive: " + msg); }

std::string StringProp(Napi::Env env, Napi::Object o, const char* key, bool required = true) {
  Napi::Value v = o.Get(key);
  if (v.IsString()) return v.As<Napi::String>();
  if (required || !v.IsUndefined()) Invalid(env, std::string(key) + " must be a string");
  return "";
}

int IntProp(Napi::Env env, Napi::Object o, const char* key, int def, int min, int max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return def;
  if (!v.IsNumber()) Invalid(env, std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<int>(d) || d < min || d > max)
    Invalid(env, std::string(key) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
  return static_cast<int>(d);
}

ArchiveOptions ParseOptions(Napi::Env env, Napi::Value arg) {
  if (!arg.IsObject()) Invalid(env, "options object required");
  Napi::Object o = arg.As<Napi::Object>();
  ArchiveOptions opts;
  opts.output = StringProp(env, o, "output");
  opts.partial = StringProp(env, o, "partial", false);
  if (opts.partial.empty()) opts.partial = opts.output + ".partial";
  opts.overwrite = o.Get("overwrite").ToBoolean();
  opts.output_fd = IntProp(env, o, "outputFd", -1, -1, 1 << 30);
  std::string format = StringProp(env, o, "format");
  if (format == "tar.zst") opts.compression = Compression::kZstd;
  else if (format == "tar.gz") opts.compression = Compression::kGzip;
  else if (format == "tar") opts.compression = Compression::kNone;
  else Invalid(env, "format must be tar.zst, tar.gz or tar");
  opts.level = IntProp(env, o, "level", 3, opts.compression == Compression::kGzip ? 1 : -7,
                       opts.compression == Compression::kGzip ? 9 : 22);
  opts.threads = IntProp(env, o, "threads", 1, 1, 256);
  opts.frame_size = static_cast<size_t>(IntProp(env, o, "frameSize", 8 << 20, 64 << 10, 64 << 20));
  opts.direct_reads = o.Get("directReads").ToBoolean();
  opts.sidecar = o.Get("sidecar").ToBoolean();
  opts.manifest_base = StringProp(env, o, "manifestBase");
  Napi::Value ev = o.Get("entries");
  if (!ev.IsArray()) Invalid(env, "entries must be an array");
  Napi::Array entries = ev.As<Napi::Array>();
  for (uint32_t i = 0; i < entries.Length(); i++) {
    Napi::Value v = entries.Get(i);
    if (!v.IsObject()) Invalid(env, "entries[" + std::to_string(i) + "] must be an object");
    Napi::Object e = v.As<Napi::Object>();
    ArchiveEntry a;
    a.path = StringProp(env, e, "path");
    a.source = StringProp(env, e, "source");
    std::string type = StringProp(env, e, "type");
    if (type != "file" && type != "dir") Invalid(env, "entry type must be file or dir");
    a.dir = type == "dir";
    a.mode = IntProp(env, e, "mode", -1, 0, 07777);
    opts.entries.push_back(std::move(a));
  }
  Napi::Value xv = o.Get("extraFiles");
  if (xv.IsArray()) {
    Napi::Array extra = xv.As<Napi::Array>();
    for (uint32_t i = 0; i < extra.Length(); i++) {
      Napi::Value v = extra.Get(i);
      if (!v.IsObject()) Invalid(env, "extraFiles[" + std::to_string(i) + "] must be an object");
      Napi::Object e = v.As<Napi::Object>();
      ArchiveEntry a;
      a.path = StringProp(env, e, "path");
      Napi::Value d = e.Get("data");
      if (!d.IsBuffer()) Invalid(env, "extraFiles[].data must be a Buffer");
      auto buf = d.As<Napi::Buffer<char>>();
      a.data.assign(buf.Data(), buf.Length());
      a.has_data = true;
      a.mode = IntProp(env, e, "mode", 0600, 0, 07777);
      opts.entries.push_back(std::move(a));
    }
  } else if (!xv.IsUndefined()) {
    Invalid(env, "extraFiles must be an array");
  }
  return opts;
}

}  // namespace

void InitArchiveWriter(Napi::Env env, Napi::Object exports) {
  // Past RLIMIT_FSIZE the kernel sends SIGXFSZ, whose default action kills
  // the process mid-write (no cleanup, no message). Ignored, the write fails
  // with EFBIG instead: GUTS_NO_SPACE, partial removed, checkpoint released.
  // Process-wide (RocksDB and restore's extraction too); a handler someone
  // else installed is kept.
  struct sigaction old;
  if (sigaction(SIGXFSZ, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGXFSZ, SIG_IGN);
  exports.Set("createArchive", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Env e = info.Env();
    ArchiveOptions opts = ParseOptions(e, info[0]);
    auto state = std::make_shared<TaskState>();
    auto* worker = new CreateArchiveWorker(e, std::move(opts), state);
    return MakeTaskHandle(e, worker->Start(), state);
  }));
  // Test hook (GUTS_TEST_HOOKS=1 at load): debugGzipMember(buffer, tier) ->
  // one gzip member of GzipEncoder ("stored" | "huffman" | "fast"), synchronous.
  const char* hooks = std::getenv("GUTS_TEST_HOOKS");
  if (hooks && std::strcmp(hooks, "1") == 0)
    exports.Set("debugGzipMember", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
      Napi::Env e = info.Env();
      if (!info[0].IsBuffer() || !info[1].IsString()) ThrowJs(e, Code::InvalidArgument, "debugGzipMember(buffer, tier)");
      auto in = info[0].As<Napi::Buffer<uint8_t>>();
      const std::string t = info[1].As<Napi::String>();
      const GzipTier tier = t == "stored" ? GzipTier::kStored : t == "huffman" ? GzipTier::kHuffman : GzipTier::kFast;
      std::vector<uint8_t> out(GzipMemberBound(in.Length()));
      GzipEncoder enc;
      size_t n = enc.Member(out.data(), out.size(), in.Data(), in.Length(), tier);
      return Napi::Buffer<uint8_t>::Copy(e, out.data(), n);
    }));
}

}  // namespace guts
