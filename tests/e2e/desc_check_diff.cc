// Test helper: a differential test of e2img::DescriptorsClearlySound against
// its oracle, libext2fs's ext2fs_check_desc. Opens IMAGE read-only, then
// ROUNDS times moves one or two bitmaps or inode tables of random groups (in
// memory only) to blocks chosen to collide, to sit at the edges of their
// allowed range or past them, and checks that both say "sound" for the same
// descriptors. Prints the counts; exits 1 on any disagreement, or if either
// verdict never came up (the rounds would prove nothing).
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "e2img/desc_check.h"

namespace {

// One group's three locations.
struct GroupTables {
  uint64_t block_bitmap, inode_bitmap, inode_table;
};

// Chooses new locations for descriptor fields, from the filesystem's own.
class Mutator {
 public:
  Mutator(ext2_filsys fs, const std::vector<GroupTables>& pristine, uint32_t seed)
      : fs_(fs), pristine_(pristine), rng_(seed) {}

  void MutateOnce() {
    const dgrp_t g = Pick(fs_->group_desc_count);
    const uint64_t value = Candidate(g);
    switch (Pick(3)) {
      case 0:
        ext2fs_block_bitmap_loc_set(fs_, g, value);
        break;
      case 1:
        ext2fs_inode_bitmap_loc_set(fs_, g, value);
        break;
      default:
        ext2fs_inode_table_loc_set(fs_, g, value);
        break;
    }
  }

 private:
  uint64_t Pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  int64_t Delta(int64_t span) { return static_cast<int64_t>(Pick(2 * span + 1)) - span; }

  uint64_t Candidate(dgrp_t g) {
    const uint64_t blocks = ext2fs_blocks_count(fs_->super);
    const int64_t table = fs_->inode_blocks_per_group;
    const GroupTables& other = pristine_[Pick(pristine_.size())];
    const GroupTables& own = pristine_[g];
    switch (Pick(6)) {
      case 0: {  // near another group's tables
        const uint64_t base = Pick(3) == 0   ? other.block_bitmap
                              : Pick(2) == 0 ? other.inode_bitmap
                                             : other.inode_table;
        return base + Delta(2);
      }
      case 1: {  // a superblock or descriptor block
        blk64_t super = 0, old_desc = 0, new_desc = 0;
        blk_t used = 0;
        ext2fs_super_and_bgd_loc2(fs_, static_cast<dgrp_t>(Pick(fs_->group_desc_count)), &super,
                                  &old_desc, &new_desc, &used);
        const uint64_t spots[] = {super, old_desc + Pick(used + 1), new_desc, super + used};
        return spots[Pick(4)] + Delta(1);
      }
      case 2:  // around its own inode table
        return own.inode_table + Delta(table + 1);
      case 3:
        return Pick(blocks + 8);
      case 4: {  // the edges of the allowed ranges
        const uint64_t first = ext2fs_group_first_block2(fs_, g);
        const uint64_t last = ext2fs_group_last_block2(fs_, g);
        const uint64_t edges[] = {0,
                                  fs_->super->s_first_data_block,
                                  blocks - 1,
                                  blocks,
                                  first,
                                  last,
                                  last - table + 1,
                                  last - table + 2};
        return edges[Pick(8)] + Delta(1);
      }
      default:  // inside another group's inode table
        return other.inode_table + Pick(table);
    }
  }

  ext2_filsys fs_;
  const std::vector<GroupTables>& pristine_;
  std::mt19937_64 rng_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: desc_check_diff IMAGE ROUNDS SEED\n");
    return 2;
  }
  ext2_filsys fs = nullptr;
  if (const errcode_t err = ext2fs_open(argv[1], EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0,
                                        0, unix_io_manager, &fs)) {
    std::fprintf(stderr, "desc_check_diff: cannot open %s (error %ld)\n", argv[1],
                 static_cast<long>(err));
    return 2;
  }
  fs->default_bitmap_type = EXT2FS_BMAP64_RBTREE;
  const unsigned long rounds = std::strtoul(argv[2], nullptr, 0);
  std::vector<GroupTables> pristine;
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g)
    pristine.push_back({ext2fs_block_bitmap_loc(fs, g), ext2fs_inode_bitmap_loc(fs, g),
                        ext2fs_inode_table_loc(fs, g)});
  Mutator mutator(fs, pristine, static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 0)));
  unsigned long sound = 0, damaged = 0, disagreements = 0;
  for (unsigned long round = 0; round <= rounds; ++round) {
    for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
      ext2fs_block_bitmap_loc_set(fs, g, pristine[g].block_bitmap);
      ext2fs_inode_bitmap_loc_set(fs, g, pristine[g].inode_bitmap);
      ext2fs_inode_table_loc_set(fs, g, pristine[g].inode_table);
    }
    // Round 0 checks the filesystem as it is.
    const int mutations = round == 0 ? 0 : 1 + static_cast<int>(round % 2);
    for (int i = 0; i < mutations; ++i)
      mutator.MutateOnce();
    const bool fast = e2img::DescriptorsClearlySound(fs);
    const errcode_t oracle = ext2fs_check_desc(fs);
    (oracle ? damaged : sound) += 1;
    if (fast != (oracle == 0)) {
      ++disagreements;
      std::fprintf(stderr, "round %lu: fast check says %s, ext2fs_check_desc returns %ld\n", round,
                   fast ? "sound" : "not sound", static_cast<long>(oracle));
    }
  }
  ext2fs_close_free(&fs);
  std::printf("%lu rounds: %lu sound, %lu damaged, %lu disagreements\n", rounds + 1, sound, damaged,
              disagreements);
  return disagreements || !sound || !damaged ? 1 : 0;
}
