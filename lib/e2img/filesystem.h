// An ext2/3/4 filesystem opened read-only through libext2fs, owned with RAII.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <memory>
#include <string>

namespace e2img {

// Where and how to open the source.
struct OpenOptions {
  uint64_t source_offset = 0;  // -o: byte offset of the filesystem in the source
  uint64_t superblock = 0;     // -b: backup superblock block number (0 = primary)
  uint32_t blocksize = 0;      // -B: block size to go with -b (0 = probe)
  bool read_write = false;     // -I and -ra only
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
  const OpenOptions& options() const { return options_; }

 private:
  ext2_filsys fs_ = nullptr;
  std::string device_;
  OpenOptions options_;
};

}  // namespace e2img
