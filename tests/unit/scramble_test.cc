#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "e2img/scramble_dir.h"
#include "e2img/scramble_inode.h"
#include "e2img/scramble_names.h"
#include "e2img/scramble_xattr.h"
#include "test_util.h"

namespace e2img {
namespace {

const uint32_t kSeed[4] = {0x12345678, 0x9abcdef0, 0x0f1e2d3c, 0x4b5a6978};

DirHash HalfMd4() {
  DirHash h;
  h.version = EXT2_HASH_HALF_MD4;
  h.seed = kSeed;
  return h;
}

std::string Pick(DirNames& names, const std::string& old, int leaf = DirNames::kNoLeaf) {
  std::string out(old.size(), '?');
  names.Choose(old, leaf, std::span<char>(out));
  return out;
}

TEST(DirNames, LinearNamesKeepLengthAndDifferAndAreUnique) {
  DirNames names(1, DirHash{}, {});
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string old = "original-name-" + std::to_string(i);
    const std::string fresh = Pick(names, old);
    ASSERT_EQ(fresh.size(), old.size());
    EXPECT_NE(fresh, old);
    EXPECT_EQ(fresh.find_first_not_of(kNameAlphabet), std::string::npos) << fresh;
    EXPECT_TRUE(seen.insert(fresh).second) << "duplicate " << fresh;
  }
}

TEST(DirNames, ShortNamesStayUniqueUntilTheAlphabetsRunOut) {
  DirNames names(2, DirHash{}, {});
  std::set<std::string> seen;
  // 38 + 28 one-character names exist in the two alphabets.
  for (int i = 0; i < 60; ++i) {
    const std::string fresh = Pick(names, std::string(1, static_cast<char>(0x80 + i)));
    EXPECT_TRUE(seen.insert(fresh).second) << "duplicate " << fresh;
  }
}

TEST(DirNames, SameOldNameGivesSameNewNameAndSeedsReproduce) {
  DirNames a(7, DirHash{}, {});
  DirNames b(7, DirHash{}, {});
  DirNames c(8, DirHash{}, {});
  const std::string first = Pick(a, "hello-world");
  Pick(a, "other-name!");
  EXPECT_EQ(Pick(a, "hello-world"), first);  // again in the same directory
  EXPECT_EQ(Pick(b, "hello-world"), first);  // the same seed
  EXPECT_NE(Pick(c, "hello-world"), first);
}

TEST(DirNames, HashTreeNamesHashIntoTheirLeaf) {
  // 64 leaves splitting the hash space; old names sit in the leaf of their hash.
  std::vector<LeafRange> leaves;
  for (uint32_t i = 0; i < 64; ++i) {
    LeafRange r;
    r.lo = i << 26;
    r.hi = i == 63 ? 0xffffffff : (i + 1) << 26;
    r.hi_inclusive = i == 63;
    leaves.push_back(r);
  }
  const DirHash hash = HalfMd4();
  DirNames names(3, hash, leaves);
  std::set<std::string> seen;
  for (int i = 0; i < 5000; ++i) {
    const std::string old = "file-" + std::to_string(i) + ".txt";
    const int leaf = static_cast<int>(hash.Of(old) >> 26);
    std::string fresh(old.size(), '?');
    ASSERT_TRUE(names.Choose(old, leaf, std::span<char>(fresh)));
    EXPECT_TRUE(leaves[leaf].Holds(hash.Of(fresh))) << old << " -> " << fresh;
    EXPECT_TRUE(seen.insert(fresh).second);
  }
}

TEST(DirNames, NarrowLeavesGetNewNamesToo) {
  // The last leaf holds 1/40000 of the hash space (the like of a leaf that
  // starts near 0xffffffff): 8192 random names would miss it most times.
  const uint32_t narrow_lo = 0xffffffffu - (0xffffffffu / 40000);
  std::vector<LeafRange> leaves(2);
  leaves[0].hi = narrow_lo;
  leaves[0].hi_inclusive = false;
  leaves[1].lo = narrow_lo;
  const DirHash hash = HalfMd4();
  DirNames names(5, hash, leaves);
  int found = 0;
  for (uint64_t i = 0; found < 20; ++i) {
    const std::string old = "QZMARK-entry-" + std::to_string(i);
    if (!leaves[1].Holds(hash.Of(old)))
      continue;
    ++found;
    std::string fresh(old.size(), '?');
    ASSERT_TRUE(names.Choose(old, 1, std::span<char>(fresh))) << old << " kept";
    EXPECT_NE(fresh, old);
    EXPECT_TRUE(leaves[1].Holds(hash.Of(fresh))) << old << " -> " << fresh;
  }
}

TEST(DirNames, IllegalCharactersStayInPlace) {
  DirNames names(11, DirHash{}, {});
  const std::string old("ab/cd\0ef", 8);
  const std::string fresh = Pick(names, old);
  EXPECT_EQ(fresh[2], '/');
  EXPECT_EQ(fresh[5], '\0');
  EXPECT_NE(fresh.substr(0, 2), "ab");
}

TEST(DirNames, KeepsTheOldNameWhenNothingFits) {
  // A leaf two hash values wide: no generated one-character name (lower
  // case) lands there, only the old one.
  const DirHash hash = HalfMd4();
  const uint32_t h = hash.Of("Q");
  DirNames names(
      4, hash,
      {LeafRange{0, h, false}, LeafRange{h, h + 2, false}, LeafRange{h + 2, 0xffffffff, true}});
  std::string out = "?";
  EXPECT_FALSE(names.Choose("Q", 1, std::span<char>(out)));
  EXPECT_EQ(out, "Q");
}

// A fake filesystem handle with just what directory parsing reads.
struct FakeFs {
  FakeFs(uint32_t block_size) {
    std::memset(&fs, 0, sizeof(fs));
    std::memset(&super, 0, sizeof(super));
    fs.blocksize = block_size;
    fs.super = &super;
    std::memcpy(super.s_hash_seed, kSeed, sizeof(kSeed));
  }
  struct_ext2_filsys fs;
  ext2_super_block super;
};

void PutEntry(std::vector<uint8_t>& b, size_t at, uint32_t ino, uint16_t rec_len,
              const std::string& name) {
  std::memcpy(&b[at], &ino, 4);
  std::memcpy(&b[at + 4], &rec_len, 2);
  b[at + 6] = static_cast<uint8_t>(name.size());
  b[at + 7] = 1;
  std::memcpy(&b[at + 8], name.data(), name.size());
}

TEST(RewriteDirEntries, ReplacesNamesKeepsDotsAndZeroesSlack) {
  FakeFs f(1024);
  std::vector<uint8_t> block(1024, 0xAB);
  PutEntry(block, 0, 2, 12, ".");
  PutEntry(block, 12, 2, 12, "..");
  PutEntry(block, 24, 11, 20, "lost+found");
  PutEntry(block, 44, 0, 24, "deleted-one");  // a deleted entry
  PutEntry(block, 68, 12, 1024 - 68, "secret-name");
  DirNames names(5, DirHash{}, {});
  DirRewrite how;
  how.names = &names;
  how.root = true;
  ScrambleStats stats;
  how.stats = &stats;
  ASSERT_TRUE(RewriteDirEntries(&f.fs, block, how));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&block[8]), 1), ".");
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&block[20]), 2), "..");
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&block[32]), 10), "lost+found");
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&block[52]), 11), std::string(11, '\0'));
  const std::string fresh(reinterpret_cast<char*>(&block[76]), 11);
  EXPECT_NE(fresh, "secret-name");
  EXPECT_EQ(stats.names, 1u);
  // Everything after each name up to its rec_len is zero.
  for (size_t i = 76 + 11; i < 1024; ++i)
    ASSERT_EQ(block[i], 0) << i;
  for (size_t i = 8 + 1; i < 12; ++i)
    ASSERT_EQ(block[i], 0) << i;
}

