// readArchive(options) -> TaskHandle<ReadArchiveResult> (docs/FORMAT.md,
// "Reader rules"). One sequential pass over the archive file: decompress
// (parallel across zstd frames), parse tar, enforce GUTS-INDEX (first entry:
// every regular file listed with exactly its size, no extras, duplicates or
// unsafe entries; total decompressed bytes capped by what the index
// promises), XXH3-128 per file, and optionally extract under a staging dir.
// Verify mode collects every problem; failFast throws at the first one.
// Manifest cross-checks are done in TypeScript (src/archive.ts).
#pragma once
#include <napi.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "errors.h"

namespace guts {

struct ReadArchiveOptions {
  std::string path;
  // >= 0: read the archive from this descriptor (a pipe) instead of opening
  // `path` (which then only names it); owned and closed by the reader.
  int input_fd = -1;
  uint64_t input_size = 0;  // expected bytes of a stream (progress)
  int threads = 1;
  std::string extract_to;  // empty = verify only
  bool fsync = false;
  bool sha256 = false;
  bool frame_checksums = true;  // false: only with sha256 checked against a sidecar by the caller
  bool fail_fast = false;
  std::vector<std::string> in_memory;  // files returned in the result, not written
  // The layout a backup may hold (src/archive-layout.ts): '#' matches one or
  // more ASCII digits, every other byte itself. A file must match a pattern, a
  // directory must be the parent of one. Empty = no layout check (fuzz target).
  std::vector<std::string> layout;
};

struct ArchiveProblem {
  std::string path;
  Code code;
  std::string message;
};

struct ReadEntryInfo {
  std::string path;
  bool dir = false;
  bool damaged = false;
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime = 0;
  std::string xxh3;
};

struct ReadArchiveResult {
  std::string format;
  uint64_t archive_bytes = 0;
  uint64_t tar_bytes = 0;
  uint64_t frames = 0, parallel_frames = 0, streamed_frames = 0;
  std::string sha256;
  bool has_index = false, has_manifest = false;
  std::string index, manifest;
  std::vector<ReadEntryInfo> entries;
  std::vector<ArchiveProblem> problems;
  std::map<std::string, std::string> memory;
};

struct TaskState;
// The whole read, without N-API (the fuzz target in fuzz/ drives it too):
// throws GutsError for I/O errors, and in fail_fast mode for the first problem.
ReadArchiveResult ReadArchive(const ReadArchiveOptions& options, TaskState& state);

void InitArchiveReader(Napi::Env env, Napi::Object exports);

}  // namespace guts
