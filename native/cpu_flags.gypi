# Included into every target (our addon and the vendored RocksDB, snappy and
# zstd) through `node-gyp configure -- -I native/cpu_flags.gypi`.
# x86-64: let RocksDB use its hardware CRC32C (SSE4.2 + PCLMUL, chosen at run
# time by cpuid) instead of the table-driven fallback: block checksums are on
# every read and write path. Every x86-64 CPU since 2008 has both.
{
  'target_defaults': {
    'conditions': [
      ['target_arch=="x64"', {
        'defines': ['HAVE_SSE42', 'HAVE_PCLMUL'],
        'cflags': ['-msse4.2', '-mpclmul'],
      }],
    ],
  },
}
