#include "e2img/filesystem.h"

#include <et/com_err.h>
#include <ext2fs/ext2_err.h>

#include "util/error.h"

namespace e2img {

std::string ExtErrorText(errcode_t code) {
  static const bool tables_added = [] {
    initialize_ext2_error_table();
    return true;
  }();
  (void)tables_added;
  return error_message(code);
}

Filesystem::Filesystem(const std::string& device, const OpenOptions& options)
    : device_(device), options_(options) {
  ExtErrorText(0);  // make sure the error table is registered
  int flags = EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS;
  if (options.read_write) flags |= EXT2_FLAG_RW;
  const std::string io_options = "offset=" + std::to_string(options.source_offset);
  errcode_t err = ext2fs_open2(device.c_str(), io_options.c_str(), flags,
                               static_cast<int>(options.superblock),
                               static_cast<unsigned>(options.blocksize), unix_io_manager, &fs_);
  if (err) {
    fs_ = nullptr;
    throw util::Error(device + ": cannot open filesystem: " + ExtErrorText(err));
  }
}

Filesystem::~Filesystem() {
  if (fs_) ext2fs_free(fs_);
}

}  // namespace e2img
