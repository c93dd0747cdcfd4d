#include "fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "errors.h"

namespace guts {

void FsyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno("cannot open for fsync", path, errno);
  if (fsync(fd) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno("fsync failed for", path, err);
  }
  close(fd);
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = opendir(path.c_str())) {
      while (struct dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        RemoveTree(path + "/" + name);
      }
      closedir(d);
    }
    rmdir(path.c_str());
  } else {
    unlink(path.c_str());
  }
}

int LockHolder(const std::string& path) {
  // Read /proc/locks instead of probing with fcntl(F_GETLK): opening and
  // closing the LOCK file in a process that holds it would silently drop that
  // process's POSIX lock (locks die with *any* close of the file).
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  FILE* f = fopen("/proc/locks", "re");
  if (!f) return 0;
  char line[512];
  int pid = 0;
  while (!pid && fgets(line, sizeof line, f)) {
    char kind[32], mode[32], access[32];
    int lpid = 0;
    unsigned maj = 0, min = 0;
    unsigned long long ino = 0;
    // "1: POSIX  ADVISORY  WRITE 19410 fe:00:2146700 0 EOF"
    const char* p = strchr(line, ':');
    if (!p) continue;
    if (sscanf(p + 1, "%31s %31s %31s %d %x:%x:%llu", kind, mode, access, &lpid, &maj, &min, &ino) != 7) continue;
    if (ino == static_cast<unsigned long long>(st.st_ino) && maj == major(st.st_dev) && min == minor(st.st_dev)) pid = lpid;
  }
  fclose(f);
  return pid;
}

void RenameExchange(const std::string& a, const std::string& b) {
  if (syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0)
    ThrowErrno("cannot exchange " + a + " with", b, errno);
}

void WriteAll(int fd, const void* data, size_t len, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("cannot write", path, errno);
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
}

void InitFsUtil(Napi::Env env, Napi::Object exports) {
  // makePipe() -> [readFd, writeFd], close-on-exec, 1 MiB of kernel buffer
  // where allowed: a streamed archive between a native task and an upload or
  // a download. Node has no pipe() of its own.
  exports.Set("makePipe", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      GutsError e(Code::Io, std::string("cannot create a pipe: ") + strerror(errno));
      throw MakeError(info.Env(), e);
    }
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    Napi::Array a = Napi::Array::New(info.Env(), 2);
    a.Set(0u, Napi::Number::New(info.Env(), fds[0]));
    a.Set(1u, Napi::Number::New(info.Env(), fds[1]));
    return a;
  }));
  exports.Set("lockHolder", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), LockHolder(info[0].As<Napi::String>()));
  }));
  exports.Set("renameExchange", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    try {
      RenameExchange(info[0].As<Napi::String>(), info[1].As<Napi::String>());
    } catch (const GutsError& e) {
      throw MakeError(info.Env(), e);
    }
    return info.Env().Undefined();
  }));
  exports.Set("fsyncPath", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    try {
      FsyncPath(info[0].As<Napi::String>());
    } catch (const GutsError& e) {
      throw MakeError(info.Env(), e);
    }
    return info.Env().Undefined();
  }));
}

}  // namespace guts
