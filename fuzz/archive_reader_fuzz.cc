// libFuzzer target for the native archive reader (native/archive_reader.cc,
// archive_decode.cc, tar_reader.cc, extract_dir.cc): every input is read
// twice through the same ReadArchive() the addon runs,
//   1. as `backup verify` does: collect every problem, SHA-256 on, no extraction;
//   2. as `backup restore` does: fail fast, extract into a fresh directory.
// Crashes, sanitizer reports, hangs and these invariants are findings:
//   - only GutsError escapes (GUTS_INTERNAL, bad_alloc or anything else is a bug);
//   - extraction writes only regular files and directories, only under its root;
//   - a read without problems has seen GUTS-INDEX and MANIFEST.json.
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "archive_reader.h"
#include "async.h"
#include "errors.h"

namespace {

std::string g_scratch;  // per-process scratch dir for extraction

[[noreturn]] void Finding(const std::string& what) {
  std::fprintf(stderr, "FINDING: %s\n", what.c_str());
  std::abort();
}

int RemoveOne(const char* p, const struct stat*, int, struct FTW*) { return remove(p); }

// Every entry under dir must be a regular file or a directory.
void CheckTree(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string p = dir + "/" + name;
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) CheckTree(p);
    else if (!S_ISREG(st.st_mode)) Finding("extraction created a non-regular entry " + p);
  }
  closedir(d);
}

void Run(const guts::ReadArchiveOptions& o) {
  guts::TaskState state;
  try {
    guts::ReadArchiveResult r = guts::ReadArchive(o, state);
    if (r.problems.empty() && (!r.has_index || !r.has_manifest)) Finding("no problems reported, but no index or manifest");
  } catch (const guts::GutsError& e) {
    if (e.code == guts::Code::Internal) Finding(std::string("GUTS_INTERNAL: ") + e.what());
  }
}

}  // namespace

// fuzz/build.sh binds every N-API and RocksDB symbol the addon glue in the
// reader's files refers to here: the reader itself must never reach them.
extern "C" [[noreturn]] void guts_fuzz_unreachable() { Finding("N-API or RocksDB glue reached from the reader"); }

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/guts-fuzz-XXXXXX";
  if (!mkdtemp(tmpl)) Finding("mkdtemp failed");
  g_scratch = tmpl;
  atexit([] { nftw(g_scratch.c_str(), RemoveOne, 16, FTW_DEPTH | FTW_PHYS); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader takes a path: an in-memory file keeps the disk out of the loop.
  int fd = memfd_create("archive", MFD_CLOEXEC);
  if (fd < 0) Finding("memfd_create failed");
  for (size_t done = 0; done < size;) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) Finding("write to memfd failed");
    done += static_cast<size_t>(w);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);

  guts::ReadArchiveOptions verify;
  verify.path = path;
  verify.threads = 2;  // the frame pool as well as the single-thread path below
  verify.sha256 = true;
  verify.in_memory = {"keys/node.key", "config/config.yaml"};
  Run(verify);

  const std::string root = g_scratch + "/x";
  mkdir(root.c_str(), 0700);
  guts::ReadArchiveOptions restore;
  restore.path = path;
  restore.threads = 1;
  restore.fail_fast = true;
  restore.sha256 = true;  // as restore with a sidecar: the hasher runs beside a consumer that throws
  restore.extract_to = root;
  restore.in_memory = verify.in_memory;
  Run(restore);
  CheckTree(g_scratch);
  nftw(root.c_str(), RemoveOne, 16, FTW_DEPTH | FTW_PHYS);

  close(fd);
  return 0;
}
