#include "e2img/install.h"

#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "e2img/e2i_writer.h"
#include "e2img/filesystem.h"
#include "util/error.h"
#include "util/file.h"

namespace e2img {
namespace {

// Closes (flushing, when it was changed) an ext2_filsys opened here.
struct FilsysCloser {
  void operator()(ext2_filsys fs) const { ext2fs_free(fs); }
};

// Where the device's first failed write was: set by the io channel's
// write_error hook, which libext2fs calls with the block it was writing.
struct FailedWrite {
  bool seen = false;
  uint64_t offset = 0;
};
FailedWrite g_failed_write;

errcode_t RecordFailedWrite(io_channel io, unsigned long block, int, const void*, size_t, int,
                            errcode_t error) {
  if (!g_failed_write.seen)
    g_failed_write = {true, static_cast<uint64_t>(block) * static_cast<uint64_t>(io->block_size)};
  return error;
}

// The tail of an error part way through -I: what is on the device now.
std::string PartWay(const std::string& what_is_written) {
  std::string where;
  if (g_failed_write.seen)
    where = " at offset " + std::to_string(g_failed_write.offset);
  return where + "; -I stopped part way: " + what_is_written +
         ", so the filesystem there is inconsistent until -I completes; the image is untouched: "
         "rerun the same command to finish";
}

// Reads the header of an e2i image; throws if it is not one.
E2iHeader ReadE2iHeader(const std::string& image, const util::File& image_file) {
  E2iHeader hdr{};
  std::span<uint8_t> raw(reinterpret_cast<uint8_t*>(&hdr), sizeof hdr);
  if (image_file.ReadUpTo(raw, 0) != sizeof hdr || hdr.magic_number != EXT2_ET_MAGIC_E2IMAGE)
    throw util::Error(image + ": not an e2i image (made by e2image without -r or -Q)");
  return hdr;
}

// Writes the inode tables held in the image (group after group, from
// hdr.offset_inode) to where the descriptors put them on fs->io.
errcode_t WriteInodeTables(ext2_filsys fs, const util::File& image_file, const E2iHeader& hdr,
                           const std::function<void(uint64_t)>& progress) {
  constexpr uint64_t kChunkBlocks = 64;
  const uint64_t bs = fs->blocksize;
  std::vector<uint8_t> buf(kChunkBlocks * bs);
  uint64_t offset = hdr.offset_inode;
  uint64_t done = 0;
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    uint64_t block = ext2fs_inode_table_loc(fs, g);
    if (!block)
      return EXT2_ET_MISSING_INODE_TABLE;
    for (uint64_t left = fs->inode_blocks_per_group; left;) {
      const uint64_t n = std::min(left, kChunkBlocks);
      std::span<uint8_t> chunk(buf.data(), n * bs);
      if (image_file.ReadUpTo(chunk, offset) != chunk.size())
        return EXT2_ET_SHORT_READ;
      if (errcode_t err = io_channel_write_blk64(fs->io, block, static_cast<int>(n), buf.data()))
        return err;
      offset += chunk.size();
      block += n;
      left -= n;
      done += n;
      if (progress)
        progress(done);
    }
  }
  return 0;
}

uint64_t BlocksCount(const ext2_super_block& sb) {
  ext2_super_block copy = sb;
  return ext2fs_blocks_count(&copy);
}

// A filesystem's identity and geometry, as a message names them.
std::string Describe(const ext2_super_block& sb) {
  std::string uuid;
  for (size_t i = 0; i < sizeof sb.s_uuid; ++i) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", sb.s_uuid[i]);
    uuid += (i == 4 || i == 6 || i == 8 || i == 10) ? std::string("-") + hex : hex;
  }
  return std::string("UUID ") + uuid + ", " + std::to_string(BlocksCount(sb)) + " blocks of " +
         std::to_string(EXT2_BLOCK_SIZE(&sb)) + " bytes, " + std::to_string(sb.s_inodes_count) +
         " inodes";
}

bool SameGeometry(const ext2_super_block& a, const ext2_super_block& b) {
  return std::equal(std::begin(a.s_uuid), std::end(a.s_uuid), std::begin(b.s_uuid)) &&
         BlocksCount(a) == BlocksCount(b) && a.s_log_block_size == b.s_log_block_size &&
         a.s_inodes_count == b.s_inodes_count && a.s_blocks_per_group == b.s_blocks_per_group &&
         a.s_inodes_per_group == b.s_inodes_per_group &&
         a.s_first_data_block == b.s_first_data_block;
}

// The device's superblock at `superblock` (0: the primary), or null.
std::unique_ptr<struct_ext2_filsys, FilsysCloser> OpenSuperblock(const std::string& device,
                                                                 uint64_t superblock,
                                                                 uint32_t block_size) {
  ext2_filsys opened = nullptr;
  const errcode_t err = ext2fs_open(
      device.c_str(), EXT2_FLAG_64BITS | EXT2_FLAG_SUPER_ONLY | EXT2_FLAG_IGNORE_CSUM_ERRORS,
      static_cast<int>(superblock), superblock ? block_size : 0, unix_io_manager, &opened);
  return std::unique_ptr<struct_ext2_filsys, FilsysCloser>(err ? nullptr : opened);
}

