// The writer at qemu's limits: L1 table size, 16-bit refcounts.
#include <gtest/gtest.h>

#include "qcow2/check.h"
#include "qcow2/writer.h"
#include "test_util.h"
#include "util/error.h"

namespace qcow2 {
namespace {

TEST(SmallestClusterBits, KeepsTheBlockSizeWhenTheL1TableFits) {
  EXPECT_EQ(SmallestClusterBits(1ull << 40, 12), 12u);   // 1 TiB, 4 KiB: 2 MiB of L1
  EXPECT_EQ(SmallestClusterBits(64ull << 20, 10), 10u);  // small filesystem, 1 KiB blocks
  EXPECT_EQ(SmallestClusterBits(4096, 0), kMinClusterBits);
}

TEST(SmallestClusterBits, GrowsUntilTheL1TableFitsQemusLimit) {
  // 16 TiB: 4 KiB clusters need 64 MiB of L1, 8 KiB clusters 16 MiB.
  EXPECT_EQ(SmallestClusterBits(16ull << 40, 12), 13u);
  // 16 TiB of 1 KiB blocks: 1 KiB clusters need 1 GiB of L1.
  const uint32_t bits = SmallestClusterBits(16ull << 40, 10);
  Header h;
  h.size = 16ull << 40;
  h.cluster_bits = bits;
  EXPECT_LE(h.l1_entries_needed() * 8, kMaxL1Bytes);
  h.cluster_bits = bits - 1;
  EXPECT_GT(h.l1_entries_needed() * 8, kMaxL1Bytes);
}

TEST(SmallestClusterBits, ThrowsWhenEven2MiBClustersAreTooSmall) {
  EXPECT_THROW(SmallestClusterBits(1ull << 62, 12), util::Error);
}

TEST(RefcountTracker, CountsUpTo16BitsAndRefusesToOverflow) {
  RefcountTracker t;
  t.Add(3, kMaxRefcount);
  EXPECT_EQ(t.Get(3), kMaxRefcount);
  EXPECT_EQ(t.Get(2), 0u);
  EXPECT_EQ(t.clusters(), 4u);
  EXPECT_THROW(t.Add(3), util::Error);
}

TEST(Qcow2WriterLimits, TinyCompressedClustersNeverOverflowAHostClustersRefcount) {
  testutil::TempDir dir;
  const std::string path = dir.File("img.qcow2");
  const uint64_t clusters = kMaxRefcount + 1000;
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = clusters << 21, .cluster_bits = 21, .version = 3});
    const std::vector<uint8_t> one_byte{0x42};
    for (uint64_t c = 0; c < clusters; ++c)
      w.WriteCompressedCluster(c, one_byte);
    w.Finish();
  }
  const ImageView image(path);
  const CheckReport r = CheckImage(image, {});
  EXPECT_EQ(r.corruptions, 0u);
  EXPECT_EQ(r.leaks, 0u);
  EXPECT_EQ(r.compressed_clusters, clusters);
  StoredRefcounts stored(image);
  const uint64_t first_data = 2 * (1u << 21);                   // header, L1, then the L2 table
  EXPECT_EQ(stored.Get(first_data >> 21).value_or(0), 0u + 1);  // the L2 table
  uint64_t max_seen = 0;
  for (uint64_t c = 0; c < image.file_size() >> 21; ++c)
    max_seen = std::max<uint64_t>(max_seen, stored.Get(c).value_or(0));
  EXPECT_EQ(max_seen, kMaxRefcount);
}

}  // namespace
}  // namespace qcow2
