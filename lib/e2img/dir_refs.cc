#include "e2img/dir_refs.h"

#include <algorithm>
#include <string>

#include "e2img/group_tables.h"
#include "util/endian.h"

namespace e2img {

void KeepInodeBytes(ext2_filsys fs, ext2_ino_t ino, MetadataMap& map) {
  // libext2fs reads an inode with the whole block that holds it: e2fsck then
  // reads the inodes after it in that block too, so none of it is zeroed.
  map.stale_tails.erase(SkippedInodeBlock(fs, ino));
}

void DirectoryReferences::AddEntries(std::span<const uint8_t> entries) {
  constexpr size_t kHeader = 8;  // inode, rec_len, name_len, file_type
  size_t offset = 0;
  while (offset + kHeader <= entries.size()) {
    const uint8_t* d = entries.data() + offset;
    const uint32_t ino = util::LoadLE32(d);
    uint32_t rec_len = d[4] | d[5] << 8;
    // Large blocks encode 65536 as 0 or 65535 (as ext2fs_get_rec_len).
    if (entries.size() >= 65536) {
      if (rec_len == 0 || rec_len == 65535)
        rec_len = 65536;
      else
        rec_len = (rec_len & 65532) | ((rec_len & 3) << 16);
    }
    if (rec_len < kHeader || offset + rec_len > entries.size())
      break;
    if (ino) {
      AddInode(ino);
      if (rec_len >= kHeader + 2 && d[6] == 2 && d[8] == '.' && d[9] == '.')
        parents_.push_back(ino);
    }
    offset += rec_len;
  }
}

std::vector<uint32_t> DirectoryReferences::TakeParents() {
  std::vector<uint32_t> parents;
  parents.swap(parents_);
  std::sort(parents.begin(), parents.end());
  parents.erase(std::unique(parents.begin(), parents.end()), parents.end());
  return parents;
}

void DirectoryReferences::AddDirectoryBlocks(MetadataMap& map, const WarningFn& warn,
                                             const std::function<void(uint64_t)>& blocks_read) {
  AddDirectoryBlocks(map.directory_blocks, map, warn, blocks_read);
}

void DirectoryReferences::AddDirectoryBlocks(BlockSet& blocks, MetadataMap& map,
                                             const WarningFn& warn,
                                             const std::function<void(uint64_t)>& blocks_read) {
  constexpr uint64_t kRunBlocks = 64;
  std::vector<uint8_t> buf;
  uint64_t done = 0;
  for (const BlockExtent& extent : blocks.Extents()) {
    for (uint64_t start = extent.start; start < extent.end(); start += kRunBlocks) {
      const uint64_t count = std::min(kRunBlocks, extent.end() - start);
      buf.resize(count * fs_->blocksize);
      const errcode_t err =
          io_channel_read_blk64(fs_->io, start, static_cast<int>(count), buf.data());
      done += count;
      if (blocks_read)
        blocks_read(done);
      if (err) {
        warn("cannot read directory blocks " + std::to_string(start) + "-" +
             std::to_string(start + count - 1) + ": " + ExtErrorText(err));
        ++map.problems;
        continue;
      }
      for (uint64_t i = 0; i < count; ++i)
        AddEntries(std::span<const uint8_t>(buf).subspan(i * fs_->blocksize, fs_->blocksize));
    }
  }
}

void DirectoryReferences::AddInode(uint32_t ino) {
  // Only inodes the scan skipped matter: a healthy filesystem's entries name
  // none, and a million entries need not be kept and sorted for nothing.
  if (SkippedInodeBlock(fs_, ino))
    skipped_inodes_.push_back(ino);
}

void DirectoryReferences::MarkSkippedInodes(MetadataMap& map, const WarningFn& warn) {
  std::sort(skipped_inodes_.begin(), skipped_inodes_.end());
  skipped_inodes_.erase(std::unique(skipped_inodes_.begin(), skipped_inodes_.end()),
                        skipped_inodes_.end());
  const uint32_t per_group = fs_->super->s_inodes_per_group;
  dgrp_t reported_group = ~dgrp_t{0};
  for (const uint32_t ino : skipped_inodes_) {
    const uint64_t block = SkippedInodeBlock(fs_, ino);
    const dgrp_t group = (ino - 1) / per_group;
    if (group != reported_group) {
      warn("group " + std::to_string(group) + ": directory entries name inodes (first " +
           std::to_string(ino) +
           ") past the used part of the inode table; their inode table blocks are kept");
      ++map.problems;
      reported_group = group;
    }
    map.blocks.Add(block);
    KeepInodeBytes(fs_, ino, map);
  }
}

}  // namespace e2img
