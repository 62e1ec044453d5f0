#include "e2img/interrupted_copy.h"

#include <gtest/gtest.h>

namespace e2img {
namespace {

// A 1k-block move of blocks 1..99 within "disk", 10 blocks towards lower offsets.
InterruptedCopy Move() {
  InterruptedCopy c;
  c.source_path = c.dest_path = "disk";
  c.source_offset = 10240;
  c.block_size = 1024;
  c.first_block = 1;
  c.end_block = 100;
  c.in_place = true;
  return c;
}

TEST(InterruptedCopy, NothingDoneLeavesTheSourceUntouched) {
  InterruptedCopy c = Move();
  c.frontier = 1024;
  EXPECT_EQ(DescribeInterruptedCopy(c),
            "moving the filesystem in disk from offset 10240 to offset 0 stopped part way "
            "(forwards: lowest blocks first, blocks 1..99): nothing is done at offset 0, blocks "
            "1..99 are not; the source is untouched: rerun the same command to finish");
}

TEST(InterruptedCopy, OverwrittenSourceGivesTheDdCommand) {
  InterruptedCopy c = Move();
  c.frontier = 50 * 1024;
  c.source_overwritten = true;
  const std::string s = DescribeInterruptedCopy(c);
  EXPECT_NE(s.find("blocks 1..49 are done at offset 0, blocks 50..99 are not and are still "
                   "intact at offset 10240"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("do NOT rerun"), std::string::npos) << s;
  EXPECT_NE(s.find("skip=61440 seek=51200 count=51200"), std::string::npos) << s;
}

TEST(InterruptedCopy, BackwardsCutBlockAndQuotedPath) {
  InterruptedCopy c = Move();
  c.source_path = "my disk's";
  c.source_offset = 0;
  c.dest_offset = 512;
  c.highest_first = true;
  c.frontier = 99 * 1024 + 512;
  c.source_overwritten = true;
  const std::string s = DescribeInterruptedCopy(c);
  EXPECT_NE(s.find("bytes 101888..102399 of the filesystem (block 99, the end ones in part) are "
                   "done at offset 512"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("dd if='my disk'\\''s' of=/var/tmp/e2image-rest"), std::string::npos) << s;
  EXPECT_NE(s.find("skip=1024 count=100864 && "), std::string::npos) << s;
  EXPECT_NE(s.find("seek=1536 && rm /var/tmp/e2image-rest"), std::string::npos) << s;
}

}  // namespace
}  // namespace e2img
