#include "e2img/scramble_hash.h"

#include <ext2fs/ext2fs.h>

#include <algorithm>
#include <array>
#include <bit>
#include <vector>

namespace e2img {
namespace {

using State = std::array<uint32_t, 4>;
constexpr State kInitial = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};

State InitialState(const uint32_t* seed) {
  if (seed && (seed[0] | seed[1] | seed[2] | seed[3]))
    return {seed[0], seed[1], seed[2], seed[3]};
  return kInitial;
}

// The message words of one chunk: `left` bytes of name from `p` (the whole
// rest of the name, as the hash counts it), `words` words, padded with the
// length in every byte. Bytes are ASCII: signed and unsigned agree.
template <size_t N>
void ChunkWords(const char* p, size_t left, std::array<uint32_t, N>& in) {
  uint32_t pad = static_cast<uint32_t>(left) | (static_cast<uint32_t>(left) << 8);
  pad |= pad << 16;
  const size_t bytes = std::min(left, N * 4);
  uint32_t val = pad;
  size_t w = 0;
  for (size_t i = 0; i < bytes; ++i) {
    val = static_cast<uint8_t>(p[i]) + (val << 8);
    if (i % 4 == 3) {
      in[w++] = val;
      val = pad;
    }
  }
  if (w < N)
    in[w++] = val;
  while (w < N)
    in[w++] = pad;
}

inline uint32_t F(uint32_t x, uint32_t y, uint32_t z) {
  return z ^ (x & (y ^ z));
}
inline uint32_t G(uint32_t x, uint32_t y, uint32_t z) {
  return (x & y) + ((x ^ y) & z);
}
inline uint32_t H(uint32_t x, uint32_t y, uint32_t z) {
  return x ^ y ^ z;
}

// The half-MD4 round of the directory hash: three rounds of eight steps.
void HalfMd4(State& buf, const std::array<uint32_t, 8>& in) {
  uint32_t a = buf[0], b = buf[1], c = buf[2], d = buf[3];
  auto step = [](auto f, uint32_t& w, uint32_t x, uint32_t y, uint32_t z, uint32_t m, int s) {
    w = std::rotl(w + f(x, y, z) + m, s);
  };
  constexpr uint32_t k2 = 0x5A827999, k3 = 0x6ED9EBA1;
  step(F, a, b, c, d, in[0], 3);
  step(F, d, a, b, c, in[1], 7);
  step(F, c, d, a, b, in[2], 11);
  step(F, b, c, d, a, in[3], 19);
  step(F, a, b, c, d, in[4], 3);
  step(F, d, a, b, c, in[5], 7);
  step(F, c, d, a, b, in[6], 11);
  step(F, b, c, d, a, in[7], 19);
  step(G, a, b, c, d, in[1] + k2, 3);
  step(G, d, a, b, c, in[3] + k2, 5);
  step(G, c, d, a, b, in[5] + k2, 9);
  step(G, b, c, d, a, in[7] + k2, 13);
  step(G, a, b, c, d, in[0] + k2, 3);
  step(G, d, a, b, c, in[2] + k2, 5);
  step(G, c, d, a, b, in[4] + k2, 9);
  step(G, b, c, d, a, in[6] + k2, 13);
  step(H, a, b, c, d, in[3] + k3, 3);
  step(H, d, a, b, c, in[7] + k3, 9);
  step(H, c, d, a, b, in[2] + k3, 11);
  step(H, b, c, d, a, in[6] + k3, 15);
  step(H, a, b, c, d, in[1] + k3, 3);
  step(H, d, a, b, c, in[5] + k3, 9);
  step(H, c, d, a, b, in[0] + k3, 11);
  step(H, b, c, d, a, in[4] + k3, 15);
  buf[0] += a;
  buf[1] += b;
  buf[2] += c;
  buf[3] += d;
}

// The TEA round of the directory hash: sixteen cycles keyed by the chunk.
void Tea(State& buf, const std::array<uint32_t, 4>& in) {
  uint32_t sum = 0, b0 = buf[0], b1 = buf[1];
  for (int n = 0; n < 16; ++n) {
    sum += 0x9E3779B9;
    b0 += ((b1 << 4) + in[0]) ^ (b1 + sum) ^ ((b1 >> 5) + in[1]);
    b1 += ((b0 << 4) + in[2]) ^ (b0 + sum) ^ ((b0 >> 5) + in[3]);
  }
  buf[0] += b0;
  buf[1] += b1;
}

// Four candidates at once (GCC/Clang vector extensions: SSE2 on x86-64),
// differing in the first word of their last chunk.
using Lanes = uint32_t __attribute__((vector_size(16)));
constexpr size_t kLanes = 4;

inline Lanes Rotl(Lanes x, int s) {
  return (x << s) | (x >> (32 - s));
}

Lanes HalfMd4Lanes(const State& buf, const std::array<uint32_t, 8>& fixed, Lanes word0) {
  Lanes a = buf[0] + Lanes{}, b = buf[1] + Lanes{}, c = buf[2] + Lanes{}, d = buf[3] + Lanes{};
  Lanes in[8];
  in[0] = word0;
  for (size_t i = 1; i < 8; ++i)
    in[i] = fixed[i] + Lanes{};
  auto f = [](Lanes x, Lanes y, Lanes z) { return z ^ (x & (y ^ z)); };
  auto g = [](Lanes x, Lanes y, Lanes z) { return (x & y) + ((x ^ y) & z); };
  auto h = [](Lanes x, Lanes y, Lanes z) { return x ^ y ^ z; };
  const uint32_t k2 = 0x5A827999, k3 = 0x6ED9EBA1;
  a = Rotl(a + f(b, c, d) + in[0], 3);
  d = Rotl(d + f(a, b, c) + in[1], 7);
  c = Rotl(c + f(d, a, b) + in[2], 11);
  b = Rotl(b + f(c, d, a) + in[3], 19);
  a = Rotl(a + f(b, c, d) + in[4], 3);
  d = Rotl(d + f(a, b, c) + in[5], 7);
  c = Rotl(c + f(d, a, b) + in[6], 11);
  b = Rotl(b + f(c, d, a) + in[7], 19);
  a = Rotl(a + g(b, c, d) + in[1] + k2, 3);
  d = Rotl(d + g(a, b, c) + in[3] + k2, 5);
  c = Rotl(c + g(d, a, b) + in[5] + k2, 9);
  b = Rotl(b + g(c, d, a) + in[7] + k2, 13);
  a = Rotl(a + g(b, c, d) + in[0] + k2, 3);
  d = Rotl(d + g(a, b, c) + in[2] + k2, 5);
  c = Rotl(c + g(d, a, b) + in[4] + k2, 9);
  b = Rotl(b + g(c, d, a) + in[6] + k2, 13);
  a = Rotl(a + h(b, c, d) + in[3] + k3, 3);
  d = Rotl(d + h(a, b, c) + in[7] + k3, 9);
  c = Rotl(c + h(d, a, b) + in[2] + k3, 11);
  b = Rotl(b + h(c, d, a) + in[6] + k3, 15);
  a = Rotl(a + h(b, c, d) + in[1] + k3, 3);
  d = Rotl(d + h(a, b, c) + in[5] + k3, 9);
  c = Rotl(c + h(d, a, b) + in[0] + k3, 11);
  b = Rotl(b + h(c, d, a) + in[4] + k3, 15);
  return b + buf[1];
}

Lanes TeaLanes(const State& buf, const std::array<uint32_t, 4>& fixed, Lanes word0) {
  Lanes b0 = buf[0] + Lanes{}, b1 = buf[1] + Lanes{};
  uint32_t sum = 0;
  for (int n = 0; n < 16; ++n) {
    sum += 0x9E3779B9;
    b0 += ((b1 << 4) + word0) ^ (b1 + sum) ^ ((b1 >> 5) + fixed[1]);
    b1 += ((b0 << 4) + fixed[2]) ^ (b0 + sum) ^ ((b0 >> 5) + fixed[3]);
  }
  return b0 + buf[0];
}

// The legacy hash's state over some bytes.
struct LegacyState {
  uint32_t h0 = 0x12a3fe2d, h1 = 0x37abe8f9;
  void Add(uint8_t c) {
    uint32_t h = h1 + (h0 ^ (c * 7152373u));
    if (h & 0x80000000)
      h -= 0x7fffffff;
    h1 = h0;
    h0 = h;
  }
};

uint32_t Final(uint32_t hash) {
  hash &= ~1u;
  return hash == 0xfffffffe ? 0xfffffffc : hash;  // the end-of-directory marker is reserved
}

int Base(const DirHash& hash) {
  return hash.version >= EXT2_HASH_LEGACY_UNSIGNED && hash.version <= EXT2_HASH_TEA_UNSIGNED
             ? hash.version - 3
             : hash.version;
}

// Chunk size in bytes for the block hashes.
size_t ChunkBytes(int base) {
  return base == EXT2_HASH_HALF_MD4 ? 32 : 16;
}

// Runs the chunks of name[from, to) (to: a chunk boundary or the end) into buf.
void RunChunks(int base, std::string_view name, size_t from, size_t to, State& buf) {
  const size_t chunk = ChunkBytes(base);
  for (size_t at = from; at < to; at += chunk) {
    if (base == EXT2_HASH_HALF_MD4) {
      std::array<uint32_t, 8> in;
      ChunkWords(name.data() + at, name.size() - at, in);
      HalfMd4(buf, in);
    } else {
      std::array<uint32_t, 4> in;
      ChunkWords(name.data() + at, name.size() - at, in);
      Tea(buf, in);
    }
  }
}

uint32_t Result(int base, const State& buf) {
  return Final(base == EXT2_HASH_HALF_MD4 ? buf[1] : buf[0]);
}

}  // namespace