TEST(RewriteDirEntries, StopsAtABadRecLen) {
  FakeFs f(1024);
  std::vector<uint8_t> block(1024, 0);
  PutEntry(block, 0, 12, 20, "first-name");
  PutEntry(block, 20, 13, 7, "bad");  // rec_len below 8
  DirNames names(6, DirHash{}, {});
  DirRewrite how;
  how.names = &names;
  ScrambleStats stats;
  how.stats = &stats;
  EXPECT_FALSE(RewriteDirEntries(&f.fs, block, how));
  EXPECT_EQ(stats.bad_blocks, 1u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&block[28]), 3), "bad");
}

TEST(RewriteDirEntries, ScansOnPastABadEntryAndNamesWhatItCannotParse) {
  FakeFs f(1024);
  f.super.s_inodes_count = 100;
  std::vector<uint8_t> block(1024, 0);
  PutEntry(block, 0, 12, 20, "first-name");
  std::memset(&block[20], 0xff, 8);  // a header lost
  std::memcpy(&block[28], "lost-header", 11);
  PutEntry(block, 40, 14, 24, "after-damage");
  PutEntry(block, 64, 0, 24, "deleted-after");
  PutEntry(block, 88, 15, 1024 - 88, "last-name");
  DirNames names(6, DirHash{}, {});
  DirRewrite how;
  how.names = &names;
  how.ino = 77;
  how.block = 1234;
  ScrambleStats stats;
  how.stats = &stats;
  EXPECT_FALSE(RewriteDirEntries(&f.fs, block, how));
  auto at = [&](size_t offset, size_t length) {
    return std::string(reinterpret_cast<char*>(&block[offset]), length);
  };
  EXPECT_NE(at(8, 10), "first-name");
  EXPECT_NE(at(48, 12), "after-damage");
  EXPECT_NE(at(72, 13), "deleted-after");
  EXPECT_NE(at(96, 9), "last-name");
  EXPECT_EQ(at(28, 11), "lost-header");  // no header: named instead
  EXPECT_EQ(stats.names, 3u);
  ASSERT_EQ(stats.damaged.size(), 1u);
  EXPECT_EQ(stats.damaged[0].dir, 77u);
  EXPECT_EQ(stats.damaged[0].block, 1234u);
  EXPECT_EQ(stats.damaged[0].offset, 20u);
  // Headers stay as they were: e2fsck salvages the same entries.
  EXPECT_EQ(block[44], 24);
  EXPECT_EQ(block[46], 12);
}

