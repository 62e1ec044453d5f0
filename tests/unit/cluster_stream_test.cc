#include "qcow2/cluster_stream.h"

#include <gtest/gtest.h>

#include "qcow2/reader.h"
#include "test_util.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

// Writes runs through a ClusterStream and returns what a reader sees.
std::vector<uint8_t> RoundTrip(const std::string& path, uint32_t cluster_bits, uint64_t size,
                               const std::vector<std::pair<uint64_t, std::vector<uint8_t>>>& runs,
                               std::optional<CompressionType> compression, uint64_t* written,
                               unsigned threads = 1, bool rooms = false) {
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = size,
                      .cluster_bits = cluster_bits,
                      .version = 3,
                      .compression = compression.value_or(CompressionType::kZlib)});
    ClusterStream s(w, compression, threads);
    for (const auto& [off, data] : runs) {
      // rooms: through the room the stream gives, where it gives one.
      size_t done = 0;
      while (rooms && done < data.size()) {
        const std::span<uint8_t> room = s.RoomFor(off + done, data.size() - done);
        if (room.empty())
          break;
        EXPECT_EQ(room.size() % (1u << cluster_bits), 0u);
        EXPECT_LE(room.size(), data.size() - done);
        std::copy_n(data.begin() + static_cast<long>(done), room.size(), room.begin());
        s.Write(off + done, room);
        done += room.size();
      }
      s.Write(off + done, std::span<const uint8_t>(data).subspan(done));
    }
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

// Clusters assembled from blocks in the pool's queue (several threads) make
// the same image as on one thread, zero clusters dropped alike.
TEST(ClusterStream, ThreadsMakeTheSameImage) {
  testutil::TempDir dir;
  constexpr uint64_t kSmallRunsEnd = 64ull << 20;
  constexpr uint64_t kSize = 80ull << 20;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> runs;
  std::vector<uint8_t> expect(kSize, 0);
  uint64_t off = 0;
  for (uint64_t i = 0; off + 2 * 65536 <= kSmallRunsEnd; ++i) {
    // Blocks of text, of noise and of zeros, a few whole clusters, most not.
    std::vector<uint8_t> data = i % 3 == 0 ? Pattern(4096, static_cast<uint32_t>(i))
                                           : std::vector<uint8_t>(4096, i % 5 ? 'x' : 0);
    if (i % 11 == 0) {
      off = (off + 65535) / 65536 * 65536;  // a whole cluster
      data.resize(65536, 'y');
    }
    std::copy(data.begin(), data.end(), expect.begin() + static_cast<long>(off));
    runs.emplace_back(off, data);
    off += data.size() + 4096 * (i % 7);
  }
  // Runs of many clusters, one of them zeros: given out as rooms a batch at a time.
  for (uint64_t i = 0; i < 3; ++i) {
    off = (off + 65535) / 65536 * 65536;
    std::vector<uint8_t> data = Pattern(3 << 20, static_cast<uint32_t>(i));
    std::fill_n(data.begin() + 65536, 65536, 0);
    std::fill_n(data.begin() + 200000, 4096, 0);
    std::copy(data.begin(), data.end(), expect.begin() + static_cast<long>(off));
    runs.emplace_back(off, data);
    off += data.size() + 65536 * i + 4096;
  }
  uint64_t one = 0, two = 0, roomed = 0;
  EXPECT_EQ(RoundTrip(dir.File("r"), 16, kSize, runs, CompressionType::kZstd, &roomed, 2, true),
            expect);
  EXPECT_EQ(RoundTrip(dir.File("1"), 16, kSize, runs, CompressionType::kZstd, &one, 1), expect);
  EXPECT_EQ(RoundTrip(dir.File("2"), 16, kSize, runs, CompressionType::kZstd, &two, 2), expect);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, roomed);
  EXPECT_EQ(testutil::ReadAll(dir.File("1")), testutil::ReadAll(dir.File("2")));
  EXPECT_EQ(testutil::ReadAll(dir.File("1")), testutil::ReadAll(dir.File("r")));
}

// Rooms are whole clusters from a cluster boundary, in the compression
// queue only, at most a batch of them; they must come back whole and first.
TEST(ClusterStream, RoomsOnlyForWholeClustersOfThePool) {
  testutil::TempDir dir;
  util::File f = testutil::CreateFile(dir.File("a"));
  Qcow2Writer w(f, {.virtual_size = 64 << 20,
                    .cluster_bits = 16,
                    .version = 3,
                    .compression = CompressionType::kZstd});
  {
    ClusterStream plain(w, std::nullopt, 1);
    EXPECT_TRUE(plain.RoomFor(0, 1 << 20).empty());
  }
  ClusterStream s(w, CompressionType::kZstd, 2);
  EXPECT_TRUE(s.RoomFor(4096, 1 << 20).empty());  // not on a cluster boundary
  EXPECT_TRUE(s.RoomFor(65536, 65535).empty());   // less than a cluster
  const std::span<uint8_t> big = s.RoomFor(65536, 64ull << 20);
  EXPECT_EQ(big.size(), 1u << 20);                              // a batch: 16 clusters
  EXPECT_THROW(s.Write(0, big), util::Error);                   // not where it was given
  EXPECT_THROW(s.Write(65536, big.first(65536)), util::Error);  // not whole
  EXPECT_THROW(s.Flush(), util::Error);                         // never written
  std::fill(big.begin(), big.end(), 'z');
  s.Write(65536, big);
  EXPECT_EQ(s.clusters_written(), 16u);
  EXPECT_THROW(s.Write(4096, Pattern(4096, 1)), util::Error);  // behind the room now
  s.Flush();
}

}  // namespace
}  // namespace qcow2
