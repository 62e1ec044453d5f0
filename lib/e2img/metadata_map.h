// MetadataMap decides which blocks of a filesystem an image keeps: the
// superblock and descriptors, bitmaps, inode tables, and the blocks of
// directories, symlinks, the journal, quota and orphan files, extent-tree and
// indirect blocks, xattr blocks (with -a: all file data too). A bad inode or
// descriptor is reported and skipped, never fatal.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "e2img/block_set.h"
#include "e2img/filesystem.h"

namespace e2img {

struct MetadataMap;

// What to include.
struct MapOptions {
  bool all_data = false;          // -a
  bool output_is_device = false;  // whole inode tables, as e2image does for devices
  // Called after each group's inodes with the inode table blocks scanned so
  // far (of ScanTotal()).
  std::function<void(uint64_t blocks_done)> scan_progress;
  // Called once the group tables are marked, before the inode scan: the map
  // then holds the superblock, descriptors, bitmaps and inode tables.
  std::function<void(MetadataMap& map)> tables_marked;
  // Called once the inode scan is done, before the directory blocks are
  // parsed: the map then holds every block but those directory entries add.
  std::function<void(MetadataMap& map)> inodes_scanned;
  // Called for every in-use inode (the scrambler learns the filesystem this way).
  std::function<void(uint32_t ino, const ext2_inode& inode)> observe_inode;
};

// One problem met while scanning, already phrased for the user.
using WarningFn = std::function<void(const std::string&)>;

// The blocks to copy, and the directory blocks among them (for scrambling).
struct MetadataMap {
  BlockSet blocks;
  BlockSet directory_blocks;
  // Inode table blocks only partly in use: block -> byte offset from which
  // its bytes are stale (no inode e2fsck reads) and are written as zeros.
  std::map<uint64_t, uint32_t> stale_tails;
  uint64_t problems = 0;
};

// The inode table blocks the scan goes through (the scan_progress total).
uint64_t ScanTotal(const Filesystem& fs);

// Scans the filesystem's descriptors and inodes and returns the map.
MetadataMap BuildMetadataMap(const Filesystem& fs, const MapOptions& options,
                             const WarningFn& warn);

}  // namespace e2img
