// -I: writes the metadata held in an e2i image (superblock, group
// descriptors, bitmaps, inode tables) back onto the device it was taken
// from, through libext2fs (image-file open, rewrite_to_io, image_inode_read).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace e2img {

// What -I writes from an e2i image, for the progress: its inode table blocks.
struct E2iInstallSize {
  uint64_t blocks = 0;
  uint32_t block_size = 0;
};
// Throws util::Error if `image` is not an e2i image.
E2iInstallSize E2iInstallBlocks(const std::string& image);

// Installs `image` onto `device`, calling `progress` with the inode table
// blocks written so far; throws util::Error naming the file and the cause.
// Unless forced, refuses (before writing) a device whose superblock (or,
// the primary gone, its first backup) does not carry the image's UUID and
// geometry, naming both.
void InstallE2iImage(const std::string& image, const std::string& device,
                     const std::function<void(uint64_t)>& progress = {}, bool force = false);

}  // namespace e2img
