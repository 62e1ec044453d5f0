// Read-ahead for the reading phases of a capture: the kernel is asked
// (posix_fadvise WILLNEED) to fetch the source ranges a window ahead of the
// reader, so many reads are in flight at once instead of one at a time.
// Hints only: they change no result, and a failed hint is ignored.
#pragma once

#include <ext2fs/ext2fs.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "e2img/block_set.h"
#include "e2img/filesystem.h"
#include "e2img/source_holes.h"
#include "util/file.h"

namespace e2img {

// Asks the kernel to fetch a byte range (offset, length) of a file.
using HintFn = std::function<void(int fd, uint64_t offset, uint64_t length)>;

// Hints the byte ranges of a list of block extents, in order, keeping about
// `window` bytes hinted ahead of the reader. Holes of a sparse source are
// not hinted (the kernel would fill pages with zeros for nothing). The hints
// go out from a thread of its own: each costs a system call that submits
// the reads, which the reader's thread would otherwise pay before its first
// read.
class ExtentReadAhead {
 public:
  // The extents must stay unchanged while this lives.
  ExtentReadAhead(const util::File& file, const std::vector<BlockExtent>& extents,
                  uint64_t source_offset, uint32_t block_size, bool skip_holes,
                  uint64_t window = kDefaultWindow, HintFn hint = {});
  ~ExtentReadAhead();
  ExtentReadAhead(const ExtentReadAhead&) = delete;
  ExtentReadAhead& operator=(const ExtentReadAhead&) = delete;
  // The reader has consumed this many blocks of the extents (increasing).
  void ReaderDone(uint64_t blocks_done);

  static constexpr uint64_t kDefaultWindow = 32ull << 20;

 private:
  void Run(std::stop_token stop);
  // Hints the next piece (on the thread); false once every extent is hinted.
  bool HintNextPiece();

  const util::File& file_;
  const std::vector<BlockExtent>& extents_;
  HintFn hint_;
  util::FileHoles holes_;
  uint64_t source_offset_;
  uint64_t block_size_;
  uint64_t window_blocks_;
  uint64_t piece_blocks_;
  // The thread's position (its own).
  size_t next_extent_ = 0;      // first extent not fully hinted
  uint64_t next_block_ = 0;     // first block of it not hinted
  uint64_t hinted_blocks_ = 0;  // blocks of the extents hinted so far
  // The reader's position, and when to wake the thread for it.
  std::mutex mutex_;
  std::condition_variable_any reader_moved_;
  uint64_t reader_done_ = 0;  // guarded by mutex_
  uint64_t wake_at_ = 0;      // guarded by mutex_
  std::jthread thread_;       // last: joined before the rest goes
};

// A read-only descriptor of its own on the filesystem's device, for hints
// (the page cache is shared with libext2fs's); closed if it cannot be opened.
util::File OpenForReadAhead(const Filesystem& fs);

// Hints the inode tables a few groups ahead of an inode scan, advancing as
// the scan reports each group done. Owns its own descriptor on the device:
// the page cache is shared with libext2fs's.
class InodeTableReadAhead {
 public:
  explicit InodeTableReadAhead(const Filesystem& fs);
  // The scan has read every inode of `group`.
  void GroupDone(dgrp_t group);

 private:
  void HintUpTo(dgrp_t group);

  ext2_filsys fs_;
  util::File file_;
  uint64_t source_offset_;
  dgrp_t next_group_ = 0;  // first group not hinted
};

}  // namespace e2img
