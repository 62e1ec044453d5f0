#include "e2img/device_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "test_util.h"

namespace e2img {
namespace {

constexpr uint32_t kBlock = 1024;

// Moves `blocks` pattern blocks from byte `from` to byte `to` of one file.
void CheckMove(uint64_t blocks, uint64_t from, uint64_t to) {
  testutil::TempDir dir;
  const std::vector<uint8_t> fs = testutil::Pattern(blocks * kBlock, 7);
  std::vector<uint8_t> disk(std::max(from, to) + fs.size(), 0xEE);
  std::copy(fs.begin(), fs.end(), disk.begin() + static_cast<std::ptrdiff_t>(from));
  testutil::WriteAll(dir.File("disk"), disk);
  util::File file = util::File::Open(dir.File("disk"), O_RDWR);
  BlockSet all;
  all.Add(0, blocks);
  DeviceCopyOptions o;
  o.source_offset = from;
  o.dest_offset = to;
  o.block_size = kBlock;
  const DeviceCopyResult r = CopyToDevice(file, file, all, o, {}, [](const std::string&) {});
  EXPECT_EQ(r.written, blocks);
  const std::vector<uint8_t> after = testutil::ReadAll(dir.File("disk"));
  ASSERT_GE(after.size(), to + fs.size());
  EXPECT_TRUE(std::equal(fs.begin(), fs.end(), after.begin() + static_cast<std::ptrdiff_t>(to)))
      << "from " << from << " to " << to;
}

// More than one 4 MiB chunk, so that the order of the chunks matters.
constexpr uint64_t kManyBlocks = 10 * 1024;

TEST(DeviceCopy, MovesForwardOverlappingByHalfABlock) {
  CheckMove(kManyBlocks, 0, 512);
}
TEST(DeviceCopy, MovesForwardByOneChunkAndABit) {
  CheckMove(kManyBlocks, 0, (4u << 20) + 1024);
}
TEST(DeviceCopy, MovesBackwardOverlapping) {
  CheckMove(kManyBlocks, 3 * 1024 + 5, 5);
}
TEST(DeviceCopy, MovesBackwardFar) {
  CheckMove(kManyBlocks, 6u << 20, 0);
}

TEST(DeviceCopy, CompareSkipsBlocksAlreadyThere) {
  testutil::TempDir dir;
  const std::vector<uint8_t> data = testutil::Pattern(16 * kBlock, 3);
  testutil::WriteAll(dir.File("src"), data);
  std::vector<uint8_t> dest = data;
  dest[5 * kBlock + 17] ^= 0xFF;
  testutil::WriteAll(dir.File("dst"), dest);
  util::File src = util::File::Open(dir.File("src"), O_RDONLY);
  util::File dst = util::File::Open(dir.File("dst"), O_RDWR);
  BlockSet all;
  all.Add(0, 16);
  DeviceCopyOptions o;
  o.block_size = kBlock;
  o.compare = true;
  const DeviceCopyResult r = CopyToDevice(src, dst, all, o, {}, [](const std::string&) {});
  EXPECT_EQ(r.written, 1u);
  EXPECT_EQ(r.skipped, 15u);
  EXPECT_EQ(testutil::ReadAll(dir.File("dst")), data);
}

}  // namespace
}  // namespace e2img
