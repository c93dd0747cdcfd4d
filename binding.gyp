# One addon, statically linked with the vendored libraries, each built by its
# own package's .gyp static-library target (no system library but libc/libstdc++;
# OpenSSL and zlib symbols come from the node binary itself).
{
  'variables': {
    'rocksdb_gyp': '<(module_root_dir)/native/deps/rocksdb/rocksdb.gyp',
    'zstd_gyp': '<(module_root_dir)/node_modules/zstd-napi/deps/zstd.gyp',
  },
  'targets': [
    {
      'target_name': 'guts_native',
      'sources': [
        'native/addon.cc',
        'native/errors.cc',
        'native/hashing.cc',
        'native/store.cc',
        'native/store_napi.cc',
        'native/store_options.cc',
        'native/store_compact.cc',
        'native/async.cc',
        'native/checkpoint.cc',
        'native/tar_writer.cc',
        'native/zstd_stream.cc',
        'native/deflate_fast.cc',
        'native/archive_writer.cc',
        'native/archive_reader.cc',
        'native/archive_decode.cc',
        'native/tar_reader.cc',
        'native/extract_dir.cc',
        'native/object_verifier.cc',
        'native/fs_util.cc',
        'native/priority.cc',
        'native/wal_reader.cc',
        'native/wal_codec.cc',
        'native/repo_object.cc',
      ],
      'dependencies': [
        '<(rocksdb_gyp):rocksdb',
        '<(zstd_gyp):libzstd',
      ],
      'include_dirs': [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        '<(module_root_dir)/node_modules/xxhash-addon/xxHash',
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NODE_ADDON_API_DISABLE_DEPRECATED',
        'NODE_ADDON_API_CPP_EXCEPTIONS',
        'XXH_INLINE_ALL',
        'OS_LINUX=1',
        'ROCKSDB_PLATFORM_POSIX=1',
        'ROCKSDB_LIB_IO_POSIX=1',
      ],
      'cflags!': ['-fno-exceptions', '-fno-rtti', '-O2'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17', '-std=gnu++20'],
      'cflags': ['-O3', '-fexceptions', '-pthread', '-Wall', '-Wno-unused-parameter'],
      'cflags_cc': ['-std=c++17', '-frtti', '-fexceptions'],
      'ldflags': ['-pthread'],
      'xcode_settings': {
        'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
        'GCC_ENABLE_CPP_RTTI': 'YES',
        'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
      },
    },
  ],
}
