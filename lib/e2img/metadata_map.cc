#include "e2img/metadata_map.h"

#include <ext2fs/ext2_err.h>

#include "e2img/extent_walk.h"
#include "e2img/read_ahead.h"

#include <vector>

namespace e2img {
namespace {

// State shared with libext2fs's block iterator callback.
struct IterateContext {
  MetadataMap* map;
  uint64_t blocks_count;
  bool keep_data;       // every block, not only tree/indirect blocks
  bool is_directory;
  uint64_t out_of_range = 0;
};

int MarkBlock(ext2_filsys, blk64_t* block_nr, e2_blkcnt_t blockcnt, blk64_t, int, void* priv) {
  auto* ctx = static_cast<IterateContext*>(priv);
  const uint64_t block = *block_nr;
  if (block >= ctx->blocks_count) {
    ++ctx->out_of_range;
    return 0;
  }
  if (blockcnt < 0 || ctx->keep_data) {
    ctx->map->blocks.Add(block);
    if (ctx->is_directory && blockcnt >= 0) ctx->map->directory_blocks.Add(block);
  }
  return 0;
}

// Inode hooks: libext2fs asks for the inode we already hold instead of
// reading the inode table again (as e2image does).
struct StashedInode {
  ext2_ino_t ino = 0;
  const ext2_inode* inode = nullptr;
};

errcode_t StashedGetBlocks(ext2_filsys fs, ext2_ino_t ino, blk_t* blocks) {
  auto* stash = static_cast<StashedInode*>(fs->priv_data);
  if (!stash || ino != stash->ino) return EXT2_ET_CALLBACK_NOTHANDLED;
  for (int i = 0; i < EXT2_N_BLOCKS; ++i) blocks[i] = stash->inode->i_block[i];
  return 0;
}

errcode_t StashedCheckDirectory(ext2_filsys fs, ext2_ino_t ino) {
  auto* stash = static_cast<StashedInode*>(fs->priv_data);
  if (!stash || ino != stash->ino) return EXT2_ET_CALLBACK_NOTHANDLED;
  return LINUX_S_ISDIR(stash->inode->i_mode) ? 0 : EXT2_ET_NO_DIRECTORY;
}

errcode_t StashedReadInode(ext2_filsys fs, ext2_ino_t ino, ext2_inode* inode) {
  auto* stash = static_cast<StashedInode*>(fs->priv_data);
  if (!stash || ino != stash->ino) return EXT2_ET_CALLBACK_NOTHANDLED;
  *inode = *stash->inode;
  return 0;
}

// Installs the hooks for the lifetime of the scan.
class InodeShortcuts {
 public:
  InodeShortcuts(ext2_filsys fs, StashedInode* stash) : fs_(fs), saved_priv_(fs->priv_data) {
    fs_->priv_data = stash;
    fs_->get_blocks = StashedGetBlocks;
    fs_->check_directory = StashedCheckDirectory;
    fs_->read_inode = StashedReadInode;
  }
  ~InodeShortcuts() {
    fs_->get_blocks = nullptr;
    fs_->check_directory = nullptr;
    fs_->read_inode = nullptr;
    fs_->priv_data = saved_priv_;
  }
  InodeShortcuts(const InodeShortcuts&) = delete;
  InodeShortcuts& operator=(const InodeShortcuts&) = delete;

 private:
  ext2_filsys fs_;
  void* saved_priv_;
};

// Owns an inode scan.
class InodeScan {
 public:
  explicit InodeScan(ext2_filsys fs) {
    err_ = ext2fs_open_inode_scan(fs, 0, &scan_);
    if (err_) scan_ = nullptr;
  }
  ~InodeScan() {
    if (scan_) ext2fs_close_inode_scan(scan_);
  }
  InodeScan(const InodeScan&) = delete;
  InodeScan& operator=(const InodeScan&) = delete;
  ext2_inode_scan get() const { return scan_; }
  errcode_t error() const { return err_; }

 private:
  ext2_inode_scan scan_ = nullptr;
  errcode_t err_ = 0;
};

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
  mark(first, 1, "superblock");
  for (dgrp_t j = 0; j < fs->desc_blocks; ++j)
    mark(ext2fs_descriptor_block_loc2(fs, first, j), 1, "group descriptor block " + std::to_string(j));
  if (filesystem.options().superblock) {
    const uint64_t backup = filesystem.options().superblock;
    mark(backup, 1, "backup superblock");
    for (dgrp_t j = 0; j < fs->desc_blocks; ++j)
      mark(ext2fs_descriptor_block_loc2(fs, backup, j), 1, "backup group descriptor block");
  }
  if (ext2fs_has_feature_mmp(fs->super)) mark(fs->super->s_mmp_block, 1, "MMP block");

