# The `rocksdb` package's snappy target, unchanged: see ../rocksdb/rocksdb.gyp.
# Its per-OS config folder comes from a variable, '<(os_include)', that gyp
# expands after the include and so leaves relative to this folder: name it
# again relative to the package (OS names as in the package's snappy.gyp).
{
  'includes': ['../../../node_modules/rocksdb/deps/snappy/snappy.gyp'],
  'target_defaults': {
    'conditions': [
      ['OS=="win"', {
        'include_dirs': ['../../../node_modules/rocksdb/deps/snappy/win32'],
        'direct_dependent_settings': {
          'include_dirs': ['../../../node_modules/rocksdb/deps/snappy/win32'],
        },
      }, {
        'include_dirs': ['../../../node_modules/rocksdb/deps/snappy/<(OS)'],
        'direct_dependent_settings': {
          'include_dirs': ['../../../node_modules/rocksdb/deps/snappy/<(OS)'],
        },
      }],
    ],
  },
}
