// createArchive(options) -> TaskHandle: streams a backup archive (docs/FORMAT.md)
// entirely in native threads. The calling libuv thread reads the files with
// large sequential reads straight into tar chunk buffers (XXH3-128 per file
// on the same pass), ChunkCompressor compresses chunks in parallel, and its
// writer thread writes them to <output>.partial and hashes the archive bytes
// with SHA-256. Nothing passes through JS.
//
// The partial file is created O_EXCL with mode 0600 and flock()ed while it is
// written, so a later run can tell a live writer (GUTS_LOCKED) from a leftover
// of a killed one (removed). On success it is fsynced and renamed to <output>
// (refusing to replace an existing file unless overwrite), and the directory
// is fsynced; on any failure or cancel() it is removed.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "zstd_stream.h"

namespace guts {

struct ArchiveEntry {
  std::string path;    // inside the archive
  std::string source;  // on disk (empty when `data` is used)
  bool dir = false;
  int mode = -1;  // -1: the source's mode
  bool has_data = false;
  std::string data;  // small in-memory file (extraFiles)
};

struct ArchiveOptions {
  std::string output, partial;
  // >= 0: write the archive to this descriptor (the write end of a pipe to an
  // upload) instead of <output>.partial: plain buffered writes, no rename;
  // `output` only names it in messages. The writer owns the descriptor and
  // closes it when it is done, successful or not.
  int output_fd = -1;
  bool overwrite = false;
  Compression compression = Compression::kZstd;
  int level = 3;
  int threads = 1;
  size_t frame_size = 8 << 20;
  // Read source files with O_DIRECT (where the file system allows it): used
  // beside a running node, see DirectReader in archive_writer.cc.
  bool direct_reads = false;
  // Write OUTPUT.sha256 ("<sha256>  <basename>\n", 0600) as part of the
  // commit, under the partial's lock (see PartialFile::Commit).
  bool sidecar = false;
  std::vector<ArchiveEntry> entries;
  std::string manifest_base;  // JSON object text
};

struct ArchivedFile {
  std::string path;
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime = 0;
  std::string xxh3;
};

struct ArchiveResult {
  uint64_t archive_bytes = 0, tar_bytes = 0, total_bytes = 0;
  std::string sha256;
  CompressStats stats;
  std::vector<ArchivedFile> files;
  std::string manifest;
};

struct TaskState;
ArchiveResult WriteArchive(const ArchiveOptions& options, TaskState& state);

// Removes `partial` if it is a leftover of a dead writer; throws GUTS_LOCKED
// when a live process holds it. Returns true when something was removed.
bool RemoveStalePartial(const std::string& partial, const std::string& output);

void InitArchiveWriter(Napi::Env env, Napi::Object exports);

}  // namespace guts