TEST(ReadHtreeLayout, GivesEachLeafTheRangeOfItsIndexEntry) {
  FakeFs f(1024);
  // dx_root at logical 0 with three leaves (logical 1, 2, 3); the third
  // entry's hash has the collision bit set.
  std::vector<uint8_t> root(1024, 0);
  PutEntry(root, 0, 12, 12, ".");
  PutEntry(root, 12, 2, 1012, "..");
  root[24 + 4] = EXT2_HASH_TEA;  // hash_version
  root[24 + 5] = 8;              // info_length
  root[24 + 6] = 0;              // indirect_levels
  const size_t at = 32;
  const uint16_t limit = 100, count = 3;
  std::memcpy(&root[at], &limit, 2);
  std::memcpy(&root[at + 2], &count, 2);
  const uint32_t entries[3][2] = {{0, 1}, {0x40000000, 2}, {0x80000001, 3}};
  for (int i = 0; i < 3; ++i) {
    if (i)
      std::memcpy(&root[at + 8 * i], &entries[i][0], 4);
    std::memcpy(&root[at + 8 * i + 4], &entries[i][1], 4);
  }
  auto read = [&](uint64_t logical, std::span<uint8_t> out) {
    if (logical != 0)
      return false;
    std::copy(root.begin(), root.end(), out.begin());
    return true;
  };
  const HtreeLayout layout = ReadHtreeLayout(&f.fs, 0, 4, read);
  ASSERT_TRUE(layout.valid);
  EXPECT_EQ(layout.hash.version, EXT2_HASH_TEA);
  ASSERT_EQ(layout.leaves.size(), 3u);
  EXPECT_EQ(layout.leaf_of.at(1), 0);
  EXPECT_EQ(layout.leaf_of.at(3), 2);
  EXPECT_EQ(layout.leaves[0].lo, 0u);
  EXPECT_EQ(layout.leaves[0].hi, 0x40000000u);
  EXPECT_FALSE(layout.leaves[0].hi_inclusive);
  EXPECT_EQ(layout.leaves[1].hi, 0x80000000u);
  EXPECT_TRUE(layout.leaves[1].hi_inclusive);  // the next leaf continues a collision
  EXPECT_EQ(layout.leaves[2].lo, 0x80000000u);
  EXPECT_TRUE(layout.leaves[2].Holds(0xfffffffe));
}

