// -I: writes the metadata held in an e2i image (superblock, group
// descriptors, bitmaps, inode tables) back onto the device it was taken
// from, through libext2fs (image-file open, rewrite_to_io, image_inode_read).
#pragma once

#include <string>

namespace e2img {

// Installs `image` onto `device`; throws util::Error naming the file and
// the cause.
void InstallE2iImage(const std::string& image, const std::string& device);

}  // namespace e2img
