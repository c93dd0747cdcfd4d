# zstd's dictionary builder (lib/dictBuilder: ZDICT_trainFromBuffer, COVER,
# fastCOVER), which zstd-napi's vendored libzstd 1.5.7 leaves out. RocksDB
# calls ZDICT_trainFromBuffer when zstd_max_train_bytes > 0 (one dictionary per
# SST, trained at flush/compaction from samples of its data blocks).
# Sources: zstd 1.5.3 lib/dictBuilder as shipped in the npm package fast-zstd
# 1.0.5 (BSD licence, LICENSE beside this file), ported to the 1.5.7 internal
# API of zstd-napi's libzstd (see README.md here). Compiled against zstd-napi's
# headers: the "../common/x.h" includes resolve through lib/compress.
# No direct_dependent_settings on purpose: RocksDB's compile flags stay as they
# were (only its link gains this library).
{
  'targets': [
    {
      'target_name': 'zstd_dict',
      'type': 'static_library',
      'sources': [
        'dictBuilder/cover.c',
        'dictBuilder/divsufsort.c',
        'dictBuilder/fastcover.c',
        'dictBuilder/zdict.c',
      ],
      'include_dirs': [
        '../../../node_modules/zstd-napi/deps/zstd/lib/compress',
        '../../../node_modules/zstd-napi/deps/zstd/lib',
      ],
      'defines': ['XXH_NAMESPACE=ZSTD_', 'ZSTD_MULTITHREAD', 'ZSTD_NO_TRACE', 'ZSTDLIB_VISIBLE=', 'ZSTDERRORLIB_VISIBLE=', 'ZDICTLIB_VISIBLE='],
      'cflags': ['-O3', '-fPIC', '-fvisibility=hidden'],
      'dependencies': ['../../../node_modules/zstd-napi/deps/zstd.gyp:libzstd'],
    },
  ],
}