TEST(ReadHtreeLayout, RejectsALeafPastTheDirectory) {
  FakeFs f(1024);
  std::vector<uint8_t> root(1024, 0);
  root[24 + 5] = 8;
  const uint16_t limit = 100, count = 1;
  const uint32_t leaf = 9;
  std::memcpy(&root[32], &limit, 2);
  std::memcpy(&root[34], &count, 2);
  std::memcpy(&root[36], &leaf, 4);
  auto read = [&](uint64_t, std::span<uint8_t> out) {
    std::copy(root.begin(), root.end(), out.begin());
    return true;
  };
  EXPECT_FALSE(ReadHtreeLayout(&f.fs, 0, 4, read).valid);
}

// Appends an xattr entry at `at` (entries) with its value at `value_at`.
ext2_ext_attr_entry* PutXattr(std::vector<uint8_t>& b, size_t at, size_t value_base,
                              size_t value_at, uint8_t index, const std::string& name,
                              const std::string& value) {
  auto* e = reinterpret_cast<ext2_ext_attr_entry*>(&b[at]);
  e->e_name_len = static_cast<uint8_t>(name.size());
  e->e_name_index = index;
  e->e_value_offs = static_cast<uint16_t>(value_at - value_base);
  e->e_value_size = static_cast<uint32_t>(value.size());
  std::memcpy(&b[at + sizeof(*e)], name.data(), name.size());
  std::memcpy(&b[value_at], value.data(), value.size());
  e->e_hash = ext2fs_ext_attr_hash_entry(e, &b[value_at]);
  return e;
}

// A 4 MiB ext4 with metadata_csum made by libext2fs in a temporary file,
// its root directory created: the oracle for directory block checksums.
class CsumFs {
 public:
  CsumFs() : fs_(nullptr, &ext2fs_free) {
    const std::string path = dir_.File("fs.img");
    testutil::CreateFile(path).Truncate(4 << 20);
    ext2_super_block param{};
    ext2fs_blocks_count_set(&param, 4096);
    param.s_feature_ro_compat = EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
    param.s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE;
    ext2_filsys fs = nullptr;
    if (ext2fs_initialize(path.c_str(), EXT2_FLAG_RW | EXT2_FLAG_64BITS, &param, unix_io_manager,
                          &fs))
      return;
    fs_.reset(fs);
    std::memset(fs->super->s_uuid, 0x5c, sizeof(fs->super->s_uuid));
    ext2fs_init_csum_seed(fs);
    if (ext2fs_allocate_tables(fs) || ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, nullptr))
      fs_.reset();
  }
  ext2_filsys get() const { return fs_.get(); }

 private:
  testutil::TempDir dir_;
  std::unique_ptr<struct_ext2_filsys, decltype(&ext2fs_free)> fs_;
};

