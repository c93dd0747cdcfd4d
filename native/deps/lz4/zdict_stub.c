/* See lz4.gyp (target zdict_stub): zstd-napi ships no lib/dictBuilder, so
 * RocksDB's ZSTD_TrainDictionary gets an error and uses no trained dictionary.
 * guts-store never sets zstd_max_train_bytes. */
#include <stddef.h>
#include <zstd.h>
#include <zstd_errors.h>

size_t ZDICT_trainFromBuffer(void* dict, size_t dict_cap, const void* samples,
                             const size_t* sample_sizes, unsigned n_samples) {
  (void)dict; (void)dict_cap; (void)samples; (void)sample_sizes; (void)n_samples;
  return (size_t)-(int)ZSTD_error_GENERIC;
}
unsigned ZDICT_isError(size_t code) { return ZSTD_isError(code); }
const char* ZDICT_getErrorName(size_t code) { return ZSTD_getErrorName(code); }