// Refuses to install the metadata of another filesystem: the device's
// superblock (the primary, or where the image puts the first backup when
// the primary is gone, the case -I is for) must carry the image's UUID and
// geometry. A device with neither has nothing to compare with.
void CheckImageFitsDevice(const ext2_super_block& image_sb, const std::string& image,
                          const std::string& device) {
  auto fs = OpenSuperblock(device, 0, 0);
  if (!fs) {
    uint64_t group = 1;
    if ((image_sb.s_feature_compat & EXT4_FEATURE_COMPAT_SPARSE_SUPER2) && image_sb.s_backup_bgs[0])
      group = image_sb.s_backup_bgs[0];
    const uint64_t backup =
        uint64_t{image_sb.s_first_data_block} + group * image_sb.s_blocks_per_group;
    fs = OpenSuperblock(device, backup, EXT2_BLOCK_SIZE(&image_sb));
  }
  if (fs && !SameGeometry(*fs->super, image_sb))
    throw util::Error(image + " (" + Describe(image_sb) + ") is not an image of " + device + " (" +
                      Describe(*fs->super) + "); use -f to install anyway");
}

// Refuses an image whose descriptors put a bitmap or an inode table outside
// the filesystem: installing it would write past the filesystem's end (a
// huge sparse file, or another partition's blocks), whatever -f says.
void CheckTablesInside(ext2_filsys fs, const std::string& image) {
  if (const auto bad = FirstMisplacedTable(fs, /*within_groups=*/false))
    throw util::Error(
        image + ": group " + std::to_string(bad->group) + ": " + bad->name + " at block " +
        std::to_string(bad->block) + " is outside the filesystem (blocks " +
        std::to_string(fs->super->s_first_data_block) + " to " +
        std::to_string(ext2fs_blocks_count(fs->super) - 1) + "); -I cannot install it");
}

}  // namespace

E2iInstallSize E2iInstallBlocks(const std::string& image) {
  util::File image_file = util::File::Open(image, O_RDONLY);
  ReadE2iHeader(image, image_file);
  ext2_filsys opened = nullptr;
  errcode_t err = ext2fs_open(
      image.c_str(), EXT2_FLAG_64BITS | EXT2_FLAG_IMAGE_FILE | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
      unix_io_manager, &opened);
  if (err)
    throw util::Error(image + ": cannot open the e2i image: " + ExtErrorText(err));
  std::unique_ptr<struct_ext2_filsys, FilsysCloser> fs(opened);
  return {uint64_t{fs->group_desc_count} * fs->inode_blocks_per_group, fs->blocksize};
}

void InstallE2iImage(const std::string& image, const std::string& device,
                     const std::function<void(uint64_t)>& progress, bool force) {
  ExtErrorText(0);
  util::File image_file = util::File::Open(image, O_RDONLY);
  const E2iHeader hdr = ReadE2iHeader(image, image_file);

  ext2_filsys opened = nullptr;
  errcode_t err = ext2fs_open(
      image.c_str(),
      EXT2_FLAG_RW | EXT2_FLAG_64BITS | EXT2_FLAG_IMAGE_FILE | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
      unix_io_manager, &opened);
  if (err)
    throw util::Error(image + ": cannot open the e2i image: " + ExtErrorText(err));
  std::unique_ptr<struct_ext2_filsys, FilsysCloser> fs(opened);
  CheckTablesInside(fs.get(), image);
  err = ext2fs_read_bitmaps(fs.get());
  if (err)
    throw util::Error(image + ": cannot read the bitmaps: " + ExtErrorText(err));
  if (!force)
    CheckImageFitsDevice(*fs->super, image, device);

  io_channel io = nullptr;
  err = unix_io_manager->open(device.c_str(), IO_FLAG_RW, &io);
  if (err)
    throw util::Error(device + ": cannot open: " + ExtErrorText(err));
  g_failed_write = {};
  io->write_error = RecordFailedWrite;
  err = ext2fs_rewrite_to_io(fs.get(), io);
  if (err) {
    io_channel_close(io);
    throw util::Error(device + ": cannot write to it: " + ExtErrorText(err));
  }
  err = WriteInodeTables(fs.get(), image_file, hdr, progress);
  if (err)
    throw util::Error(
        device + ": cannot write the inode tables: " + ExtErrorText(err) +
        PartWay("some of the inode tables are written to " + device +
                ", the rest and the superblock, group descriptors and bitmaps are not"));
  // Writes the superblock, descriptors and bitmaps, then frees.
  err = ext2fs_close_free(&opened);
  fs.release();
  if (err)
    throw util::Error(device + ": cannot write the superblock and bitmaps: " + ExtErrorText(err) +
                      PartWay("the inode tables are written to " + device +
                              ", the superblock, group descriptors and bitmaps at most in part"));
}

}  // namespace e2img
