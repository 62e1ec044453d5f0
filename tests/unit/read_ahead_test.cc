// ExtentReadAhead against a recording hint function: its thread hints the
// extents in order, never more than a window ahead of the reader, leaves out
// the holes of a sparse source, and stops when dropped while it waits.
#include "e2img/read_ahead.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "test_util.h"

namespace e2img {
namespace {

constexpr uint32_t kBlock = 4096;

// Records the hints (offset, length) given from the read-ahead's thread.
class HintRecorder {
 public:
  HintFn Fn() {
    return [this](int, uint64_t offset, uint64_t length) {
      std::lock_guard lock(mutex_);
      hints_.push_back({offset, length});
      blocks_ += length / kBlock;
      // The reader said it had consumed `allowed_ - window` blocks: never further.
      if (blocks_ > allowed_)
        overran_ = true;
    };
  }
  // The reader is about to report `done` blocks consumed, with this window.
  void Allow(uint64_t done, uint64_t window_blocks) {
    std::lock_guard lock(mutex_);
    allowed_ = done + window_blocks;
  }
  // Waits (up to 10 s) until `blocks` blocks are hinted; the hints so far.
  std::vector<std::pair<uint64_t, uint64_t>> WaitFor(uint64_t blocks) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < give_up) {
      {
        std::lock_guard lock(mutex_);
        if (blocks_ >= blocks)
          return hints_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::lock_guard lock(mutex_);
    return hints_;
  }
  bool overran() {
    std::lock_guard lock(mutex_);
    return overran_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<uint64_t, uint64_t>> hints_;
  uint64_t blocks_ = 0;
  uint64_t allowed_ = 0;
  bool overran_ = false;
};

class ExtentReadAheadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testutil::WriteAll(dir_.File("fs.img"), testutil::Pattern(256 * kBlock, 1));
    file_ = util::File::Open(dir_.File("fs.img"), O_RDONLY);
  }
  testutil::TempDir dir_;
  util::File file_;
};

TEST_F(ExtentReadAheadTest, HintsInOrderAWindowAheadOfTheReader) {
  const std::vector<BlockExtent> extents = {{2, 3}, {10, 1}, {20, 6}, {100, 2}};  // 12 blocks
  constexpr uint64_t kWindowBlocks = 8;  // hinted in pieces of one block
  HintRecorder recorder;
  recorder.Allow(0, kWindowBlocks);
  ExtentReadAhead read_ahead(file_, extents, /*source_offset=*/kBlock, kBlock,
                             /*skip_holes=*/false, kWindowBlocks * kBlock, recorder.Fn());
  std::vector<std::pair<uint64_t, uint64_t>> hints = recorder.WaitFor(kWindowBlocks);
  ASSERT_EQ(hints.size(), kWindowBlocks);
  EXPECT_EQ(hints.front(), std::make_pair(uint64_t{3} * kBlock, uint64_t{kBlock}));
  for (uint64_t done = 1; done <= 12; ++done) {
    recorder.Allow(done, kWindowBlocks);
    read_ahead.ReaderDone(done);
  }
  hints = recorder.WaitFor(12);
  EXPECT_FALSE(recorder.overran());
  std::vector<uint64_t> blocks;
  for (const auto& [offset, length] : hints) {
    EXPECT_EQ(length, kBlock);
    blocks.push_back(offset / kBlock - 1);  // back from the source offset
  }
  EXPECT_EQ(blocks, (std::vector<uint64_t>{2, 3, 4, 10, 20, 21, 22, 23, 24, 25, 100, 101}));
}

TEST_F(ExtentReadAheadTest, LeavesOutTheHolesOfASparseSource) {
  const std::string sparse = dir_.File("sparse.img");
  testutil::WriteAll(sparse, testutil::Pattern(4 * kBlock, 2));
  {
    util::File out = util::File::Open(sparse, O_WRONLY);
    ASSERT_EQ(::ftruncate(out.fd(), 4096 * kBlock), 0);
    const std::vector<uint8_t> tail = testutil::Pattern(kBlock, 3);
    out.WriteAt(tail, 4000ull * kBlock);
  }
  util::File file = util::File::Open(sparse, O_RDONLY);
  const std::vector<BlockExtent> extents = {{0, 4096}};
  HintRecorder recorder;
  recorder.Allow(4096, 4096);
  ExtentReadAhead read_ahead(file, extents, 0, kBlock, /*skip_holes=*/true, 4096 * kBlock,
                             recorder.Fn());
  const auto hints = recorder.WaitFor(5);
  // The hole between may be cut in pieces by the filesystem's own layout:
  // what counts is that no hint falls in it.
  uint64_t hinted = 0;
  for (const auto& [offset, length] : hints) {
    const bool head = offset + length <= 4 * kBlock;
    const bool tail = offset >= 4000ull * kBlock;
    EXPECT_TRUE(head || tail) << "hint at " << offset << ", " << length << " bytes";
    hinted += length;
  }
  EXPECT_GE(hinted, 5u * kBlock);
}

TEST_F(ExtentReadAheadTest, DroppedWhileWaitingForTheReader) {
  const std::vector<BlockExtent> extents = {{0, 200}};
  HintRecorder recorder;
  recorder.Allow(0, 16);
  {
    ExtentReadAhead read_ahead(file_, extents, 0, kBlock, false, 16 * kBlock, recorder.Fn());
    recorder.WaitFor(16);
  }  // the thread waits for the reader: stopped and joined here
  EXPECT_EQ(recorder.WaitFor(16).size(), 8u);  // pieces of two blocks
  EXPECT_FALSE(recorder.overran());
}

TEST_F(ExtentReadAheadTest, NothingToHint) {
  const std::vector<BlockExtent> none;
  HintRecorder recorder;
  { ExtentReadAhead read_ahead(file_, none, 0, kBlock, false, 16 * kBlock, recorder.Fn()); }
  EXPECT_TRUE(recorder.WaitFor(0).empty());
}

}  // namespace
}  // namespace e2img
