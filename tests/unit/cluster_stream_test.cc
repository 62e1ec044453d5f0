#include "qcow2/cluster_stream.h"

#include <gtest/gtest.h>

#include "qcow2/reader.h"
#include "test_util.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

// Writes runs through a ClusterStream and returns what a reader sees.
std::vector<uint8_t> RoundTrip(const std::string& path, uint32_t cluster_bits, uint64_t size,
                               const std::vector<std::pair<uint64_t, std::vector<uint8_t>>>& runs,
                               std::optional<CompressionType> compression, uint64_t* written) {
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = size, .cluster_bits = cluster_bits, .version = 3});
    ClusterStream s(w, compression);
    for (const auto& [off, data] : runs)
      s.Write(off, data);
    s.Flush();
    w.Finish();
    *written = s.clusters_written();
  }
  Qcow2Reader r(path);
  std::vector<uint8_t> all(size);
  r.Read(0, all);
  return all;
}

TEST(ClusterStream, AssemblesSmallBlocksIntoLargerClusters) {
  testutil::TempDir dir;
  std::vector<uint8_t> expect(1 << 20, 0);
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> runs;
  for (uint64_t off : {0ull, 1024ull, 65536ull, 5 * 65536ull + 3072}) {
    auto data = Pattern(1024, static_cast<uint32_t>(off));
    std::copy(data.begin(), data.end(), expect.begin() + static_cast<long>(off));
    runs.emplace_back(off, data);
  }
  uint64_t written = 0;
  EXPECT_EQ(RoundTrip(dir.File("a"), 16, expect.size(), runs, std::nullopt, &written), expect);
  EXPECT_EQ(written, 3u);  // clusters 0, 1 and 5
}

TEST(ClusterStream, SplitsLargeBlocksIntoSmallClustersAndSkipsZeros) {
  testutil::TempDir dir;
  std::vector<uint8_t> block = Pattern(4096, 9);
  std::fill(block.begin() + 1024, block.begin() + 2048, 0);  // two all-zero 512 B clusters
  std::vector<uint8_t> expect(64 * 1024, 0);
  std::copy(block.begin(), block.end(), expect.begin() + 8192);
  uint64_t written = 0;
  EXPECT_EQ(RoundTrip(dir.File("b"), 9, expect.size(), {{8192, block}}, std::nullopt, &written),
            expect);
  EXPECT_EQ(written, 6u);  // 8 clusters of 512 B, two of them zero
}

TEST(ClusterStream, CompressedAndIncompressibleClustersReadBack) {
  testutil::TempDir dir;
  std::vector<uint8_t> text(8192, 'a');
  std::vector<uint8_t> noise = Pattern(8192, 4);
  std::vector<uint8_t> expect(text);
  expect.insert(expect.end(), noise.begin(), noise.end());
  uint64_t written = 0;
  EXPECT_EQ(
      RoundTrip(dir.File("c"), 12, expect.size(), {{0, expect}}, CompressionType::kZlib, &written),
      expect);
  EXPECT_EQ(written, 4u);
}

}  // namespace
}  // namespace qcow2
