# LZ4 1.9 from the npm `lz4` package (its C sources only; its own Node addon is
# not used). Linked into RocksDB for the LZ4 compression of the upper levels.
{
  'targets': [
    {
      'target_name': 'liblz4',
      'type': 'static_library',
      'sources': [
        '../../../node_modules/lz4/deps/lz4/lib/lz4.c',
        '../../../node_modules/lz4/deps/lz4/lib/lz4hc.c',
      ],
      'cflags': ['-O3', '-fPIC', '-fvisibility=hidden'],
      'direct_dependent_settings': {
        'include_dirs': ['../../../node_modules/lz4/deps/lz4/lib'],
      },
    },
    {
      # zstd-napi vendors zstd without lib/dictBuilder: RocksDB's dictionary
      # *trainer* (zstd_max_train_bytes > 0) is not available; these report an
      # error so RocksDB falls back to no trained dictionary. Raw-sample
      # dictionaries (max_dict_bytes with zstd_max_train_bytes = 0) need none.
      'target_name': 'zdict_stub',
      'type': 'static_library',
      'sources': ['zdict_stub.c'],
      'dependencies': ['../../../node_modules/zstd-napi/deps/zstd.gyp:libzstd'],
      'cflags': ['-fPIC'],
    },
  ],
}
