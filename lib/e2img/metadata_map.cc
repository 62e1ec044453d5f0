#include "e2img/metadata_map.h"

#include <ext2fs/ext2_err.h>

#include <algorithm>
#include <optional>
#include <unordered_set>
#include <vector>

#include "e2img/dir_refs.h"
#include "e2img/group_tables.h"
#include "e2img/inode_blocks.h"
#include "e2img/read_ahead.h"

namespace e2img {
namespace {

// Returned by the end-of-group callback to stop the scan at each group.
constexpr errcode_t kGroupDone = 0x7e2e0001;

errcode_t StopAtGroupEnd(ext2_filsys, ext2_inode_scan, dgrp_t, void*) {
  return kGroupDone;
}

// Inode hooks: libext2fs asks for the inode we already hold instead of
// reading the inode table again (as e2image does).
struct StashedInode {
  ext2_ino_t ino = 0;
  const ext2_inode* inode = nullptr;
};

errcode_t StashedGetBlocks(ext2_filsys fs, ext2_ino_t ino, blk_t* blocks) {
  auto* stash = static_cast<StashedInode*>(fs->priv_data);
  if (!stash || ino != stash->ino)
    return EXT2_ET_CALLBACK_NOTHANDLED;
  for (int i = 0; i < EXT2_N_BLOCKS; ++i)
    blocks[i] = stash->inode->i_block[i];
  return 0;
}

errcode_t StashedCheckDirectory(ext2_filsys fs, ext2_ino_t ino) {
  auto* stash = static_cast<StashedInode*>(fs->priv_data);
  if (!stash || ino != stash->ino)
    return EXT2_ET_CALLBACK_NOTHANDLED;
  return LINUX_S_ISDIR(stash->inode->i_mode) ? 0 : EXT2_ET_NO_DIRECTORY;
}

errcode_t StashedReadInode(ext2_filsys fs, ext2_ino_t ino, ext2_inode* inode) {
  auto* stash = static_cast<StashedInode*>(fs->priv_data);
  if (!stash || ino != stash->ino)
    return EXT2_ET_CALLBACK_NOTHANDLED;
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
    if (err_)
      scan_ = nullptr;
  }
  ~InodeScan() {
    if (scan_)
      ext2fs_close_inode_scan(scan_);
  }
  InodeScan(const InodeScan&) = delete;
  InodeScan& operator=(const InodeScan&) = delete;
  ext2_inode_scan get() const { return scan_; }
  errcode_t error() const { return err_; }

 private:
  ext2_inode_scan scan_ = nullptr;
  errcode_t err_ = 0;
};

// Hides inode tables that lie outside the filesystem from libext2fs's scan
// for its lifetime (the scan would refuse to start, or stop, at the first
// one); MarkGroupTables has reported them.
class OutOfRangeTablesHidden {
 public:
  explicit OutOfRangeTablesHidden(ext2_filsys fs) : fs_(fs) {
    const uint64_t blocks_count = ext2fs_blocks_count(fs->super);
    for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
      const uint64_t loc = ext2fs_inode_table_loc(fs, g);
      if (loc && (loc < fs->super->s_first_data_block ||
                  loc + fs->inode_blocks_per_group > blocks_count)) {
        hidden_.push_back({g, loc});
        ext2fs_inode_table_loc_set(fs, g, 0);
      }
    }
  }
  ~OutOfRangeTablesHidden() {
    for (const auto& [group, loc] : hidden_)
      ext2fs_inode_table_loc_set(fs_, group, loc);
  }
  OutOfRangeTablesHidden(const OutOfRangeTablesHidden&) = delete;
  OutOfRangeTablesHidden& operator=(const OutOfRangeTablesHidden&) = delete;

 private:
  ext2_filsys fs_;
  std::vector<std::pair<dgrp_t, uint64_t>> hidden_;
};

bool IsSpecialFileInode(ext2_filsys fs, ext2_ino_t ino) {
  const ext2_super_block* sb = fs->super;
  return ino == sb->s_journal_inum || ino == sb->s_usr_quota_inum || ino == sb->s_grp_quota_inum ||
         ino == sb->s_prj_quota_inum || ino == sb->s_orphan_file_inum;
}

