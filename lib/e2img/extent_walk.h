// ExtentWalk collects the blocks of an inode's extent tree by reading only
// its index and leaf nodes: a 1 GiB file costs a handful of block reads and
// a few extents, not a callback for each of its 262,144 data blocks (which is
// what ext2fs_block_iterate3 does).
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>

#include "e2img/block_set.h"

namespace e2img {

// What a walk found besides the blocks it added.
struct ExtentWalkResult {
  errcode_t error = 0;        // first unreadable or malformed node (the rest was walked)
  uint64_t out_of_range = 0;  // block numbers at or past the end of the filesystem, skipped
};

// Adds the tree's node blocks to `blocks` and, when with_data, the data
// blocks of every leaf extent (initialized or not, as block_iterate3 gives
// them). The inode must have EXT4_EXTENTS_FL.
ExtentWalkResult WalkExtentTree(ext2_filsys fs, const ext2_inode& inode, bool with_data,
                                BlockSet& blocks);

}  // namespace e2img
