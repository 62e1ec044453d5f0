// Unreadable sectors of a failing source: a capture goes on past read
// errors. UnreadableLog keeps the byte ranges that stayed unreadable (shared
// by the inode scan's libext2fs reads and the block copiers, on any thread);
// ReadSalvaging reads a range, retrying a failed read in smaller pieces down
// to single sectors and zeroing what still fails.
#pragma once

#include <ext2fs/ext2fs.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "util/file.h"
#include "util/range_set.h"

namespace e2img {

// Bytes [offset, offset + length) of a device.
using ByteRange = util::ByteRange;

// The sector size the retries go down to.
inline constexpr uint32_t kSectorSize = 512;

// The unreadable ranges of one source, in device byte offsets (with -o).
class UnreadableLog {
 public:
  using WarnFn = std::function<void(const std::string&)>;
  // fs_offset: where the filesystem starts on the device (-o); block_size:
  // its block size, to name blocks in warnings. `warn` gets one line per new
  // range and may be empty, ending with `outcome`: what became of it.
  UnreadableLog(std::string device, uint64_t fs_offset, uint32_t block_size, WarnFn warn,
                std::string outcome = "left out of the image (zeros)");

  // Records a range as unreadable; warns of each part not known before.
  void Add(ByteRange range);
  // The ranges, sorted and merged.
  std::vector<ByteRange> Ranges() const;
  // The filesystem blocks that hold an unreadable byte.
  uint64_t BlockCount() const;
  // The ranges in guest (filesystem-relative) bytes, for an image.
  std::vector<ByteRange> GuestRanges() const;
  bool empty() const;
  const std::string& device() const { return device_; }
  uint32_t block_size() const { return block_size_; }
  uint64_t fs_offset() const { return fs_offset_; }

 private:
  std::string Describe(ByteRange r) const;

  std::string device_;
  uint64_t fs_offset_;
  uint32_t block_size_;
  WarnFn warn_;
  std::string outcome_;
  mutable std::mutex mutex_;
  util::RangeSet ranges_;
};

// True for the errno values of a medium that cannot be read (as opposed to
// a program or setup error, which ends the run).
bool IsMediaError(int errnum);

// Reads buf at offset as File::ReadUpTo does, but where a read fails with a
// media error, retries the range once in 4 KiB pieces and the pieces that
// fail sector by sector; sectors that still fail are zeroed and added to
// `log`. Returns the bytes before the end of the file. Other errors throw.
size_t ReadSalvaging(const util::File& file, std::span<uint8_t> buf, uint64_t offset,
                     UnreadableLog& log);

// One positioned read of a device, as pread(2): the bytes read (0 at its
// end) or -1 with errno set.
using PositionedRead = std::function<ssize_t(std::span<uint8_t> buf, uint64_t offset)>;
// ReadSalvaging over any device (`path` names it in errors).
size_t ReadSalvaging(const PositionedRead& read, const std::string& path, std::span<uint8_t> buf,
                     uint64_t offset, UnreadableLog& log);

// While it lives, libext2fs's failed reads of a filesystem (the inode
// scan's inode tables, directories and extent trees) are salvaged into a log
// as ReadSalvaging does: the scan goes on with zeros where the source is
// unreadable.
class LibextReadSalvage {
 public:
  // `file` is the source device; it and `log` outlive this object.
  LibextReadSalvage(ext2_filsys fs, const util::File& file, UnreadableLog& log);
  ~LibextReadSalvage();
  LibextReadSalvage(const LibextReadSalvage&) = delete;
  LibextReadSalvage& operator=(const LibextReadSalvage&) = delete;

 private:
  static errcode_t OnReadError(io_channel channel, unsigned long block, int count, void* data,
                               size_t size, int actual, errcode_t error);

  ext2_filsys fs_;
  const util::File& file_;
  UnreadableLog& log_;
};

// The text of a GNU ddrescue map file of `ranges` (device offsets, sorted,
// disjoint) over [0, domain_end): '-' (bad sectors) for them, '+' (finished)
// for the rest of [domain_start, domain_end), and '?' (not tried) below
// domain_start (the filesystem's offset, -o). `comments` head it, each
// after "# ".
std::string DdrescueMap(const std::vector<ByteRange>& ranges, uint64_t domain_start,
                        uint64_t domain_end, const std::vector<std::string>& comments);

}  // namespace e2img