TEST(DirentChecksum, AgreesWithLibext2fs) {
  CsumFs f;
  ext2_filsys fs = f.get();
  ASSERT_NE(fs, nullptr);
  ext2_inode inode{};
  ASSERT_EQ(ext2fs_read_inode(fs, EXT2_ROOT_INO, &inode), 0);
  inode.i_generation = 0x2468ace1;  // in the checksum: a zero would hide a mix-up
  ASSERT_EQ(ext2fs_write_inode(fs, EXT2_ROOT_INO, &inode), 0);
  std::vector<uint8_t> block(fs->blocksize);
  ASSERT_EQ(io_channel_read_blk64(fs->io, inode.i_block[0], 1, block.data()), 0);
  auto* first = reinterpret_cast<ext2_dir_entry*>(block.data());
  const size_t entries = block.size() - sizeof(ext2_dir_entry_tail);
  ASSERT_TRUE(HasDirentTail(block));
  ASSERT_TRUE(DirentChainReachesTail(block));
  ASSERT_EQ(ext2fs_dir_block_csum_set(fs, EXT2_ROOT_INO, first), 0);
  uint32_t stored = 0;
  std::memcpy(&stored, &block[entries + 8], 4);
  EXPECT_EQ(stored, DirentChecksum(fs, EXT2_ROOT_INO, inode.i_generation,
                                   std::span<const uint8_t>(block).first(entries)));
  EXPECT_NE(stored,
            DirentChecksum(fs, EXT2_ROOT_INO, 0, std::span<const uint8_t>(block).first(entries)));
  // A renamed entry: libext2fs and we agree on the new checksum too.
  block[20] ^= 1;  // in the name of ".." (12 + 8)
  ASSERT_EQ(ext2fs_dir_block_csum_set(fs, EXT2_ROOT_INO, first), 0);
  std::memcpy(&stored, &block[entries + 8], 4);
  EXPECT_EQ(stored, DirentChecksum(fs, EXT2_ROOT_INO, inode.i_generation,
                                   std::span<const uint8_t>(block).first(entries)));
  EXPECT_EQ(ext2fs_dir_block_csum_verify(fs, EXT2_ROOT_INO, first), 1);
}

TEST(DirentChainReachesTail, OnlyWhenTheRecLenChainEndsAtTheTail) {
  std::vector<uint8_t> block(1024, 0);
  PutEntry(block, 0, 2, 12, ".");
  PutEntry(block, 12, 2, 1000, "..");
  const uint8_t tail[8] = {0, 0, 0, 0, 12, 0, 0, 0xDE};
  std::memcpy(&block[1012], tail, sizeof(tail));
  EXPECT_TRUE(HasDirentTail(block));
  EXPECT_TRUE(DirentChainReachesTail(block));
  PutEntry(block, 12, 2, 996, "..");  // ends 4 bytes short of the tail
  EXPECT_TRUE(HasDirentTail(block));
  EXPECT_FALSE(DirentChainReachesTail(block));
  PutEntry(block, 12, 2, 1004, "..");  // runs over it
  EXPECT_FALSE(DirentChainReachesTail(block));
  PutEntry(block, 12, 2, 6, "..");  // below the 8-byte minimum
  EXPECT_FALSE(DirentChainReachesTail(block));
  PutEntry(block, 12, 2, 1000, "..");
  block[1012 + 7] = 0;  // not a tail's file type
  EXPECT_FALSE(HasDirentTail(block));
  EXPECT_FALSE(DirentChainReachesTail(block));
}

TEST(ScrambleXattrBlock, HidesUserNamesAndValuesKeepsSecurityAndFixesHashes) {
  FakeFs f(1024);
  std::vector<uint8_t> block(1024, 0);
  auto* header = reinterpret_cast<ext2_ext_attr_header*>(block.data());
  header->h_magic = 0xEA020000;
  header->h_refcount = 1;
  header->h_blocks = 1;
  auto* user = PutXattr(block, 32, 0, 900, 1, "secret-name", "secret-value");
  auto* trusted = PutXattr(block, 60, 0, 940, 4, "tname", "trusted-value");
  auto* security = PutXattr(block, 84, 0, 980, 6, "selinux", "system_u:object_r");
  auto* end = reinterpret_cast<ext2_ext_attr_entry*>(&block[108]);
  ext2fs_ext_attr_block_rehash(header, end);
  Prng prng(9);
  ScrambleXattrBlock(&f.fs, 77, block, prng, {});
  const std::string user_name(EXT2_EXT_ATTR_NAME(user), 11);
  EXPECT_NE(user_name, "secret-name");
  EXPECT_NE(std::string(reinterpret_cast<char*>(&block[900]), 12), "secret-value");
  EXPECT_EQ(std::string(EXT2_EXT_ATTR_NAME(trusted), 5), "tname");
  EXPECT_NE(std::string(reinterpret_cast<char*>(&block[940]), 13), "trusted-value");
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&block[980]), 17), "system_u:object_r");
  for (ext2_ext_attr_entry* e : {user, trusted, security})
    EXPECT_EQ(e->e_hash, ext2fs_ext_attr_hash_entry(e, &block[e->e_value_offs]));
  const uint32_t h_hash = header->h_hash;
  ext2fs_ext_attr_block_rehash(header, end);
  EXPECT_EQ(header->h_hash, h_hash);
}

