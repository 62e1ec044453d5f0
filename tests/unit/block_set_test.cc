#include "e2img/block_set.h"
#include "e2img/sinks.h"

#include <gtest/gtest.h>

namespace e2img {
namespace {

TEST(BlockSet, MergesAdjacentAndOverlappingRuns) {
  BlockSet s;
  s.Add(10, 5);
  s.Add(15, 5);
  s.Add(3);
  s.Add(12, 2);
  s.Add(100);
  const auto& e = s.Extents();
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].start, 3u);
  EXPECT_EQ(e[0].count, 1u);
  EXPECT_EQ(e[1].start, 10u);
  EXPECT_EQ(e[1].count, 10u);
  EXPECT_EQ(e[2].start, 100u);
  EXPECT_EQ(s.BlockCount(), 12u);
}

TEST(BlockSet, ContainsAnswersForEdges) {
  BlockSet s;
  s.Add(10, 5);
  EXPECT_FALSE(s.Contains(9));
  EXPECT_TRUE(s.Contains(10));
  EXPECT_TRUE(s.Contains(14));
  EXPECT_FALSE(s.Contains(15));
}

TEST(BlockSet, ManyOutOfOrderBlocksStayCompact) {
  BlockSet s;
  for (uint64_t i = 0; i < 100000; ++i)
    s.Add((i * 7919) % 100000);
  const auto& e = s.Extents();
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].count, 100000u);
}

}  // namespace
}  // namespace e2img

namespace e2img {
namespace {

TEST(L1EntriesOf, NamesEachEntryTheBlocksFallInOnceAscending) {
  // 4 KiB blocks, 64 KiB clusters: an L1 entry maps 512 MiB = 131072 blocks.
  const std::vector<BlockExtent> blocks = {
      {0, 10}, {131071, 2}, {131080, 5}, {5 * 131072 + 7, 1}, {9 * 131072 - 1, 131073}};
  EXPECT_EQ(L1EntriesOf(blocks, 4096, 16), (std::vector<uint64_t>{0, 1, 5, 8, 9}));
  // 16 KiB clusters: an entry maps 32 MiB = 8192 blocks.
  const std::vector<BlockExtent> one = {{8191, 2}};
  EXPECT_EQ(L1EntriesOf(one, 4096, 14), (std::vector<uint64_t>{0, 1}));
  EXPECT_TRUE(L1EntriesOf({}, 4096, 16).empty());
}

}  // namespace
}  // namespace e2img
