// Registration only: each capability exports its own Init.
// Note: env instance data is owned by StoreWrap (its constructor reference).
#include <napi.h>
#include <rocksdb/version.h>
#include <zstd.h>

#include "archive_reader.h"
#include "archive_writer.h"
#include "fs_util.h"
#include "hashing.h"
#include "object_verifier.h"
#include "priority.h"
#include "repo_object.h"
#include "store_compact.h"
#include "store_napi.h"
#include "wal_codec.h"
#include "wal_reader.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  guts::StoreWrap::Init(env, exports);
  guts::InitHashing(env, exports);
  guts::InitFsUtil(env, exports);
  guts::InitArchiveWriter(env, exports);
  guts::InitArchiveReader(env, exports);
  guts::InitObjectVerifier(env, exports);
  guts::InitStoreCompact(env, exports);
  guts::InitPriority(env, exports);
  guts::InitWalReader(env, exports);
  guts::InitWalCodec(env, exports);
  guts::InitRepoObject(env, exports);
  Napi::Object versions = Napi::Object::New(env);
  versions.Set("rocksdb", std::to_string(ROCKSDB_MAJOR) + "." + std::to_string(ROCKSDB_MINOR) + "." +
                              std::to_string(ROCKSDB_PATCH));
  versions.Set("zstd", ZSTD_versionString());
  versions.Set("xxhash", std::to_string(XXH_VERSION_MAJOR) + "." + std::to_string(XXH_VERSION_MINOR) + "." +
                             std::to_string(XXH_VERSION_RELEASE));
  versions.Set("napi", NAPI_VERSION);
  exports.Set("versions", versions);
  return exports;
}

NODE_API_MODULE(guts_native, Init)
