// Unit tests of what keeps -s from leaking names: the fast hash search for
// narrow hash-tree leaves, one-byte names, name escaping, and the journal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "e2img/scramble_hash.h"
#include "e2img/scramble_journal.h"
#include "e2img/scramble_names.h"

namespace e2img {
namespace {

const uint32_t kSeed[4] = {0x12345678, 0x9abcdef0, 0x0f1e2d3c, 0x4b5a6978};

TEST(DirNames, OneByteNamesUseEveryLegalByteBeforeKeepingOne) {
  // 200 one-byte names: more than the two alphabets hold (38 + 28).
  DirNames names(9, DirHash{}, {});
  std::set<std::string> seen;
  for (int c = 0x80; c < 0x80 + 100; ++c)
    for (const std::string& old :
         {std::string(1, static_cast<char>(c)), std::string(1, static_cast<char>(c - 0x5f))}) {
      if (old == "/" || old == "." || (old[0] != static_cast<char>(c) && c - 0x5f >= 0x80))
        continue;
      std::string out(1, '?');
      ASSERT_TRUE(names.Choose(old, DirNames::kNoLeaf, std::span<char>(out))) << c;
      EXPECT_NE(out, old);
      EXPECT_NE(out, ".");
      EXPECT_NE(out, "/");
      EXPECT_NE(out[0], '\0');
      EXPECT_TRUE(seen.insert(out).second) << "duplicate " << out;
    }
}

TEST(FastDirHash, AgreesWithLibext2fsForEveryHashSeedAndLength) {
  const uint32_t zero[4] = {0, 0, 0, 0};
  ext2fs_nls_table* utf8 = const_cast<ext2fs_nls_table*>(ext2fs_load_nls_table(EXT4_ENC_UTF8_12_1));
  ASSERT_NE(utf8, nullptr);
  Prng prng(99);
  for (int version = 0; version <= EXT2_HASH_TEA_UNSIGNED; ++version)
    for (const uint32_t* seed : {kSeed, zero})
      for (bool casefold : {false, true})
        for (size_t length = 1; length <= 80; ++length) {
          DirHash hash;
          hash.version = version;
          hash.seed = seed;
          if (casefold) {
            hash.charset = utf8;
            hash.flags = EXT4_CASEFOLD_FL;
          }
          std::string name(length, '?');
          prng.Fill(std::span<char>(name), kWideAlphabet);
          uint32_t fast = 0;
          ASSERT_TRUE(FastDirHash(hash, name, &fast));
          EXPECT_EQ(fast, hash.Of(name)) << version << " " << name;
        }
}

TEST(HashSearch, FindsNamesOfATwoValueRangeForEachHash) {
  // A leaf holding one even hash value: a random name lands there once in
  // 2^31 draws. Long names take a search each, tried here with a range of
  // 2^12 even values so that the test stays fast; short ones are enumerated.
  for (int version : {EXT2_HASH_LEGACY, EXT2_HASH_HALF_MD4, EXT2_HASH_TEA}) {
    DirHash hash;
    hash.version = version;
    hash.seed = kSeed;
    for (const std::string& old :
         {std::string("PRIVATE_customer_name_0176_abcdefgh"), std::string("x7-secret-42")}) {
      const uint32_t h = hash.Of(old);
      const LeafRange range{h & ~0x1fffu, (h & ~0x1fffu) + 0x2000, false};
      HashSearch search(hash, old.size(), kNameAlphabet, 3);
      std::string found;
      ASSERT_TRUE(search.Find(range, uint64_t{1} << 26,
                              [&](std::string_view name) {
                                found = name;
                                return name != old;
                              }))
          << version << " " << old;
      EXPECT_EQ(found.size(), old.size());
      EXPECT_TRUE(range.Holds(hash.Of(found))) << found;
    }
  }
}

void PutBe(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
uint32_t GetBe(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         b[at + 3];
}

TEST(PlanJournal, RewritesLogCopiesFixesV3ChecksumsAndZeroesTheRest) {
  constexpr uint32_t kBs = 1024, kMagic = 0xC03B3998, kSeq = 5;
  std::vector<std::vector<uint8_t>> j(8, std::vector<uint8_t>(kBs, 0));
  PutBe(j[0], 0, kMagic);
  PutBe(j[0], 4, 4);  // superblock v2
  PutBe(j[0], 12, kBs);
  PutBe(j[0], 16, 8);  // maxlen
  PutBe(j[0], 20, 1);  // first
  PutBe(j[0], 24, kSeq);
  PutBe(j[0], 28, 1);     // start: needs recovery
  PutBe(j[0], 40, 0x10);  // checksum v3
  for (int i = 0; i < 16; ++i)
    j[0][48 + i] = static_cast<uint8_t>(i * 7 + 1);
  const uint32_t seed = ext2fs_crc32c_le(~0u, &j[0][48], 16);
  std::memcpy(&j[2][0], "secret-name-in-a-copy", 21);
  auto tag_csum = [&](const std::vector<uint8_t>& data) {
    uint8_t seq[4] = {0, 0, 0, kSeq};
    return ext2fs_crc32c_le(ext2fs_crc32c_le(seed, seq, 4), data.data(), kBs);
  };
  auto tail_csum = [&](std::vector<uint8_t> block) {
    PutBe(block, kBs - 4, 0);
    return ext2fs_crc32c_le(seed, block.data(), kBs);
  };
  PutBe(j[1], 0, kMagic);
  PutBe(j[1], 4, 1);  // descriptor
  PutBe(j[1], 8, kSeq);
  PutBe(j[1], 12, 500);  // tag3: target block 500
  PutBe(j[1], 16, 8);    // last tag (a UUID follows)
  PutBe(j[1], 24, tag_csum(j[2]));
  PutBe(j[1], kBs - 4, tail_csum(j[1]));
  PutBe(j[3], 0, kMagic);
  PutBe(j[3], 4, 2);  // commit
  PutBe(j[3], 8, kSeq);
  std::memcpy(&j[4][0], "stale-name-outside-the-log", 26);
  std::vector<std::pair<uint64_t, uint64_t>> blocks;
  for (uint64_t i = 0; i < 8; ++i)
    blocks.emplace_back(i, 100 + i);
  auto read = [&](uint64_t block, std::span<uint8_t> out) {
    std::copy(j[block - 100].begin(), j[block - 100].end(), out.begin());
    return true;
  };
  std::vector<uint64_t> targets;
  auto rewrite = [&](uint64_t target, std::span<uint8_t> data) {
    targets.push_back(target);
    std::memcpy(data.data(), "SCRAMBLED", 9);
  };
  JournalPlan plan = PlanJournal(kBs, blocks, read, rewrite);
  EXPECT_TRUE(plan.needs_recovery);
  EXPECT_EQ(targets, std::vector<uint64_t>{500});
  ASSERT_TRUE(plan.rewritten.count(102));
  ASSERT_TRUE(plan.rewritten.count(101));
  const std::vector<uint8_t>& data = plan.rewritten.at(102);
  const std::vector<uint8_t>& desc = plan.rewritten.at(101);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data.data()), 9), "SCRAMBLED");
  EXPECT_EQ(GetBe(desc, 24), tag_csum(data));
  EXPECT_NE(GetBe(desc, 24), GetBe(j[1], 24));
  EXPECT_EQ(GetBe(desc, kBs - 4), tail_csum(desc));
  // The superblock and the log stay; the stale block and the free ones are zeroed.
  std::vector<uint64_t> zeroed = plan.zeroed;
  std::sort(zeroed.begin(), zeroed.end());
  EXPECT_EQ(zeroed, (std::vector<uint64_t>{104, 105, 106, 107}));
}

}  // namespace
}  // namespace e2img
