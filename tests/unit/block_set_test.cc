#include "e2img/block_set.h"
#include "e2img/sinks.h"

#include <gtest/gtest.h>

#include <tuple>
#include <utility>
#include <vector>

namespace e2img {
namespace {

// The runs as (start, count) pairs, to compare with a list.
std::vector<std::pair<uint64_t, uint64_t>> Runs(const std::vector<BlockExtent>& extents) {
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  for (const BlockExtent& e : extents)
    runs.emplace_back(e.start, e.count);
  return runs;
}

using RunList = std::vector<std::pair<uint64_t, uint64_t>>;

TEST(BlockSet, MergesAdjacentAndOverlappingRuns) {
  BlockSet s;
  s.Add(10, 5);
  s.Add(15, 5);
  s.Add(3);
  s.Add(12, 2);
  s.Add(100);
  EXPECT_EQ(Runs(s.Extents()), (RunList{{3, 1}, {10, 10}, {100, 1}}));
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

TEST(SpansTouched, CountsEachSpanOnceAcrossExtents) {
  // 4 KiB blocks, 64 KiB spans (16 blocks): blocks 0-9 and 15-16 share span 0.
  const std::vector<BlockExtent> blocks = {{0, 10}, {15, 2}, {40, 1}, {1000, 33}};
  // Spans 0, 1, 2 and 62-64.
  EXPECT_EQ(SpansTouched(blocks, 4096, 16), 6u);
  EXPECT_EQ(SpansTouched(blocks, 4096, 12), 10u + 2 + 1 + 33);
  EXPECT_EQ(SpansTouched({}, 4096, 16), 0u);
}

// A few blocks in each of many 512 MiB ranges, as a huge empty filesystem's
// bitmaps and backup superblocks.
constexpr uint64_t kThinDevice = 4000ull << 30;  // ThinMetadata(4000)'s
std::vector<BlockExtent> ThinMetadata(uint64_t ranges) {
  std::vector<BlockExtent> blocks;
  for (uint64_t i = 0; i < ranges; ++i)
    blocks.push_back({i * 131072 * 2, 4});
  return blocks;
}

TEST(CompressedClusterBits, KeepsSixtyFourKiBForDenseMetadata) {
  // 100 MiB of inode tables in one run, plus a few scattered blocks.
  std::vector<BlockExtent> blocks = {{1000, 25600}, {131072 * 3, 2}, {131072 * 7, 2}};
  EXPECT_EQ(CompressedClusterBits(blocks, 4096, 12, 16ull << 30), 16u);
}

// With next to no metadata the fixed clusters decide: header, refcount
// table and block, and the L1 table of a 16 GiB device. 64 KiB: 3 clusters
// and one of L1 (256 KiB); 16 KiB: 3 and one (64 KiB); 8 KiB: 3 and two
// (40 KiB); 4 KiB: 3 and 16 (76 KiB).
TEST(CompressedClusterBits, FixedClustersDecideForNextToNoMetadata) {
  EXPECT_EQ(CompressedImageEstimate({}, 4096, 16, 16ull << 30), 256u << 10);
  EXPECT_EQ(CompressedImageEstimate({}, 4096, 13, 16ull << 30), 40u << 10);
  EXPECT_EQ(CompressedImageEstimate({}, 4096, 12, 16ull << 30), 76u << 10);
  EXPECT_EQ(CompressedClusterBits({}, 4096, 12, 16ull << 30), 13u);
}

TEST(CompressedClusterBits, ShrinksClustersWhenL2TablesWouldDominate) {
  // 4 blocks in each of 4,000 ranges: 64 KiB clusters need 4,000 L2 tables
  // (250 MiB) for 62 MiB of filled clusters.
  const uint32_t bits = CompressedClusterBits(ThinMetadata(4000), 4096, 12, kThinDevice);
  EXPECT_LT(bits, 16u);
  const auto estimated = [&](uint32_t b) {
    return CompressedImageEstimate(ThinMetadata(4000), 4096, b, kThinDevice);
  };
  for (uint32_t b = 12; b <= 16; ++b)
    EXPECT_LE(estimated(bits), estimated(b)) << b;
}

// What the capture's note quotes: 4,000 ranges of four 4 KiB blocks, 1 GiB
// apart. 64 KiB clusters: 4,000 L2 tables (250 MiB) and 4,000 filled
// clusters at a 32nd; 4 KiB clusters: 4,000 tables of 4 KiB and 16,000
// filled clusters at a 32nd, counted five times (four halvings). Both: the
// header, the refcount table and block, and the L1 table (8,000 entries in
// one 64 KiB cluster; 2,048,000 entries in 4,000 clusters of 4 KiB, whose
// image of 10,503 clusters needs 5 more refcount blocks of 2,048 counts).
TEST(CompressedImageEstimate, CountsTablesAndPackedClusters) {
  EXPECT_EQ(CompressedImageEstimate(ThinMetadata(4000), 4096, 16, kThinDevice),
            4000u * 65536 + 4000u * 65536 / 32 + 3 * 65536 + 65536);
  EXPECT_EQ(CompressedImageEstimate(ThinMetadata(4000), 4096, 12, kThinDevice),
            4000u * 4096 + 16000u * 4096 / 32 * 5 + 3 * 4096 + 4000u * 4096 + 5 * 4096);
  EXPECT_EQ(CompressedImageEstimate({}, 4096, 16, 1ull << 30), 4u * 65536);
}

TEST(CompressedClusterBits, NeverGoesBelowTheSizeTheL1TableNeeds) {
  EXPECT_EQ(CompressedClusterBits(ThinMetadata(4000), 4096, 16, kThinDevice), 16u);
  EXPECT_GE(CompressedClusterBits(ThinMetadata(4000), 4096, 14, kThinDevice), 14u);
}

// Two sets that overlap in several ways: a run inside a run, one across the
// end of a run and the start of the next, a block in both, a block in b only.
std::pair<BlockSet, BlockSet> OverlappingSets() {
  BlockSet a, b;
  a.Add(0, 10);
  a.Add(20, 5);
  a.Add(30, 1);
  b.Add(2, 3);
  b.Add(8, 14);  // the end of the first run and the start of the second
  b.Add(30, 1);
  b.Add(40, 1);
  return {a, b};
}

TEST(BlockSetSubtract, LeavesWhatTheSecondSetLacks) {
  auto [a, b] = OverlappingSets();
  EXPECT_EQ(Runs(Subtract(a.Extents(), b.Extents()).Extents()), (RunList{{0, 2}, {5, 3}, {22, 3}}));
  EXPECT_TRUE(Subtract(b.Extents(), b.Extents()).Extents().empty());
  EXPECT_EQ(Subtract(a.Extents(), {}).BlockCount(), a.BlockCount());
}

TEST(BlockSetWholeUnits, KeepsOnlyAlignedUnitsInsideEachRun) {
  BlockSet s;
  s.Add(3, 10);  // 3-12: the unit 4-7 and 8-11
  s.Add(16, 3);  // no whole unit
  s.Add(20, 4);  // exactly one
  EXPECT_EQ(Runs(WholeUnits(s.Extents(), 4).Extents()), (RunList{{4, 8}, {20, 4}}));
  EXPECT_EQ(WholeUnits(s.Extents(), 1).BlockCount(), s.BlockCount());
}

TEST(BlockSetIntersect, KeepsWhatBothHold) {
  auto [a, b] = OverlappingSets();
  EXPECT_EQ(Runs(Intersect(a.Extents(), b.Extents()).Extents()),
            (RunList{{2, 3}, {8, 2}, {20, 2}, {30, 1}}));
  EXPECT_TRUE(Intersect(a.Extents(), {}).Extents().empty());
  EXPECT_EQ(Intersect(a.Extents(), a.Extents()).BlockCount(), a.BlockCount());
}

TEST(BlockSetCoveringUnits, WidensEachRunToTheUnitsItTouches) {
  BlockSet s;
  s.Add(5);      // unit 4-7
  s.Add(7, 2);   // units 4-7 and 8-11
  s.Add(20, 4);  // exactly one
  EXPECT_EQ(Runs(CoveringUnits(s.Extents(), 4).Extents()), (RunList{{4, 8}, {20, 4}}));
  EXPECT_EQ(Runs(CoveringUnits(s.Extents(), 1).Extents()), Runs(s.Extents()));
}

TEST(RewrittenUnits, SplitsRunsAtTheUnitsEdgesInOrder) {
  RewrittenUnits units({{4, 4}, {12, 4}, {20, 4}});
  std::vector<std::tuple<uint64_t, uint64_t, bool>> parts;
  auto record = [&](uint64_t first, uint64_t count, bool rewritten) {
    parts.emplace_back(first, count, rewritten);
  };
  units.Split(0, 6, record);   // before and into the first unit
  units.Split(6, 8, record);   // its end, a gap, the start of the second
  units.Split(14, 2, record);  // the second's end
  units.Split(30, 2, record);  // past the third, never visited
  using Part = std::tuple<uint64_t, uint64_t, bool>;
  EXPECT_EQ(parts, (std::vector<Part>{{0, 4, false},
                                      {4, 2, true},
                                      {6, 2, true},
                                      {8, 4, false},
                                      {12, 2, true},
                                      {14, 2, true},
                                      {30, 2, false}}));
}

}  // namespace
}  // namespace e2img