// e2fsck reads logical block 0 of an inode whose mode is neither directory,
// regular file nor symlink, to see whether it is really a directory
// (check_is_really_dir), unless it looks like a genuine device file.
bool E2fsckProbesFirstBlock(ext2_filsys fs, const ext2_inode* inode) {
  const uint16_t mode = inode->i_mode;
  if (LINUX_S_ISDIR(mode) || LINUX_S_ISREG(mode) || LINUX_S_ISLNK(mode) || !inode->i_block[0])
    return false;
  if (inode->i_flags & EXT4_INLINE_DATA_FL)
    return false;
  bool not_device = (inode->i_flags & EXT4_EXTENTS_FL) && ext2fs_has_feature_extents(fs->super);
  if (!not_device) {
    const uint64_t blocks_count = ext2fs_blocks_count(fs->super);
    for (int i = 0; i < EXT2_N_BLOCKS; ++i) {
      const uint64_t blk = inode->i_block[i];
      if (!blk)
        continue;
      if (i >= 4)
        not_device = true;
      if (blk < fs->super->s_first_data_block || blk >= blocks_count)
        return false;
    }
  }
  const bool device = LINUX_S_ISCHR(mode) || LINUX_S_ISBLK(mode);
  return !(device && inode->i_links_count == 1 && !not_device);
}

// Widens every run to whole clusters (bigalloc), as e2image's cluster bitmap does.
void RoundToClusters(ext2_filsys fs, BlockSet& blocks) {
  const uint64_t ratio = EXT2FS_CLUSTER_RATIO(fs);
  if (ratio <= 1)
    return;
  const uint64_t blocks_count = ext2fs_blocks_count(fs->super);
  BlockSet rounded;
  for (const BlockExtent& e : blocks.Extents()) {
    const uint64_t start = e.start / ratio * ratio;
    const uint64_t end = std::min(blocks_count, (e.end() + ratio - 1) / ratio * ratio);
    rounded.Add(start, end - start);
  }
  blocks = std::move(rounded);
}

// The inode pass: every in-use inode's xattr block and block map.
class InodePass {
 public:
  InodePass(const Filesystem& filesystem, const MapOptions& options, MetadataMap& map,
            const WarningFn& warn)
      : fs_(filesystem.get()),
        options_(options),
        map_(map),
        warn_(warn),
        walker_(fs_, map, warn),
        refs_(fs_),
        blocks_count_(filesystem.blocks_count()) {}

  void Run(const Filesystem& filesystem) {
    const std::string& device = filesystem.device();
    OutOfRangeTablesHidden hidden(fs_);
    InodeTableReadAhead read_ahead(filesystem);
    InodeScan scan(fs_);
    if (scan.error()) {
      warn_(device + ": cannot scan inodes: " + ExtErrorText(scan.error()));
      ++map_.problems;
      return;
    }
    ext2fs_set_inode_callback(scan.get(), StopAtGroupEnd, nullptr);
    ext2fs_inode_scan_flags(scan.get(), EXT2_SF_SKIP_MISSING_ITABLE, 0);
    std::vector<uint8_t> inode_buf(EXT2_INODE_SIZE(fs_->super));
    auto* inode = reinterpret_cast<ext2_inode*>(inode_buf.data());
    StashedInode stash;
    InodeShortcuts shortcuts(fs_, &stash);
    for (dgrp_t g = 0; g < fs_->group_desc_count; ++g) {
      errcode_t err = ext2fs_inode_scan_goto_blockgroup(scan.get(), g);
      while (!err) {
        ext2_ino_t ino = 0;
        err =
            ext2fs_get_next_inode_full(scan.get(), &ino, inode, static_cast<int>(inode_buf.size()));
        if (err == EXT2_ET_BAD_BLOCK_IN_INODE_TABLE)
          err = 0;
        if (err || ino == 0)
          break;
        stash.ino = ino;
        stash.inode = inode;
        Process(ino, inode);
        stash.ino = 0;
      }
      read_ahead.GroupDone(g);
      if (options_.scan_progress)
        options_.scan_progress(uint64_t{g + 1} * fs_->inode_blocks_per_group);
      if (err && err != kGroupDone) {
        warn_("group " + std::to_string(g) + ": cannot read its inode table: " + ExtErrorText(err) +
              "; its inodes are skipped");
        ++map_.problems;
      }
    }
    ProcessSkippedSpecialInodes(inode, inode_buf.size(), stash);
    if (options_.inodes_scanned)
      options_.inodes_scanned(map_);
    ReadDirectoryBlocks(filesystem);
    FollowUnscannedParents(inode_buf.size());
    refs_.MarkSkippedInodes(map_, warn_);
  }

