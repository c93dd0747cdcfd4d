// Backup repository objects (docs/FORMAT.md "Backup repository"): each stored
// file is one zstd frame (content size + checksum flags; zstd itself stores
// incompressible blocks raw) and its content's XXH3-128, streamed in 1 MiB
// slices on a libuv worker thread: memory is bounded whatever the file size.
//
//   repoPack({source, outputFd, level, hashOnly?}) -> Task<{rawBytes, storedBytes, xxh3}>
//     reads `source`, writes the frame to outputFd (owned and closed by the
//     worker; -1 with hashOnly: only the hash is computed); syncOutput: the
//     fd is a file, fsynced and closed (errors reported) before the promise
//     resolves; `name` names it in errors
//   repoUnpack({inputFd, output?, maxBytes}) -> Task<{rawBytes, storedBytes, xxh3}>
//     reads a frame from inputFd (owned and closed), checks it (zstd frame
//     checksum) and, with `output`, writes the content to that new file
//     (O_EXCL, 0600, fsynced)
//   sstIdentity(paths[]) -> Promise<Array<{dbSessionId, dbId}>>
//     the table properties RocksDB writes into every SST (6.17.3: db_id and
//     db_session_id), read from the file's footer and properties block only
#pragma once
#include <napi.h>

namespace guts {
void InitRepoObject(Napi::Env env, Napi::Object exports);
}  // namespace guts
