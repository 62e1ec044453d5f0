#include "e2img/source_holes.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <utility>

#include "test_util.h"

namespace e2img {
namespace {

using Runs = std::vector<std::pair<uint64_t, uint64_t>>;  // (start, count)

Runs AsRuns(const std::vector<BlockExtent>& extents) {
  Runs runs;
  for (const BlockExtent& e : extents)
    runs.emplace_back(e.start, e.count);
  return runs;
}

// A 1 MiB sparse file: data in its first 4 KiB and in [64 KiB, 64 KiB + 100).
std::string SparseFile(const testutil::TempDir& dir) {
  const std::string path = dir.File("sparse");
  util::File f = testutil::CreateFile(path);
  f.WriteAt(testutil::Pattern(4096, 1), 0);
  f.WriteAt(testutil::Pattern(100, 2), 65536);
  f.Truncate(1 << 20);
  return path;
}

TEST(HoleBlocks, WholeBlocksOfHoleOnly) {
  testutil::TempDir dir;
  const util::File f = util::File::Open(SparseFile(dir), O_RDONLY);
  EXPECT_EQ(AsRuns(HoleBlocks(f, {{0, 256}}, 0, 4096)), (Runs{{1, 15}, {17, 239}}));
}

// Blocks that straddle data (the source starts 2 KiB into the file) are
// data, like the last block, which the end of the file cuts.
TEST(HoleBlocks, BlocksPartlyDataAreData) {
  testutil::TempDir dir;
  const util::File f = util::File::Open(SparseFile(dir), O_RDONLY);
  EXPECT_EQ(AsRuns(HoleBlocks(f, {{0, 10}, {12, 300}}, 2048, 4096)),
            (Runs{{1, 9}, {12, 3}, {17, 238}}));
}

TEST(HoleBlocks, NoneInAFileWithoutHoles) {
  testutil::TempDir dir;
  testutil::WriteAll(dir.File("full"), testutil::Pattern(1 << 16, 3));
  const util::File f = util::File::Open(dir.File("full"), O_RDONLY);
  EXPECT_TRUE(HoleBlocks(f, {{0, 16}}, 0, 4096).empty());
}

TEST(WithoutHoles, KeepsTheBlocksHoldingData) {
  testutil::TempDir dir;
  const util::File f = util::File::Open(SparseFile(dir), O_RDONLY);
  BlockSet kept = WithoutHoles(f, {{0, 256}}, 0, 4096);
  EXPECT_EQ(AsRuns(kept.Extents()), (Runs{{0, 1}, {16, 1}}));
}

// One block per run: the first holding data, partly data counting; none for
// a run all hole, up to the end of the file or not.
TEST(FirstDataBlocks, TheFirstBlockHoldingDataOfEachRun) {
  testutil::TempDir dir;
  const util::File f = util::File::Open(SparseFile(dir), O_RDONLY);
  EXPECT_EQ(FirstDataBlocks(f, {{0, 4}, {1, 8}, {4, 20}, {20, 100}}, 0, 4096),
            (std::vector<uint64_t>{0, 16}));
  // From 2 KiB into the file, the data at 64 KiB falls in block 15.
  EXPECT_EQ(FirstDataBlocks(f, {{0, 1}, {1, 20}}, 2048, 4096), (std::vector<uint64_t>{0, 15}));
}

TEST(FirstDataBlocks, EveryRunStartInAFileWithoutHoles) {
  testutil::TempDir dir;
  testutil::WriteAll(dir.File("full"), testutil::Pattern(1 << 16, 3));
  const util::File f = util::File::Open(dir.File("full"), O_RDONLY);
  EXPECT_EQ(FirstDataBlocks(f, {{2, 3}, {9, 4}}, 0, 4096), (std::vector<uint64_t>{2, 9}));
}

}  // namespace
}  // namespace e2img
