#include "deflate_fast.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__PCLMUL__) && defined(__SSE4_1__)
#include <immintrin.h>
#define GUTS_CRC_PCLMUL 1
#endif

#include "errors.h"

namespace guts {

// ---------------------------------------------------------------- CRC-32

#ifdef GUTS_CRC_PCLMUL
// Folding with carry-less multiplication (Intel, "Fast CRC Computation for
// Generic Polynomials Using PCLMULQDQ", the bit-reflected constants of its
// appendix; the same scheme as zlib-ng's and Chromium's zlib). len >= 64 and
// a multiple of 16; crc is the inverted running value.
static uint32_t Crc32Fold(const uint8_t* buf, size_t len, uint32_t crc) {
  alignas(16) static const uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const uint64_t poly[] = {0x01db710641, 0x01f7011641};
  __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8, y5, y6, y7, y8;
  x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x00));
  x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x10));
  x3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x20));
  x4 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x30));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128(static_cast<int>(crc)));
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  buf += 64;
  len -= 64;
  while (len >= 64) {
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
    x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
    x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
    x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
    y5 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x00));
    y6 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x10));
    y7 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x20));
    y8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf + 0x30));
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), y5);
    x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), y6);
    x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), y7);
    x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), y8);
    buf += 64;
    len -= 64;
  }
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
  x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
  x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
  while (len >= 16) {
    x2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(buf));
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    buf += 16;
    len -= 16;
  }
  // 128 -> 64 bits, then Barrett reduction to 32.
  x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
  x3 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_srli_si128(x1, 8);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_and_si128(x1, x3);
  x1 = _mm_clmulepi64_si128(x1, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  x0 = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x2 = _mm_and_si128(x1, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
  x2 = _mm_and_si128(x2, x3);
  x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}
#endif

uint32_t Crc32(uint32_t crc, const uint8_t* p, size_t n) {
#ifdef GUTS_CRC_PCLMUL
  if (n >= 64) {
    const size_t k = n & ~size_t{15};
    crc = ~Crc32Fold(p, k, ~crc);
    p += k;
    n -= k;
  }
#endif
  while (n > 0) {  // zlib's crc32 takes a uInt length
    const uInt k = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = static_cast<uint32_t>(crc32(crc, p, k));
    p += k;
    n -= k;
  }
  return crc;
}

// ---------------------------------------------------------------- deflate

namespace {

constexpr int kMaxBits = 15;      // litlen and distance codes
constexpr int kMaxCodeLenBits = 7;
constexpr int kNumLitLen = 286, kNumDist = 30, kNumCodeLen = 19;
constexpr size_t kBlockInput = 16 << 10;    // input bytes per block (both tiers)
constexpr size_t kMaxBlockSyms = 64 << 10;  // one symbol per input byte at most
constexpr int kHashBits = 15;
#ifndef SKIP_SHIFT
#define SKIP_SHIFT 5
#endif
constexpr int kSkipShift = SKIP_SHIFT;
constexpr uint32_t kWindow = 32768;
constexpr size_t kMinMatch = 4, kMaxMatch = 258;
constexpr uint32_t kMatchFlag = 0x80000000u;  // syms: a match; else the length of a literal run

constexpr uint16_t kLenBase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                    257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr uint8_t kCodeLenOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

struct LenTable {
  uint8_t code[256];  // length - 3 -> index into kLenBase
  LenTable() {
    for (int i = 0; i < 29; i++)
      for (int l = kLenBase[i]; l < kLenBase[i] + (1 << kLenExtra[i]) && l <= 258; l++) code[l - 3] = static_cast<uint8_t>(i);
  }
};
const LenTable kLenTable;

inline int DistCode(uint32_t d) {  // distance 1..32768
  const uint32_t x = d - 1;
  if (x < 4) return static_cast<int>(x);
  const int l = 31 - __builtin_clz(x);
  return 2 * l + static_cast<int>((x >> (l - 1)) & 1);
}

inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Code lengths (at most max_bits) for freq[0..n): Moffat & Katajainen's
// in-place minimum-redundancy computation over the symbols sorted by
// frequency, then the length distribution clamped to max_bits and fixed up
// so the Kraft sum is exactly 1 (as miniz does). Symbols with frequency 0
// get length 0. At least two symbols must have a nonzero frequency.
void BuildLengths(const uint32_t* freq, int n, int max_bits, uint8_t* lens) {
  struct Sym {
    uint32_t key;
    uint16_t sym;
  };
  // Sorted by (frequency, symbol) as one integer: per 16 KiB block this sort
  // was a tenth of the encoder's time with a comparator on the struct.
  uint64_t packed[kNumLitLen];
  int used = 0;
  for (int i = 0; i < n; i++) {
    lens[i] = 0;
    if (freq[i]) packed[used++] = (static_cast<uint64_t>(freq[i]) << 16) | static_cast<uint64_t>(i);
  }
  std::sort(packed, packed + used);
  Sym a[kNumLitLen];
  for (int i = 0; i < used; i++) a[i] = {static_cast<uint32_t>(packed[i] >> 16), static_cast<uint16_t>(packed[i] & 0xffff)};
  if (used == 1) {
    lens[a[0].sym] = 1;
    return;
  }
  // In-place: keys become parent pointers, then depths.
  {
    int root = 0, leaf = 2, next;
    a[0].key += a[1].key;
    for (next = 1; next < used - 1; next++) {
      if (leaf >= used || a[root].key < a[leaf].key) {
        a[next].key = a[root].key;
        a[root++].key = static_cast<uint32_t>(next);
      } else {
        a[next].key = a[leaf++].key;
      }
      if (leaf >= used || (root < next && a[root].key < a[leaf].key)) {
        a[next].key += a[root].key;
        a[root++].key = static_cast<uint32_t>(next);
      } else {
        a[next].key += a[leaf++].key;
      }
    }
    a[used - 2].key = 0;
    for (next = used - 3; next >= 0; next--) a[next].key = a[a[next].key].key + 1;
    int avbl = 1, u = 0, dpth = 0;
    root = used - 2;
    next = used - 1;
    while (avbl > 0) {
      while (root >= 0 && static_cast<int>(a[root].key) == dpth) {
        u++;
        root--;
      }
      while (avbl > u) {
        a[next--].key = static_cast<uint32_t>(dpth);
        avbl--;
      }
      avbl = 2 * u;
      dpth++;
      u = 0;
    }
  }
  int count[33] = {0};
  for (int i = 0; i < used; i++) count[std::min<uint32_t>(a[i].key, 32)]++;
  for (int i = max_bits + 1; i <= 32; i++) {
    count[max_bits] += count[i];
    count[i] = 0;
  }
  uint32_t total = 0;
  for (int i = max_bits; i > 0; i--) total += static_cast<uint32_t>(count[i]) << (max_bits - i);
  while (total != (1u << max_bits)) {  // over-subscribed after the clamp: lengthen the shortest-possible codes
    count[max_bits]--;
    for (int i = max_bits - 1; i > 0; i--)
      if (count[i]) {
        count[i]--;
        count[i + 1] += 2;
        break;
      }
    total--;
  }
  // Most frequent symbols (the end of a[]) get the shortest codes.
  int j = used;
  for (int len = 1; len <= max_bits; len++)
    for (int k = count[len]; k > 0; k--) lens[a[--j].sym] = static_cast<uint8_t>(len);
}

// Canonical codes, bit-reversed for LSB-first output.
void BuildCodes(const uint8_t* lens, int n, uint16_t* codes) {
  int bl_count[kMaxBits + 1] = {0};
  for (int i = 0; i < n; i++) bl_count[lens[i]]++;
  bl_count[0] = 0;
  uint32_t next[kMaxBits + 2] = {0};
  uint32_t code = 0;
  for (int b = 1; b <= kMaxBits; b++) {
    code = (code + static_cast<uint32_t>(bl_count[b - 1])) << 1;
    next[b] = code;
  }
  for (int i = 0; i < n; i++) {
    const int len = lens[i];
    if (!len) {
      codes[i] = 0;
      continue;
    }
    uint32_t c = next[len]++, r = 0;
    for (int b = 0; b < len; b++) r |= ((c >> b) & 1) << (len - 1 - b);
    codes[i] = static_cast<uint16_t>(r);
  }
}

class BitWriter {
 public:
  BitWriter(uint8_t* out, uint8_t* end) : p_(out), end_(end) {}
  // n <= 32; at most 56 bits may be pending before Flush().
  inline void Put(uint32_t bits, int n) {
    buf_ |= static_cast<uint64_t>(bits) << count_;
    count_ += n;
  }
  inline void Flush() {
    std::memcpy(p_, &buf_, 8);  // the caller guarantees 8 bytes of slack
    p_ += count_ >> 3;
    buf_ >>= (count_ & ~7);
    count_ &= 7;
  }
  void AlignToByte() {
    Flush();
    if (count_) {
      *p_++ = static_cast<uint8_t>(buf_);
      buf_ = 0;
      count_ = 0;
    }
  }
  uint8_t* pos() { return p_; }
  void Skip(size_t n) { p_ += n; }  // after AlignToByte: raw bytes were written at pos()
  void Check(size_t need) const {
    if (static_cast<size_t>(end_ - p_) < need + 16) throw GutsError(Code::Internal, "gzip: output buffer too small");
  }

 private:
  uint8_t* p_;
  uint8_t* end_;
  uint64_t buf_ = 0;
  int count_ = 0;
};

}  // namespace

struct GzipEncoder::State {
  std::vector<uint32_t> head = std::vector<uint32_t>(size_t{1} << kHashBits);
  std::vector<uint32_t> syms = std::vector<uint32_t>(kMaxBlockSyms + kMaxMatch);
  uint32_t lit_freq[kNumLitLen], dist_freq[kNumDist];
  uint8_t lit_len[kNumLitLen], dist_len[kNumDist];
  uint16_t lit_code[kNumLitLen], dist_code[kNumDist];

  void StoredBlocks(BitWriter& bw, const uint8_t* p, size_t n, bool last) {
    do {
      const size_t k = std::min<size_t>(n, 65535);
      const bool fin = last && k == n;
      bw.Check(k + 5);
      bw.Put(fin ? 1 : 0, 3);  // BFINAL, BTYPE 00
      bw.AlignToByte();
      uint8_t* o = bw.pos();
      o[0] = static_cast<uint8_t>(k);
      o[1] = static_cast<uint8_t>(k >> 8);
      o[2] = static_cast<uint8_t>(~k);
      o[3] = static_cast<uint8_t>(~k >> 8);
      std::memcpy(o + 4, p, k);
      bw.Skip(k + 4);
      p += k;
      n -= k;
    } while (n > 0);
  }

  void Literals(BitWriter& bw, const uint8_t* p, size_t n) {
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {  // 3 x 15 bits + 7 pending fit in 64
      bw.Put(lit_code[p[i]], lit_len[p[i]]);
      bw.Put(lit_code[p[i + 1]], lit_len[p[i + 1]]);
      bw.Put(lit_code[p[i + 2]], lit_len[p[i + 2]]);
      bw.Flush();
    }
    for (; i < n; i++) {
      bw.Put(lit_code[p[i]], lit_len[p[i]]);
      bw.Flush();
    }
  }

  static uint64_t StoredBits(size_t n) { return (n / 65535 + 1) * (3 + 7 + 32) + 8ull * n; }

  // Writes one block for syms[0..nsyms) (or, huffman-only, the raw bytes
  // raw[0..n)) covering input p[0..n): dynamic Huffman, or stored when smaller.
  void Block(BitWriter& bw, const uint8_t* p, size_t n, size_t nsyms, bool literals_only, bool last) {
    lit_freq[256] = 1;  // end of block
    // Complete codes for every decoder: at least two litlen symbols and two distance codes.
    int nl = 0;
    for (int i = 0; i < kNumLitLen && nl < 2; i++) nl += lit_freq[i] != 0;
    if (nl < 2) lit_freq[0]++;  // an empty block: EOB alone would be a one-symbol code
    int nd = 0;
    for (int i = 0; i < kNumDist; i++) nd += dist_freq[i] != 0;
    if (nd < 2) {
      if (!dist_freq[0]) dist_freq[0] = 1;
      if (!dist_freq[1]) dist_freq[1] = 1;
    }
    BuildLengths(lit_freq, kNumLitLen, kMaxBits, lit_len);
    BuildLengths(dist_freq, kNumDist, kMaxBits, dist_len);
    int hlit = kNumLitLen, hdist = kNumDist;
    while (hlit > 257 && lit_len[hlit - 1] == 0) hlit--;
    while (hdist > 1 && dist_len[hdist - 1] == 0) hdist--;
    // Run-length code of the code lengths (RFC 1951 3.2.7).
    uint8_t all[kNumLitLen + kNumDist];
    std::memcpy(all, lit_len, hlit);
    std::memcpy(all + hlit, dist_len, hdist);
    const int total = hlit + hdist;
    uint16_t rle[kNumLitLen + kNumDist];  // symbol | extra << 5
    int nrle = 0;
    uint32_t cl_freq[kNumCodeLen] = {0};
    for (int i = 0; i < total;) {
      const uint8_t v = all[i];
      int run = 1;
      while (i + run < total && all[i + run] == v) run++;
      i += run;
      if (v == 0) {
        while (run >= 11) {
          const int r = std::min(run, 138);
          rle[nrle++] = static_cast<uint16_t>(18 | ((r - 11) << 5));
          cl_freq[18]++;
          run -= r;
        }
        if (run >= 3) {
          rle[nrle++] = static_cast<uint16_t>(17 | ((run - 3) << 5));
          cl_freq[17]++;
          run = 0;
        }
      } else {
        rle[nrle++] = v;
        cl_freq[v]++;
        run--;
        while (run >= 3) {
          const int r = std::min(run, 6);
          rle[nrle++] = static_cast<uint16_t>(16 | ((r - 3) << 5));
          cl_freq[16]++;
          run -= r;
        }
      }
      while (run-- > 0) {
        rle[nrle++] = v;
        cl_freq[v]++;
      }
    }
    int ncl = 0;
    for (int i = 0; i < kNumCodeLen; i++) ncl += cl_freq[i] != 0;
    if (ncl < 2) {  // a single code length symbol: add a second one for a complete code
      if (!cl_freq[0]) cl_freq[0] = 1;
      else cl_freq[1] = 1;
    }
    uint8_t cl_len[kNumCodeLen];
    uint16_t cl_code[kNumCodeLen];
    BuildLengths(cl_freq, kNumCodeLen, kMaxCodeLenBits, cl_len);
    int hclen = kNumCodeLen;
    while (hclen > 4 && cl_len[kCodeLenOrder[hclen - 1]] == 0) hclen--;

    // Exact size of the dynamic block, against stored blocks.
    uint64_t bits = 3 + 5 + 5 + 4 + 3ull * hclen;
    static constexpr uint8_t kClExtra[kNumCodeLen] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7};
    for (int i = 0; i < kNumCodeLen; i++) bits += static_cast<uint64_t>(cl_freq[i]) * (cl_len[i] + kClExtra[i]);
    for (int i = 0; i < kNumLitLen; i++)
      bits += static_cast<uint64_t>(lit_freq[i]) * (lit_len[i] + (i > 256 ? kLenExtra[i - 257] : 0));
    if (!literals_only)
      for (int i = 0; i < kNumDist; i++) bits += static_cast<uint64_t>(dist_freq[i]) * (dist_len[i] + kDistExtra[i]);
    if (bits >= StoredBits(n)) {
      StoredBlocks(bw, p, n, last);
      return;
    }
    bw.Check(bits / 8 + 16);
    BuildCodes(lit_len, kNumLitLen, lit_code);
    BuildCodes(dist_len, kNumDist, dist_code);
    BuildCodes(cl_len, kNumCodeLen, cl_code);
    bw.Put(last ? 1 : 0, 1);
    bw.Put(2, 2);
    bw.Put(static_cast<uint32_t>(hlit - 257), 5);
    bw.Put(static_cast<uint32_t>(hdist - 1), 5);
    bw.Put(static_cast<uint32_t>(hclen - 4), 4);
    bw.Flush();
    for (int i = 0; i < hclen; i++) {
      bw.Put(cl_len[kCodeLenOrder[i]], 3);
      bw.Flush();
    }
    for (int i = 0; i < nrle; i++) {
      const int s = rle[i] & 31, x = rle[i] >> 5;
      bw.Put(cl_code[s], cl_len[s]);
      if (s >= 16) bw.Put(static_cast<uint32_t>(x), kClExtra[s]);
      bw.Flush();
    }
    if (literals_only) {
      Literals(bw, p, n);
    } else {
      const uint8_t* c = p;  // input position of the next symbol
      for (size_t i = 0; i < nsyms; i++) {
        const uint32_t s = syms[i];
        if (!(s & kMatchFlag)) {  // a run of s literals
          Literals(bw, c, s);
          c += s;
          continue;
        }
        const uint32_t len = (s >> 16) & 0xff, dist = s & 0xffff;  // len - 3 in bits 16..23, dist - 1 below
        const int lc = kLenTable.code[len];
        bw.Put(lit_code[257 + lc], lit_len[257 + lc]);
        bw.Put(len + 3 - kLenBase[lc], kLenExtra[lc]);
        const int dc = DistCode(dist + 1);
        bw.Put(dist_code[dc], dist_len[dc]);
        bw.Put(dist + 1 - kDistBase[dc], kDistExtra[dc]);
        bw.Flush();
        c += len + 3;
      }
    }
    bw.Put(lit_code[256], lit_len[256]);
    bw.Flush();
  }

  void Huffman(BitWriter& bw, const uint8_t* in, size_t n, const std::function<void()>& poll) {
    size_t pos = 0;
    do {
      const size_t k = std::min(n - pos, kBlockInput);
      std::memset(lit_freq, 0, sizeof lit_freq);
      std::memset(dist_freq, 0, sizeof dist_freq);
      uint32_t f[4][256] = {{0}};  // four tables: fewer store-to-load stalls
      const uint8_t* p = in + pos;
      size_t i = 0;
      for (; i + 4 <= k; i += 4) {
        f[0][p[i]]++;
        f[1][p[i + 1]]++;
        f[2][p[i + 2]]++;
        f[3][p[i + 3]]++;
      }
      for (; i < k; i++) f[0][p[i]]++;
      for (int b = 0; b < 256; b++) lit_freq[b] = f[0][b] + f[1][b] + f[2][b] + f[3][b];
      Block(bw, p, k, 0, true, pos + k == n);
      pos += k;
      if (poll && pos < n) poll();
    } while (pos < n);
  }

  void Fast(BitWriter& bw, const uint8_t* in, size_t n, const std::function<void()>& poll) {
    std::fill(head.begin(), head.end(), 0);
    size_t pos = 0;
    do {
      const size_t block_start = pos;
      const size_t block_end = std::min(n, pos + kBlockInput);
      std::memset(lit_freq, 0, sizeof lit_freq);
      std::memset(dist_freq, 0, sizeof dist_freq);
      size_t ns = 0, misses = 0, lit_start = pos;  // syms: literal runs and matches
      // Positions that may start a match: 4 bytes to hash, 8 to compare.
      const size_t match_end = n >= 8 ? n - 8 : 0;
      while (pos < block_end) {
        if (pos < match_end) {
          const uint32_t cur = Load32(in + pos);
          const uint32_t h = (cur * 2654435761u) >> (32 - kHashBits);
          const uint32_t cand = head[h];
          head[h] = static_cast<uint32_t>(pos + 1);
          if (cand && pos + 1 - cand <= kWindow && Load32(in + cand - 1) == cur) {
            const uint8_t* a = in + cand - 1;
            const uint8_t* b = in + pos;
            const size_t limit = std::min(kMaxMatch, n - pos);
            size_t len = kMinMatch;
            while (len + 8 <= limit) {
              const uint64_t x = Load64(a + len) ^ Load64(b + len);
              if (x) {
                len += static_cast<size_t>(__builtin_ctzll(x)) >> 3;
                goto done;
              }
              len += 8;
            }
            while (len < limit && a[len] == b[len]) len++;
          done:
            const uint32_t dist = static_cast<uint32_t>(pos + 1 - cand);
            if (pos > lit_start) syms[ns++] = static_cast<uint32_t>(pos - lit_start);
            syms[ns++] = kMatchFlag | (static_cast<uint32_t>(len - 3) << 16) | (dist - 1);
            lit_freq[257 + kLenTable.code[len - 3]]++;
            dist_freq[DistCode(dist)]++;
            // One more table entry at the match's end keeps long runs findable.
            if (pos + len < match_end) {
              const size_t q = pos + len - 1;
              head[(Load32(in + q) * 2654435761u) >> (32 - kHashBits)] = static_cast<uint32_t>(q + 1);
            }
            pos += len;
            lit_start = pos;
            misses = 0;
            continue;
          }
        }
        // No match: literals, more of them per probe the longer the
        // stretch without a match (LZ4's acceleration): already compressed
        // SST blocks are crossed quickly, keys and index blocks still match.
        const size_t step = std::min<size_t>(1 + (misses++ >> kSkipShift), block_end - pos);
        for (size_t k = 0; k < step; k++) lit_freq[in[pos + k]]++;
        pos += step;
      }
      if (pos > lit_start) syms[ns++] = static_cast<uint32_t>(pos - lit_start);
      // matches may run past block_end: the block covers [block_start, pos)
      Block(bw, in + block_start, pos - block_start, ns, false, pos == n);
      if (poll && pos < n) poll();
    } while (pos < n);
  }
};

