// Finds the blocks of one inode for the metadata map: extent-tree nodes and
// indirect blocks always, data blocks when asked. Extent trees are parsed
// here rather than through libext2fs's iterator, which stops at the first
// bad node and hides the error: a bad node is reported and skipped, and the
// walk goes on with its siblings (as e2fsck does).
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "e2img/metadata_map.h"

namespace e2img {

// What the walk found besides the blocks it marked.
struct InodeWalk {
  std::optional<uint64_t> first_block;  // physical block of logical block 0
  uint64_t problems = 0;
};

// Walks the block maps of inodes into a MetadataMap.
class InodeBlockWalker {
 public:
  InodeBlockWalker(ext2_filsys fs, MetadataMap& map, const WarningFn& warn);
  // Marks the tree blocks of inode `ino`, and its data blocks when
  // keep_data (directory blocks also go to map.directory_blocks).
  InodeWalk Walk(ext2_ino_t ino, ext2_inode* inode, bool keep_data, bool is_dir);

 private:
  void WalkExtentNode(const uint8_t* node, size_t size, int level);
  void WalkIndirect(ext2_ino_t ino, ext2_inode* inode);
  void Problem(const std::string& what);
  bool InRange(uint64_t block, uint64_t count) const;
  void MarkData(uint64_t pblk, uint64_t count, uint64_t lblk);

  ext2_filsys fs_;
  MetadataMap& map_;
  const WarningFn& warn_;
  uint64_t blocks_count_;
  std::vector<char> iterate_buf_;
  // Per walk.
  ext2_ino_t ino_ = 0;
  bool keep_data_ = false;
  bool is_dir_ = false;
  InodeWalk result_;
  int root_depth_ = 0;
  std::unordered_set<uint64_t> visited_nodes_;  // block * 2 + 1 for index nodes
};

}  // namespace e2img
