#include "e2img/install.h"

#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

void InstallE2iImage(const std::string& image, const std::string& device) {
  ExtErrorText(0);
  util::File image_file = util::File::Open(image, O_RDONLY);
  E2iHeader hdr{};
  std::span<uint8_t> raw(reinterpret_cast<uint8_t*>(&hdr), sizeof hdr);
  if (image_file.ReadUpTo(raw, 0) != sizeof hdr || hdr.magic_number != EXT2_ET_MAGIC_E2IMAGE)
    throw util::Error(image + ": not an e2i image (made by e2image without -r or -Q)");

  ext2_filsys opened = nullptr;
  errcode_t err = ext2fs_open(
      image.c_str(),
      EXT2_FLAG_RW | EXT2_FLAG_64BITS | EXT2_FLAG_IMAGE_FILE | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
      unix_io_manager, &opened);
  if (err)
    throw util::Error(image + ": cannot open the e2i image: " + ExtErrorText(err));
  std::unique_ptr<struct_ext2_filsys, FilsysCloser> fs(opened);
  err = ext2fs_read_bitmaps(fs.get());
  if (err)
    throw util::Error(image + ": cannot read the bitmaps: " + ExtErrorText(err));

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
  if (::lseek(image_file.fd(), hdr.offset_inode, SEEK_SET) < 0)
    throw util::Error(
        util::AtOffset(image, hdr.offset_inode, "cannot seek: " + util::ErrnoText(errno)));
  err = ext2fs_image_inode_read(fs.get(), image_file.fd(), 0);
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