 private:
  // Parses every directory block for the inodes it names. The blocks are
  // scattered and libext2fs reads them one run at a time, so the kernel is
  // asked to fetch them a window ahead: many reads in flight instead of one.
  // The copy then finds them in the page cache.
  void ReadDirectoryBlocks(const Filesystem& filesystem) {
    const std::vector<BlockExtent>& extents = map_.directory_blocks.Extents();
    const util::File file = OpenForReadAhead(filesystem);
    std::optional<ExtentReadAhead> read_ahead;
    if (file.is_open() && !extents.empty())
      read_ahead.emplace(file, extents, filesystem.options().source_offset, fs_->blocksize,
                         /*skip_holes=*/false);
    refs_.AddDirectoryBlocks(map_, warn_, [&read_ahead](uint64_t blocks_read) {
      if (read_ahead)
        read_ahead->ReaderDone(blocks_read);
    });
  }

  // e2fsck reads the reserved inodes and those the superblock names (journal,
  // quota, orphan file) directly, even where the scan skips them.
  void ProcessSkippedSpecialInodes(ext2_inode* inode, size_t inode_size, StashedInode& stash) {
    const ext2_super_block* sb = fs_->super;
    // The reserved inodes sit before s_first_ino, which a damaged superblock
    // may set to anything: never past the inodes of group 0 (or that exist).
    const uint64_t first_ino =
        std::min<uint64_t>({EXT2_FIRST_INODE(sb), uint64_t{sb->s_inodes_count} + 1,
                            uint64_t{sb->s_inodes_per_group} + 1});
    std::vector<ext2_ino_t> special;
    for (uint64_t ino = 1; ino < first_ino; ++ino)
      special.push_back(static_cast<ext2_ino_t>(ino));
    for (const ext2_ino_t ino : {sb->s_journal_inum, sb->s_usr_quota_inum, sb->s_grp_quota_inum,
                                 sb->s_prj_quota_inum, sb->s_orphan_file_inum})
      if (ino >= first_ino)
        special.push_back(ino);
    for (const ext2_ino_t ino : special) {
      const uint64_t block = SkippedInodeBlock(fs_, ino);
      if (!block)
        continue;
      map_.blocks.Add(block);
      KeepInodeBytes(fs_, ino, map_);
      if (ext2fs_read_inode_full(fs_, ino, inode, static_cast<int>(inode_size)))
        continue;
      stash.ino = ino;
      stash.inode = inode;
      Process(ino, inode);
      stash.ino = 0;
    }
  }

  void Process(ext2_ino_t ino, ext2_inode* inode) {
    if (ino == EXT2_BAD_INO) {
      ProcessBadBlocksInode(inode);
      return;
    }
    if (!inode->i_links_count) {
      if (LINUX_S_ISDIR(inode->i_mode) && ext2fs_inode_has_valid_blocks2(fs_, inode))
        deleted_dirs_.push_back(ino);
      return;
    }
    if (options_.observe_inode)
      options_.observe_inode(ino, *inode);
    const uint64_t acl = ext2fs_file_acl_block(fs_, inode);
    if (acl) {
      if (acl < blocks_count_ && acl >= fs_->super->s_first_data_block) {
        map_.blocks.Add(acl);
      } else {
        warn_("inode " + std::to_string(ino) + ": extended attribute block " + std::to_string(acl) +
              " is outside the filesystem; skipped");
        ++map_.problems;
      }
    }
    const bool is_dir = LINUX_S_ISDIR(inode->i_mode);
    const bool probe = E2fsckProbesFirstBlock(fs_, inode);
    if (!ext2fs_inode_has_valid_blocks2(fs_, inode)) {
      if (is_dir && (inode->i_flags & EXT4_INLINE_DATA_FL)) {
        // An inline directory: the parent, then entries in the rest of i_block.
        const auto* raw = reinterpret_cast<const uint8_t*>(inode->i_block);
        refs_.AddParent(raw[0] | raw[1] << 8 | raw[2] << 16 | uint32_t{raw[3]} << 24);
        refs_.AddEntries(std::span<const uint8_t>(raw + 4, sizeof inode->i_block - 4));
      }
      if (!probe)
        return;
      // Not a directory, file or symlink by its mode: e2fsck maps logical
      // block 0 (through the extent tree if there is one) and reads it.
      if (inode->i_flags & EXT4_EXTENTS_FL)
        KeepFirstBlock(walker_.Walk(ino, inode, /*keep_data=*/false, /*is_dir=*/false));
      else
        KeepFirstBlock(InodeWalk{inode->i_block[0], 0});
      return;
    }
    const bool whole = is_dir || LINUX_S_ISLNK(inode->i_mode) || IsSpecialFileInode(fs_, ino);
    const bool has_tree = (inode->i_flags & EXT4_EXTENTS_FL) || inode->i_block[EXT2_IND_BLOCK] ||
                          inode->i_block[EXT2_DIND_BLOCK] || inode->i_block[EXT2_TIND_BLOCK];
    if (!whole && !has_tree && !options_.all_data)
      return;
    KeepFirstBlock(walker_.Walk(ino, inode, whole || options_.all_data, is_dir), false);
  }

