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
  ],
}
