#include "e2img/filesystem.h"

#include <et/com_err.h>
#include <ext2fs/ext2_err.h>
#include <fcntl.h>

#include "e2img/desc_check.h"
#include "e2img/unreadable.h"
#include "qcow2/format.h"
#include "util/content_type.h"
#include "util/error.h"
#include "util/file.h"

namespace e2img {

std::string ExtErrorText(errcode_t code) {
  static const bool tables_added = [] {
    initialize_ext2_error_table();
    return true;
  }();
  (void)tables_added;
  return error_message(code);
}

std::optional<MisplacedTable> FirstMisplacedTable(ext2_filsys fs, bool within_groups) {
  const uint64_t blocks_count = ext2fs_blocks_count(fs->super);
  const bool by_group = within_groups && !ext2fs_has_feature_flex_bg(fs->super);
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    const uint64_t first =
        by_group ? ext2fs_group_first_block2(fs, g) : fs->super->s_first_data_block;
    const uint64_t last = by_group ? ext2fs_group_last_block2(fs, g) : blocks_count - 1;
    const MisplacedTable tables[] = {
        {g, "block bitmap", ext2fs_block_bitmap_loc(fs, g), 1},
        {g, "inode bitmap", ext2fs_inode_bitmap_loc(fs, g), 1},
        {g, "inode table", ext2fs_inode_table_loc(fs, g), fs->inode_blocks_per_group}};
    for (const MisplacedTable& t : tables)
      if (t.block < first || t.block > last || (t.count > 0 && t.count - 1 > last - t.block))
        return t;
  }
  return std::nullopt;
}

namespace {

// The open errors after which e2fsck tries the backup superblocks.
// A read error of the medium (the primary superblock or its descriptors
// unreadable on a failing disk) is one too.
bool PrimaryUnusable(errcode_t err) {
  return err == EXT2_ET_BAD_MAGIC || err == EXT2_ET_SB_CSUM_INVALID ||
         err == EXT2_ET_CORRUPT_SUPERBLOCK ||
         (err > 0 && err < 4096 && IsMediaError(static_cast<int>(err)));
}

// " (group N: FIELD at block B)" for the first descriptor whose bitmaps or
// inode table lie outside the group's range ("" when none does).
std::string FirstBadGroupText(ext2_filsys fs) {
  const auto bad = FirstMisplacedTable(fs, /*within_groups=*/true);
  return bad ? " (group " + std::to_string(bad->group) + ": " + bad->name + " at block " +
                   std::to_string(bad->block) + ")"
             : "";
}

}  // namespace

errcode_t Filesystem::TryOpen(uint64_t superblock, uint32_t blocksize, bool ignore_csum) {
  Close();
  int flags = EXT2_FLAG_64BITS | EXT2_FLAG_NOFREE_ON_ERROR;
  if (force_)
    flags |= EXT2_FLAG_FORCE;
  if (ignore_csum)
    flags |= EXT2_FLAG_IGNORE_CSUM_ERRORS;
  if (options_.read_write)
    flags |= EXT2_FLAG_RW;
  const std::string io_options = "offset=" + std::to_string(options_.source_offset);
  ext2_filsys fs = nullptr;
  errcode_t err = 0;
  if (superblock && !blocksize) {
    // As e2fsck: probe the block size that goes with a given superblock.
    for (uint32_t bs = EXT2_MIN_BLOCK_SIZE; bs <= EXT2_MAX_BLOCK_SIZE; bs *= 2) {
      if (fs)
        ext2fs_free(fs);
      fs = nullptr;
      err = ext2fs_open2(device_.c_str(), io_options.c_str(), flags, static_cast<int>(superblock),
                         bs, unix_io_manager, &fs);
      if (!err)
        break;
    }
  } else {
    err = ext2fs_open2(device_.c_str(), io_options.c_str(), flags, static_cast<int>(superblock),
                       blocksize, unix_io_manager, &fs);
  }
  if (err) {
    if (fs)
      ext2fs_free(fs);
    return err;
  }
  fs->flags |= EXT2_FLAG_IGNORE_CSUM_ERRORS;
  // Bitmaps libext2fs allocates for us (ext2fs_check_desc's, for one) as
  // trees of extents, as e2fsck does: a bit array would take 512 MiB on a
  // 16 TiB filesystem.
  fs->default_bitmap_type = EXT2FS_BMAP64_RBTREE;
  fs_ = fs;
  superblock_used_ = superblock;
  return 0;
}

