// Scrambler (-s): hides every name in the image while keeping it consistent
// for e2fsck. It learns the filesystem while the metadata map scans the
// inodes (ObserveInode), reads the hash-tree index blocks (Plan), then
// rewrites the name-bearing blocks as they go to the sink: directory blocks,
// inode table blocks, xattr blocks and slow symlink blocks.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "e2img/block_set.h"
#include "e2img/filesystem.h"
#include "e2img/laned_sink.h"
#include "e2img/scramble_dir.h"
#include "e2img/scramble_map.h"
#include "e2img/scramble_xattr.h"
#include "e2img/sinks.h"

namespace e2img {

// What the scrambler knows about one directory.
struct ScrambleDir {
  uint32_t flags = 0;               // i_flags
  uint32_t generation = 0;          // i_generation, in its block checksums
  uint32_t blocks_left = 0;         // blocks not yet rewritten (the state is freed at 0)
  std::unique_ptr<DirNames> names;  // created at the first block
  std::vector<LeafRange> leaves;    // moved into names then
  DirHash hash;
};

// The scrambler's plan and state for one capture.
class Scrambler {
 public:
  Scrambler(const Filesystem& fs, uint64_t seed, std::function<void(const std::string&)> warn);

  // Called for every in-use inode while the metadata map is built.
  void ObserveInode(uint32_t ino, const ext2_inode& inode);
  // Resolves directories, symlinks and ea_inodes to blocks and reads
  // hash-tree indexes. copied: the blocks the image will hold.
  void Plan(BlockSet& copied);
  // Whether Transform may change this block, for blocks copied before the
  // plan as they are (one block of data, as read): true for inode table
  // blocks holding an inode it rewrites. Reads only what the constructor
  // set: safe on another thread while ObserveInode and Plan run.
  bool MayChangeUnplanned(uint64_t block, std::span<const uint8_t> data) const;
  // After Plan: the blocks besides inode tables that Transform rewrites
  // (directory, xattr, symlink, ea_inode value and old journal blocks).
  BlockSet RoleBlocks() const;
  // After Plan: the blocks Transform turns into zeros whatever they hold
  // (old journal blocks of a clean journal), which need not be read.
  BlockSet ZeroedBlocks() const;
  // Rewrites `data` (whole blocks from first_block) in place where needed.
  void Transform(uint64_t first_block, std::span<uint8_t> data);
  // Transform of the blocks of one lane of `lanes` (threads), counting into
  // that lane's stats; lanes may run at once on the same run of blocks.
  void TransformLane(uint64_t first_block, std::span<uint8_t> data, unsigned lane, unsigned lanes,
                     ScrambleStats& stats);
  // Adds a lane's counts, for Summary.
  void AddStats(const ScrambleStats& lane);
  // Names that no replacement fits are accepted (--scramble-keep-names):
  // Summary warns of them instead of Failure stopping the image.
  void set_keep_names(bool keep) { keep_names_ = keep; }
  // --scramble-map: each directory's old and new names go there (map
  // outlives the scrambler's transforms).
  void set_map(ScrambleMap* map) { map_ = map; }
  ScrambleMap* map() const { return map_; }
  // After the blocks went through: why the image must not be kept (names
  // left as they were, not accepted), or empty.
  std::string Failure() const;
  // Ends a scrambled image before the image itself is committed: throws
  // util::Error with Failure(), if any, else commits the scramble map.
  void Conclude();
  // One summary line for stderr, empty if nothing worth saying.
  std::string Summary() const;
  const ScrambleStats& stats() const { return stats_; }

 private:
  // The role of a block the scrambler rewrites (inode table blocks aside).
  struct BlockRole {
    enum Kind : uint8_t {
      kDirLinear,
      kDirLeaf,
      kDirIndex,
      kXattr,
      kSymlink,
      kEaValue,
      kZero,    // journal blocks outside the log (all past its superblock when clean)
      kJournal  // journal blocks of the log, rewritten in Plan (journal_blocks_)
    } kind;
    int32_t leaf = DirNames::kNoLeaf;  // for kEaValue: the logical block
    uint32_t ino = 0;
    uint32_t length = 0;  // symlink target length
  };
  // A group's inode table: where it is and its first inode.
  struct ItableRun {
    uint64_t start = 0;
    uint64_t count = 0;
    uint32_t first_ino = 0;
  };

