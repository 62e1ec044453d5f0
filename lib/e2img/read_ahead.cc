#include "e2img/read_ahead.h"

#include <fcntl.h>

#include <algorithm>
#include <system_error>

namespace e2img {
namespace {

void Hint(int fd, uint64_t offset, uint64_t length) {
  if (fd >= 0 && length)
    (void)::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(length),
                          POSIX_FADV_WILLNEED);
}

// Groups of inode tables hinted ahead of the scan (with flex_bg, 16 groups'
// tables are contiguous: this covers a few flex groups).
constexpr dgrp_t kGroupsAhead = 64;

}  // namespace

ExtentReadAhead::ExtentReadAhead(const util::File& file, const std::vector<BlockExtent>& extents,
                                 uint64_t source_offset, uint32_t block_size, bool skip_holes,
                                 uint64_t window, HintFn hint)
    : file_(file),
      extents_(extents),
      hint_(hint ? std::move(hint) : HintFn(Hint)),
      holes_(file, skip_holes),
      source_offset_(source_offset),
      block_size_(block_size),
      window_blocks_(std::max<uint64_t>(1, window / block_size)),
      // Hints go out in pieces of at most an eighth of the window, so the
      // reader finds its next blocks already on their way.
      piece_blocks_(std::max<uint64_t>(1, window_blocks_ / 8)) {
  if (extents_.empty() || !file_.is_open())
    return;
  next_block_ = extents_.front().start;
  try {
    thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
  } catch (const std::system_error&) {
    // No thread to spare: the reader goes without hints.
  }
}

ExtentReadAhead::~ExtentReadAhead() {
  if (!thread_.joinable())
    return;
  thread_.request_stop();
  reader_moved_.notify_all();
  thread_.join();
}

void ExtentReadAhead::ReaderDone(uint64_t blocks_done) {
  {
    std::lock_guard lock(mutex_);
    reader_done_ = blocks_done;
    if (blocks_done < wake_at_)
      return;
    wake_at_ = UINT64_MAX;  // until the thread sets it again
  }
  reader_moved_.notify_one();
}

void ExtentReadAhead::Run(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    if (hinted_blocks_ < reader_done_ + window_blocks_) {
      lock.unlock();
      if (!HintNextPiece())
        return;
      lock.lock();
      continue;
    }
    // A window ahead: wait until the reader is a piece further.
    const uint64_t wake_at = hinted_blocks_ - window_blocks_ + piece_blocks_;
    wake_at_ = wake_at;
    reader_moved_.wait(lock, stop, [&] { return reader_done_ >= wake_at; });
  }
}

bool ExtentReadAhead::HintNextPiece() {
  if (next_extent_ >= extents_.size())
    return false;
  const uint64_t blocks = std::min(extents_[next_extent_].end() - next_block_, piece_blocks_);
  const uint64_t at = source_offset_ + next_block_ * block_size_;
  const util::FileRun run = holes_.RunAt(at, blocks * block_size_);
  if (!run.hole && run.length)
    hint_(file_.fd(), at, run.length);
  const uint64_t advanced = std::max<uint64_t>(1, run.length / block_size_);
  next_block_ += advanced;
  hinted_blocks_ += advanced;
  if (next_block_ >= extents_[next_extent_].end() && ++next_extent_ < extents_.size())
    next_block_ = extents_[next_extent_].start;
  return next_extent_ < extents_.size();
}

util::File OpenForReadAhead(const Filesystem& fs) {
  const int fd = ::open(fs.device().c_str(), O_RDONLY | O_CLOEXEC);
  return fd < 0 ? util::File() : util::File(fd, fs.device());
}

InodeTableReadAhead::InodeTableReadAhead(const Filesystem& fs)
    : fs_(fs.get()), file_(OpenForReadAhead(fs)), source_offset_(fs.options().source_offset) {
  if (!file_.is_open())
    return;
  HintUpTo(std::min<dgrp_t>(kGroupsAhead, fs_->group_desc_count));
}

void InodeTableReadAhead::GroupDone(dgrp_t group) {
  if (file_.is_open())
    HintUpTo(std::min<dgrp_t>(group + 1 + kGroupsAhead, fs_->group_desc_count));
}

void InodeTableReadAhead::HintUpTo(dgrp_t end) {
  const uint64_t bs = fs_->blocksize;
  const uint32_t inodes_per_block = EXT2_INODES_PER_BLOCK(fs_->super);
  // Adjacent tables (flex_bg) are merged into one hint.
  uint64_t run_start = 0, run_length = 0;
  for (; next_group_ < end; ++next_group_) {
    const dgrp_t g = next_group_;
    const uint64_t table = ext2fs_inode_table_loc(fs_, g);
    if (!table || ext2fs_bg_flags_test(fs_, g, EXT2_BG_INODE_UNINIT))
      continue;
    uint64_t blocks = fs_->inode_blocks_per_group;
    if (ext2fs_has_group_desc_csum(fs_)) {
      const uint64_t unused = ext2fs_bg_itable_unused(fs_, g) / inodes_per_block;
      blocks = unused < blocks ? blocks - unused : 0;
    }
    if (!blocks)
      continue;
    const uint64_t at = source_offset_ + table * bs;
    if (run_length && at == run_start + run_length) {
      run_length += blocks * bs;
      continue;
    }
    Hint(file_.fd(), run_start, run_length);
    run_start = at;
    run_length = blocks * bs;
  }
  Hint(file_.fd(), run_start, run_length);
}

}  // namespace e2img