bool Filesystem::FindBackup(uint64_t* superblock, uint32_t* blocksize) const {
  if (fs_) {
    *superblock = fs_->super->s_blocks_per_group + fs_->super->s_first_data_block;
    *blocksize = fs_->blocksize;
    return true;
  }
  util::File file;
  try {
    file = util::File::Open(device_, O_RDONLY);
  } catch (const util::Error&) {
    return false;
  }
  for (uint32_t bs = EXT2_MIN_BLOCK_SIZE; bs <= EXT2_MAX_BLOCK_SIZE; bs *= 2) {
    const uint64_t sb = uint64_t{bs} * 8 + (bs == 1024 ? 1 : 0);
    ext2_super_block super{};
    std::span<uint8_t> buf(reinterpret_cast<uint8_t*>(&super), sizeof super);
    if (file.ReadUpTo(buf, options_.source_offset + sb * bs) != sizeof super)
      continue;
    if (super.s_magic == EXT2_SUPER_MAGIC && static_cast<uint32_t>(EXT2_BLOCK_SIZE(&super)) == bs) {
      *superblock = sb;
      *blocksize = bs;
      return true;
    }
  }
  return false;
}

Filesystem::Filesystem(const std::string& device, const OpenOptions& options)
    : device_(device), options_(options) {
  ExtErrorText(0);  // make sure the error table is registered
  if (options.superblock) {
    const errcode_t err = TryOpen(options.superblock, options.blocksize, true);
    if (err)
      throw util::Error(device + ": cannot open filesystem with superblock " +
                        std::to_string(options.superblock) + ": " + ExtErrorText(err));
    fallback_reason_ = "superblock " + std::to_string(options.superblock) + " given with -b";
    return;
  }
  // Without ignoring checksum errors first, as e2fsck: a superblock with a
  // bad checksum sends it to the backups.
  const errcode_t primary_err = TryOpen(0, 0, !options.backup_fallback);
  errcode_t desc_err = 0;
  if (!primary_err && options.backup_fallback)
    desc_err = CheckDescriptors(fs_);
  const bool primary_bad = PrimaryUnusable(primary_err) || desc_err;
  if (primary_bad && options.backup_fallback && (!fs_ || fs_->group_desc_count > 1)) {
    uint64_t sb = 0;
    uint32_t bs = 0;
    const std::string why = primary_err ? "primary superblock: " + ExtErrorText(primary_err)
                                        : "primary group descriptors: " + ExtErrorText(desc_err) +
                                              FirstBadGroupText(fs_);
    if (FindBackup(&sb, &bs)) {
      const errcode_t backup_err = TryOpen(sb, bs, false);
      if (!backup_err) {
        fallback_reason_ = why + "; using the backup superblock at block " + std::to_string(sb) +
                           " (block size " + std::to_string(bs) + ")";
        return;
      }
    }
    if (!primary_err) {
      TryOpen(0, 0, true);
      if (fs_) {
        fallback_reason_.clear();
        return;
      }
    }
  }
  if (primary_err == EXT2_ET_SB_CSUM_INVALID && TryOpen(0, 0, true) == 0)
    return;
  if (primary_err == EXT2_ET_UNSUPP_FEATURE || primary_err == EXT2_ET_RO_UNSUPP_FEATURE) {
    // An image is wanted most when the filesystem is strange: go ahead.
    force_ = true;
    if (TryOpen(0, 0, true) == 0) {
      open_warning_ = device + ": " + ExtErrorText(primary_err) + "; imaging it anyway";
      return;
    }
  }
  if (fs_)
    return;
  std::string message = device + ": cannot open filesystem: " + ExtErrorText(primary_err);
  const std::string looks = DescribeNonExtSource(device, options.source_offset);
  if (!looks.empty())
    message += " (found: " + looks + ")";
  throw util::Error(message);
}

void Filesystem::Close() {
  if (fs_)
    ext2fs_free(fs_);
  fs_ = nullptr;
}

Filesystem::~Filesystem() {
  Close();
}

std::string DescribeNonExtSource(const std::string& device, uint64_t offset) {
  try {
    const util::File file = util::File::Open(device, O_RDONLY);
    uint8_t magic[4];
    if (file.ReadUpTo(magic, offset) == sizeof magic && qcow2::HasQcow2Magic(magic))
      return "qcow2 image";
    return util::DescribeContent(file, offset);
  } catch (const util::Error&) {
    return "";
  }
}

}  // namespace e2img
