// BackgroundSync: a failed flush is kept for Stop() (the kernel reports it
// once), descriptors that cannot be flushed are no failure, and a File
// flushing in the background while written ends with every byte in place.
#include "util/background_sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "test_util.h"

namespace {

TEST(BackgroundSync, StopReportsTheFailureOfAFlush) {
  const int closed_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(closed_fd, 0);
  ::close(closed_fd);
  util::BackgroundSync sync(closed_fd);
  sync.Request();
  EXPECT_EQ(sync.Stop(), EBADF);
  // Kept: a second Stop (the destructor's) reports the same.
  EXPECT_EQ(sync.Stop(), EBADF);
}

TEST(BackgroundSync, AFileThatCannotBeFlushedIsNoFailure) {
  int ends[2];
  ASSERT_EQ(::pipe(ends), 0);
  util::File read_end(ends[0], "pipe"), write_end(ends[1], "pipe");
  util::BackgroundSync sync(write_end.fd());
  sync.Request();
  EXPECT_EQ(sync.Stop(), 0);
}

TEST(BackgroundSync, StopWithoutRequestStartsNothing) {
  util::BackgroundSync sync(-1);
  EXPECT_EQ(sync.Stop(), 0);
  // Once stopped, requests are dropped rather than flushing a bad descriptor.
  sync.Request();
  EXPECT_EQ(sync.Stop(), 0);
}

TEST(BackgroundSync, FileFlushedWhileWrittenKeepsEveryByte) {
  testutil::TempDir dir;
  const std::string path = dir.File("out");
  std::vector<uint8_t> expected;
  {
    util::File file = testutil::CreateFile(path);
    file.FlushInBackgroundEvery(4096);
    for (uint32_t i = 0; i < 64; ++i) {
      const std::vector<uint8_t> chunk = testutil::Pattern(3000, i);
      file.WriteAt(chunk, expected.size());
      expected.insert(expected.end(), chunk.begin(), chunk.end());
    }
    // Moved while its flush may be running: the flush goes with it.
    util::File moved = std::move(file);
    moved.Sync();
    moved.WriteAt(testutil::Pattern(5000, 99), expected.size());
    const std::vector<uint8_t> tail = testutil::Pattern(5000, 99);
    expected.insert(expected.end(), tail.begin(), tail.end());
    moved.Close();
  }
  EXPECT_EQ(testutil::ReadAll(path), expected);
}

}  // namespace
