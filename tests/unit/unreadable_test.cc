#include "e2img/unreadable.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace e2img {
namespace {

TEST(UnreadableLogTest, WarnsOnceForEachNewPartAndMerges) {
  std::vector<std::string> warnings;
  UnreadableLog log("disk", 1024, 1024, [&](const std::string& w) { warnings.push_back(w); });
  log.Add({4096, 512});
  log.Add({4096, 512});  // known: no warning
  log.Add({4608, 1024});
  log.Add({3584, 2048});  // only [3584, 4096) is new
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_EQ(warnings[0],
            "disk: unreadable: 512 bytes at offset 4096 (block 3); left out of the "
            "image (zeros)");
  EXPECT_EQ(warnings[1],
            "disk: unreadable: 1024 bytes at offset 4608 (blocks 3-4); left out of "
            "the image (zeros)");
  EXPECT_EQ(warnings[2],
            "disk: unreadable: 512 bytes at offset 3584 (block 2); left out of the "
            "image (zeros)");
  EXPECT_EQ(log.Ranges(), (std::vector<ByteRange>{{3584, 2048}}));
  EXPECT_EQ(log.GuestRanges(), (std::vector<ByteRange>{{2560, 2048}}));
  EXPECT_EQ(log.BlockCount(), 3u);  // blocks 2, 3 and 4
}

TEST(UnreadableLogTest, BlocksSharedByTwoRangesCountOnce) {
  UnreadableLog log("disk", 0, 4096, nullptr);
  log.Add({0, 512});
  log.Add({1024, 512});
  log.Add({8192, 4097});
  EXPECT_EQ(log.Ranges().size(), 3u);
  EXPECT_EQ(log.BlockCount(), 3u);  // blocks 0, 2 and 3
}

TEST(DdrescueMapTest, ContiguousBlocksFromZero) {
  const std::string map =
      DdrescueMap({{0x1400, 0x200}, {0x2000, 0x400}}, 0x400, 0x3000, {"Mapfile. Test"});
  EXPECT_EQ(map,
            "# Mapfile. Test\n"
            "# current_pos  current_status  current_pass\n"
            "0x00003000     +               1\n"
            "#      pos        size  status\n"
            "0x00000000  0x00000400  ?\n"
            "0x00000400  0x00001000  +\n"
            "0x00001400  0x00000200  -\n"
            "0x00001600  0x00000A00  +\n"
            "0x00002000  0x00000400  -\n"
            "0x00002400  0x00000C00  +\n");
}

TEST(DdrescueMapTest, NoBadRangesIsOneFinishedBlock) {
  EXPECT_EQ(DdrescueMap({}, 0, 0x100000000ull, {}),
            "# current_pos  current_status  current_pass\n"
            "0x100000000     +               1\n"
            "#      pos        size  status\n"
            "0x00000000  0x100000000  +\n");
}

}  // namespace
}  // namespace e2img
