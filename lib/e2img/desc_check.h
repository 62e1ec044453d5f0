// A fast answer to "would ext2fs_check_desc find the group descriptors
// sound?". libext2fs marks every inode table block in a tree bitmap one by
// one, which takes seconds on a 15 TiB filesystem; sweeping the tables as
// intervals in block order takes milliseconds.
#pragma once

#include <ext2fs/ext2fs.h>

namespace e2img {

// True exactly when ext2fs_check_desc(fs) would return 0 without printing
// anything: every bitmap and inode table lies in its allowed range and no
// two of them, nor any of them and a superblock or descriptor block, share
// a block. False when any of that fails or is in doubt (ask libext2fs then,
// for its error code).
bool DescriptorsClearlySound(ext2_filsys fs);

// ext2fs_check_desc's verdict, computed by it only when the fast check has
// found something wrong.
errcode_t CheckDescriptors(ext2_filsys fs);

}  // namespace e2img
