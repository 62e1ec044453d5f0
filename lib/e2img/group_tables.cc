#include "e2img/group_tables.h"

#include <string>

namespace e2img {

uint32_t InodesScanned(ext2_filsys fs, dgrp_t group) {
  const uint32_t per_group = fs->super->s_inodes_per_group;
  if (!ext2fs_has_group_desc_csum(fs))
    return per_group;
  if (ext2fs_bg_flags_test(fs, group, EXT2_BG_INODE_UNINIT))
    return 0;
  const uint32_t unused = ext2fs_bg_itable_unused(fs, group);
  return unused < per_group ? per_group - unused : 0;
}

uint64_t SkippedInodeBlock(ext2_filsys fs, ext2_ino_t ino) {
  const uint32_t per_group = fs->super->s_inodes_per_group;
  if (ino == 0 || ino > fs->super->s_inodes_count || per_group == 0)
    return 0;
  const dgrp_t group = (ino - 1) / per_group;
  const uint32_t index = (ino - 1) % per_group;
  if (index < InodesScanned(fs, group))
    return 0;
  const uint64_t itable = ext2fs_inode_table_loc(fs, group);
  const uint64_t block = itable + uint64_t{index} * EXT2_INODE_SIZE(fs->super) / fs->blocksize;
  if (!itable || block >= ext2fs_blocks_count(fs->super))
    return 0;
  return block;
}

void MarkGroupTables(const Filesystem& filesystem, const MapOptions& options, MetadataMap& map,
                     const WarningFn& warn) {
  ext2_filsys fs = filesystem.get();
  const uint64_t blocks_count = filesystem.blocks_count();
  auto mark = [&](uint64_t block, uint64_t count, const std::string& what) {
    if (block >= blocks_count || count > blocks_count - block) {
      warn(what + " at block " + std::to_string(block) + " is past the end of the filesystem");
      ++map.problems;
      return;
    }
    map.blocks.Add(block, count);
  };
  const uint64_t first = fs->super->s_first_data_block;
  mark(filesystem.superblock_block(), 1, "superblock");
  if (first != filesystem.superblock_block())
    mark(first, 1, "first data block");
  for (dgrp_t j = 0; j < fs->desc_blocks; ++j)
    mark(ext2fs_descriptor_block_loc2(fs, first, j), 1,
         "group descriptor block " + std::to_string(j));
  if (const uint64_t backup = filesystem.superblock_used()) {
    mark(backup, 1, "backup superblock");
    for (dgrp_t j = 0; j < fs->desc_blocks; ++j)
      mark(ext2fs_descriptor_block_loc2(fs, backup, j), 1,
           "backup group descriptor block " + std::to_string(j));
  }
  if (ext2fs_has_feature_mmp(fs->super))
    mark(fs->super->s_mmp_block, 1, "MMP block");

  const bool csum = ext2fs_has_group_desc_csum(fs);
  const uint32_t inode_size = EXT2_INODE_SIZE(fs->super);
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    const std::string group = "group " + std::to_string(g);
    // libext2fs computes (does not read) the bitmaps of an uninit group
    // only when the descriptor's checksum holds.
    const bool verified = csum && ext2fs_group_desc_csum_verify(fs, g);
    if (csum && !verified) {
      warn(group + ": descriptor checksum is wrong; its bitmaps and inode table are kept as " +
           "libext2fs reads them");
      ++map.problems;
    }
    const uint64_t itable = ext2fs_inode_table_loc(fs, g);
    if (!itable) {
      warn(group + ": inode table at block 0 (missing); its inodes are skipped");
      ++map.problems;
    } else {
      uint64_t count = fs->inode_blocks_per_group;
      if (!options.output_is_device) {
        const uint64_t bytes = uint64_t{InodesScanned(fs, g)} * inode_size;
        count = std::min<uint64_t>(count, (bytes + fs->blocksize - 1) / fs->blocksize);
        // The rest of the last block holds no inode the scan reads: often
        // an earlier filesystem's leftovers on a reused disk.
        if (count && count < fs->inode_blocks_per_group && bytes % fs->blocksize)
          map.stale_tails[itable + count - 1] = static_cast<uint32_t>(bytes % fs->blocksize);
      }
      if (count)
        mark(itable, count, group + ": inode table");
    }
    // Block 0 in a descriptor field means "none".
    const uint64_t block_bitmap = ext2fs_block_bitmap_loc(fs, g);
    if (block_bitmap && !(verified && ext2fs_bg_flags_test(fs, g, EXT2_BG_BLOCK_UNINIT)))
      mark(block_bitmap, 1, group + ": block bitmap");
    const uint64_t inode_bitmap = ext2fs_inode_bitmap_loc(fs, g);
    if (inode_bitmap && !(verified && ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_UNINIT)))
      mark(inode_bitmap, 1, group + ": inode bitmap");
  }
}

std::vector<BlockExtent> GroupsInUse(ext2_filsys fs) {
  std::vector<BlockExtent> groups;
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    const blk64_t first = ext2fs_group_first_block2(fs, g);
    const blk64_t size = ext2fs_group_last_block2(fs, g) - first + 1;
    if (ext2fs_bg_free_blocks_count(fs, g) < size)
      groups.push_back({first, size});
  }
  return groups;
}

}  // namespace e2img
