// Directory entries that name inodes e2fsck reads although the inode scan
// skips them: inodes in the "unused" tail of an inode table (past
// bg_itable_unused) or in a group flagged INODE_UNINIT. Their inode table
// blocks belong in the image; the rest of the unused tail (often an earlier
// filesystem's leftovers) does not. Also the directories named by ".."
// entries, which e2fsck reads to print a path even when they are deleted.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "e2img/metadata_map.h"

namespace e2img {

// Keeps the block of inode `ino` whole: no stale tail (libext2fs reads it whole).
void KeepInodeBytes(ext2_filsys fs, ext2_ino_t ino, MetadataMap& map);

// Collects the inode numbers named by directory entries.
class DirectoryReferences {
 public:
  explicit DirectoryReferences(ext2_filsys fs) : fs_(fs) {}
  // Parses one directory block (or the entries of an inline directory).
  void AddEntries(std::span<const uint8_t> entries);
  // Reads and parses every block of map.directory_blocks, in order, telling
  // blocks_read (if set) how many it has read so far.
  void AddDirectoryBlocks(MetadataMap& map, const WarningFn& warn,
                          const std::function<void(uint64_t)>& blocks_read = {});
  // Reads and parses the given directory blocks (problems go to map).
  void AddDirectoryBlocks(BlockSet& blocks, MetadataMap& map, const WarningFn& warn,
                          const std::function<void(uint64_t)>& blocks_read = {});
  // The inodes named by ".." entries parsed since the last call, sorted,
  // each once: e2fsck reads those directories to print a path.
  std::vector<uint32_t> TakeParents();
  // Notes one named inode (kept only if the scan skipped it).
  void AddInode(uint32_t ino);
  // Notes the inode a ".." reference names (an inline directory's parent).
  void AddParent(uint32_t ino) {
    AddInode(ino);
    parents_.push_back(ino);
  }
  // Marks the inode table block of each named inode the scan skipped.
  void MarkSkippedInodes(MetadataMap& map, const WarningFn& warn);

 private:
  ext2_filsys fs_;
  std::vector<uint32_t> skipped_inodes_;  // named inodes the scan skipped
  std::vector<uint32_t> parents_;         // named by ".." entries
};

}  // namespace e2img