bool HashSearch::Supports(const DirHash& hash) {
  const int base = Base(hash);
  return base == EXT2_HASH_LEGACY || base == EXT2_HASH_HALF_MD4 || base == EXT2_HASH_TEA;
}

bool FastDirHash(const DirHash& hash, std::string_view name, uint32_t* out) {
  const int base = Base(hash);
  if (!HashSearch::Supports(hash))
    return false;
  if (base == EXT2_HASH_LEGACY) {
    LegacyState s;
    for (char c : name)
      s.Add(static_cast<uint8_t>(c));
    *out = Final(s.h0 << 1);
    return true;
  }
  State buf = InitialState(hash.seed);
  RunChunks(base, name, 0, name.size(), buf);
  *out = Result(base, buf);
  return true;
}

HashSearch::HashSearch(const DirHash& hash, size_t length, std::string_view alphabet, uint64_t seed)
    : hash_(hash), alphabet_(alphabet), name_(length, 'a'), prng_(seed) {}

bool HashSearch::Find(const LeafRange& range, uint64_t tries,
                      const std::function<bool(std::string_view)>& accept) {
  const size_t length = name_.size();
  if (length == 0 || !Supports(hash_))
    return false;
  return Base(hash_) == EXT2_HASH_LEGACY ? FindLegacy(range, tries, accept)
                                         : FindBlocks(range, tries, accept);
}

