// The per-group part of the metadata map: superblocks and descriptor blocks,
// bitmaps and inode tables, chosen as libext2fs reads them for e2fsck (not
// only as e2image keeps them: a bitmap of an "uninit" group whose
// descriptor checksum is wrong is read, so it is kept).
#pragma once

#include <vector>

#include "e2img/block_set.h"
#include "e2img/filesystem.h"
#include "e2img/metadata_map.h"

namespace e2img {

// Marks the superblock(s), descriptor blocks, MMP block, bitmaps and the
// used part of each inode table.
void MarkGroupTables(const Filesystem& filesystem, const MapOptions& options, MetadataMap& map,
                     const WarningFn& warn);

// How many inodes of a group (from its first) the inode scan reads: all, or
// fewer with group descriptor checksums (INODE_UNINIT, bg_itable_unused).
uint32_t InodesScanned(ext2_filsys fs, dgrp_t group);

// The inode table block holding inode `ino` when the scan skips it, else 0.
uint64_t SkippedInodeBlock(ext2_filsys fs, ext2_ino_t ino);

// The groups with blocks in use (a free count below their size), ascending,
// each as its run of blocks: where the inode scan may find more metadata
// (directories, extent trees) than the group tables.
std::vector<BlockExtent> GroupsInUse(ext2_filsys fs);

}  // namespace e2img
