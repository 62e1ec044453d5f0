#include "e2img/verify.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>

#include "test_util.h"

namespace e2img {
namespace {

constexpr uint32_t kBlock = 1024;

TEST(VerifyTest, NamesRunsOfDifferingBlocksAndSkipsUnreadableAndStaleTails) {
  testutil::TempDir dir;
  const std::string path = dir.File("source");
  const std::vector<uint8_t> source_bytes = testutil::Pattern(8 * kBlock, 7);
  testutil::WriteAll(path, source_bytes);
  std::vector<uint8_t> image = source_bytes;
  image[3 * kBlock + 10] ^= 1;  // blocks 3 and 4 changed
  image[4 * kBlock] ^= 1;
  image[6 * kBlock] ^= 1;       // unreadable: not compared
  image[1 * kBlock + 600] = 0;  // past block 1's stale tail: not compared
  image[7 * kBlock + 5] ^= 1;   // not in the set: not compared

  const util::File file = util::File::Open(path, O_RDONLY);
  UnreadableLog unreadable(path, 0, kBlock, nullptr);
  unreadable.Add({6 * kBlock + 512, 512});
  const std::map<uint64_t, uint32_t> tails{{1, 512}};
  VerifySource source{&file, 0, kBlock, 1, &tails, &unreadable};
  BlockSet blocks;
  blocks.Add(0, 7);
  std::vector<std::string> warnings;
  const VerifyResult r = VerifyBlocks(
      source, blocks,
      [&](uint64_t block, std::span<uint8_t> data) {
        std::memcpy(data.data(), image.data() + block * kBlock, data.size());
      },
      [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(r.compared, 5u);  // blocks 1-5 (block 0 is below the first data block)
  EXPECT_EQ(r.differ, 2u);
  EXPECT_EQ(r.unreadable, 1u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], path +
                             ": blocks 3-4 differ between the source and the image (changed "
                             "since copied)");
}

}  // namespace
}  // namespace e2img