  // libext2fs reads the bad blocks list through inode 1's block map whatever
  // its mode and link count say: its indirect blocks (or extent tree) are
  // kept, never the bad blocks it lists.
  void ProcessBadBlocksInode(ext2_inode* inode) {
    const bool has_tree = (inode->i_flags & EXT4_EXTENTS_FL) || inode->i_block[EXT2_IND_BLOCK] ||
                          inode->i_block[EXT2_DIND_BLOCK] || inode->i_block[EXT2_TIND_BLOCK];
    if (has_tree)
      KeepFirstBlock(walker_.Walk(EXT2_BAD_INO, inode, /*keep_data=*/false, /*is_dir=*/false),
                     false);
  }

  // e2fsck prints a path by reading the directories ".." entries name, also
  // those the scan passes over: deleted ones (link count 0, blocks still
  // mapped) and those in the unused part of an inode table. They are walked
  // as directories, and the ".." entries of their blocks followed in turn.
  void FollowUnscannedParents(size_t inode_size) {
    std::sort(deleted_dirs_.begin(), deleted_dirs_.end());
    std::vector<uint8_t> inode_buf(inode_size);
    auto* inode = reinterpret_cast<ext2_inode*>(inode_buf.data());
    std::vector<uint32_t> parents = refs_.TakeParents();
    while (!parents.empty()) {
      MetadataMap found;
      InodeBlockWalker walker(fs_, found, warn_);
      for (const uint32_t ino : parents) {
        const bool deleted = std::binary_search(deleted_dirs_.begin(), deleted_dirs_.end(), ino);
        if ((!deleted && !SkippedInodeBlock(fs_, ino)) || !followed_.insert(ino).second ||
            ext2fs_read_inode_full(fs_, ino, inode, static_cast<int>(inode_size)) ||
            !LINUX_S_ISDIR(inode->i_mode) || !ext2fs_inode_has_valid_blocks2(fs_, inode))
          continue;
        warn_("inode " + std::to_string(ino) + ": " +
              (deleted ? "deleted directory" : "directory in the unused part of its inode table") +
              " named by \"..\" entries; its blocks are kept, as e2fsck reads them");
        ++map_.problems;
        // Their names are scrambled (-s) as those of any directory kept.
        if (options_.observe_inode)
          options_.observe_inode(ino, *inode);
        map_.problems += walker.Walk(ino, inode, /*keep_data=*/true, /*is_dir=*/true).problems;
      }
      refs_.AddDirectoryBlocks(found.directory_blocks, found, warn_);
      map_.problems += found.problems;
      for (const BlockExtent& e : found.blocks.Extents())
        map_.blocks.Add(e.start, e.count);
      for (const BlockExtent& e : found.directory_blocks.Extents())
        map_.directory_blocks.Add(e.start, e.count);
      parents = refs_.TakeParents();
    }
  }

  // Counts the walk's problems; keeps logical block 0 when e2fsck reads it.
  void KeepFirstBlock(const InodeWalk& walk, bool keep = true) {
    map_.problems += walk.problems;
    if (keep && walk.first_block && *walk.first_block < blocks_count_ &&
        *walk.first_block >= fs_->super->s_first_data_block)
      map_.blocks.Add(*walk.first_block);
  }

  ext2_filsys fs_;
  const MapOptions& options_;
  MetadataMap& map_;
  const WarningFn& warn_;
  InodeBlockWalker walker_;
  DirectoryReferences refs_;
  uint64_t blocks_count_;
  std::vector<ext2_ino_t> deleted_dirs_;  // directories with link count 0, blocks mapped
  std::unordered_set<ext2_ino_t> followed_;
};

}  // namespace

uint64_t ScanTotal(const Filesystem& fs) {
  return uint64_t{fs.get()->group_desc_count} * fs.get()->inode_blocks_per_group;
}

MetadataMap BuildMetadataMap(const Filesystem& filesystem, const MapOptions& options,
                             const WarningFn& warn) {
  MetadataMap map;
  MarkGroupTables(filesystem, options, map, warn);
  if (options.tables_marked)
    options.tables_marked(map);
  InodePass(filesystem, options, map, warn).Run(filesystem);
  RoundToClusters(filesystem.get(), map.blocks);
  return map;
}

}  // namespace e2img