GzipEncoder::GzipEncoder() : s_(new State) {}
GzipEncoder::~GzipEncoder() = default;

size_t GzipMemberBound(size_t n) { return n + (n >> 11) + 128; }  // 5 bytes per stored block of >= 4 KiB, header, trailer, slack

size_t GzipEncoder::Member(uint8_t* out, size_t cap, const uint8_t* in, size_t n, GzipTier tier,
                           const std::function<void()>& poll) {
  if (cap < GzipMemberBound(n)) throw GutsError(Code::Internal, "gzip: output buffer too small for a member");
  // RFC 1952 header: no name, no mtime, XFL 4 (fastest) or 0, OS 3 (Unix).
  static const uint8_t kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  std::memcpy(out, kHeader, 10);
  if (tier != GzipTier::kStored) out[8] = 4;
  BitWriter bw(out + 10, out + cap - 8);
  if (n == 0) {
    s_->StoredBlocks(bw, in, 0, true);
  } else if (tier == GzipTier::kStored) {
    // Blocks of 64 KiB between polls, as the other tiers.
    for (size_t pos = 0; pos < n;) {
      const size_t k = std::min(n - pos, size_t{65535} * 16);
      s_->StoredBlocks(bw, in + pos, k, pos + k == n);
      pos += k;
      if (poll && pos < n) poll();
    }
  } else if (tier == GzipTier::kHuffman) {
    s_->Huffman(bw, in, n, poll);
  } else {
    s_->Fast(bw, in, n, poll);
  }
  bw.AlignToByte();
  uint8_t* t = bw.pos();
  const uint32_t crc = Crc32(0, in, n);
  const uint32_t isize = static_cast<uint32_t>(n);
  for (int i = 0; i < 4; i++) t[i] = static_cast<uint8_t>(crc >> (8 * i));
  for (int i = 0; i < 4; i++) t[4 + i] = static_cast<uint8_t>(isize >> (8 * i));
  return static_cast<size_t>(t + 8 - out);
}

}  // namespace guts