  void PlanDirectory(uint32_t ino);
  void PlanEaInode(uint32_t ino, ext2_inode& inode, BlockSet& copied);
  void PlanJournal();
  void RewriteItableBlock(const ItableRun& run, uint64_t block, std::span<uint8_t> data,
                          ScrambleStats& stats);
  // copy: a journal copy of the block (the directory's state stays).
  void RewriteDirBlock(const BlockRole& role, uint64_t block, std::span<uint8_t> data,
                       ScrambleStats& stats, bool copy = false);
  // Rewrites a journal copy of filesystem block `target` like that block.
  void RewriteCopy(uint64_t target, std::span<uint8_t> data, ScrambleStats& stats);
  void ClearIndexSlack(const BlockRole& role, std::span<uint8_t> data);
  void RewriteSymlinkBlock(const BlockRole& role, uint64_t block, std::span<uint8_t> data);
  void RewriteXattrBlock(uint64_t block, std::span<uint8_t> data);
  const ItableRun* ItableOf(uint64_t block) const;
  // The lane of `lanes` that rewrites a block (role: its role, if any). All
  // the blocks of a directory share one, so that its names are chosen in
  // block order, as Transform chooses them.
  static unsigned LaneOf(uint64_t block, const BlockRole* role, unsigned lanes);
  // The blocks whose role passes `keep`.
  template <typename Keep>
  BlockSet BlocksWhere(Keep keep) const {
    BlockSet blocks;
    for (const auto& [block, role] : roles_)
      if (keep(role))
        blocks.Add(block);
    return blocks;
  }
  // Calls visit(ino, bytes) for each inode of an inode table block (data:
  // that block, const or not), up to the filesystem's last inode.
  template <typename Bytes, typename Visit>
  void ForEachInode(const ItableRun& run, uint64_t block, std::span<Bytes> data,
                    Visit visit) const {
    const size_t inode_size = EXT2_INODE_SIZE(fs_->super);
    uint64_t ino = run.first_ino + (block - run.start) * (fs_->blocksize / inode_size);
    for (size_t at = 0; at + inode_size <= data.size(); at += inode_size, ++ino) {
      if (ino > fs_->super->s_inodes_count)
        break;
      visit(static_cast<uint32_t>(ino), data.subspan(at, inode_size));
    }
  }

  ext2_filsys fs_;
  uint64_t seed_;
  std::function<void(const std::string&)> warn_;
  std::vector<ItableRun> itables_;  // sorted by start; set by the constructor
  std::unordered_map<uint64_t, BlockRole> roles_;
  std::unordered_map<uint32_t, ScrambleDir> dirs_;
  std::vector<std::pair<uint32_t, ext2_inode>> slow_links_;
  std::vector<std::pair<uint32_t, ext2_inode>> ea_inodes_;
  std::unordered_map<uint32_t, uint64_t> ea_sizes_;
  EaHashChanges ea_changes_;
  std::unordered_map<uint64_t, std::vector<uint8_t>> journal_blocks_;  // kJournal blocks' bytes
  ScrambleStats stats_;
  uint64_t planning_problems_ = 0;
  bool keep_names_ = false;
  ScrambleMap* map_ = nullptr;
};

// An ImageSink that scrambles the blocks on their way to another sink, on
// `lanes` worker threads (LanedSink).
class ScramblingSink : public ImageSink {
 public:
  ScramblingSink(Scrambler& scrambler, ImageSink& inner, unsigned lanes = 1);
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override {
    lanes_.WriteBlocks(first_block, data);
  }
  // Also adds the lanes' counts to the scrambler's.
  void Finish() override;

 private:
  Scrambler& scrambler_;
  std::vector<ScrambleStats> lane_stats_;  // before lanes_, whose threads use them
  LanedSink lanes_;
};

}  // namespace e2img
