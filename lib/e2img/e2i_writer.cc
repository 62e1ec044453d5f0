#include "e2img/e2i_writer.h"

#include <ext2fs/ext2_err.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "util/error.h"

namespace e2img {
namespace {

// The current write position of fd.
uint64_t Position(const util::File& out) {
  const off_t pos = ::lseek(out.fd(), 0, SEEK_CUR);
  if (pos < 0)
    throw util::Error(out.path() + ": cannot seek: " + util::ErrnoText(errno));
  return static_cast<uint64_t>(pos);
}

void Skip(const util::File& out, uint64_t bytes) {
  if (::lseek(out.fd(), static_cast<off_t>(bytes), SEEK_CUR) < 0)
    throw util::Error(out.path() + ": cannot seek: " + util::ErrnoText(errno));
}

void CheckLib(errcode_t err, const util::File& out, const char* what) {
  if (err)
    throw util::Error(out.path() + ": cannot write the " + what + ": " + ExtErrorText(err));
}

// A bitmap section as libext2fs writes it, from the filesystem's bitmaps;
// zeros (with a warning) when they cannot be read.
uint64_t WriteBitmapSection(ext2_filsys fs, const util::File& out, bool inodes,
                            const WarningFn& warn) {
  const errcode_t read_err = inodes ? ext2fs_read_inode_bitmap(fs) : ext2fs_read_block_bitmap(fs);
  if (!read_err) {
    CheckLib(ext2fs_image_bitmap_write(fs, out.fd(), inodes ? IMAGER_FLAG_INODEMAP : 0), out,
             inodes ? "inode bitmaps" : "block bitmaps");
    return 0;
  }
  const uint64_t per_group =
      inodes ? fs->super->s_inodes_per_group / 8 : EXT2_CLUSTERS_PER_GROUP(fs->super) / 8;
  uint64_t size = per_group * fs->group_desc_count;
  size = (size + fs->blocksize - 1) / fs->blocksize * fs->blocksize;
  warn(std::string("cannot read the ") + (inodes ? "inode" : "block") +
       " bitmaps: " + ExtErrorText(read_err) + "; the image has empty ones");
  const std::vector<uint8_t> zeros(size, 0);
  out.Write(zeros);
  return 1;
}

}  // namespace

uint64_t E2iBlockCount(const Filesystem& fs) {
  return uint64_t{fs.get()->group_desc_count} * fs.get()->inode_blocks_per_group;
}

uint64_t WriteE2iImage(const Filesystem& filesystem, MetadataMap& map, const util::File& out,
                       const std::function<void(uint64_t)>& progress, const WarningFn& warn,
                       const BlockTransform& transform) {
  ext2_filsys fs = filesystem.get();
  const uint32_t bs = fs->blocksize;
  const uint64_t blocks_count = filesystem.blocks_count();
  uint64_t problems = 0;
  E2iHeader hdr{};
  const std::vector<uint8_t> header_block(bs, 0);
  out.Write(header_block);

  hdr.offset_super = static_cast<uint32_t>(Position(out));
  CheckLib(ext2fs_image_super_write(fs, out.fd(), 0), out, "superblock");

  hdr.offset_inode = static_cast<uint32_t>(Position(out));
  std::vector<uint8_t> block(bs);
  uint64_t done = 0;
  for (dgrp_t g = 0; g < fs->group_desc_count; ++g) {
    const uint64_t itable = ext2fs_inode_table_loc(fs, g);
    const uint64_t count = fs->inode_blocks_per_group;
    const bool valid = itable && itable < blocks_count && count <= blocks_count - itable;
    // A missing or out-of-range table was reported with the map: zeros here.
    for (uint64_t i = 0; i < count; ++i, ++done) {
      if (!valid || !map.blocks.Contains(itable + i)) {
        Skip(out, bs);
        continue;
      }
      const errcode_t err = io_channel_read_blk64(fs->io, itable + i, 1, block.data());
      if (err) {
        warn("group " + std::to_string(g) + ": cannot read inode table block " +
             std::to_string(itable + i) + ": " + ExtErrorText(err) + "; written as zeros");
        ++problems;
        Skip(out, bs);
        continue;
      }
      auto tail = map.stale_tails.find(itable + i);
      if (tail != map.stale_tails.end())
        std::fill(block.begin() + tail->second, block.end(), uint8_t{0});
      if (transform)
        transform(itable + i, block);
      if (util::IsAllZero(block))
        Skip(out, bs);
      else
        out.Write(block);
    }
    if (progress)
      progress(done);
  }

  hdr.offset_blockmap = static_cast<uint32_t>(Position(out));
  problems += WriteBitmapSection(fs, out, false, warn);
  hdr.offset_inodemap = static_cast<uint32_t>(Position(out));
  problems += WriteBitmapSection(fs, out, true, warn);
  const uint64_t end = Position(out);
  if (out.Size() < end)
    out.Truncate(end);

  hdr.magic_number = EXT2_ET_MAGIC_E2IMAGE;
  std::strncpy(hdr.magic_descriptor, "Ext2 Image 1.0", sizeof hdr.magic_descriptor);
  ::gethostname(hdr.fs_hostname, sizeof hdr.fs_hostname - 1);
  std::strncpy(hdr.fs_device_name, filesystem.device().c_str(), sizeof hdr.fs_device_name - 1);
  std::memcpy(hdr.fs_uuid, fs->super->s_uuid, sizeof hdr.fs_uuid);
  hdr.fs_blocksize = bs;
  struct stat st {};
  if (::stat(filesystem.device().c_str(), &st) == 0)
    hdr.fs_device = static_cast<uint32_t>(st.st_rdev);
  if (::fstat(out.fd(), &st) == 0) {
    hdr.image_device = static_cast<uint32_t>(st.st_dev);
    hdr.image_inode = static_cast<uint32_t>(st.st_ino);
  }
  hdr.image_time = static_cast<uint32_t>(std::time(nullptr));
  std::vector<uint8_t> header(bs, 0);
  std::memcpy(header.data(), &hdr, sizeof hdr);
  out.WriteAt(header, 0);
  return problems;
}

}  // namespace e2img