  const uint32_t inodes_per_block = EXT2_INODES_PER_BLOCK(fs->super);
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    const std::string group = "group " + std::to_string(g);
    const uint64_t itable = ext2fs_inode_table_loc(fs, g);
    if ((options.output_is_device || !ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_UNINIT)) &&
        itable) {
      uint64_t count = fs->inode_blocks_per_group;
      if (!options.output_is_device && ext2fs_has_group_desc_csum(fs)) {
        const uint64_t unused = ext2fs_bg_itable_unused(fs, g) / inodes_per_block;
        count = unused < count ? count - unused : 0;
      }
      mark(itable, count, group + ": inode table");
    }
    // Block 0 in a descriptor field means "none".
    const uint64_t block_bitmap = ext2fs_block_bitmap_loc(fs, g);
    if (!ext2fs_bg_flags_test(fs, g, EXT2_BG_BLOCK_UNINIT) && block_bitmap)
      mark(block_bitmap, 1, group + ": block bitmap");
    const uint64_t inode_bitmap = ext2fs_inode_bitmap_loc(fs, g);
    if (!ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_UNINIT) && inode_bitmap)
      mark(inode_bitmap, 1, group + ": inode bitmap");
  }
}

bool IsSpecialFileInode(ext2_filsys fs, ext2_ino_t ino) {
  const ext2_super_block* sb = fs->super;
  return ino == sb->s_journal_inum || ino == sb->s_usr_quota_inum ||
         ino == sb->s_grp_quota_inum || ino == sb->s_prj_quota_inum ||
         ino == sb->s_orphan_file_inum;
}

}  // namespace

MetadataMap BuildMetadataMap(const Filesystem& filesystem, const MapOptions& options,
                             const WarningFn& warn) {
  MetadataMap map;
  ext2_filsys fs = filesystem.get();
  MarkGroupTables(filesystem, options, map, warn);

  InodeScan scan(fs);
  if (scan.error()) {
    warn(filesystem.device() + ": cannot scan inodes: " + ExtErrorText(scan.error()));
    ++map.problems;
    return map;
  }
  InodeTableReadAhead read_ahead(filesystem, scan.get());
  const uint64_t blocks_count = filesystem.blocks_count();
  std::vector<uint8_t> inode_buf(EXT2_INODE_SIZE(fs->super));
  auto* inode = reinterpret_cast<ext2_inode*>(inode_buf.data());
  std::vector<char> block_buf(fs->blocksize * 3);
  StashedInode stash;
  InodeShortcuts shortcuts(fs, &stash);
  for (;;) {
    ext2_ino_t ino = 0;
    errcode_t err = ext2fs_get_next_inode_full(scan.get(), &ino, inode,
                                               static_cast<int>(inode_buf.size()));
    if (err == EXT2_ET_BAD_BLOCK_IN_INODE_TABLE) continue;
    if (err) {
      warn("inode " + std::to_string(ino) + ": " + ExtErrorText(err) + "; skipping it");
      ++map.problems;
      if (ino == 0) break;
      continue;
    }
    if (ino == 0) break;
    if (!inode->i_links_count) continue;
    const uint64_t acl = ext2fs_file_acl_block(fs, inode);
    if (acl) {
      if (acl < blocks_count) {
        map.blocks.Add(acl);
      } else {
        warn("inode " + std::to_string(ino) + ": extended attribute block " + std::to_string(acl) +
             " is past the end of the filesystem");
        ++map.problems;
      }
    }
    if (!ext2fs_inode_has_valid_blocks2(fs, inode)) continue;
    const bool is_dir = LINUX_S_ISDIR(inode->i_mode);
    const bool whole = is_dir || LINUX_S_ISLNK(inode->i_mode) || IsSpecialFileInode(fs, ino);
    const bool has_tree = (inode->i_flags & EXT4_EXTENTS_FL) || inode->i_block[EXT2_IND_BLOCK] ||
                          inode->i_block[EXT2_DIND_BLOCK] || inode->i_block[EXT2_TIND_BLOCK];
    if (!whole && !has_tree && !options.all_data) continue;
    IterateContext ctx{&map, blocks_count, whole || options.all_data, is_dir};
    if (!whole && (inode->i_flags & EXT4_EXTENTS_FL)) {
      // Only the tree's nodes (and with -a whole extents), never block by block.
      const ExtentWalkResult walk = WalkExtentTree(fs, *inode, options.all_data, map.blocks);
      err = walk.error;
      ctx.out_of_range = walk.out_of_range;
    } else {
      stash.ino = ino;
      stash.inode = inode;
      err = ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY, block_buf.data(), MarkBlock, &ctx);
      stash.ino = 0;
    }
    if (err) {
      warn("inode " + std::to_string(ino) + ": cannot read its block map: " + ExtErrorText(err) +
           "; kept what was readable");
      ++map.problems;
    }
    if (ctx.out_of_range) {
      warn("inode " + std::to_string(ino) + ": " + std::to_string(ctx.out_of_range) +
           " block numbers past the end of the filesystem, skipped");
      ++map.problems;
    }
  }
  return map;
}

}  // namespace e2img