bool HashSearch::FindLegacy(const LeafRange& range, uint64_t tries,
                            const std::function<bool(std::string_view)>& accept) {
  // The last (up to) four characters vary; the rest is drawn again each round.
  const size_t length = name_.size();
  const size_t count = std::min<size_t>(4, length);
  const size_t first = length - count;
  uint64_t combos = 1;
  for (size_t i = 0; i < count; ++i)
    combos *= alphabet_.size();
  std::array<size_t, 4> digit{};
  while (tries > 0) {
    prng_.Fill(std::span<char>(name_), alphabet_);
    LegacyState prefix;
    for (size_t i = 0; i < first; ++i)
      prefix.Add(static_cast<uint8_t>(name_[i]));
    digit.fill(0);
    for (uint64_t combo = 0; combo < combos && tries > 0; ++combo, --tries) {
      for (size_t i = 0; i < count; ++i)
        name_[first + i] = alphabet_[digit[i]];
      for (size_t i = 0; i < count && ++digit[i] == alphabet_.size(); ++i)
        digit[i] = 0;
      LegacyState s = prefix;
      for (size_t i = first; i < length; ++i)
        s.Add(static_cast<uint8_t>(name_[i]));
      if (range.Holds(Final(s.h0 << 1)) && accept(name_))
        return true;
    }
    if (first == 0)
      return false;  // every name was tried
  }
  return false;
}

