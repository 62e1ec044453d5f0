#include "e2img/inode_blocks.h"

#include <ext2fs/ext2_err.h>
#include <ext2fs/ext3_extents.h>

#include <algorithm>
#include <cstring>

#include "util/endian.h"

namespace e2img {
namespace {

constexpr int kMaxExtentDepth = 5;  // as the kernel
// Bounds the recursion on a crafted chain of nodes (each level needs a
// block of its own, as nodes already visited are skipped).
constexpr int kMaxWalkLevels = 1024;
constexpr size_t kEntrySize = 12;  // header, index and leaf entries alike

// State shared with libext2fs's block iterator callback (indirect maps).
struct IterateContext {
  MetadataMap* map;
  uint64_t first_data_block;
  uint64_t blocks_count;
  bool keep_data;
  bool is_dir;
  uint64_t out_of_range = 0;
};

int MarkIterated(ext2_filsys, blk64_t* block_nr, e2_blkcnt_t blockcnt, blk64_t, int, void* priv) {
  auto* ctx = static_cast<IterateContext*>(priv);
  const uint64_t block = *block_nr;
  if (block >= ctx->blocks_count || block < ctx->first_data_block) {
    ++ctx->out_of_range;
    return 0;
  }
  if (blockcnt < 0 || ctx->keep_data) {
    ctx->map->blocks.Add(block);
    if (ctx->is_dir && blockcnt >= 0)
      ctx->map->directory_blocks.Add(block);
  }
  return 0;
}

}  // namespace

InodeBlockWalker::InodeBlockWalker(ext2_filsys fs, MetadataMap& map, const WarningFn& warn)
    : fs_(fs),
      map_(map),
      warn_(warn),
      blocks_count_(ext2fs_blocks_count(fs->super)),
      iterate_buf_(fs->blocksize * 3) {}

void InodeBlockWalker::Problem(const std::string& what) {
  warn_("inode " + std::to_string(ino_) + ": " + what);
  ++result_.problems;
}

bool InodeBlockWalker::InRange(uint64_t block, uint64_t count) const {
  return block >= fs_->super->s_first_data_block && block < blocks_count_ &&
         count <= blocks_count_ - block;
}

void InodeBlockWalker::MarkData(uint64_t pblk, uint64_t count, uint64_t lblk) {
  if (lblk == 0)
    result_.first_block = pblk;
  if (!keep_data_ || !count)
    return;
  map_.blocks.Add(pblk, count);
  if (is_dir_)
    map_.directory_blocks.Add(pblk, count);
}

void InodeBlockWalker::WalkExtentNode(const uint8_t* node, size_t size, int level) {
  if (size < kEntrySize || util::LoadLE16(node) != EXT3_EXT_MAGIC) {
    Problem("bad extent header at level " + std::to_string(level) + "; subtree skipped");
    return;
  }
  uint32_t entries = util::LoadLE16(node + 2);
  const uint32_t capacity = static_cast<uint32_t>(size / kEntrySize - 1);
  const int depth = util::LoadLE16(node + 6);
  if (entries > capacity) {
    Problem("extent node at level " + std::to_string(level) + " claims " + std::to_string(entries) +
            " entries, room for " + std::to_string(capacity));
    entries = capacity;
  }
  if (level == 0) {
    root_depth_ = depth;
    if (depth > kMaxExtentDepth)
      Problem("extent tree depth " + std::to_string(depth) + " is more than " +
              std::to_string(kMaxExtentDepth) + "; its nodes are kept as e2fsck reads them");
  } else if (depth != root_depth_ - level) {
    Problem("extent node at level " + std::to_string(level) + " has depth " +
            std::to_string(depth) + ", the root implies " + std::to_string(root_depth_ - level));
  }
  // As libext2fs, a node's kind follows from its level under the root's
  // depth, not from its own depth field: that is how e2fsck reads it.
  const bool index = level < root_depth_;
  if (index && level >= kMaxWalkLevels) {
    Problem("extent tree deeper than " + std::to_string(kMaxWalkLevels) +
            " levels; the rest skipped");
    return;
  }
  std::vector<uint8_t> child;  // sized at the first index entry: leaves (most nodes) need none
  for (uint32_t i = 0; i < entries; ++i) {
    const uint8_t* e = node + kEntrySize * (i + 1);
    if (!index) {
      const uint64_t lblk = util::LoadLE32(e);
      uint64_t len = util::LoadLE16(e + 4);
      if (len > EXT_INIT_MAX_LEN)
        len -= EXT_INIT_MAX_LEN;
      const uint64_t pblk = uint64_t{util::LoadLE16(e + 6)} << 32 | util::LoadLE32(e + 8);
      if (!len)
        continue;
      if (!InRange(pblk, 1)) {
        Problem("extent of " + std::to_string(len) + " blocks at block " + std::to_string(pblk) +
                " is outside the filesystem; skipped");
        continue;
      }
      if (!InRange(pblk, len)) {
        Problem("extent at block " + std::to_string(pblk) + " runs past the end of the filesystem" +
                "; kept the part inside");
        len = blocks_count_ - pblk;
      }
      MarkData(pblk, len, lblk);
      continue;
    }
    const uint64_t leaf = uint64_t{util::LoadLE16(e + 8)} << 32 | util::LoadLE32(e + 4);
    if (!InRange(leaf, 1)) {
      Problem("extent tree block " + std::to_string(leaf) + " is outside the filesystem; skipped");
      continue;
    }
    // A block met again as the same kind of node names the same blocks.
    const bool child_index = level + 1 < root_depth_;
    if (!visited_nodes_.insert(leaf * 2 + (child_index ? 1 : 0)).second) {
      Problem("extent tree block " + std::to_string(leaf) + " is referenced twice; skipped");
      continue;
    }
    map_.blocks.Add(leaf);
    child.resize(fs_->blocksize);
    const errcode_t err = io_channel_read_blk64(fs_->io, leaf, 1, child.data());
    if (err) {
      Problem("cannot read extent tree block " + std::to_string(leaf) + ": " + ExtErrorText(err));
      continue;
    }
    WalkExtentNode(child.data(), child.size(), level + 1);
  }
}

void InodeBlockWalker::WalkIndirect(ext2_ino_t ino, ext2_inode* inode) {
  IterateContext ctx{&map_, fs_->super->s_first_data_block, blocks_count_, keep_data_, is_dir_};
  if (inode->i_block[0])
    result_.first_block = inode->i_block[0];
  const errcode_t err = ext2fs_block_iterate3(fs_, ino, BLOCK_FLAG_READ_ONLY, iterate_buf_.data(),
                                              MarkIterated, &ctx);
  if (err)
    Problem("cannot read its block map: " + ExtErrorText(err) + "; kept what was readable");
  if (ctx.out_of_range)
    Problem(std::to_string(ctx.out_of_range) + " block numbers outside the filesystem, skipped");
}

InodeWalk InodeBlockWalker::Walk(ext2_ino_t ino, ext2_inode* inode, bool keep_data, bool is_dir) {
  ino_ = ino;
  keep_data_ = keep_data;
  is_dir_ = is_dir;
  result_ = InodeWalk{};
  visited_nodes_.clear();
  if (inode->i_flags & EXT4_EXTENTS_FL) {
    uint8_t root[sizeof inode->i_block];
    std::memcpy(root, inode->i_block, sizeof root);
    WalkExtentNode(root, sizeof root, 0);
  } else {
    WalkIndirect(ino, inode);
  }
  return result_;
}

}  // namespace e2img