TEST(ScrambleXattrs, KeepsAWrongHashWrong) {
  FakeFs f(1024);
  std::vector<uint8_t> body(160, 0);
  auto* user = PutXattr(body, 0, 0, 100, 1, "n", "value");
  user->e_hash ^= 1;  // damaged
  const uint32_t damaged = user->e_hash;
  Prng prng(10);
  ScrambleXattrs(&f.fs, XattrArea{body, body}, prng, nullptr, {});
  EXPECT_EQ(user->e_hash, damaged);
  EXPECT_NE(std::string(reinterpret_cast<char*>(&body[100]), 5), "value");
}

TEST(ScrambleInode, InlineDirectoryNamesInIBlockAndSystemDataChange) {
  FakeFs f(4096);
  f.super.s_inode_size = 256;
  std::vector<uint8_t> bytes(256, 0);
  auto* inode = reinterpret_cast<ext2_inode_large*>(bytes.data());
  inode->i_mode = LINUX_S_IFDIR | 0755;
  inode->i_links_count = 2;
  inode->i_flags = EXT4_INLINE_DATA_FL;
  inode->i_extra_isize = 32;
  // i_block: parent inode, then two entries filling the 56 bytes.
  std::vector<uint8_t> i_block(60, 0);
  const uint32_t parent = 2;
  std::memcpy(&i_block[0], &parent, 4);
  PutEntry(i_block, 4, 20, 24, "inline-one");
  PutEntry(i_block, 28, 21, 32, "inline-two");
  std::memcpy(inode->i_block, i_block.data(), 60);
  // The in-body xattrs: system.data holding one more entry.
  const size_t xattrs = 128 + 32;
  const uint32_t magic = 0xEA020000;
  std::memcpy(&bytes[xattrs], &magic, 4);
  std::vector<uint8_t> more(24, 0);
  PutEntry(more, 0, 22, 24, "inline-three");
  const std::string value(more.begin(), more.end());
  PutXattr(bytes, xattrs + 4, xattrs + 4, xattrs + 4 + 40, 7, "data", value);
  ScrambleStats stats;
  ScrambleInode(&f.fs, 30, bytes, 1, {}, stats);
  EXPECT_EQ(stats.names, 3u);
  const auto* blk = reinterpret_cast<const char*>(inode->i_block);
  EXPECT_EQ(std::string(blk + 4 + 8, 10).find("inline"), std::string::npos);
  EXPECT_EQ(std::string(blk + 28 + 8, 10).find("inline"), std::string::npos);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&bytes[xattrs + 4 + 40 + 8]), 12).find("inline"),
            std::string::npos);
  EXPECT_EQ(std::memcmp(blk, &parent, 4), 0);  // the parent stays
  const std::string data_name(reinterpret_cast<char*>(&bytes[xattrs + 4 + 16]), 4);
  EXPECT_EQ(data_name, "data");
}

TEST(FillEaValueBlock, IsDeterministicAndZeroesPastTheValue) {
  std::vector<uint8_t> a(1024, 0xff), b(1024, 0);
  FillEaValueBlock(3, 20, 1, 1500, a);
  FillEaValueBlock(3, 20, 1, 1500, b);
  EXPECT_EQ(a, b);
  EXPECT_NE(a[475], 0);
  EXPECT_EQ(a[476], 0);
}

}  // namespace
}  // namespace e2img
