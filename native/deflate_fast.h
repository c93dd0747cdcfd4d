// A fast deflate (RFC 1951) encoder for .tar.gz archives: one complete gzip
// member (RFC 1952) per chunk, as ChunkCompressor writes them. zlib spends
// most of its time on what a backup of RocksDB files does not need: the
// SSTs' data blocks are already LZ4/ZSTD compressed, so matches are rare and
// short, and zlib's Huffman-only mode still rebuilds its trees every 16K
// symbols. Three tiers, picked per chunk from a sample (ChooseLevel):
//   - stored: stored blocks (memcpy + CRC-32);
//   - huffman: literals only, one dynamic Huffman block per 64 KiB;
//   - fast: greedy LZ77 (one hash probe per position, 32 KiB window) with
//     dynamic Huffman blocks of up to 64K symbols.
// Every block is written stored instead when that is smaller. Stock gzip,
// zlib and `tar -xzf` read the output like any other gzip file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace guts {

enum class GzipTier { kStored, kHuffman, kFast };

// CRC-32 of gzip (reflected 0xEDB88320), PCLMUL-folded where the CPU has it.
uint32_t Crc32(uint32_t crc, const uint8_t* p, size_t n);

// Output bytes WriteGzipMember may need for n input bytes.
size_t GzipMemberBound(size_t n);

class GzipEncoder {
 public:
  GzipEncoder();
  ~GzipEncoder();
  GzipEncoder(const GzipEncoder&) = delete;
  GzipEncoder& operator=(const GzipEncoder&) = delete;

  // One complete gzip member holding in[0..n) in out (cap >= GzipMemberBound(n)).
  // `poll` (may be empty) is called between blocks (~every 64 KiB of input):
  // it may throw to abandon the member (cancel) or yield the CPU.
  size_t Member(uint8_t* out, size_t cap, const uint8_t* in, size_t n, GzipTier tier,
                const std::function<void()>& poll = {});

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace guts
