#include "e2img/desc_check.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace e2img {
namespace {

// Blocks [start, end) that one descriptor field (or a reserved area) claims.
struct Claim {
  uint64_t start;
  uint64_t end;
  bool reserved;  // a superblock or descriptor block: may repeat, never collide with a table
};

// The superblock and descriptor blocks of each group, as
// ext2fs_reserve_super_and_bgd marks them. False if any lies outside the
// filesystem (libext2fs would print a warning for it).
bool AddReserved(ext2_filsys fs, std::vector<Claim>& claims) {
  const uint64_t blocks_count = ext2fs_blocks_count(fs->super);
  const uint64_t old_desc_blocks = ext2fs_has_feature_meta_bg(fs->super)
                                       ? fs->super->s_first_meta_bg
                                       : fs->desc_blocks + fs->super->s_reserved_gdt_blocks;
  auto add = [&](uint64_t start, uint64_t count) {
    if (start >= blocks_count)
      return false;
    claims.push_back({start, start + count, true});
    return true;
  };
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    blk64_t super = 0, old_desc = 0, new_desc = 0;
    blk_t used = 0;
    ext2fs_super_and_bgd_loc2(fs, g, &super, &old_desc, &new_desc, &used);
    if ((super || g == 0) && !add(super, 1))
      return false;
    if (g == 0 && fs->blocksize == 1024 && EXT2FS_CLUSTER_RATIO(fs) > 1 && !add(0, 1))
      return false;
    if (old_desc && !add(old_desc, std::min<uint64_t>(old_desc_blocks, blocks_count - old_desc)))
      return false;
    if (new_desc && !add(new_desc, 1))
      return false;
  }
  return true;
}

// Each group's block bitmap, inode bitmap and inode table, after the range
// checks ext2fs_check_desc makes. False if one fails.
bool AddTables(ext2_filsys fs, std::vector<Claim>& claims) {
  const uint64_t table_blocks = fs->inode_blocks_per_group;
  uint64_t first = fs->super->s_first_data_block;
  uint64_t last = ext2fs_blocks_count(fs->super) - 1;
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    if (!ext2fs_has_feature_flex_bg(fs->super)) {
      first = ext2fs_group_first_block2(fs, g);
      last = ext2fs_group_last_block2(fs, g);
    }
    for (const uint64_t bitmap : {ext2fs_block_bitmap_loc(fs, g), ext2fs_inode_bitmap_loc(fs, g)}) {
      if (bitmap < first || bitmap > last)
        return false;
      claims.push_back({bitmap, bitmap + 1, false});
    }
    const uint64_t table = ext2fs_inode_table_loc(fs, g);
    if (table < first || table + table_blocks - 1 > last || table + table_blocks < table)
      return false;
    claims.push_back({table, table + table_blocks, false});
  }
  return true;
}

}  // namespace

bool DescriptorsClearlySound(ext2_filsys fs) {
  const uint32_t desc_size = EXT2_DESC_SIZE(fs->super);
  if (desc_size & (desc_size - 1))
    return false;
  std::vector<Claim> claims;
  claims.reserve(uint64_t{fs->group_desc_count} * 3 + 64);
  if (!AddReserved(fs, claims) || !AddTables(fs, claims))
    return false;
  std::sort(claims.begin(), claims.end(),
            [](const Claim& a, const Claim& b) { return a.start < b.start; });
  // Sorted by start, a claim collides with an earlier one exactly when it
  // starts before the furthest end seen so far; only reserved areas may
  // overlap each other.
  uint64_t reserved_end = 0, table_end = 0;
  for (const Claim& c : claims) {
    if (c.start < table_end || (!c.reserved && c.start < reserved_end))
      return false;
    uint64_t& end = c.reserved ? reserved_end : table_end;
    end = std::max(end, c.end);
  }
  return true;
}

errcode_t CheckDescriptors(ext2_filsys fs) {
  return DescriptorsClearlySound(fs) ? 0 : ext2fs_check_desc(fs);
}

}  // namespace e2img
