// An ext2/3/4 filesystem opened through libext2fs, owned with RAII. Opening
// follows e2fsck: when the primary superblock or its group descriptors are
// unusable, the first backup superblock is tried, and the choice is reported.
#pragma once

#include <ext2fs/ext2fs.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

namespace e2img {

// A group's bitmap or inode table that lies outside where it may be.
struct MisplacedTable {
  dgrp_t group;
  const char* name;
  uint64_t block;
  uint64_t count;
};
// The first such table: outside its group's blocks (the whole filesystem's
// with flex_bg) when within_groups, else outside the filesystem.
std::optional<MisplacedTable> FirstMisplacedTable(ext2_filsys fs, bool within_groups);

// Where and how to open the source.
struct OpenOptions {
  uint64_t source_offset = 0;   // -o: byte offset of the filesystem in the source
  uint64_t superblock = 0;      // -b: backup superblock block number (0 = primary)
  uint32_t blocksize = 0;       // -B: block size to go with -b (0 = probe)
  bool read_write = false;      // -I and -ra only
  bool backup_fallback = true;  // try the backups as e2fsck does
};

// libext2fs's message for an errcode_t.
std::string ExtErrorText(errcode_t code);

// Owns an ext2_filsys; closes it (without writing) on destruction.
class Filesystem {
 public:
  // Opens device; throws util::Error naming the device and the cause.
  Filesystem(const std::string& device, const OpenOptions& options);
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  ext2_filsys get() const { return fs_; }
  ext2_super_block* super() const { return fs_->super; }
  const std::string& device() const { return device_; }
  uint32_t block_size() const { return fs_->blocksize; }
  uint64_t blocks_count() const { return ext2fs_blocks_count(fs_->super); }
  uint64_t size_bytes() const { return blocks_count() * block_size(); }
  // The block holding the primary superblock (byte 1024), wherever
  // s_first_data_block says the data starts.
  uint64_t superblock_block() const { return 1024 / block_size(); }
  // Blocks below this are never copied (the boot block of 1k filesystems).
  uint64_t first_copied_block() const {
    return std::min<uint64_t>(fs_->super->s_first_data_block, superblock_block());
  }
  const OpenOptions& options() const { return options_; }
  // The superblock the filesystem was opened with: 0 for the primary, else
  // the block number of the backup (given with -b, or chosen as e2fsck does).
  uint64_t superblock_used() const { return superblock_used_; }
  // Why the primary was not used ("" when it was).
  const std::string& fallback_reason() const { return fallback_reason_; }
  // A warning about how the filesystem was opened ("" for none), e.g.
  // unknown features ignored.
  const std::string& open_warning() const { return open_warning_; }

 private:
  errcode_t TryOpen(uint64_t superblock, uint32_t blocksize, bool ignore_csum);
  // Where e2fsck looks for the first backup superblock; false when none found.
  bool FindBackup(uint64_t* superblock, uint32_t* blocksize) const;
  void Close();

  ext2_filsys fs_ = nullptr;
  std::string device_;
  OpenOptions options_;
  uint64_t superblock_used_ = 0;
  std::string fallback_reason_;
  std::string open_warning_;
  bool force_ = false;  // open despite unknown features
};

// What a source that is not an ext filesystem holds ("qcow2 image", or
// util::DescribeContent's words; "" when unknown).
std::string DescribeNonExtSource(const std::string& device, uint64_t offset);

}  // namespace e2img
