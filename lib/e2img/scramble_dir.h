// Directory side of the scrambler (-s): the hash-tree layout of a directory
// (which blocks are index blocks, and each leaf's hash range), and the
// rewriting of directory entries (block leaves and inline data) with new
// names of the same length.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "e2img/scramble_names.h"

namespace e2img {

class ScrambleMap;

// libext2fs calls that read an inode (ea_inode hashes) use the filesystem's
// inode and block caches, which are not thread-safe: the scrambler's lanes
// hold this lock around them. (Directory block checksums are computed from
// the generation seen in the inode scan, without it: see DirentChecksum.)
inline std::mutex& InodeReadLock() {
  static std::mutex lock;
  return lock;
}

// What the index blocks of one hash-tree directory say.
struct HtreeLayout {
  bool valid = false;
  bool damaged = false;  // the tree is damaged: what could be read of it
  DirHash hash;
  std::vector<LeafRange> leaves;              // in hash order
  std::unordered_map<uint64_t, int> leaf_of;  // logical block -> index in leaves
  std::vector<uint64_t> index_blocks;         // logical blocks of the root and nodes
};

// Reads one logical block of the directory; false if it cannot.
using DirBlockReader = std::function<bool(uint64_t logical, std::span<uint8_t> out)>;

// A dx_node block: one empty entry (inode 0, no name) spanning the block,
// then the count/limit with the largest limit that fits.
bool LooksLikeIndexNode(ext2_filsys fs, std::span<const uint8_t> block);

// Walks the dx_root and dx_node blocks of a directory with EXT2_INDEX_FL.
// Leaves it cannot reach stay out of the layout (they are then scrambled
// like linear blocks). In a damaged tree (layout.damaged), bad subtrees are
// skipped and each block is taken for what it looks like, a node or a leaf.
HtreeLayout ReadHtreeLayout(ext2_filsys fs, uint32_t dir_flags, uint64_t dir_blocks,
                            const DirBlockReader& read);

// A name the scrambler could not replace, or bytes it could not parse.
struct ScrambleLeft {
  uint32_t dir = 0;     // the directory's inode
  uint64_t block = 0;   // the block (0: in the inode)
  std::string name;     // the name kept (empty: a damaged stretch)
  uint32_t offset = 0;  // for a damaged stretch: where it starts in the block
};

// Counters the scrambler reports, with the first few names it left.
struct ScrambleStats {
  static constexpr size_t kListed = 8;
  uint64_t names = 0;                 // names replaced
  uint64_t names_kept = 0;            // names kept: no same-length name fits their hash range
  uint64_t bad_blocks = 0;            // directory blocks with bytes that parse as no entry
  std::vector<ScrambleLeft> kept;     // the first kListed kept names
  std::vector<ScrambleLeft> damaged;  // the first kListed damaged stretches
  void Add(const ScrambleStats& other);
};

// Rewrites the entries of a run of directory entries (a directory block, or
// the inline-data parts of a directory): names replaced, deleted entries'
// names and the slack after each name zeroed. keep_names: '.', '..' always;
// lost+found too in the root. Returns false if it met a malformed entry
// (the bytes from there on are left as they were).
struct DirRewrite {
  DirNames* names = nullptr;   // nullptr: names stay (encrypted directories)
  uint32_t ino = 0;            // the directory, for ScrambleStats
  uint64_t block = 0;          // the block (0: inline data), for ScrambleStats
  ScrambleMap* map = nullptr;  // --scramble-map: where each name and its replacement go
  uint32_t generation = 0;     // the directory's i_generation, in its block checksums
  int leaf = DirNames::kNoLeaf;
  bool root = false;       // keep lost+found
  bool zero_slack = true;  // not for encrypted+casefolded (hashes follow names)
  ScrambleStats* stats = nullptr;
};
bool RewriteDirEntries(ext2_filsys fs, std::span<uint8_t> entries, const DirRewrite& how);

// Whether the last 12 bytes of a leaf block are a well-formed checksum tail
// (inode 0, rec_len 12, name_len 0, file type 0xDE).
bool HasDirentTail(std::span<const uint8_t> block);
// Whether the rec_len chain from the first entry ends exactly at the tail:
// libext2fs and e2fsck find the tail, and check the checksum, only then.
bool DirentChainReachesTail(std::span<const uint8_t> block);
// The checksum a leaf block's tail holds for the entries before it
// (metadata_csum): crc32c of the filesystem's seed, the directory's inode
// number and generation, then the entries. Reads no inode, so lanes need
// no lock for it.
uint32_t DirentChecksum(ext2_filsys fs, uint32_t ino, uint32_t generation,
                        std::span<const uint8_t> entries);

// Rewrites one directory block in place, recomputing its checksum when the
// original one was right. ino: the directory.
void RewriteDirBlock(ext2_filsys fs, uint32_t ino, std::span<uint8_t> block, const DirRewrite& how);

}  // namespace e2img
