# The `rocksdb` npm package's RocksDB 6.17.3 target, built with ZSTD (zstd-napi's
# vendored libzstd) and LZ4 (the `lz4` package's C sources) besides snappy.
# The package's .gyp is included unchanged (gyp rebases the paths of its
# sources); target_defaults add defines and dependencies to its `rocksdb`
# target. Its dependency '../snappy/snappy.gyp:snappy' is not rebased, hence
# the sibling folder ../snappy with a wrapper of the package's snappy.gyp.
{
  'includes': ['../../../node_modules/rocksdb/deps/rocksdb/rocksdb.gyp'],
  'target_defaults': {
    # ROCKSDB_SCHED_GETCPU_PRESENT: port::PhysicalCoreID() (taken per ZSTD
    # block decompression by CompressionContextCache, and by the statistics'
    # per-core counters) uses sched_getcpu() (vDSO) instead of CPUID, which
    # traps to the hypervisor in a VM: 5.7% of `verify --full` CPU here.
    # ZSTD_STATIC_LINKING_ONLY: zstd's static-only API (ZSTD_createDDict_byReference,
    # ZSTD_sizeof_DDict; libzstd is linked statically) turns on ROCKSDB_ZSTD_DDICT in
    # util/compression.h: a table reader digests its SST's dictionary once into a
    # ZSTD_DDict instead of at every block read (gets 1.24-1.35x slower without).
    'defines': ['ZSTD=1', 'LZ4=1', 'ROCKSDB_SCHED_GETCPU_PRESENT', 'ZSTD_STATIC_LINKING_ONLY'],
    'dependencies': [
      '../../../node_modules/zstd-napi/deps/zstd.gyp:libzstd',
      '../lz4/lz4.gyp:liblz4',
      '../zstd_dict/zstd_dict.gyp:zstd_dict',
    ],
  },
}