bool HashSearch::FindBlocks(const LeafRange& range, uint64_t tries,
                            const std::function<bool(std::string_view)>& accept) {
  // The first (up to) four characters of the last chunk vary, eight
  // candidates at a time; the rest is drawn again each round.
  const int base = Base(hash_);
  const size_t length = name_.size();
  const size_t chunk = ChunkBytes(base);
  const size_t last = (length - 1) / chunk * chunk;
  const size_t count = std::min<size_t>(4, length - last);
  const uint64_t radix = alphabet_.size();
  uint64_t combos = 1;
  for (size_t i = 0; i < count; ++i)
    combos *= radix;
  // The first word of the last chunk: the varied characters after the
  // length padding (shifted out when they fill the word).
  uint32_t pad = static_cast<uint32_t>(length - last) * 0x01010101u;
  const uint32_t pad_part = count == 4 ? 0 : pad << (8 * count);
  // Each character's part of that word, by position and alphabet index.
  std::array<std::vector<uint32_t>, 4> part;
  for (size_t i = 0; i < count; ++i)
    for (char c : alphabet_)
      part[i].push_back(static_cast<uint32_t>(static_cast<uint8_t>(c)) << (8 * (count - 1 - i)));
  const State initial = InitialState(hash_.seed);
  while (tries > 0) {
    prng_.Fill(std::span<char>(name_), alphabet_);
    State prefix = initial;
    RunChunks(base, name_, 0, last, prefix);
    std::array<uint32_t, 8> md4_words{};
    std::array<uint32_t, 4> tea_words{};
    ChunkWords(name_.data() + last, length - last, md4_words);
    ChunkWords(name_.data() + last, length - last, tea_words);
    // The combination's digits, position 0 the least significant.
    std::array<size_t, 4> digit{};
    uint32_t word = pad_part;
    for (size_t i = 0; i < count; ++i)
      word += part[i][0];
    for (uint64_t combo = 0; combo < combos && tries > 0; combo += kLanes) {
      Lanes w0;
      for (size_t j = 0; j < kLanes; ++j) {
        w0[j] = word;
        for (size_t i = 0; i < count; ++i) {
          word -= part[i][digit[i]];
          if (++digit[i] < radix) {
            word += part[i][digit[i]];
            break;
          }
          digit[i] = 0;
          word += part[i][0];
        }
      }
      const Lanes h = base == EXT2_HASH_HALF_MD4 ? HalfMd4Lanes(prefix, md4_words, w0)
                                                 : TeaLanes(prefix, tea_words, w0);
      const uint64_t n = std::min<uint64_t>({kLanes, combos - combo, tries});
      tries -= n;
      for (size_t j = 0; j < n; ++j) {
        if (!range.Holds(Final(h[j])))
          continue;
        uint64_t c = combo + j;
        for (size_t i = 0; i < count; ++i, c /= radix)
          name_[last + i] = alphabet_[c % radix];
        if (accept(name_))
          return true;
      }
    }
    if (last == 0 && count == length)
      return false;  // every name was tried
  }
  return false;
}

}  // namespace e2img
