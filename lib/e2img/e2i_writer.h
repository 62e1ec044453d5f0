// The classic e2i image of e2fsprogs' normal mode (`e2image DEVICE FILE`),
// which `dumpe2fs -i` and `debugfs -i` read: a header block, then the
// superblock and group descriptors, the inode tables of every group, the
// block bitmaps and the inode bitmaps. libext2fs writes the superblock and
// bitmap sections; the inode tables are copied here, block by block, so
// that a missing or out-of-range table is a warning and not a failure, and
// blocks of the tables nobody reads (the metadata map leaves them out) are
// holes rather than stale bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "e2img/filesystem.h"
#include "e2img/metadata_map.h"
#include "util/file.h"

namespace e2img {

// The on-disk header (struct ext2_image_hdr of e2fsprogs' ext2fs/e2image.h,
// which the libext2fs development package does not install). Little-endian.
struct E2iHeader {
  uint32_t magic_number;
  char magic_descriptor[16];
  char fs_hostname[64];
  char fs_netaddr[32];
  uint32_t fs_netaddr_type;
  uint32_t fs_device;
  char fs_device_name[64];
  char fs_uuid[16];
  uint32_t fs_blocksize;
  uint32_t fs_reserved[8];
  uint32_t image_device;
  uint32_t image_inode;
  uint32_t image_time;
  uint32_t image_reserved[8];
  uint32_t offset_super;
  uint32_t offset_inode;
  uint32_t offset_inodemap;
  uint32_t offset_blockmap;
  uint32_t offset_reserved[8];
};
static_assert(sizeof(E2iHeader) == 332, "e2i header layout");

// Writes the e2i image of `fs` to `out` (a seekable file positioned at 0).
// Returns the number of problems met (each already reported through warn).
// transform, if given, may rewrite each inode table block before it is
// written (the scrambler's hook).
using BlockTransform = std::function<void(uint64_t block, std::span<uint8_t> data)>;
uint64_t WriteE2iImage(const Filesystem& fs, MetadataMap& map, const util::File& out,
                       const std::function<void(uint64_t blocks_done)>& progress,
                       const WarningFn& warn, const BlockTransform& transform = {});

// Blocks WriteE2iImage copies (for progress totals).
uint64_t E2iBlockCount(const Filesystem& fs);

}  // namespace e2img
