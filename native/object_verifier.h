// Integrity checks of an open store (issue 4, `verify --data-dir`).
//
//   verifyChecksums(store, {threads, skipObjects})  block checksums of every live SST file
//       of both RocksDB instances (one SstFileReader per file, so every bad
//       file is named) and the store metadata (stored counts decode).
//   verifyObjects(store, {threads, listAffected})  the full check: worker
//       threads take disjoint key ranges of the objects CF from a shared
//       counter, re-hash every object (git SHA-1 of "<type> <len>\0<body>")
//       against its key, check the type byte, recount by type; then refs
//       (every target exists) and the repository count. A bad block ends an
//       iterator: the unreadable key interval is mapped by seek probes (a
//       binary search for the first readable key) and the scan resumes after
//       it. Repositories of corrupt objects and of unreadable intervals are
//       found by one scan of the membership keys, only when something is
//       corrupt. Memory is flat in data size (problem lists are capped).
//   debugDecodeObjects(store, {threads})  test hook (same condition as
//       debugPutRaw): the object scan without re-hashing, the decode floor.
//   debugPutRaw(store, cf, key, value)  test hook, exported only when
//       GUTS_TEST_HOOKS=1 is set when the addon loads: writes a raw value
//       into a column family, bypassing every invariant, so tests can build
//       corrupt stores.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "async.h"
#include "store.h"

namespace guts {

struct ObjectProblem {
  std::string kind;  // "CORRUPT", "MISMATCH" or "ERROR"
  std::string id;    // hex object id, when the problem is about one object
  std::vector<std::string> repos;
  // the repositories concerned cannot be told (e.g. the membership index is
  // unreadable): every repository may be affected
  bool repos_unknown = false;
  std::string message;  // the line after the kind, without the repositories
};

struct ChecksumReport {
  uint64_t files = 0, bytes = 0;
  std::vector<ObjectProblem> problems;
};

struct ObjectReport {
  uint64_t objects = 0, bytes = 0, refs = 0, repos = 0;
  ObjectCounts counts, stored;
  std::vector<ObjectProblem> problems;
  uint64_t problems_dropped = 0;  // beyond the cap
  std::vector<std::string> affected;  // sorted, unique
};

// skip_objects: leave out the objects CF's files (the full object scan reads
// every one of their blocks with checksums verified anyway).
ChecksumReport VerifyChecksums(Store& store, int threads, bool skip_objects);
// rehash=false: the same scan without the SHA-1 (debugDecodeObjects, a test
// hook: the bench measures the decode floor with it).
ObjectReport VerifyObjects(Store& store, int threads, TaskState& state, bool rehash = true);

void InitObjectVerifier(Napi::Env env, Napi::Object exports);

}  // namespace guts
